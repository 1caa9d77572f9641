-- The lookback a sync ran with (seconds; NULL for a reconcile), so that `status` can say whether events arrive
-- later than it.

ALTER TABLE runs ADD COLUMN lookback_seconds INTEGER;
