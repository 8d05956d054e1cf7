-- A region node's own signals, their local notices, and the outbox towards the hub.
-- No BSN anywhere (ARCHITECTURE.md invariant 1): youths and parents appear only as pseudonyms
-- (`v<version>:<hex>`). Instants are microseconds since the Unix epoch (UTC); dates are
-- Europe/Amsterdam local dates as YYYY-MM-DD text.

CREATE TABLE signals (
    signal_id            TEXT PRIMARY KEY NOT NULL,
    revision             INTEGER NOT NULL CHECK (revision >= 1),
    organisation_id      TEXT NOT NULL,
    organisation_name    TEXT NOT NULL,
    professional_id      TEXT NOT NULL,
    professional_name    TEXT NOT NULL,
    professional_email   TEXT NOT NULL,
    professional_phone   TEXT,
    subject_key          TEXT NOT NULL,
    birth_date           TEXT NOT NULL,
    registered_at        INTEGER NOT NULL,
    planned_removal_date TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('active', 'inactive')),
    inactive_since       TEXT,
    -- The informing record (DOMAIN.md section 7): who was told and when, or the safety code.
    informing            TEXT NOT NULL CHECK (informing IN ('informed', 'not_informed')),
    informed_parents     INTEGER NOT NULL CHECK (informed_parents IN (0, 1)),
    informed_youth       INTEGER NOT NULL CHECK (informed_youth IN (0, 1)),
    informed_on          TEXT,
    not_informed_reason  TEXT CHECK (not_informed_reason IN ('youth_safety', 'professional_safety')),
    -- Idempotency of RegisterSignal: a retry with the same request_id returns this signal. The
    -- caller chooses request ids freely (one could hold a BSN), so only an HMAC of it is kept.
    request_key          TEXT NOT NULL,
    -- SHA-256 of what the request asked for, to refuse a request_id reused for another request.
    request_fingerprint  TEXT NOT NULL,
    UNIQUE (organisation_id, request_key),
    CHECK ((state = 'active') = (inactive_since IS NULL)),
    CHECK ((informing = 'informed') = (informed_on IS NOT NULL)),
    CHECK ((informing = 'not_informed') = (not_informed_reason IS NOT NULL))
) STRICT;

CREATE INDEX signals_by_subject ON signals (subject_key);
CREATE INDEX signals_by_organisation ON signals (organisation_id);
-- The lifecycle sweep: expiry by R, end of archive, 23rd birthday.
CREATE INDEX signals_by_removal ON signals (state, planned_removal_date);
CREATE INDEX signals_by_inactive_since ON signals (inactive_since);
CREATE INDEX signals_by_birth_date ON signals (birth_date);

CREATE TABLE signal_family_keys (
    signal_id  TEXT NOT NULL REFERENCES signals (signal_id) ON DELETE CASCADE,
    family_key TEXT NOT NULL,
    PRIMARY KEY (signal_id, family_key)
) STRICT;

CREATE INDEX signal_family_keys_by_key ON signal_family_keys (family_key);

-- Notices for this node's organisations: the recipient signal's owner is told about the
-- counterpart signal. `source` says who found it: this node (both signals local) or the hub
-- (counterpart in another region). A local counterpart is read live from `signals`; a remote
-- one is the snapshot the hub sent. Deleting a signal deletes every notice naming it.
CREATE TABLE notices (
    notice_id                       TEXT PRIMARY KEY NOT NULL,
    source                          TEXT NOT NULL CHECK (source IN ('node', 'hub')),
    recipient_signal_id             TEXT NOT NULL REFERENCES signals (signal_id) ON DELETE CASCADE,
    recipient_organisation_id       TEXT NOT NULL,
    recipient_subject_key           TEXT NOT NULL,
    counterpart_signal_id           TEXT NOT NULL,
    counterpart_organisation_id     TEXT NOT NULL,
    counterpart_region_id           TEXT NOT NULL,
    -- Local notices only: the pairs the node's match rule must not tell twice.
    counterpart_subject_key         TEXT,
    -- Hub notices only: the counterpart as the hub knew it.
    counterpart_organisation_name   TEXT,
    counterpart_professional_id     TEXT,
    counterpart_professional_name   TEXT,
    counterpart_professional_email  TEXT,
    counterpart_professional_phone  TEXT,
    counterpart_state               TEXT CHECK (counterpart_state IN ('active', 'inactive')),
    match_type                      TEXT NOT NULL CHECK (match_type IN ('youth', 'family')),
    kind                            TEXT NOT NULL CHECK (kind IN ('match', 'history')),
    found_at                        INTEGER NOT NULL,
    CHECK ((source = 'node') = (counterpart_subject_key IS NOT NULL)),
    CHECK ((source = 'hub') = (counterpart_professional_email IS NOT NULL))
) STRICT;

CREATE INDEX notices_by_recipient ON notices (recipient_organisation_id, recipient_subject_key);
CREATE INDEX notices_by_counterpart ON notices (counterpart_organisation_id, counterpart_subject_key);
CREATE INDEX notices_by_recipient_signal ON notices (recipient_signal_id);
CREATE INDEX notices_by_counterpart_signal ON notices (counterpart_signal_id);

-- Pairs of parties already told about each other (DOMAIN.md section 5: nobody is told twice
-- while both parties exist). Pseudonyms and organisation ids only. Kept apart from the notices,
-- which go with the signal they name, and removed when one of the two parties has no signal
-- left on its youth.
CREATE TABLE told_pairs (
    recipient_organisation_id   TEXT NOT NULL,
    recipient_subject_key       TEXT NOT NULL,
    counterpart_organisation_id TEXT NOT NULL,
    counterpart_subject_key     TEXT NOT NULL,
    match_type                  TEXT NOT NULL CHECK (match_type IN ('youth', 'family')),
    PRIMARY KEY (recipient_organisation_id, recipient_subject_key, counterpart_organisation_id,
                 counterpart_subject_key, match_type)
) STRICT;

CREATE INDEX told_pairs_by_counterpart ON told_pairs (counterpart_organisation_id, counterpart_subject_key);

-- One e-mail per notice to the recipient professional, sent by the e-mail outbox worker.
CREATE TABLE email_jobs (
    notice_id  TEXT PRIMARY KEY NOT NULL REFERENCES notices (notice_id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
) STRICT;

-- How far this node has stored the hub's notice log: the stream resumes after this cursor.
CREATE TABLE hub_cursor (
    singleton INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
    cursor    INTEGER NOT NULL CHECK (cursor >= 0)
) STRICT;

INSERT INTO hub_cursor (singleton, cursor) VALUES (1, 0);

-- Signal events for the hub, drained in seq order by the forwarder. Each holds the signal's
-- pseudonymous state at one revision (JSON), never a BSN, name of the youth or birth date.
CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    signal_id  TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    event      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (signal_id, revision)
) STRICT;

-- Coordination of a match between two signals (one or both on this node), keyed by the pair in
-- a fixed order: the regievoerder named (one of the two) and each side's afgestemd mark.
CREATE TABLE coordination (
    signal_low              TEXT NOT NULL,
    signal_high             TEXT NOT NULL,
    regievoerder_signal_id  TEXT,
    regievoerder_at         INTEGER,
    regievoerder_change_id  TEXT,
    afgestemd_low           INTEGER NOT NULL CHECK (afgestemd_low IN (0, 1)),
    afgestemd_high          INTEGER NOT NULL CHECK (afgestemd_high IN (0, 1)),
    PRIMARY KEY (signal_low, signal_high),
    CHECK (signal_low < signal_high)
) STRICT;

CREATE INDEX coordination_by_high ON coordination (signal_high);

-- Coordination changes on cross-region matches, waiting for the hub, in order.
CREATE TABLE coordination_outbox (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    change TEXT NOT NULL
) STRICT;

-- Youths the BRP reported deceased, by pseudonym: their signals were purged and no new one is
-- accepted (DOMAIN.md section 4).
CREATE TABLE deceased (
    subject_key TEXT PRIMARY KEY NOT NULL,
    recorded_at INTEGER NOT NULL
) STRICT;

-- The audit log (DOMAIN.md section 9): who did what to which signals, when. Codes and ids
-- only. Append-only (the triggers refuse changes) and hash-chained (each hash covers the
-- previous one and the entry), so `vix-node audit verify` finds an entry changed or removed
-- behind the triggers' back. Deleting a signal leaves its entries.
CREATE TABLE audit_log (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    action          TEXT NOT NULL,
    -- Who: a professional (actor_id: organisation, actor_person_id: professional), a
    -- municipality (its code, and the officer), or the node itself.
    actor_kind      TEXT NOT NULL CHECK (actor_kind IN ('professional', 'municipality', 'system')),
    actor_id        TEXT NOT NULL,
    actor_person_id TEXT NOT NULL,
    signal_ids      TEXT NOT NULL,
    detail          TEXT NOT NULL,
    hash            TEXT NOT NULL
) STRICT;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
