//! A stand-in for the Elevate Events API, faithful to `openapi.yaml`, for demos, tests and benchmarks.
//!
//! It serves `GET /v1/events` and `POST /v1/authenticate` on loopback (axum), in-process or as
//! `elevate-archive simulate`. What the public docs leave open is switchable, so tests cover every reading:
//! inclusive or exclusive plain bounds, default order by id or newest first, and what a page past the end
//! returns. Data is generated from a seed ([`data`]), so millions of events cost no memory; faults come on
//! demand ([`faults`]); late arrivals, edits and deletions change the source while it runs ([`source`]).
//!
//! Two hooks exist for tests that must not depend on the machine's speed: [`Simulator::hold_covering`] keeps
//! the requests for one instant unanswered until [`Simulator::release`] (with the last window of a range held,
//! a sync cannot finish, so a test can signal it at a point of its progress without racing its end), and
//! [`Simulator::issue_token_expiring_at`] issues a token with any expiry, past included, so the 401 for an
//! expired token needs no waiting.

pub mod data;
pub mod faults;
pub mod query;
mod server;
pub mod source;

use crate::time::Timestamp;
use data::Dataset;
use faults::{FaultRule, Faults};
use query::{Bounds, SortKey};
use rand::{SeedableRng, rngs::StdRng};
use source::Overlay;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// Default credentials of the simulated API user.
pub const DEFAULT_USERNAME: &str = "demo";
/// Default password of the simulated API user.
pub const DEFAULT_PASSWORD: &str = "demo";
/// Default token lifetime: the documented 15 minutes.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// The default order of events when a request has no `sort` (the docs do not say which it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DefaultOrder {
    /// By ascending id.
    Id,
    /// Newest first.
    NewestFirst,
}

/// What a page past the last one returns (the docs do not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PastEnd {
    /// An empty array.
    Empty,
    /// 404 with an error body.
    NotFound,
}

/// Everything a simulator is made of.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of generated events.
    pub events: u64,
    /// Start of the generated range.
    pub from: Timestamp,
    /// End of the generated range (exclusive).
    pub to: Timestamp,
    /// Seed of the data and of the faults.
    pub seed: u64,
    /// How plain `createdFrom`/`createdTo` are read.
    pub bounds: Bounds,
    /// Order without `sort`.
    pub default_order: DefaultOrder,
    /// Answer for a page past the end.
    pub past_end: PastEnd,
    /// API user name.
    pub username: String,
    /// API user password.
    pub password: String,
    /// Token lifetime (whole seconds).
    pub token_ttl: Duration,
    /// Share of events with an IPv6 address, per mille.
    pub ipv6_per_mille: u64,
    /// Share of items served malformed, parts per million.
    pub malformed_ppm: u64,
    /// Fault rules for `GET /events`.
    pub faults: Vec<FaultRule>,
    /// How long every `GET /events` takes to answer, from its arrival (its page is made within it).
    pub latency: Duration,
    /// `Retry-After` sent with 429, seconds.
    pub retry_after_secs: u64,
    /// Serve at most this many items per page, whatever `pageSize` asks (a capped server).
    pub page_cap: Option<usize>,
    /// Windows that fail: every request whose range covers the instant is answered 500, always or the first
    /// N times.
    pub failing: Vec<FailingWindow>,
    /// Write offsets as Java's and .NET's defaults do (`+0000`, `+0100`).
    pub compact_offsets: bool,
    /// Delete, once per window, the second event of its first page right after serving that page (with
    /// more than one item per page): later pages shift back by one, as a live source's do.
    pub delete_while_paging: bool,
    /// Pages that fail: a request for the page of a window covering the instant is answered 500, always or
    /// the first N times (a window failing in its middle, its first pages served).
    pub failing_pages: Vec<FailingPage>,
}

/// A page the simulator fails on purpose, in the windows covering an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailingPage {
    /// Requests whose range covers this instant...
    pub at: Timestamp,
    /// ...for this page fail.
    pub page: usize,
    /// How many times (`None`: always).
    pub times: Option<u32>,
}

/// A window the simulator fails on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailingWindow {
    /// Requests whose range covers this instant fail.
    pub at: Timestamp,
    /// How many times (`None`: always).
    pub times: Option<u32>,
}

impl std::str::FromStr for FailingWindow {
    type Err = String;

    /// `TIME` (always) or `TIME:N` (the first N requests).
    fn from_str(text: &str) -> Result<Self, String> {
        let (at, times) = match text.rsplit_once(':') {
            Some((at, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                (at, Some(n.parse().map_err(|e| format!("'{n}': {e}"))?))
            }
            _ => (text, None),
        };
        Ok(FailingWindow {
            at: crate::time::parse_time_arg(at)?,
            times,
        })
    }
}

impl SimConfig {
    /// A clean configuration: documented behaviour, no faults.
    pub fn new(events: u64, from: Timestamp, to: Timestamp) -> Self {
        SimConfig {
            events,
            from,
            to,
            seed: 1,
            bounds: Bounds::Inclusive,
            default_order: DefaultOrder::Id,
            past_end: PastEnd::Empty,
            username: DEFAULT_USERNAME.into(),
            password: DEFAULT_PASSWORD.into(),
            token_ttl: DEFAULT_TOKEN_TTL,
            ipv6_per_mille: 30,
            malformed_ppm: 0,
            faults: Vec::new(),
            latency: Duration::ZERO,
            retry_after_secs: 1,
            page_cap: None,
            failing: Vec::new(),
            compact_offsets: false,
            delete_while_paging: false,
            failing_pages: Vec::new(),
        }
    }
}

/// Counters of what the simulator served.
#[derive(Debug, Default)]
pub struct SimStats {
    /// Events deleted while their window was paged (`delete_while_paging`).
    pub deleted_while_paging: AtomicU64,
    /// `GET /events` requests received.
    pub event_requests: AtomicU64,
    /// Faults injected.
    pub faults: AtomicU64,
    /// Tokens issued by `/authenticate`.
    pub tokens_issued: AtomicU64,
    /// Requests refused with 401.
    pub unauthorized: AtomicU64,
    /// Requests refused with 400.
    pub bad_requests: AtomicU64,
    /// Requests held back by [`Simulator::hold_covering`] (counted when the hold begins).
    pub held: AtomicU64,
    /// `GET /events` requests being answered now (from their arrival to their answer, or to the client
    /// going away).
    pub in_flight: AtomicU64,
    /// The most `GET /events` requests answered at once so far.
    pub max_in_flight: AtomicU64,
}

/// Shared state of a simulator.
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) data: Dataset,
    pub(crate) overlay: RwLock<Overlay>,
    pub(crate) faults: Faults,
    pub(crate) rng: Mutex<StdRng>,
    pub(crate) jwt_secret: [u8; 32],
    pub(crate) stats: SimStats,
    /// The requests held, if any: see [`Simulator::hold_covering`].
    pub(crate) hold: watch::Sender<Option<Hold>>,
    /// Requests failed so far, per entry of `config.failing`.
    pub(crate) failed: Mutex<Vec<u32>>,
    /// Requests failed so far, per entry of `config.failing_pages`.
    pub(crate) failed_pages: Mutex<Vec<u32>>,
    /// Windows (their `createdFrom`, ms) that already lost an event while paged (`delete_while_paging`).
    pub(crate) shifted: Mutex<std::collections::HashSet<i64>>,
}

/// Which requests are held: those whose range covers the instant (ms since the epoch), for pages from
/// `from_page` to `to_page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hold {
    pub(crate) at_ms: i64,
    pub(crate) from_page: usize,
    /// The last page held (`usize::MAX`: every page from `from_page` on).
    pub(crate) to_page: usize,
}

impl Shared {
    fn default_sort(&self) -> Vec<SortKey> {
        match self.config.default_order {
            DefaultOrder::Id => vec![SortKey {
                field: "id",
                desc: false,
            }],
            DefaultOrder::NewestFirst => vec![
                SortKey {
                    field: "timestamp",
                    desc: true,
                },
                SortKey {
                    field: "id",
                    desc: true,
                },
            ],
        }
    }
}

/// A simulator: build it, then [`Simulator::serve`] it.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

/// A simulator serving on a socket; dropping it stops the server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    /// The API base URL, `http://ADDR/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl SimConfig {
    /// The generated data this configuration describes.
    pub fn dataset(&self) -> Dataset {
        Dataset {
            count: self.events,
            from_ms: self.from.timestamp_millis(),
            to_ms: self.to.timestamp_millis(),
            seed: self.seed,
            ipv6_per_mille: self.ipv6_per_mille,
            malformed_ppm: self.malformed_ppm,
            compact_offsets: self.compact_offsets,
        }
    }
}

impl Simulator {
    /// Builds a simulator from its configuration.
    pub fn new(config: SimConfig) -> Self {
        let data = config.dataset();
        let shared = Shared {
            faults: Faults::new(config.faults.clone(), config.seed),
            rng: Mutex::new(StdRng::seed_from_u64(config.seed ^ 0x5EED)),
            jwt_secret: rand::random(),
            overlay: RwLock::new(Overlay::default()),
            stats: SimStats::default(),
            hold: watch::Sender::new(None),
            failed: Mutex::new(vec![0; config.failing.len()]),
            failed_pages: Mutex::new(vec![0; config.failing_pages.len()]),
            shifted: Mutex::new(Default::default()),
            data,
            config,
        };
        Simulator {
            shared: Arc::new(shared),
        }
    }

    /// Starts serving on `addr` (port 0 picks a free port) in the current tokio runtime.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<Running> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(Arc::clone(&self.shared));
        tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!("the simulator stopped: {e}");
            }
        });
        Ok(Running {
            addr,
            shutdown: Some(tx),
        })
    }

    /// A token for the configured user, valid for the configured lifetime from now.
    pub fn issue_token(&self) -> String {
        server::issue_token(&self.shared)
    }

    /// A token for the configured user that expires at `expires_at` (whole seconds), which may be in the past:
    /// a test hook, so that the 401 for an expired token is tested without waiting for one to expire.
    pub fn issue_token_expiring_at(&self, expires_at: SystemTime) -> String {
        let exp = expires_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        server::issue_token_until(&self.shared, exp)
    }

    /// Holds every `GET /events` request whose time range covers `at` unanswered (after its token and
    /// parameters are checked) until [`Simulator::release`]; a later call moves the hold. A test hook: holding
    /// the last instant of a sync's range holds its last window, so the sync cannot finish while the test
    /// kills or signals it at a point of its progress, however fast the machine.
    pub fn hold_covering(&self, at: Timestamp) {
        self.hold_covering_from_page(at, 1);
    }

    /// [`Simulator::hold_covering`] for the pages from `page` on only: the pages before are answered, so a
    /// sync stores the first pages of the window and then waits, its later pages in flight.
    pub fn hold_covering_from_page(&self, at: Timestamp, page: usize) {
        self.shared.hold.send_replace(Some(Hold {
            at_ms: at.timestamp_millis(),
            from_page: page,
            to_page: usize::MAX,
        }));
    }

    /// [`Simulator::hold_covering`] for page `page` only: the pages after it are answered while it is held,
    /// as a slow page would be overtaken.
    pub fn hold_covering_page(&self, at: Timestamp, page: usize) {
        self.shared.hold.send_replace(Some(Hold {
            at_ms: at.timestamp_millis(),
            from_page: page,
            to_page: page,
        }));
    }

    /// Answers the requests held by [`Simulator::hold_covering`] and holds no more.
    pub fn release(&self) {
        self.shared.hold.send_replace(None);
    }

    /// What the simulator has served.
    pub fn stats(&self) -> &SimStats {
        &self.shared.stats
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Every archivable event the source holds now, `(id, JSON)` by id.
    pub fn expected(&self) -> Vec<(i64, String)> {
        self.shared
            .overlay
            .read()
            .expect("overlay lock")
            .expected(&self.shared.data)
    }

    /// `(id, timestamp in ms)` of every archivable event the source holds now, by id (ids and times ascend
    /// together for generated events; late arrivals follow with older times, and events inserted with a
    /// chosen id take their place by id).
    pub fn expected_times(&self) -> Vec<(i64, i64)> {
        let d = &self.shared.data;
        let overlay = self.shared.overlay.read().expect("overlay lock");
        let mut out: Vec<(i64, i64)> = (0..d.count)
            .filter(|i| !d.is_malformed(*i) && !overlay.deleted.contains(i))
            .map(|i| (d.id(i), d.millis(i)))
            .collect();
        out.extend(overlay.late.iter().map(|l| (l.id, l.millis)));
        if overlay.interleaved(d) {
            out.sort_unstable_by_key(|(id, _)| *id);
        }
        out
    }

    /// Ids of the generated events served malformed.
    pub fn malformed_ids(&self) -> Vec<i64> {
        let d = &self.shared.data;
        (0..d.count)
            .filter(|i| d.is_malformed(*i))
            .map(|i| d.id(i))
            .collect()
    }

    /// Inserts `n` events that arrive late, with timestamps inside the generated range; returns their ids.
    pub fn insert_late_events(&self, n: usize) -> Vec<i64> {
        let d = &self.shared.data;
        self.insert_late_events_between(n, d.from_ms, d.to_ms)
    }

    /// Inserts `n` late events with timestamps in `[from_ms, to_ms)`; returns their ids.
    pub fn insert_late_events_between(&self, n: usize, from_ms: i64, to_ms: i64) -> Vec<i64> {
        let mut rng = self.shared.rng.lock().expect("rng lock");
        self.shared
            .overlay
            .write()
            .expect("overlay lock")
            .insert_late(&self.shared.data, n, from_ms, to_ms, &mut rng)
    }

    /// Edits `n` events at the source; returns their ids.
    pub fn edit_events(&self, n: usize) -> Vec<i64> {
        let mut rng = self.shared.rng.lock().expect("rng lock");
        self.shared
            .overlay
            .write()
            .expect("overlay lock")
            .edit(&self.shared.data, n, &mut rng)
    }

    /// Deletes the generated events with these ids at the source (ids it does not hold are ignored); returns
    /// how many were deleted. A test hook: deleting events at a known place of a window's list while the
    /// window is paged shifts its later pages by a known amount.
    pub fn delete_event_ids(&self, ids: &[i64]) -> usize {
        let d = &self.shared.data;
        let mut overlay = self.shared.overlay.write().expect("overlay lock");
        let mut deleted = 0;
        for &id in ids {
            if let Some(i) = d.index_of(id)
                && overlay.deleted.insert(i)
            {
                deleted += 1;
            }
        }
        deleted
    }

    /// Inserts one event at the source with the chosen `id` and timestamp `at`; returns whether it was
    /// inserted (not if a generated event has, or had, that id, or an event was already inserted with it). A
    /// test hook, the counterpart of [`Simulator::delete_event_ids`]: an id between two generated ids of a
    /// window puts the event in the middle of the window's list (`sort=id`), and every event after it moves
    /// one place back, as a source whose ids do not follow creation would do. Its content is that of the
    /// generated event nearest its id, with its own id and time.
    pub fn insert_event(&self, id: i64, at: Timestamp) -> bool {
        let d = &self.shared.data;
        let near = u64::try_from((id - data::ID_BASE) / 2)
            .unwrap_or(0)
            .min(d.count.saturating_sub(1));
        self.shared
            .overlay
            .write()
            .expect("overlay lock")
            .insert_with_id(d, id, at.timestamp_millis(), near)
            .is_ok()
    }

    /// Deletes `n` events at the source; returns their ids.
    pub fn delete_events(&self, n: usize) -> Vec<i64> {
        let mut rng = self.shared.rng.lock().expect("rng lock");
        self.shared
            .overlay
            .write()
            .expect("overlay lock")
            .delete(&self.shared.data, n, &mut rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_request_is_answered_after_release_and_others_meanwhile() {
        let from = crate::time::parse_time_arg("2024-01-01").unwrap();
        let sim = Simulator::new(SimConfig::new(100, from, from + chrono::TimeDelta::days(2)));
        let running = sim.serve(([127, 0, 0, 1], 0).into()).await.unwrap();
        let (base, token) = (running.base_url(), sim.issue_token());
        let get = move |day: u32| {
            let url = format!(
                "{base}/events?page=1&pageSize=10&createdFrom=2024-01-0{day}T00:00:00Z&createdTo=2024-01-0{day}T12:00:00Z"
            );
            let token = token.clone();
            async move {
                let response = reqwest::Client::new()
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                response.status().as_u16()
            }
        };
        sim.hold_covering(crate::time::parse_time_arg("2024-01-02T06:00:00Z").unwrap());
        let held = tokio::spawn(get(2));
        // Another window is answered while the hold is in place.
        assert_eq!(get(1).await, 200);
        while sim.stats().held.load(Ordering::Relaxed) < 1 {
            tokio::task::yield_now().await;
        }
        assert!(!held.is_finished(), "the held request was answered");
        sim.release();
        assert_eq!(held.await.unwrap(), 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_issued_already_expired_draws_401() {
        let from = crate::time::parse_time_arg("2024-01-01").unwrap();
        let sim = Simulator::new(SimConfig::new(10, from, from + chrono::TimeDelta::days(1)));
        let running = sim.serve(([127, 0, 0, 1], 0).into()).await.unwrap();
        let expired = sim.issue_token_expiring_at(SystemTime::now() - Duration::from_secs(60));
        let response = reqwest::Client::new()
            .get(format!(
                "{}/events?page=1&pageSize=10&createdFrom=2024-01-01T00:00:00Z&createdTo=2024-01-02T00:00:00Z",
                running.base_url()
            ))
            .bearer_auth(expired)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["message"], "The token has expired");
    }
}
