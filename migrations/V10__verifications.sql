-- What `verify --record` found, for monitoring (`status --check`, the metrics file): when the archive was last
-- verified and whether it was intact and complete. Not evidence: the seal chain is.

CREATE TABLE verifications (
    id          INTEGER PRIMARY KEY,
    verified_at TEXT    NOT NULL,
    intact      INTEGER NOT NULL CHECK (intact IN (0, 1)),
    complete    INTEGER NOT NULL CHECK (complete IN (0, 1)),
    findings    INTEGER NOT NULL,
    chain_head  TEXT
);
