-- Full-text search over descriptions and usernames, without a second copy of the text: an external-content
-- FTS5 index over `events` (events are never updated, so edits cannot leave it stale). It is brought up to
-- date at the end of each sync with the events of the window fetches since the last update (`search_state`).

CREATE VIRTUAL TABLE events_fts USING fts5(
    description,
    username,
    content = 'events',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TABLE search_state (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_window_id INTEGER NOT NULL  -- events of window fetches up to this id are in events_fts
);
INSERT INTO search_state (id, indexed_window_id) VALUES (1, 0);
