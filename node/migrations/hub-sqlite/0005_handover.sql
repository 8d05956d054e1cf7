-- A region leaving the federation hands its signals to a successor (issue 12, decommission):
-- the successor's log gets an 'adoption' entry, which refers to a row of `adoptions` holding
-- the leaving node's record, sealed for the successor (the hub cannot read it), and the pairs
-- the hub had told between the signal's party and the successor's parties. The row goes when
-- the successor's log is pruned past it.
--
-- SQLite cannot change a CHECK constraint, so region_log is rebuilt. Its cursor numbering must
-- go on where it was: regions hold cursors, and the log's end is read from sqlite_sequence
-- (which dropping a table forgets), so the highest cursor ever handed out is carried over.
CREATE TABLE region_log_next (
    cursor    INTEGER PRIMARY KEY AUTOINCREMENT,
    region_id TEXT NOT NULL,
    notice_id TEXT NOT NULL,
    entry     TEXT NOT NULL
        CHECK (entry IN ('notice', 'retraction', 'coordination', 'adoption'))
) STRICT;

INSERT INTO region_log_next (cursor, region_id, notice_id, entry)
SELECT cursor, region_id, notice_id, entry FROM region_log;

DELETE FROM sqlite_sequence WHERE name = 'region_log_next';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'region_log_next', seq FROM sqlite_sequence WHERE name = 'region_log';

DROP TABLE region_log;
ALTER TABLE region_log_next RENAME TO region_log;
CREATE INDEX region_log_by_region ON region_log (region_id, cursor);

CREATE TABLE adoptions (
    adoption_id    TEXT PRIMARY KEY NOT NULL,
    signal_id      TEXT NOT NULL,
    revision       INTEGER NOT NULL CHECK (revision >= 1),
    from_region_id TEXT NOT NULL,
    sealed_record  BLOB NOT NULL,
    -- One pair per line: recipient organisation, recipient subject key, counterpart
    -- organisation, counterpart subject key, match type, separated by spaces.
    told_pairs     TEXT NOT NULL
) STRICT;
