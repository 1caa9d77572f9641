-- Tamper evidence. Every event and revision carries the SHA-256 of its `raw`; every window fetch that ends
-- (complete, failed or interrupted) is sealed into an append-only hash chain: its ledger row, the events and
-- revisions it inserted, and its rejects, each seal chained to the one before.

ALTER TABLE events ADD COLUMN digest TEXT;           -- hex SHA-256 of raw
ALTER TABLE event_revisions ADD COLUMN digest TEXT;  -- hex SHA-256 of raw
CREATE INDEX events_window ON events (window_id);
CREATE INDEX event_revisions_window ON event_revisions (window_id);
CREATE INDEX rejects_window ON rejects (window_id);

CREATE TABLE seals (
    id        INTEGER PRIMARY KEY,
    window_id INTEGER NOT NULL UNIQUE REFERENCES windows (id),
    sealed_at TEXT NOT NULL,
    events    INTEGER NOT NULL,  -- events the window fetch inserted
    revisions INTEGER NOT NULL,  -- revisions it inserted
    members   BLOB NOT NULL,     -- per inserted event, by id: 8-byte big-endian id + first 8 bytes of its digest
    content   TEXT NOT NULL,     -- hex SHA-256 of the window's canonical description (see store/seal.rs)
    previous  TEXT NOT NULL,     -- hash of the previous seal (64 zeros for the first)
    hash      TEXT NOT NULL      -- hex SHA-256 of previous || content
);

CREATE TRIGGER seals_append_only_update BEFORE UPDATE ON seals
BEGIN SELECT RAISE(ABORT, 'seals are append-only'); END;
CREATE TRIGGER seals_append_only_delete BEFORE DELETE ON seals
BEGIN SELECT RAISE(ABORT, 'seals are append-only'); END;
