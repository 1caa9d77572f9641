-- Retention and reconciliation.
--
-- `prune` removes whole sealed window fetches past their time. What it removed is recorded (`prunes`, one row
-- per prune; `pruned_windows`, one row per window fetch it removed events from, naming the seal that vouched
-- for them) and the record is itself sealed into the chain, so a forged "pruned" record cannot hide a
-- deletion. Ledger rows of pruned windows stay: coverage stays whole, and pruned ranges are never fetched
-- again.
-- `holds` are ranges under a legal hold: never pruned. Removing a hold keeps its row (`removed_at`).
-- `source_changes` is what `reconcile` found when it read covered windows again: events that arrived late,
-- changed, or were deleted at the source. Each row belongs to the window fetch that observed it and is part
-- of that fetch's seal.

ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'sync'; -- 'sync' or 'reconcile'

CREATE TABLE prunes (
    id          INTEGER PRIMARY KEY,
    pruned_at   TEXT NOT NULL,
    cutoff      TEXT NOT NULL,     -- --before
    windows     INTEGER NOT NULL,  -- window fetches emptied
    events      INTEGER NOT NULL,  -- events removed
    revisions   INTEGER NOT NULL,  -- revisions removed
    rejects     INTEGER NOT NULL,  -- rejects removed
    ranges      TEXT NOT NULL      -- the ranges emptied, as JSON [["from", "to"], ...]
);

CREATE TABLE pruned_windows (
    prune_id  INTEGER NOT NULL REFERENCES prunes (id),
    window_id INTEGER NOT NULL REFERENCES windows (id),
    seal_hash TEXT NOT NULL,       -- the hash of the window's seal: what was removed was what it sealed
    events    INTEGER NOT NULL,    -- events removed from this window fetch by this prune
    revisions INTEGER NOT NULL,
    rejects   INTEGER NOT NULL,
    kept      INTEGER NOT NULL,    -- events left under it (timestamps outside the pruned ranges)
    PRIMARY KEY (prune_id, window_id)
) WITHOUT ROWID;
CREATE INDEX pruned_windows_window ON pruned_windows (window_id);

CREATE TABLE holds (
    id         INTEGER PRIMARY KEY,
    range_from TEXT NOT NULL,
    range_to   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    removed_at TEXT
);

CREATE TABLE source_changes (
    id          INTEGER PRIMARY KEY,
    window_id   INTEGER NOT NULL REFERENCES windows (id),  -- the reconcile's window fetch that observed it
    event_id    INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('late', 'changed', 'deleted')),
    detected_at TEXT NOT NULL
);
CREATE INDEX source_changes_window ON source_changes (window_id);
CREATE INDEX source_changes_event ON source_changes (event_id, kind);

-- A seal now covers either a window fetch or a prune. SQLite cannot relax a NOT NULL column in place, so the
-- table is rebuilt with the same rows (dropping a table fires no trigger; the triggers are recreated).
CREATE TABLE seals_v4 (
    id        INTEGER PRIMARY KEY,
    window_id INTEGER UNIQUE REFERENCES windows (id),
    prune_id  INTEGER UNIQUE REFERENCES prunes (id),
    sealed_at TEXT NOT NULL,
    events    INTEGER NOT NULL,  -- events the window fetch inserted, or the prune removed
    revisions INTEGER NOT NULL,  -- revisions it inserted, or the prune removed
    members   BLOB NOT NULL,     -- per inserted event, by id: 8-byte big-endian id + first 8 bytes of its digest
    content   TEXT NOT NULL,     -- hex SHA-256 of the canonical description (see store/seal.rs)
    previous  TEXT NOT NULL,     -- hash of the previous seal (64 zeros for the first)
    hash      TEXT NOT NULL,     -- hex SHA-256 of previous || content
    CHECK ((window_id IS NULL) <> (prune_id IS NULL))
);
INSERT INTO seals_v4 (id, window_id, prune_id, sealed_at, events, revisions, members, content, previous, hash)
SELECT id, window_id, NULL, sealed_at, events, revisions, members, content, previous, hash FROM seals;
DROP TABLE seals;
ALTER TABLE seals_v4 RENAME TO seals;

CREATE TRIGGER seals_append_only_update BEFORE UPDATE ON seals
BEGIN SELECT RAISE(ABORT, 'seals are append-only'); END;
CREATE TRIGGER seals_append_only_delete BEFORE DELETE ON seals
BEGIN SELECT RAISE(ABORT, 'seals are append-only'); END;
