//! The export ledger (V13): what `export --incremental` mirrored to each destination, and the reads a mirror
//! run needs: the seals since its destination's last run, and the events they stand for.
//!
//! Terms: a *destination* is one mirror (its normalised URL); a *run* (`export_runs`) mirrored every seal
//! after `after_seal` through `through_seal`; an *object* (`export_objects`) is a Parquet file a run added,
//! live until a later run's manifest drops it (`removed_by`). Invariant: a run is recorded here only after its
//! manifest is committed at the destination, in one transaction with its objects; so the ledger never claims
//! what the destination does not hold, and a destination one run ahead (killed after its manifest) is rolled
//! forward from that manifest ([`Archive::record_mirror_run`] serves both).

use super::export::{self, ExportError, ExportRow, RevisionRow};
use super::{Archive, SqlContext, StoreError};
use rusqlite::{OptionalExtension, params};

/// One object of a mirror, as the ledger (and a manifest) records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorObject {
    /// Its path, relative to the destination's root.
    pub path: String,
    /// Its partition (`YYYY-MM-DD`).
    pub date: String,
    /// Rows in it.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
}

/// A destination's last recorded run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorRun {
    /// Its number at the destination (1, 2, ...).
    pub number: i64,
    /// The last seal it mirrored.
    pub through_seal: i64,
    /// Hex SHA-256 of the manifest it committed.
    pub manifest_sha256: String,
}

/// What the ledger says a destination holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorLedger {
    /// The last run recorded, if any.
    pub last: Option<MirrorRun>,
    /// The live objects (added and not dropped since), by path.
    pub objects: Vec<MirrorObject>,
}

/// A seal a run has to mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingSeal {
    /// A window fetch: the events it inserted are new.
    Window,
    /// A prune: events inside these ranges (stored-form `[from, to)`), and of the window fetches it emptied,
    /// are gone from the archive.
    Prune {
        /// The ranges pruned, and the ranges of the window fetches it removed rows from.
        ranges: Vec<(String, String)>,
    },
}

/// A run recorded in the ledger.
#[derive(Debug, Clone)]
pub struct MirrorCommit<'a> {
    /// The destination's URL.
    pub url: &'a str,
    /// The run's number at the destination.
    pub number: i64,
    /// When (stored form).
    pub committed_at: &'a str,
    /// Seals after this one ...
    pub after_seal: i64,
    /// ... through this one were mirrored.
    pub through_seal: i64,
    /// The chain head mirrored.
    pub chain_head: &'a str,
    /// The objects the run added.
    pub added: &'a [MirrorObject],
    /// The paths of the objects its manifest dropped.
    pub removed: &'a [String],
    /// Hex SHA-256 of its manifest.
    pub manifest_sha256: &'a str,
}

/// What the ledger says destination `url` holds (nothing, for a destination never mirrored to).
pub(super) fn ledger(conn: &rusqlite::Connection, url: &str) -> Result<MirrorLedger, StoreError> {
    let ctx = || format!("cannot read the export ledger of {url}");
    let Some(dest) = destination_id(conn, url).context(ctx)? else {
        return Ok(MirrorLedger::default());
    };
    let last = conn
        .query_row(
            "SELECT number, through_seal, manifest_sha256 FROM export_runs
                 WHERE destination_id = ?1 ORDER BY number DESC LIMIT 1",
            [dest],
            |r| {
                Ok(MirrorRun {
                    number: r.get(0)?,
                    through_seal: r.get(1)?,
                    manifest_sha256: r.get(2)?,
                })
            },
        )
        .optional()
        .context(ctx)?;
    let objects = conn
        .prepare(
            "SELECT path, partition_date, rows, bytes, sha256 FROM export_objects
                 WHERE destination_id = ?1 AND removed_by IS NULL ORDER BY path",
        )
        .and_then(|mut s| {
            s.query_map([dest], |r| {
                Ok(MirrorObject {
                    path: r.get(0)?,
                    date: r.get(1)?,
                    rows: r.get::<_, i64>(2)? as u64,
                    bytes: r.get::<_, i64>(3)? as u64,
                    sha256: r.get(4)?,
                })
            })?
            .collect()
        })
        .context(ctx)?;
    Ok(MirrorLedger { last, objects })
}

/// Events a mirror through seal `through` holds: those filed by window fetches sealed at or before it.
pub(super) fn count_sealed_through(
    conn: &rusqlite::Connection,
    through: i64,
) -> Result<u64, StoreError> {
    conn.query_row(
        &format!(
            "SELECT count(*) FROM events e WHERE {}",
            export::sealed_through("?1")
        ),
        [through],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
    .context(|| format!("cannot count the events sealed through seal {through}"))
}

/// Revisions a mirror through seal `through` holds: those filed by window fetches sealed at or before it.
pub(super) fn count_revisions_through(
    conn: &rusqlite::Connection,
    through: i64,
) -> Result<u64, StoreError> {
    conn.query_row(export::REVISIONS_THROUGH_SQL, [through], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
    .context(|| format!("cannot count the revisions sealed through seal {through}"))
}

impl Archive {
    /// The newest seal's id (0: none yet).
    pub fn last_seal_id(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT coalesce(max(id), 0) FROM seals", [], |r| r.get(0))
            .context(|| "cannot read the newest seal".into())
    }

    /// The seals after seal `after` through seal `through`, oldest first.
    pub fn pending_seals(&self, after: i64, through: i64) -> Result<Vec<PendingSeal>, StoreError> {
        let ctx = || format!("cannot read the seals after seal {after}");
        let mut stmt = self
            .conn
            .prepare(
                "SELECT s.prune_id, p.ranges FROM seals s LEFT JOIN prunes p ON p.id = s.prune_id
                 WHERE s.id > ?1 AND s.id <= ?2 ORDER BY s.id",
            )
            .context(ctx)?;
        let seals: Vec<(Option<i64>, Option<String>)> = stmt
            .query_map([after, through], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .context(ctx)?;
        let mut windows = self
            .conn
            .prepare(
                "SELECT w.window_start, w.window_end FROM pruned_windows pw
                 JOIN windows w ON w.id = pw.window_id WHERE pw.prune_id = ?1",
            )
            .context(ctx)?;
        let mut pending = Vec::with_capacity(seals.len());
        for (prune, ranges) in seals {
            let Some(prune) = prune else {
                pending.push(PendingSeal::Window);
                continue;
            };
            // A record that does not parse is `verify`'s to report; its windows' ranges still count.
            let mut ranges: Vec<(String, String)> =
                serde_json::from_str(ranges.as_deref().unwrap_or("[]")).unwrap_or_default();
            let emptied: Vec<(String, String)> = windows
                .query_map([prune], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
                .context(ctx)?;
            ranges.extend(emptied);
            pending.push(PendingSeal::Prune { ranges });
        }
        Ok(pending)
    }

    /// Streams the events filed by the window fetches sealed after seal `after` through seal `through`
    /// (ordered by timestamp, then id) into `each`; returns how many.
    pub fn mirror_new_rows(
        &self,
        after: i64,
        through: i64,
        each: impl FnMut(&ExportRow) -> std::io::Result<()>,
    ) -> Result<u64, ExportError> {
        let sql = export::sealed_between_sql(after == 0);
        export::stream(&self.conn, &sql, &[after, through], each)
    }

    /// Streams the events of day `date` (`YYYY-MM-DD`) that a mirror through seal `through` holds (ordered by
    /// timestamp, then id) into `each`; returns how many.
    pub fn mirror_day_rows(
        &self,
        date: &str,
        next: &str,
        through: i64,
        each: impl FnMut(&ExportRow) -> std::io::Result<()>,
    ) -> Result<u64, ExportError> {
        let params: [&dyn rusqlite::ToSql; 3] = [&date, &through, &next];
        export::stream(&self.conn, &export::day_sql(), &params, each)
    }

    /// Streams the revisions filed by the window fetches sealed after seal `after` through seal `through`
    /// (ordered by their event's timestamp, then id) into `each`; returns how many.
    pub fn mirror_new_revisions(
        &self,
        after: i64,
        through: i64,
        each: impl FnMut(&RevisionRow) -> std::io::Result<()>,
    ) -> Result<u64, ExportError> {
        let sql = export::revisions_between_sql();
        export::stream_revisions(&self.conn, &sql, &[&after, &through], each)
    }

    /// Streams the revisions of day `date`'s events that a mirror through seal `through` holds (ordered by
    /// their event's timestamp, then id) into `each`; returns how many.
    pub fn mirror_day_revisions(
        &self,
        date: &str,
        next: &str,
        through: i64,
        each: impl FnMut(&RevisionRow) -> std::io::Result<()>,
    ) -> Result<u64, ExportError> {
        let sql = export::revisions_of_day_sql();
        export::stream_revisions(&self.conn, &sql, &[&date, &through, &next], each)
    }

    /// Records a committed run: its row, the objects it added, the ones its manifest dropped; one transaction.
    pub fn record_mirror_run(&mut self, run: &MirrorCommit<'_>) -> Result<(), StoreError> {
        let ctx = || format!("cannot record export run {} to {}", run.number, run.url);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .context(ctx)?;
        tx.execute(
            "INSERT INTO export_destinations (url, created_at) VALUES (?1, ?2)
             ON CONFLICT (url) DO NOTHING",
            params![run.url, run.committed_at],
        )
        .context(ctx)?;
        let dest = destination_id(&tx, run.url)
            .context(ctx)?
            .expect("inserted above");
        let added: u64 = run.added.iter().map(|o| o.rows).sum();
        tx.execute(
            "INSERT INTO export_runs (destination_id, number, committed_at, after_seal, through_seal,
                 chain_head, rows_added, objects_added, objects_removed, manifest_sha256)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                dest,
                run.number,
                run.committed_at,
                run.after_seal,
                run.through_seal,
                run.chain_head,
                added as i64,
                run.added.len() as i64,
                run.removed.len() as i64,
                run.manifest_sha256
            ],
        )
        .context(ctx)?;
        let run_id = tx.last_insert_rowid();
        for o in run.added {
            tx.prepare_cached(
                "INSERT INTO export_objects (destination_id, path, partition_date, rows, bytes, sha256, added_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    dest,
                    o.path,
                    o.date,
                    o.rows as i64,
                    o.bytes as i64,
                    o.sha256,
                    run_id
                ])
            })
            .context(ctx)?;
        }
        for path in run.removed {
            tx.prepare_cached(
                "UPDATE export_objects SET removed_by = ?3
                 WHERE destination_id = ?1 AND path = ?2 AND removed_by IS NULL",
            )
            .and_then(|mut s| s.execute(params![dest, path, run_id]))
            .context(ctx)?;
        }
        tx.commit().context(ctx)
    }
}

/// The id of destination `url`, if it was ever mirrored to.
fn destination_id(conn: &rusqlite::Connection, url: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT id FROM export_destinations WHERE url = ?1",
        [url],
        |r| r.get(0),
    )
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ArchiveRead;
    use crate::store::retention::tests::{archive, jan, now};

    fn object(path: &str, date: &str, rows: u64) -> MirrorObject {
        MirrorObject {
            path: path.into(),
            date: date.into(),
            rows,
            bytes: 10,
            sha256: "ab".into(),
        }
    }

    /// The ids `read` streams.
    fn ids(read: impl FnOnce(&mut dyn FnMut(&ExportRow) -> std::io::Result<()>)) -> Vec<i64> {
        let mut ids = Vec::new();
        read(&mut |row| {
            ids.push(row.id);
            Ok(())
        });
        ids
    }

    #[test]
    fn the_rows_of_new_seals_and_of_a_day_come_in_time_order() {
        let (_dir, archive) = archive(&[0, 1, 2], 2);
        assert_eq!(archive.last_seal_id().unwrap(), 3);
        assert_eq!(
            archive.pending_seals(0, 3).unwrap(),
            vec![PendingSeal::Window; 3]
        );
        let all = ids(|each| {
            archive.mirror_new_rows(0, 3, each).unwrap();
        });
        assert_eq!(
            all,
            [0, 1, 1000, 1001, 2000, 2001],
            "full: every sealed window"
        );
        let later = ids(|each| {
            archive.mirror_new_rows(1, 3, each).unwrap();
        });
        assert_eq!(later, [1000, 1001, 2000, 2001], "after seal 1 only");
        let day = ids(|each| {
            archive
                .mirror_day_rows("2024-01-02", "2024-01-03", 3, each)
                .unwrap();
        });
        assert_eq!(day, [1000, 1001]);
        let unsealed = ids(|each| {
            archive
                .mirror_day_rows("2024-01-03", "2024-01-04", 2, each)
                .unwrap();
        });
        assert!(
            unsealed.is_empty(),
            "a window sealed after `through` is not mirrored"
        );
        assert_eq!(count_sealed_through(&archive.conn, 2).unwrap(), 4);
    }

    #[test]
    fn the_ledger_keeps_live_objects_and_drops_what_a_run_removed() {
        let (_dir, mut archive) = archive(&[0, 1, 2], 2);
        let url = "s3://lake/x";
        assert_eq!(archive.mirror_ledger(url).unwrap(), MirrorLedger::default());
        let first = [
            object("events/date=2024-01-01/a", "2024-01-01", 2),
            object("events/date=2024-01-02/b", "2024-01-02", 4),
        ];
        let commit = |number, after, through, added, removed| MirrorCommit {
            url,
            number,
            committed_at: "2024-02-01T00:00:00.000Z",
            after_seal: after,
            through_seal: through,
            chain_head: "00",
            added,
            removed,
            manifest_sha256: "m",
        };
        archive
            .record_mirror_run(&commit(1, 0, 2, &first, &[]))
            .unwrap();
        let second = [object("events/date=2024-01-02/c", "2024-01-02", 3)];
        let dropped = ["events/date=2024-01-02/b".to_string()];
        archive
            .record_mirror_run(&commit(2, 2, 3, &second, &dropped))
            .unwrap();
        let ledger = archive.mirror_ledger(url).unwrap();
        assert_eq!(
            ledger.last.unwrap(),
            MirrorRun {
                number: 2,
                through_seal: 3,
                manifest_sha256: "m".into()
            }
        );
        let live: Vec<&str> = ledger.objects.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(
            live,
            ["events/date=2024-01-01/a", "events/date=2024-01-02/c"]
        );
        assert_eq!(
            archive.mirror_ledger("s3://lake/other").unwrap(),
            MirrorLedger::default()
        );
        assert!(
            archive
                .record_mirror_run(&commit(2, 3, 3, &[], &[]))
                .is_err(),
            "a run number is recorded once per destination"
        );
    }

    #[test]
    fn a_prune_is_pending_with_its_ranges() {
        let (_dir, mut archive) = archive(&[0, 1, 2], 2);
        archive.prune(jan(2), now()).unwrap();
        let through = archive.last_seal_id().unwrap();
        let pending = archive.pending_seals(3, through).unwrap();
        let [PendingSeal::Prune { ranges }] = pending.as_slice() else {
            panic!("{pending:?}");
        };
        assert!(
            ranges
                .iter()
                .any(|(from, _)| from.starts_with("2024-01-01")),
            "{ranges:?}"
        );
        assert_eq!(count_sealed_through(&archive.conn, through).unwrap(), 2);
    }
}
