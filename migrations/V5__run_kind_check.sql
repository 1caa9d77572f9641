-- Every recorded kind is checked by the schema. `runs.kind` (added by V4 without a CHECK, which SQLite cannot
-- add to an existing column) is checked by triggers instead, with the same spellings as `RunKind`.
CREATE TRIGGER runs_kind_insert BEFORE INSERT ON runs
WHEN NEW.kind NOT IN ('sync', 'reconcile')
BEGIN
    SELECT RAISE(ABORT, 'runs.kind must be sync or reconcile');
END;

CREATE TRIGGER runs_kind_update BEFORE UPDATE OF kind ON runs
WHEN NEW.kind NOT IN ('sync', 'reconcile')
BEGIN
    SELECT RAISE(ABORT, 'runs.kind must be sync or reconcile');
END;
