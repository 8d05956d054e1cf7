-- A region leaving the federation hands its signals to a successor (see the SQLite hub's
-- migration 0005): an 'adoption' entry in the successor's log refers to a row of `adoptions`.
ALTER TABLE region_log DROP CONSTRAINT region_log_entry_check;
ALTER TABLE region_log ADD CONSTRAINT region_log_entry_check
    CHECK (entry IN ('notice', 'retraction', 'coordination', 'adoption'));

CREATE TABLE adoptions (
    adoption_id    TEXT PRIMARY KEY,
    signal_id      TEXT NOT NULL,
    revision       BIGINT NOT NULL CHECK (revision >= 1),
    from_region_id TEXT NOT NULL,
    sealed_record  BYTEA NOT NULL,
    -- One pair per line: recipient organisation, recipient subject key, counterpart
    -- organisation, counterpart subject key, match type, separated by spaces.
    told_pairs     TEXT NOT NULL
);
