-- A run records when the server served fewer items per page than asked while more were behind them (a page
-- cap, or items filtered after paging): the size of such a short page, NULL when never seen.
ALTER TABLE runs ADD COLUMN served_fewer INTEGER;
