//! Domain types shared by the sync engine and the store: what an archived event, a rejected item and a page
//! of them are, independent of how the API spells them on the wire; the filters a run is made with; the
//! interval algebra ([`interval`]); every recorded state and kind ([`kinds`]); and how an event's typed columns
//! derive from its raw JSON text ([`typed`]).

pub mod interval;
pub mod kinds;
pub mod typed;

pub use interval::{Interval, gaps_between, merge_intervals, subtract, subtract_all};
pub use kinds::{
    ChangeKind, FindingKind, LeafKind, RejectReason, RunKind, RunStatus, WindowStatus,
};
pub use typed::{ColumnSet, EventColumn, StoredColumns, TypedColumns, typed_columns};

use crate::time::Timestamp;

/// One server-side filter in the API's syntax: `xyz` (equals), `in:x,y` (one of), `like:pattern`.
///
/// Parsed once from what the user typed; its text form ([`Filter::to_api`]) is what the API is sent and what
/// the ledger records. `in:` values are trimmed and empty ones dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Filter {
    /// The field equals this value.
    Eq(String),
    /// The field is one of these values.
    In(Vec<String>),
    /// The field matches this pattern (`%` any run, `_` one character).
    Like(String),
}

impl Filter {
    /// Parses a filter as the API spells it; an empty text, or an `in:` list with no value, is refused.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err(
                "the filter is empty: give xyz, in:x,y or like:xyz, or leave it out".into(),
            );
        }
        if let Some(list) = text.strip_prefix("in:") {
            let values: Vec<String> = list
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            if values.is_empty() {
                return Err(format!("'{text}' lists no value: give in:x,y"));
            }
            return Ok(Filter::In(values));
        }
        if let Some(pattern) = text.strip_prefix("like:") {
            return Ok(Filter::Like(pattern.to_string()));
        }
        Ok(Filter::Eq(text.to_string()))
    }

    /// The filter as the API takes it and the ledger records it.
    pub fn to_api(&self) -> String {
        match self {
            Filter::Eq(v) => v.clone(),
            Filter::In(values) => format!("in:{}", values.join(",")),
            Filter::Like(p) => format!("like:{p}"),
        }
    }
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_api())
    }
}

/// The server-side filters a run was made with; `None` means "no filter".
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filters {
    /// The `category` filter.
    pub category: Option<Filter>,
    /// The `action` filter.
    pub action: Option<Filter>,
}

impl Filters {
    /// Whether no filter is set (the run reads every event).
    pub fn is_none(&self) -> bool {
        self.category.is_none() && self.action.is_none()
    }

    /// The filters as the ledger records them: `(category, action)`, the empty text for "none".
    pub fn to_ledger(&self) -> (String, String) {
        let text = |f: &Option<Filter>| f.as_ref().map(Filter::to_api).unwrap_or_default();
        (text(&self.category), text(&self.action))
    }

    /// The filters from the ledger's texts (the empty text is "none"); `None` if a text does not parse.
    pub fn from_ledger(category: &str, action: &str) -> Option<Filters> {
        let parse = |t: &str| match t {
            "" => Some(None),
            t => Filter::parse(t).ok().map(Some),
        };
        Some(Filters {
            category: parse(category)?,
            action: parse(action)?,
        })
    }
}

/// Which archived events a reader asks for: a time range `[from, to)` (either end open) and filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSelection {
    /// Earliest timestamp, inclusive.
    pub from: Option<Timestamp>,
    /// Latest timestamp, exclusive.
    pub to: Option<Timestamp>,
    /// Category and action filters, read as the API reads them.
    pub filters: Filters,
}

/// An event ready to be archived.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The API's event id, the archive's primary key.
    pub id: i64,
    /// The timestamp normalised to `YYYY-MM-DDTHH:MM:SS.sssZ`.
    pub timestamp: String,
    /// The category (empty when the server sent none).
    pub category: String,
    /// The action (empty when the server sent none).
    pub action: String,
    /// The description, if any.
    pub description: Option<String>,
    /// The username, if any.
    pub username: Option<String>,
    /// The IP address, if any, as sent.
    pub ip_address: Option<String>,
    /// The item's JSON exactly as received.
    pub raw: String,
    /// Hex SHA-256 of `raw`.
    pub digest: String,
    /// Its leaf hash in the Merkle log as a new event (`tlog::leaf_hash`), computed with the digest on the
    /// fetch side so the one writer thread does not; `None`: the writer computes it.
    pub leaf: Option<[u8; 32]>,
    /// Whether the timestamp lies outside the bounds the window asked the server for.
    pub out_of_window: bool,
}

/// An item that cannot be archived as an event, kept as received with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// The item's text exactly as received.
    pub raw: String,
    /// Why it could not be archived.
    pub reason: RejectReason,
}

/// One item of a page, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An archivable event.
    Event(Event),
    /// An item for the rejects table.
    Reject(Reject),
}

/// A window of a sync run as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    /// The interval the window is responsible for.
    pub interval: Interval,
    /// The filters it was fetched with.
    pub filters: Filters,
    /// `createdFrom` as sent (whole seconds).
    pub created_from: Timestamp,
    /// `createdTo` as sent (whole seconds).
    pub created_to: Timestamp,
}

/// One fetched page on its way to the archive: committed, with its bookkeeping, in one transaction.
#[derive(Debug)]
pub struct PageBatch {
    /// The window's position in the run's plan (the writer maps it to a ledger row).
    pub window_seq: usize,
    /// The window being paged.
    pub window: std::sync::Arc<WindowSpec>,
    /// 1-based page number.
    pub page: u32,
    /// The page's items in server order.
    pub items: Vec<Item>,
    /// Whether this is the window's last page: its commit marks the window complete.
    pub last: bool,
    /// `reconcile`, with a window's last page: archived events of its range the source no longer has,
    /// confirmed by an unfiltered read of their instant (they stay archived and are recorded as deleted).
    pub deleted_at_source: Vec<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_once_and_print_as_the_api_takes_them() {
        let cases = [
            (
                "authentication",
                Ok(Filter::Eq("authentication".into())),
                "authentication",
            ),
            (" billing ", Ok(Filter::Eq("billing".into())), "billing"),
            (
                "in:billing, invoicing,",
                Ok(Filter::In(vec!["billing".into(), "invoicing".into()])),
                "in:billing,invoicing",
            ),
            (
                "like:user-login-%",
                Ok(Filter::Like("user-login-%".into())),
                "like:user-login-%",
            ),
            (
                "x' OR '1'='1",
                Ok(Filter::Eq("x' OR '1'='1".into())),
                "x' OR '1'='1",
            ),
            ("in:", Err(()), ""),
            ("in: , ", Err(()), ""),
            ("  ", Err(()), ""),
        ];
        for (text, want, api) in cases {
            let got = Filter::parse(text);
            assert_eq!(got.clone().map_err(|_| ()), want, "{text:?}");
            if let Ok(f) = got {
                assert_eq!(f.to_api(), api);
                assert_eq!(
                    Filter::parse(&f.to_api()),
                    Ok(f),
                    "the API form parses back"
                );
            }
        }
    }

    #[test]
    fn ledger_texts_round_trip() {
        let filters = Filters {
            category: Some(Filter::In(vec!["a".into(), "b".into()])),
            action: None,
        };
        let (c, a) = filters.to_ledger();
        assert_eq!((c.as_str(), a.as_str()), ("in:a,b", ""));
        assert_eq!(Filters::from_ledger(&c, &a), Some(filters));
        assert_eq!(Filters::from_ledger("", ""), Some(Filters::default()));
        assert!(Filters::default().is_none());
        assert_eq!(Filters::from_ledger("in:", ""), None);
    }
}

/// How much of the end of the coverage a plain `sync` reads again (late arrivals): a fixed duration, or what
/// the archive observed (`--lookback auto`: see `store::lateness`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookback {
    /// This much.
    Fixed(chrono::TimeDelta),
    /// From how late events were found after their range was first fetched.
    Auto,
}
