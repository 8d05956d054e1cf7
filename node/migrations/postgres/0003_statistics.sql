-- What the planner may assume of the keys whatever its statistics say (as the hub's
-- migrations/hub-postgres/0002_statistics.sql, whose comment gives the reasons): a pseudonym or
-- a signal id picks out a handful of rows. Negative n_distinct is a fraction of the rows, true as
-- the tables grow; it applies from the first ANALYZE (autovacuum's, or the node's hourly one).
ALTER TABLE signals ALTER COLUMN subject_key SET (n_distinct = -0.5);
ALTER TABLE signal_family_keys ALTER COLUMN family_key SET (n_distinct = -0.3);
ALTER TABLE signal_family_keys ALTER COLUMN signal_id SET (n_distinct = -0.6);
ALTER TABLE notices ALTER COLUMN recipient_signal_id SET (n_distinct = -0.5);
ALTER TABLE notices ALTER COLUMN counterpart_signal_id SET (n_distinct = -0.5);
ALTER TABLE told_pairs ALTER COLUMN recipient_subject_key SET (n_distinct = -0.3);
ALTER TABLE told_pairs ALTER COLUMN counterpart_subject_key SET (n_distinct = -0.3);
