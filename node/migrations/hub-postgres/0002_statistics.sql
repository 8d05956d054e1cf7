-- What the planner may assume of the keys, whatever its statistics say: a pseudonym, a signal id
-- or a notice's signal picks out a handful of rows. Without this, a table that grew since its
-- statistics were gathered (autovacuum off, or behind) is estimated at 0.5% of its rows per
-- key, and lookups by key were seen planned as scans of the whole table. Negative n_distinct is
-- a fraction of the rows, so it stays true as the tables grow; it applies from the first
-- ANALYZE of a table with rows on (autovacuum's, or the hub's hourly one). No ANALYZE here: on
-- empty tables it records them as empty, and the planner then takes every grown table for a
-- row or two (seen: a whole-index scan per lookup) until the next.
ALTER TABLE signals ALTER COLUMN subject_key SET (n_distinct = -0.5);
ALTER TABLE signal_family_keys ALTER COLUMN family_key SET (n_distinct = -0.3);
ALTER TABLE signal_family_keys ALTER COLUMN signal_id SET (n_distinct = -0.6);
ALTER TABLE notices ALTER COLUMN recipient_signal_id SET (n_distinct = -0.5);
ALTER TABLE notices ALTER COLUMN counterpart_signal_id SET (n_distinct = -0.5);
ALTER TABLE notices ALTER COLUMN recipient_subject_key SET (n_distinct = -0.3);
ALTER TABLE notices ALTER COLUMN counterpart_subject_key SET (n_distinct = -0.3);
ALTER TABLE told_pairs ALTER COLUMN recipient_subject_key SET (n_distinct = -0.3);
ALTER TABLE told_pairs ALTER COLUMN counterpart_subject_key SET (n_distinct = -0.3);
ALTER TABLE coordination_changes ALTER COLUMN by_signal_id SET (n_distinct = -0.5);
ALTER TABLE coordination_changes ALTER COLUMN other_signal_id SET (n_distinct = -0.5);

