-- Every statement on a hot path is served by an index whose cost does not grow with the table
-- (checked by tests/e2e/plans.rs).

-- Deleting a signal deletes the coordination changes that name it, on either side.
CREATE INDEX coordination_changes_by_by_signal ON coordination_changes (by_signal_id);
CREATE INDEX coordination_changes_by_other_signal ON coordination_changes (other_signal_id);

-- A youth's signals (matching), and a party's (organisation, youth): "has the party any signal
-- left" after a deletion. It replaces the single-column index on the youth.
CREATE INDEX signals_by_party ON signals (subject_key, organisation_id);
DROP INDEX signals_by_subject;

-- The end-of-archive sweep reads inactive signals only; active ones (NULL here) need not be in
-- the index, so registering one writes a page less.
DROP INDEX signals_by_inactive_since;
CREATE INDEX signals_by_inactive_since ON signals (inactive_since) WHERE inactive_since IS NOT NULL;
