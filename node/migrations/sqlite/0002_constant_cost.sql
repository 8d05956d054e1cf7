-- Every statement on a hot path is served by an index whose cost does not grow with the table
-- (checked by tests/e2e/plans.rs).

-- A youth's signals, and a party's (organisation, youth): matching, export and erasure by
-- youth; the re-registration check ("is there an active signal of this organisation on this
-- youth") and "has the party any signal left" after a deletion. Without it the planner walked
-- every active signal through the `state` index. It replaces both single-column indexes it
-- starts with or makes redundant: one random index page less to write per registration.
CREATE INDEX signals_by_party ON signals (subject_key, organisation_id, state, registered_at);
DROP INDEX signals_by_subject;
DROP INDEX signals_by_organisation;

-- ListMatches of an organisation, read in the order it is shown.
CREATE INDEX notices_by_recipient_found ON notices (recipient_organisation_id, found_at, notice_id);
-- ListMatches of one signal (and cascades from a deleted signal), read in the order shown.
CREATE INDEX notices_by_recipient_signal_found ON notices (recipient_signal_id, found_at, notice_id);
-- A prefix of notices_by_recipient_signal_found.
DROP INDEX notices_by_recipient_signal;

-- The end-of-archive sweep reads inactive signals only; active ones (NULL here) need not be in
-- the index, so registering one writes a page less.
DROP INDEX signals_by_inactive_since;
CREATE INDEX signals_by_inactive_since ON signals (inactive_since) WHERE inactive_since IS NOT NULL;
