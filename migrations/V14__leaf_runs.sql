-- Runs of event leaves. A `tlog_leaves` row now stands for `count` consecutive leaves from `idx`: one leaf, as
-- before (`count` 1, `refs` NULL, `ref` its row), or a run of event leaves appended together (a page's new
-- events, in the order they were appended): `ref` is the first event's id, and `refs` lists the others, each as
-- its id's step from the one before (ids rise within a run), an unsigned LEB128 number. One row and one index
-- entry per page instead of per event: each event's leaf cost a row insert and an index insert on the single
-- writer, and 39 bytes. Rows written before stay as they are (runs of one). Adding columns with a default
-- rewrites nothing, so the upgrade is instant whatever the archive's size.
-- `last` is a run's last (highest) id, so that the runs holding an id are found through the `tlog_leaves_runs`
-- index (only runs are in it: one entry per page) without reading every run below it.
ALTER TABLE tlog_leaves ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1 AND (count = 1 OR kind = 'event'));
ALTER TABLE tlog_leaves ADD COLUMN refs BLOB CHECK ((count = 1) = (refs IS NULL));
ALTER TABLE tlog_leaves ADD COLUMN last INTEGER CHECK ((count = 1) = (last IS NULL));
CREATE INDEX tlog_leaves_runs ON tlog_leaves (ref, last) WHERE count > 1;
