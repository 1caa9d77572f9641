-- The Merkle log over everything sealed (see src/tlog/mod.rs and src/store/tlog.rs). One leaf per event's
-- first version, revision, reject, window seal, prune seal, per row a prune removed (a removal names the
-- removed leaf, which stays), per run's intent, per hold placed and per hold lifted. Leaves are appended in the transaction that writes what they stand for.
-- Existing archives: the log is built from the existing rows and seals on the first open after this
-- migration (store::tlog::build_existing), in one transaction.

-- The archive's log: its origin line (the name of this log in every checkpoint), random per archive.
CREATE TABLE tlog_state (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    origin TEXT NOT NULL
);
INSERT INTO tlog_state (id, origin) VALUES (1, 'elevate-archive/' || lower(hex(randomblob(8))));

-- One row per leaf, in log order. `ref` is the row's id in its table (events, event_revisions, rejects,
-- seals) or, for a removal, the index of the removed leaf; `prune_id` names a removal's prune.
CREATE TABLE tlog_leaves (
    idx      INTEGER PRIMARY KEY,
    kind     TEXT NOT NULL CHECK (kind IN ('event', 'revision', 'reject', 'window-seal', 'prune-seal', 'removal', 'run',
                                       'hold', 'hold-lifted')),
    ref      INTEGER NOT NULL,
    prune_id INTEGER
);
CREATE INDEX tlog_leaves_row ON tlog_leaves (kind, ref);

-- Go tlog's stored hashes, 256 to a row: row `chunk` holds the stored-hash indexes [256 chunk, 256 chunk + 256),
-- 32 bytes each, in order. Appending rewrites only the last row.
CREATE TABLE tlog_hashes (
    chunk  INTEGER PRIMARY KEY,
    hashes BLOB NOT NULL
);

-- Checkpoints made at the end of each run that changed the log: the note text (signed when a key was given).
CREATE TABLE checkpoints (
    id         INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    tree_size  INTEGER NOT NULL,
    root       TEXT NOT NULL,      -- base64, as in the text
    text       TEXT NOT NULL,      -- the checkpoint, a signed note when signed_by is set
    signed_by  TEXT                -- the signing key's name, NULL when unsigned
);
