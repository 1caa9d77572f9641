-- `tlog_leaves` again, its kinds checked by comparisons instead of an IN list. For an IN list of more than two
-- values SQLite builds a temporary table each time an INSERT evaluates the CHECK: about 3 µs per leaf, which at
-- one leaf per event was an eighth of a sync's time. Same columns, same rows, same index; copied in the one
-- transaction the migrations run in, so a crash leaves the archive as it was.

CREATE TABLE tlog_leaves_v12 (
    idx      INTEGER PRIMARY KEY,
    kind     TEXT NOT NULL CHECK (kind = 'event' OR kind = 'revision' OR kind = 'reject' OR kind = 'window-seal'
                                  OR kind = 'prune-seal' OR kind = 'removal' OR kind = 'run' OR kind = 'hold'
                                  OR kind = 'hold-lifted'),
    ref      INTEGER NOT NULL,
    prune_id INTEGER
);
INSERT INTO tlog_leaves_v12 (idx, kind, ref, prune_id) SELECT idx, kind, ref, prune_id FROM tlog_leaves ORDER BY idx;
DROP TABLE tlog_leaves;
ALTER TABLE tlog_leaves_v12 RENAME TO tlog_leaves;
CREATE INDEX tlog_leaves_row ON tlog_leaves (kind, ref);

-- The full-text index without its per-event column sizes (`columnsize=0`): 11 bytes per event that only
-- relevance ranking (bm25) reads, and bm25 still works by reading the sizes from `events`. Declared as in V9 (the
-- `content="events"` form Datasette looks for), rebuilt from `events`.
DROP TABLE events_fts;
CREATE VIRTUAL TABLE events_fts USING fts5(
    description,
    username,
    content="events",
    content_rowid="id",
    columnsize=0,
    tokenize="unicode61 remove_diacritics 2"
);
INSERT INTO events_fts (events_fts) VALUES ('rebuild');
UPDATE search_state SET indexed_window_id = (SELECT coalesce(max(id), 0) FROM windows);
