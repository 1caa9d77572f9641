//! Every state and kind the archive records, as enums. Each is stored as text, checked by a `CHECK` (or a
//! trigger) in the migrations with exactly the spellings below; the store binds them with `ToSql`/`FromSql`
//! (`store::kinds`), and JSON output uses the same spellings. Matches over them are exhaustive: a new kind is
//! a compile error wherever it must be handled, never a silent catch-all.

/// Declares a fieldless enum with one text spelling per variant: `as_str`, `Display`, `FromStr`, serde, `ALL`.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling stored in the archive and shown in output.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownKind;

            fn from_str(text: &str) -> Result<Self, UnknownKind> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownKind {
                        kind: stringify!($name),
                        text: other.to_string(),
                    }),
                }
            }
        }
    };
}

/// A stored spelling that names no variant (a damaged or hand-edited row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not a {kind}")]
pub struct UnknownKind {
    /// The enum's name.
    pub kind: &'static str,
    /// The text found.
    pub text: String,
}

text_enum! {
    /// Where a window fetch (a row of the ledger, `windows.status`) stands.
    WindowStatus {
        /// Being paged by a run that has not ended.
        Running => "running",
        /// Its last page was stored: the window's range is covered.
        Complete => "complete",
        /// Its run stopped on an error before the last page.
        Failed => "failed",
        /// Its run was stopped by a signal, or the process died.
        Interrupted => "interrupted",
    }
}

impl WindowStatus {
    /// Whether the fetch has ended (and so must carry a seal).
    pub fn has_ended(self) -> bool {
        match self {
            WindowStatus::Running => false,
            WindowStatus::Complete | WindowStatus::Failed | WindowStatus::Interrupted => true,
        }
    }

    /// Whether the fetch ended without its last page (its range still needs reading).
    pub fn is_incomplete(self) -> bool {
        match self {
            WindowStatus::Complete => false,
            WindowStatus::Running | WindowStatus::Failed | WindowStatus::Interrupted => true,
        }
    }
}

text_enum! {
    /// What a leaf of the archive's Merkle log stands for (`tlog_leaves.kind`); see `crate::tlog`.
    LeafKind {
        /// An event's first version, as fetched (`events.id`).
        Event => "event",
        /// A later version of an event (`event_revisions.id`).
        Revision => "revision",
        /// An item that could not be archived (`rejects.id`).
        Reject => "reject",
        /// The seal of a window fetch (`seals.id`).
        WindowSeal => "window-seal",
        /// The seal of a prune (`seals.id`).
        PruneSeal => "prune-seal",
        /// A prune's removal of the row behind an earlier leaf (its leaf index).
        Removal => "removal",
        /// What a run was asked to fetch, logged as it starts (`runs.id`): the intent ledger.
        Run => "run",
        /// A legal hold placed (`holds.id`).
        Hold => "hold",
        /// A legal hold lifted (`holds.id`).
        HoldLifted => "hold-lifted",
    }
}

text_enum! {
    /// How a run (a row of `runs`) ended.
    RunStatus {
        /// Not ended (or the process died; the next run records it as interrupted).
        Running => "running",
        /// Everything archived.
        Ok => "ok",
        /// Finished, but some items could not be archived.
        Partial => "partial",
        /// Stopped by an error.
        Failed => "failed",
        /// Stopped by a signal.
        Interrupted => "interrupted",
    }
}

impl RunStatus {
    /// The status given to the run's windows still running when the run ends this way.
    pub fn open_windows_become(self) -> WindowStatus {
        match self {
            RunStatus::Interrupted | RunStatus::Running => WindowStatus::Interrupted,
            RunStatus::Ok | RunStatus::Partial | RunStatus::Failed => WindowStatus::Failed,
        }
    }
}

text_enum! {
    /// What a run was (`runs.kind`).
    RunKind {
        /// Fetch what the archive does not hold yet.
        Sync => "sync",
        /// Read covered windows again and compare them with the archive.
        Reconcile => "reconcile",
    }
}

text_enum! {
    /// What `reconcile` found different at the source (`source_changes.kind`).
    ChangeKind {
        /// An event the source has that the archive did not (now archived).
        Late => "late",
        /// An event whose content changed at the source (kept as a revision).
        Changed => "changed",
        /// An archived event the source no longer returns (kept in the archive).
        Deleted => "deleted",
    }
}

text_enum! {
    /// What `verify` found wrong.
    FindingKind {
        /// SQLite's integrity check failed.
        Damaged => "damaged",
        /// Archived rows no longer match their digests or seals.
        Edited => "edited",
        /// Sealed rows are gone.
        Deleted => "deleted",
        /// Rows were filed after sealing.
        Inserted => "inserted",
        /// A ledger row, a prune record or a reconcile record changed.
        Ledger => "ledger",
        /// The seal chain is broken.
        Chain => "chain",
        /// Something that must be sealed is not.
        Unsealed => "unsealed",
        /// The anchor given is not in the chain.
        Anchor => "anchor",
    }
}

/// Why an item of a page could not be archived (`rejects.reason` holds its text, details included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    /// Not a JSON object; the text says what it is instead (`an array`, `a string`, ...).
    NotAnObject(&'static str),
    /// An object that does not parse.
    Unreadable(String),
    /// No id, or a null one.
    NoId,
    /// An id that is not an integer (its JSON).
    IdNotInteger(String),
    /// No timestamp, or a null one.
    NoTimestamp,
    /// A timestamp string that does not parse (the string).
    UnparseableTimestamp(String),
    /// A timestamp that is not a string (its JSON).
    TimestampNotString(String),
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::NotAnObject(what) => write!(f, "not a JSON object (it is {what})"),
            RejectReason::Unreadable(e) => write!(f, "unreadable object: {e}"),
            RejectReason::NoId => f.write_str("no id"),
            RejectReason::IdNotInteger(json) => write!(f, "id is not an integer: {json}"),
            RejectReason::NoTimestamp => f.write_str("no timestamp"),
            RejectReason::UnparseableTimestamp(s) => write!(f, "unparseable timestamp: {s:?}"),
            RejectReason::TimestampNotString(json) => {
                write!(f, "timestamp is not a string: {json}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_and_match_json() {
        fn check<T>(all: &[T])
        where
            T: Copy
                + std::fmt::Debug
                + PartialEq
                + std::fmt::Display
                + std::str::FromStr
                + serde::Serialize,
            <T as std::str::FromStr>::Err: std::fmt::Debug,
        {
            for &v in all {
                let text = v.to_string();
                assert_eq!(text.parse::<T>().unwrap(), v);
                assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{text}\""));
            }
        }
        check(WindowStatus::ALL);
        check(RunStatus::ALL);
        check(RunKind::ALL);
        check(ChangeKind::ALL);
        check(FindingKind::ALL);
        assert!("done".parse::<WindowStatus>().is_err());
    }

    #[test]
    fn the_migrations_check_exactly_these_spellings() {
        let migrations: String =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
                .unwrap()
                .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .collect();
        let list = |all: &[&str]| {
            all.iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for spelled in [
            list(
                &WindowStatus::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>(),
            ),
            list(
                &RunStatus::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>(),
            ),
            list(&RunKind::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
            list(
                &ChangeKind::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>(),
            ),
        ] {
            assert!(
                migrations.contains(&format!("IN ({spelled})")),
                "no CHECK spells {spelled}"
            );
        }
        // The leaf kinds are checked by comparisons (V12: an IN list made every leaf's insert build a table).
        let leaves = include_str!("../../migrations/V12__leaner_log_and_search.sql");
        let checked: Vec<&str> = leaves
            .split("kind = '")
            .skip(1)
            .map(|rest| rest.split('\'').next().unwrap())
            .collect();
        let all: Vec<&str> = LeafKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(checked, all, "V12's CHECK spells the leaf kinds");
    }

    #[test]
    fn reject_reasons_read_as_before() {
        let cases = [
            (
                RejectReason::NotAnObject("an array"),
                "not a JSON object (it is an array)",
            ),
            (RejectReason::NoId, "no id"),
            (
                RejectReason::IdNotInteger("1.5".into()),
                "id is not an integer: 1.5",
            ),
            (RejectReason::NoTimestamp, "no timestamp"),
            (
                RejectReason::UnparseableTimestamp("x".into()),
                "unparseable timestamp: \"x\"",
            ),
            (
                RejectReason::TimestampNotString("5".into()),
                "timestamp is not a string: 5",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
    }
}
