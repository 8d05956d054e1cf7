-- The notice log's identity. A region stores the epoch with its cursor; a hub database restored
-- from an old backup or replaced by another keeps serving cursors, but not this epoch, so a
-- region notices instead of skipping or re-reading entries.
CREATE TABLE log_identity (
    singleton INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
    epoch     TEXT NOT NULL
) STRICT;

INSERT INTO log_identity (singleton, epoch) VALUES (1, lower(hex(randomblob(16))));

-- Pruning acknowledged log entries after a retention period, without a time on every entry:
-- each region's acknowledged cursor is noted with the time it was noted; once that note is a
-- retention period old, everything up to it goes and the current acknowledgement is noted.
ALTER TABLE region_cursors ADD COLUMN noted_cursor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE region_cursors ADD COLUMN noted_at INTEGER NOT NULL DEFAULT 0;
