//! The simulated tenant's events: the generated [`Dataset`] plus an overlay of what changed while running
//! (late arrivals, edits, deletions), and the selection of one page for a query.
//!
//! Order: ids of generated events ascend with their index, and late arrivals get ids above all of them, so
//! `sort=id` pages are cut by arithmetic on indices (no sort, no scan) unless a filter or a deletion applies;
//! any other order sorts the window's candidates (bounded by [`MAX_SORTED_WINDOW`]). An event inserted with a
//! chosen id ([`Overlay::insert_with_id`], a test hook) may land among the generated ones, in the middle of a
//! window's list: id order then merges the two.

use super::data::Dataset;
use super::query::{EventsQuery, SortKey, StringFilter};
use rand::{Rng, rngs::StdRng};
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

/// Most events a window may hold for an order other than by id.
pub const MAX_SORTED_WINDOW: usize = 2_000_000;

/// An event that arrived after the simulator started, with a timestamp in the past.
#[derive(Debug, Clone)]
pub struct LateEvent {
    /// Its id (above every generated id, unless inserted with a chosen one).
    pub id: i64,
    /// Its timestamp, ms.
    pub millis: i64,
    /// The generated event whose content it borrows.
    pub source_index: u64,
    /// Its JSON.
    pub raw: String,
}

/// What changed at the source while the simulator ran.
#[derive(Debug, Default)]
pub struct Overlay {
    /// Indices of generated events deleted at the source.
    pub deleted: BTreeSet<u64>,
    /// Edited JSON of generated events, by index.
    pub edited: HashMap<u64, String>,
    /// Late arrivals, by ascending id.
    pub late: Vec<LateEvent>,
}

/// Why an event cannot be inserted with a chosen id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// A generated event has (or had, before it was deleted) this id.
    Generated,
    /// A late event already has it.
    Late,
}

/// One candidate of a page: a generated event or a late one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Candidate {
    Generated(u64),
    Late(usize),
}

/// Why a page cannot be served.
#[derive(Debug)]
pub enum SelectError {
    /// A non-id order over a window too large to sort.
    TooLarge(usize),
}

/// The candidates of one query: the generated events in its time range (indices `lo..hi`, less those deleted
/// or filtered out) and the late events in it that pass its filters.
struct Candidates<'a> {
    overlay: &'a Overlay,
    data: &'a Dataset,
    query: &'a EventsQuery,
    lo: u64,
    hi: u64,
    /// Indices into the overlay's late events, ascending (so by id).
    late: Vec<usize>,
}

impl<'a> Candidates<'a> {
    fn new(overlay: &'a Overlay, data: &'a Dataset, query: &'a EventsQuery) -> Self {
        let range = &query.range;
        let late = (0..overlay.late.len())
            .filter(|&k| {
                let l = &overlay.late[k];
                l.millis >= range.min_ms
                    && l.millis <= range.max_ms
                    && passes(query, data.kind(l.source_index))
            })
            .collect();
        Candidates {
            overlay,
            data,
            query,
            lo: data.first_at_or_after(range.min_ms),
            hi: data.first_at_or_after(range.max_ms.saturating_add(1)),
            late,
        }
    }

    /// The generated candidates, by id.
    fn generated(&self) -> impl DoubleEndedIterator<Item = Candidate> + '_ {
        (self.lo..self.hi)
            .filter(|i| !self.overlay.deleted.contains(i) && passes(self.query, self.data.kind(*i)))
            .map(Candidate::Generated)
    }

    /// The late candidates, by id.
    fn late(&self) -> impl DoubleEndedIterator<Item = Candidate> + '_ {
        self.late.iter().map(|&k| Candidate::Late(k))
    }

    /// Items before the page.
    fn offset(&self) -> usize {
        (self.query.page - 1).saturating_mul(self.query.page_size)
    }

    /// The requested page of candidates already in order.
    fn page(&self, ordered: impl Iterator<Item = Candidate>) -> Vec<Candidate> {
        ordered
            .skip(self.offset())
            .take(self.query.page_size)
            .collect()
    }

    /// Whether a late event of the range has an id among the generated ones (it was inserted with a chosen
    /// id, in the middle of the list): id order then merges the two instead of putting the late ones last.
    fn interleaved(&self) -> bool {
        self.late
            .first()
            .is_some_and(|&k| self.overlay.late[k].id <= self.data.max_id())
    }

    /// Every candidate in ascending id order: the generated ones and the late ones merged.
    fn merged(&self) -> Vec<Candidate> {
        let mut late = self.late().peekable();
        let mut all = Vec::new();
        for generated in self.generated() {
            let Candidate::Generated(i) = generated else {
                unreachable!("generated candidates")
            };
            while let Some(&Candidate::Late(k)) = late.peek() {
                if self.overlay.late[k].id > self.data.id(i) {
                    break;
                }
                all.push(Candidate::Late(k));
                late.next();
            }
            all.push(generated);
        }
        all.extend(late);
        all
    }

    /// The page in ascending id order: generated ids first (all below the late ones, unless some were
    /// inserted among them). Without filters, deletions or inserted events in the range, the page is cut by
    /// arithmetic on indices, with no scan.
    fn by_id(&self) -> Vec<Candidate> {
        if self.interleaved() {
            return self.page(self.merged().into_iter());
        }
        let filtered = self.query.category.is_some() || self.query.action.is_some();
        if filtered
            || self
                .overlay
                .deleted
                .range(self.lo..self.hi)
                .next()
                .is_some()
        {
            return self.page(self.generated().chain(self.late()));
        }
        let (offset, size) = (self.offset(), self.query.page_size);
        let generated_len = (self.hi - self.lo) as usize;
        let start = self.lo as usize + offset.min(generated_len);
        let end = (start + size).min(self.hi as usize);
        let mut page: Vec<Candidate> = (start as u64..end as u64)
            .map(Candidate::Generated)
            .collect();
        let late_skip = offset.saturating_sub(generated_len);
        page.extend(self.late().skip(late_skip).take(size - page.len()));
        page
    }

    /// The page in any other order: every candidate sorted (refused past [`MAX_SORTED_WINDOW`]).
    fn sorted(&self, keys: &[SortKey]) -> Result<Vec<Candidate>, SelectError> {
        let window = (self.hi - self.lo) as usize + self.late.len();
        if window > MAX_SORTED_WINDOW {
            return Err(SelectError::TooLarge(window));
        }
        let mut all: Vec<Candidate> = self.generated().chain(self.late()).collect();
        let bodies: HashMap<Candidate, serde_json::Value> =
            if keys.iter().any(|k| needs_body(k.field)) {
                all.iter()
                    .map(|c| {
                        let body = self.overlay.render(self.data, *c);
                        (*c, serde_json::from_str(&body).unwrap_or_default())
                    })
                    .collect()
            } else {
                HashMap::new()
            };
        all.sort_by(|a, b| {
            keys.iter()
                .map(|k| {
                    let o = self.overlay.compare(self.data, *a, *b, k.field, &bodies);
                    if k.desc { o.reverse() } else { o }
                })
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
        Ok(self.page(all.into_iter()))
    }
}

impl Overlay {
    /// Inserts `n` late events with timestamps between `from_ms` and `until_ms`.
    pub fn insert_late(
        &mut self,
        data: &Dataset,
        n: usize,
        from_ms: i64,
        until_ms: i64,
        rng: &mut StdRng,
    ) -> Vec<i64> {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            // Above every generated id, even when the only events inserted so far were given lower ones.
            let id = self.late.last().map_or(data.max_id() + 1_000, |l| {
                l.id.max(data.max_id() + 999) + 1 + rng.random_range(0..3)
            });
            let millis = rng.random_range(from_ms..until_ms.max(from_ms + 1));
            let source_index = rng.random_range(0..data.count.max(1));
            let raw = data.render_as(source_index, id, millis);
            self.late.push(LateEvent {
                id,
                millis,
                source_index,
                raw,
            });
            ids.push(id);
        }
        ids
    }

    /// Inserts one event with the chosen `id` and timestamp (its content borrowed from generated event
    /// `source_index`), wherever its id puts it in the list: below generated ids, it lands in the middle of
    /// its window's list and moves the events after it one place back. Refused if the id is, or was, taken.
    pub fn insert_with_id(
        &mut self,
        data: &Dataset,
        id: i64,
        millis: i64,
        source_index: u64,
    ) -> Result<(), InsertError> {
        if data.index_of(id).is_some() {
            return Err(InsertError::Generated);
        }
        let at = match self.late.binary_search_by_key(&id, |l| l.id) {
            Ok(_) => return Err(InsertError::Late),
            Err(at) => at,
        };
        let raw = data.render_as(source_index, id, millis);
        self.late.insert(
            at,
            LateEvent {
                id,
                millis,
                source_index,
                raw,
            },
        );
        Ok(())
    }

    /// Whether an event was inserted with an id among the generated ones (see [`Overlay::insert_with_id`]).
    pub fn interleaved(&self, data: &Dataset) -> bool {
        self.late.first().is_some_and(|l| l.id <= data.max_id())
    }

    /// Edits `n` generated events' descriptions; returns their ids.
    pub fn edit(&mut self, data: &Dataset, n: usize, rng: &mut StdRng) -> Vec<i64> {
        let mut ids = Vec::new();
        for _ in 0..n {
            let i = rng.random_range(0..data.count.max(1));
            if data.is_malformed(i) || self.deleted.contains(&i) {
                continue;
            }
            let current = self
                .edited
                .get(&i)
                .cloned()
                .unwrap_or_else(|| data.render(i));
            let mut value: serde_json::Value =
                serde_json::from_str(&current).expect("rendered events are JSON");
            let text = value["description"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            value["description"] = serde_json::Value::String(format!("{text} (edited)"));
            self.edited.insert(i, value.to_string());
            ids.push(data.id(i));
        }
        ids
    }

    /// Deletes `n` generated events at the source; returns their ids.
    pub fn delete(&mut self, data: &Dataset, n: usize, rng: &mut StdRng) -> Vec<i64> {
        let mut ids = Vec::new();
        for _ in 0..n {
            let i = rng.random_range(0..data.count.max(1));
            if self.deleted.insert(i) {
                ids.push(data.id(i));
            }
        }
        ids
    }

    /// The page `query` asks for, rendered.
    pub fn select(
        &self,
        data: &Dataset,
        query: &EventsQuery,
        default_sort: &[SortKey],
    ) -> Result<Vec<String>, SelectError> {
        let candidates = Candidates::new(self, data, query);
        let sort = if query.sort.is_empty() {
            default_sort
        } else {
            &query.sort
        };
        let picked = match sort {
            [
                SortKey {
                    field: "id",
                    desc: false,
                },
            ] => candidates.by_id(),
            [
                SortKey {
                    field: "id",
                    desc: true,
                },
            ] if candidates.interleaved() => candidates.page(candidates.merged().into_iter().rev()),
            [
                SortKey {
                    field: "id",
                    desc: true,
                },
            ] => candidates.page(candidates.late().rev().chain(candidates.generated().rev())),
            keys => candidates.sorted(keys)?,
        };
        Ok(picked
            .into_iter()
            .map(|c| project(self.render(data, c), &query.fields))
            .collect())
    }

    fn render(&self, data: &Dataset, c: Candidate) -> String {
        match c {
            Candidate::Generated(i) => self
                .edited
                .get(&i)
                .cloned()
                .unwrap_or_else(|| data.render_served(i)),
            Candidate::Late(k) => self.late[k].raw.clone(),
        }
    }

    fn compare(
        &self,
        data: &Dataset,
        a: Candidate,
        b: Candidate,
        field: &str,
        bodies: &HashMap<Candidate, serde_json::Value>,
    ) -> Ordering {
        let id = |c: Candidate| match c {
            Candidate::Generated(i) => data.id(i),
            Candidate::Late(k) => self.late[k].id,
        };
        let millis = |c: Candidate| match c {
            Candidate::Generated(i) => data.millis(i),
            Candidate::Late(k) => self.late[k].millis,
        };
        let kind = |c: Candidate| match c {
            Candidate::Generated(i) => data.kind(i),
            Candidate::Late(k) => data.kind(self.late[k].source_index),
        };
        match field {
            "id" => id(a).cmp(&id(b)),
            "timestamp" => millis(a).cmp(&millis(b)),
            "category" => kind(a).0.cmp(kind(b).0),
            "action" => kind(a).1.cmp(kind(b).1),
            other => {
                let text = |c: Candidate| {
                    bodies
                        .get(&c)
                        .and_then(|v| v[other].as_str().map(str::to_string))
                        .unwrap_or_default()
                };
                text(a).cmp(&text(b))
            }
        }
    }

    /// Every archivable event the source holds now, as `(id, JSON)`, by id: what a complete archive must equal.
    pub fn expected(&self, data: &Dataset) -> Vec<(i64, String)> {
        let mut out: Vec<(i64, String)> = (0..data.count)
            .filter(|i| !data.is_malformed(*i) && !self.deleted.contains(i))
            .map(|i| {
                (
                    data.id(i),
                    self.edited
                        .get(&i)
                        .cloned()
                        .unwrap_or_else(|| data.render(i)),
                )
            })
            .collect();
        out.extend(self.late.iter().map(|l| (l.id, l.raw.clone())));
        if self.interleaved(data) {
            out.sort_unstable_by_key(|(id, _)| *id);
        }
        out
    }
}

fn needs_body(field: &str) -> bool {
    matches!(field, "description" | "username" | "ipAddress")
}

/// Whether an event of this (category, action) passes the query's filters.
fn passes(query: &EventsQuery, (category, action): (&str, &str)) -> bool {
    matches(&query.category, category) && matches(&query.action, action)
}

fn matches(filter: &Option<StringFilter>, value: &str) -> bool {
    filter.as_ref().is_none_or(|f| f.matches(value))
}

/// Keeps only the requested fields of an item (items that are not objects stay as they are).
fn project(raw: String, fields: &[&str]) -> String {
    if fields.is_empty() {
        return raw;
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&raw) {
        Ok(map) => {
            let kept: serde_json::Map<String, serde_json::Value> = map
                .into_iter()
                .filter(|(k, _)| fields.contains(&k.as_str()))
                .collect();
            serde_json::Value::Object(kept).to_string()
        }
        Err(_) => raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::query::{self, Bounds};
    use rand::SeedableRng;

    /// 2024-01-01T00:00:00Z in ms.
    const DAY_START: i64 = 1_704_067_200_000;
    /// A day in ms.
    const DAY_MS: i64 = 86_400_000;
    /// The query parameters of a whole-day window.
    const WHOLE_DAY: &str = "createdFrom=2024-01-01T00:00:00Z&createdTo=2024-01-02T00:00:00Z";

    fn dataset(count: u64) -> Dataset {
        Dataset {
            count,
            from_ms: DAY_START,
            to_ms: DAY_START + DAY_MS,
            seed: 11,
            ipv6_per_mille: 30,
            malformed_ppm: 20_000,
            compact_offsets: false,
        }
    }

    /// Late arrivals only, or late arrivals with edits and deletions.
    fn overlay(data: &Dataset, changed: bool) -> Overlay {
        let mut rng = StdRng::seed_from_u64(7);
        let mut overlay = Overlay::default();
        overlay.insert_late(data, 30, data.from_ms, data.to_ms, &mut rng);
        if changed {
            overlay.edit(data, 40, &mut rng);
            overlay.delete(data, 60, &mut rng);
            // Events inserted in the middle of the list (ids between generated ones), at both windows' times.
            for i in [5, 400, 700, 1_100] {
                let id = free_id_after(data, i);
                overlay.insert_with_id(data, id, data.millis(i), i).unwrap();
            }
        }
        overlay
    }

    /// An id between those of generated events `i` and the next free one after it.
    fn free_id_after(data: &Dataset, i: u64) -> i64 {
        (data.id(i) + 1..)
            .find(|id| data.index_of(*id).is_none())
            .unwrap()
    }

    #[test]
    fn an_event_inserted_with_a_chosen_id_takes_its_place_in_the_list() {
        let data = dataset(900);
        let mut overlay = Overlay::default();
        let query = events_query(&format!("page=1&pageSize=1000&sort=id&{WHOLE_DAY}"));
        let before = overlay.select(&data, &query, &[]).unwrap();
        let id = free_id_after(&data, 99);
        let millis = data.millis(99);
        overlay.insert_with_id(&data, id, millis, 99).unwrap();
        assert_eq!(
            overlay.insert_with_id(&data, id, millis, 99),
            Err(InsertError::Late)
        );
        assert_eq!(
            overlay.insert_with_id(&data, data.id(3), millis, 3),
            Err(InsertError::Generated)
        );
        // Late arrivals still come after every generated event.
        let late = overlay.insert_late(
            &data,
            2,
            data.from_ms,
            data.to_ms,
            &mut StdRng::seed_from_u64(1),
        );
        assert!(late.iter().all(|l| *l > data.max_id()), "{late:?}");
        let after = overlay.select(&data, &query, &[]).unwrap();
        let position = after
            .iter()
            .position(|raw| raw.starts_with(&format!("{{\"id\":{id},")))
            .unwrap();
        assert_eq!(position, 100, "right after event 99");
        assert_eq!(
            after[..position],
            before[..position],
            "the events before it stay"
        );
        assert_eq!(
            after[position + 1..=before.len()],
            before[position..],
            "the events after it move one place back"
        );
        let ids: Vec<i64> = overlay.expected(&data).iter().map(|(id, _)| *id).collect();
        assert!(ids.is_sorted(), "expected stays by id");
        assert!(ids.contains(&id));
    }

    fn events_query(text: &str) -> EventsQuery {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(text.as_bytes())
            .into_owned()
            .collect();
        query::parse(&pairs, Bounds::Inclusive).unwrap()
    }

    /// What a page must hold, by the definition rather than the fast paths: every candidate in the range that
    /// passes the filters (generated by index, then late by arrival), stably sorted by the keys, then cut.
    fn reference(
        overlay: &Overlay,
        data: &Dataset,
        query: &EventsQuery,
        default_sort: &[SortKey],
    ) -> Vec<String> {
        let keys = if query.sort.is_empty() {
            default_sort
        } else {
            &query.sort
        };
        let in_range = |ms: i64| ms >= query.range.min_ms && ms <= query.range.max_ms;
        let passes =
            |(c, a): (&str, &str)| matches(&query.category, c) && matches(&query.action, a);
        let mut all: Vec<Candidate> = (0..data.count)
            .filter(|i| !overlay.deleted.contains(i) && in_range(data.millis(*i)))
            .filter(|i| passes(data.kind(*i)))
            .map(Candidate::Generated)
            .chain(
                (0..overlay.late.len())
                    .filter(|k| in_range(overlay.late[*k].millis))
                    .filter(|k| passes(data.kind(overlay.late[*k].source_index)))
                    .map(Candidate::Late),
            )
            .collect();
        let bodies: HashMap<Candidate, serde_json::Value> = all
            .iter()
            .filter(|_| keys.iter().any(|k| needs_body(k.field)))
            .map(|c| {
                let body = serde_json::from_str(&overlay.render(data, *c)).unwrap_or_default();
                (*c, body)
            })
            .collect();
        all.sort_by(|a, b| {
            keys.iter()
                .map(|k| {
                    let o = overlay.compare(data, *a, *b, k.field, &bodies);
                    if k.desc { o.reverse() } else { o }
                })
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
        all.into_iter()
            .skip((query.page - 1) * query.page_size)
            .take(query.page_size)
            .map(|c| project(overlay.render(data, c), &query.fields))
            .collect()
    }

    /// Query parameters besides the window, one page each: every path `select` takes.
    const QUERIES: [&str; 12] = [
        "page=1&pageSize=100",
        // The last generated events and the first late ones; late ones only; past the end.
        "page=16&pageSize=94",
        "page=17&pageSize=94",
        "page=18&pageSize=94",
        "page=1&pageSize=25&sort=id:desc",
        "page=2&pageSize=25&sort=id:desc",
        "page=3&pageSize=40&sort=timestamp:desc,id",
        "page=2&pageSize=60&sort=category,description:desc",
        "page=1&pageSize=50&sort=action&category=in:authentication,billing",
        "page=2&pageSize=30&category=authentication&action=like:user-login-%",
        "page=1&pageSize=20&sort=id&fields=id,timestamp",
        "page=1&pageSize=20&sort=username:desc,id&fields=username",
    ];

    #[test]
    fn pages_are_what_the_definition_says() {
        let data = dataset(1_500);
        let by_id = [SortKey {
            field: "id",
            desc: false,
        }];
        let newest_first = [
            SortKey {
                field: "timestamp",
                desc: true,
            },
            SortKey {
                field: "id",
                desc: true,
            },
        ];
        let windows = [
            WHOLE_DAY,
            "createdFrom=2024-01-01T06:00:00Z&createdTo=2024-01-01T12:00:00Z",
        ];
        let mut served = 0;
        for changed in [false, true] {
            let overlay = overlay(&data, changed);
            for default_sort in [&by_id[..], &newest_first[..]] {
                for (text, window) in QUERIES.iter().flat_map(|q| windows.map(|w| (q, w))) {
                    let query = events_query(&format!("{text}&{window}"));
                    let got = overlay.select(&data, &query, default_sort).unwrap();
                    served += got.len();
                    let want = reference(&overlay, &data, &query, default_sort);
                    assert_eq!(
                        got, want,
                        "{text}&{window}, changed {changed}, default {default_sort:?}"
                    );
                }
            }
        }
        assert!(
            served > 1_500,
            "the pages are not trivially empty: {served}"
        );
    }

    #[test]
    fn a_window_too_large_to_sort_is_refused() {
        let data = dataset(MAX_SORTED_WINDOW as u64 + 1_000);
        let overlay = Overlay::default();
        let query = events_query(&format!("page=1&pageSize=10&sort=timestamp&{WHOLE_DAY}"));
        match overlay.select(&data, &query, &[]) {
            Err(SelectError::TooLarge(n)) => assert_eq!(n, MAX_SORTED_WINDOW + 1_000),
            Ok(page) => panic!("served {} items", page.len()),
        }
        let by_id = events_query(&format!("page=2&pageSize=10&sort=id&{WHOLE_DAY}"));
        assert_eq!(
            overlay.select(&data, &by_id, &[]).unwrap().len(),
            10,
            "id order needs no sort"
        );
    }
}
