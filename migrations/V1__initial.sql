-- The archive's first schema. Append-only: never edit a shipped migration, add a new one.
-- Times are text in the form YYYY-MM-DDTHH:MM:SS.sssZ (UTC), so text order is time order.

PRAGMA application_id = 1162626390; -- 0x454C4556, 'ELEV': marks the file as an elevate-archive archive

-- One row per sync run.
CREATE TABLE runs (
    id                INTEGER PRIMARY KEY,
    started_at        TEXT NOT NULL,
    finished_at       TEXT,
    status            TEXT NOT NULL CHECK (status IN ('running', 'ok', 'partial', 'failed', 'interrupted')),
    range_from        TEXT NOT NULL,
    range_to          TEXT NOT NULL,
    category_filter   TEXT NOT NULL DEFAULT '',
    action_filter     TEXT NOT NULL DEFAULT '',
    base_url          TEXT NOT NULL,
    windows_planned   INTEGER NOT NULL DEFAULT 0,
    windows_completed INTEGER NOT NULL DEFAULT 0,
    pages             INTEGER NOT NULL DEFAULT 0,
    events_received   INTEGER NOT NULL DEFAULT 0,
    events_new        INTEGER NOT NULL DEFAULT 0,
    revisions         INTEGER NOT NULL DEFAULT 0,
    rejects           INTEGER NOT NULL DEFAULT 0,
    out_of_window     INTEGER NOT NULL DEFAULT 0,
    error             TEXT,
    tool_version      TEXT NOT NULL
);

-- The ledger: one row per fetch of a window [window_start, window_end). A window is complete only when the
-- transaction that stored its last page says so; coverage is the union of complete windows.
CREATE TABLE windows (
    id              INTEGER PRIMARY KEY,
    run_id          INTEGER NOT NULL REFERENCES runs (id),
    window_start    TEXT NOT NULL,
    window_end      TEXT NOT NULL,
    category_filter TEXT NOT NULL DEFAULT '',
    action_filter   TEXT NOT NULL DEFAULT '',
    created_from    TEXT NOT NULL,   -- createdFrom exactly as sent
    created_to      TEXT NOT NULL,   -- createdTo exactly as sent
    status          TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed', 'interrupted')),
    pages           INTEGER NOT NULL DEFAULT 0,
    events_received INTEGER NOT NULL DEFAULT 0,
    events_new      INTEGER NOT NULL DEFAULT 0,
    revisions       INTEGER NOT NULL DEFAULT 0,
    rejects         INTEGER NOT NULL DEFAULT 0,
    out_of_window   INTEGER NOT NULL DEFAULT 0,
    started_at      TEXT NOT NULL,
    completed_at    TEXT,
    error           TEXT
);
CREATE INDEX windows_coverage ON windows (status, category_filter, action_filter, window_start);
CREATE INDEX windows_run ON windows (run_id);

-- Every archived event, first version as received. `raw` is the item's JSON exactly as the server sent it.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    timestamp   TEXT NOT NULL,
    category    TEXT NOT NULL,
    action      TEXT NOT NULL,
    description TEXT,
    username    TEXT,
    ip_address  TEXT,
    raw         TEXT NOT NULL,
    fetched_at  TEXT NOT NULL,
    window_id   INTEGER NOT NULL REFERENCES windows (id)
);
CREATE INDEX events_timestamp ON events (timestamp);
CREATE INDEX events_category ON events (category, timestamp);
CREATE INDEX events_action ON events (action, timestamp);
CREATE INDEX events_username ON events (username, timestamp);

-- Later versions of an event whose content changed at the source after it was archived (audit keeps both).
CREATE TABLE event_revisions (
    id         INTEGER PRIMARY KEY,
    event_id   INTEGER NOT NULL REFERENCES events (id),
    raw        TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    window_id  INTEGER NOT NULL REFERENCES windows (id)
);
CREATE INDEX event_revisions_event ON event_revisions (event_id);

-- Items that could not be archived as events (not an object, no id, unparseable timestamp), kept as received.
CREATE TABLE rejects (
    id          INTEGER PRIMARY KEY,
    raw         TEXT NOT NULL,
    reason      TEXT NOT NULL,
    window_id   INTEGER NOT NULL REFERENCES windows (id),
    page        INTEGER NOT NULL,
    received_at TEXT NOT NULL
);
CREATE UNIQUE INDEX rejects_once ON rejects (reason, raw);

-- The catalogue of (category, action) pairs seen, with when each first appeared: new event types are how a
-- security team notices change.
CREATE TABLE event_types (
    category          TEXT NOT NULL,
    action            TEXT NOT NULL,
    events            INTEGER NOT NULL,
    first_event_at    TEXT NOT NULL,
    last_event_at     TEXT NOT NULL,
    first_archived_at TEXT NOT NULL,
    first_run_id      INTEGER NOT NULL REFERENCES runs (id),
    PRIMARY KEY (category, action)
) WITHOUT ROWID;
