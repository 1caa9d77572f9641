-- Seals, version 2. A seal records how it describes what it seals (`format`): seals made before this
-- migration are version 1 and are verified as such, forever. Version 2 describes every column of the rows a
-- window fetch filed (the ledger row's `error`, each event's and revision's `fetched_at`, each reject's `page`
-- and `received_at`), keeps per event its `fetched_at` too in `members`, and keeps the description's lines
-- other than events (`lines`), so that `verify` can name the row and column that changed.
-- A prune sealed with version 2 records, per window fetch, its ledger line and the lines of the events it
-- left there (`pruned_windows.ledger`, `kept_lines`), hashed into the prune's seal: what a prune leaves is
-- then vouched for by the chain, not by the window's members alone.
-- ALTER TABLE fires no trigger: the seals' append-only triggers stay as they are.

ALTER TABLE seals ADD COLUMN format INTEGER NOT NULL DEFAULT 1 CHECK (format IN (1, 2));
ALTER TABLE seals ADD COLUMN lines TEXT;                 -- version 2: the non-event lines of the description

ALTER TABLE pruned_windows ADD COLUMN ledger TEXT;       -- version 2: the window's ledger line when pruned
ALTER TABLE pruned_windows ADD COLUMN kept_lines TEXT;   -- version 2: the lines of the events left under it
