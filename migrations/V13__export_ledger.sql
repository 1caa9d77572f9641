-- The export ledger: what `export --incremental` mirrored to each destination, so that a run exports only
-- what was sealed since the last successful one, exactly once. A run's objects are written first, then the
-- destination's manifest, then (last) the run's row here: a run recorded here is committed at the
-- destination too. Seals are the unit: a run mirrors every seal after the previous run's `through_seal` up to
-- its own (window fetches: the events they inserted; prunes: their ranges, dropped from the mirror).

CREATE TABLE export_destinations (
    id         INTEGER PRIMARY KEY,
    url        TEXT NOT NULL UNIQUE,   -- normalised (`s3://bucket/prefix`, `file:///abs/path`), never a secret
    created_at TEXT NOT NULL
);

CREATE TABLE export_runs (
    id              INTEGER PRIMARY KEY,
    destination_id  INTEGER NOT NULL REFERENCES export_destinations (id),
    number          INTEGER NOT NULL,  -- 1, 2, ... per destination; the manifest's `export_run`
    committed_at    TEXT NOT NULL,
    after_seal      INTEGER NOT NULL,  -- seals after this one ...
    through_seal    INTEGER NOT NULL,  -- ... up to and including this one were mirrored by the run
    chain_head      TEXT NOT NULL,     -- the archive's seal-chain head the run mirrored
    rows_added      INTEGER NOT NULL,
    objects_added   INTEGER NOT NULL,
    objects_removed INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL,     -- hex SHA-256 of the manifest the run committed
    UNIQUE (destination_id, number)
);

-- Every object a run put in the mirror, and the run whose manifest dropped it (a rewritten partition).
CREATE TABLE export_objects (
    destination_id INTEGER NOT NULL REFERENCES export_destinations (id),
    path           TEXT NOT NULL,      -- relative to the destination's root
    partition_date TEXT NOT NULL,      -- YYYY-MM-DD
    rows           INTEGER NOT NULL,
    bytes          INTEGER NOT NULL,
    sha256         TEXT NOT NULL,
    added_by       INTEGER NOT NULL REFERENCES export_runs (id),
    removed_by     INTEGER REFERENCES export_runs (id),
    PRIMARY KEY (destination_id, path)
) WITHOUT ROWID;
CREATE INDEX export_objects_live ON export_objects (destination_id, removed_by, partition_date);
