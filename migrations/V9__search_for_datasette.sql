-- The full-text index again, declared with `content="events"` (double quotes, no spaces): the form Datasette
-- looks for in a table's definition to offer its search box on `events`. Same columns, same tokenizer, same
-- external content; rebuilt from `events`, so every event archived so far is indexed.

DROP TABLE events_fts;

CREATE VIRTUAL TABLE events_fts USING fts5(
    description,
    username,
    content="events",
    content_rowid="id",
    tokenize="unicode61 remove_diacritics 2"
);

INSERT INTO events_fts (events_fts) VALUES ('rebuild');
UPDATE search_state SET indexed_window_id = (SELECT coalesce(max(id), 0) FROM windows);
