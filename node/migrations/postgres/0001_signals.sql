-- A region node's tables on PostgreSQL: the SQLite schema (migrations/sqlite) as it stands after
-- its migrations, in PostgreSQL's types. Dates are ISO text and instants microseconds since the
-- epoch, as on SQLite, so rows are read by one parser. Identifiers compare bytewise (COLLATE
-- "C"), as Rust compares them: a coordination pair is stored as (lower, higher) signal id.

CREATE TABLE signals (
    signal_id            TEXT COLLATE "C" PRIMARY KEY,
    revision             BIGINT NOT NULL CHECK (revision >= 1),
    organisation_id      TEXT NOT NULL,
    organisation_name    TEXT NOT NULL,
    professional_id      TEXT NOT NULL,
    professional_name    TEXT NOT NULL,
    professional_email   TEXT NOT NULL,
    professional_phone   TEXT,
    subject_key          TEXT NOT NULL,
    birth_date           TEXT NOT NULL,
    registered_at        BIGINT NOT NULL,
    planned_removal_date TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('active', 'inactive')),
    inactive_since       TEXT,
    -- The informing record (DOMAIN.md section 7): who was told and when, or the safety code.
    informing            TEXT NOT NULL CHECK (informing IN ('informed', 'not_informed')),
    informed_parents     BOOLEAN NOT NULL,
    informed_youth       BOOLEAN NOT NULL,
    informed_on          TEXT,
    not_informed_reason  TEXT CHECK (not_informed_reason IN ('youth_safety', 'professional_safety')),
    -- Idempotency of RegisterSignal: only an HMAC of the caller's request_id is kept.
    request_key          TEXT NOT NULL,
    -- SHA-256 of what the request asked for, to refuse a request_id reused for another request.
    request_fingerprint  TEXT NOT NULL,
    UNIQUE (organisation_id, request_key),
    CHECK ((state = 'active') = (inactive_since IS NULL)),
    CHECK ((informing = 'informed') = (informed_on IS NOT NULL)),
    CHECK ((informing = 'not_informed') = (not_informed_reason IS NOT NULL))
);

CREATE INDEX signals_by_party ON signals (subject_key, organisation_id, state, registered_at);
CREATE INDEX signals_by_subject_registered ON signals (subject_key, registered_at, signal_id);
CREATE INDEX signals_by_removal ON signals (state, planned_removal_date);
CREATE INDEX signals_by_inactive_since ON signals (inactive_since) WHERE inactive_since IS NOT NULL;
CREATE INDEX signals_by_birth_date ON signals (birth_date);

CREATE TABLE signal_family_keys (
    signal_id  TEXT COLLATE "C" NOT NULL REFERENCES signals (signal_id) ON DELETE CASCADE,
    family_key TEXT NOT NULL,
    PRIMARY KEY (signal_id, family_key)
);

CREATE INDEX signal_family_keys_by_key ON signal_family_keys (family_key);

CREATE TABLE notices (
    notice_id                       TEXT COLLATE "C" PRIMARY KEY,
    source                          TEXT NOT NULL CHECK (source IN ('node', 'hub')),
    recipient_signal_id             TEXT COLLATE "C" NOT NULL
                                        REFERENCES signals (signal_id) ON DELETE CASCADE,
    recipient_organisation_id       TEXT NOT NULL,
    recipient_subject_key           TEXT NOT NULL,
    counterpart_signal_id           TEXT COLLATE "C" NOT NULL,
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
    found_at                        BIGINT NOT NULL,
    CHECK ((source = 'node') = (counterpart_subject_key IS NOT NULL)),
    CHECK ((source = 'hub') = (counterpart_professional_email IS NOT NULL))
);

CREATE INDEX notices_by_recipient_found ON notices (recipient_organisation_id, found_at, notice_id);
CREATE INDEX notices_by_recipient_signal_found ON notices (recipient_signal_id, found_at, notice_id);
CREATE INDEX notices_by_counterpart_signal ON notices (counterpart_signal_id);

CREATE TABLE told_pairs (
    recipient_organisation_id   TEXT NOT NULL,
    recipient_subject_key       TEXT NOT NULL,
    counterpart_organisation_id TEXT NOT NULL,
    counterpart_subject_key     TEXT NOT NULL,
    match_type                  TEXT NOT NULL CHECK (match_type IN ('youth', 'family')),
    PRIMARY KEY (recipient_organisation_id, recipient_subject_key, counterpart_organisation_id,
                 counterpart_subject_key, match_type)
);

CREATE INDEX told_pairs_by_counterpart ON told_pairs (counterpart_organisation_id, counterpart_subject_key);

CREATE TABLE email_jobs (
    notice_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES notices (notice_id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);

CREATE TABLE hub_cursor (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    cursor    BIGINT NOT NULL CHECK (cursor >= 0),
    epoch     TEXT
);

INSERT INTO hub_cursor (singleton, cursor) VALUES (1, 0);

-- Written one transaction at a time (the node's writes lock), so seq order is commit order.
CREATE TABLE outbox (
    seq        BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    signal_id  TEXT COLLATE "C" NOT NULL,
    revision   BIGINT NOT NULL,
    event      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (signal_id, revision)
);

CREATE TABLE coordination (
    signal_low              TEXT COLLATE "C" NOT NULL,
    signal_high             TEXT COLLATE "C" NOT NULL,
    regievoerder_signal_id  TEXT,
    regievoerder_at         BIGINT,
    regievoerder_change_id  TEXT,
    afgestemd_low           BOOLEAN NOT NULL,
    afgestemd_high          BOOLEAN NOT NULL,
    PRIMARY KEY (signal_low, signal_high),
    CHECK (signal_low < signal_high)
);

CREATE INDEX coordination_by_high ON coordination (signal_high);

CREATE TABLE coordination_outbox (
    seq    BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    change TEXT NOT NULL
);

CREATE TABLE deceased (
    subject_key TEXT PRIMARY KEY,
    recorded_at BIGINT NOT NULL
);

CREATE TABLE dead_letters (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source         TEXT NOT NULL CHECK (source IN ('outbox', 'coordination', 'notice_log')),
    -- outbox and coordination: the event's place in its queue; notice_log: the entry's cursor.
    position       BIGINT NOT NULL,
    -- outbox only: the signal whose later events wait.
    signal_id      TEXT COLLATE "C",
    -- outbox: the event's revision; others NULL.
    revision       BIGINT,
    -- As queued (the outbox's JSON) or as received (the log entry's protobuf bytes).
    payload        BYTEA NOT NULL,
    reason         TEXT NOT NULL,
    quarantined_at BIGINT NOT NULL,
    UNIQUE (source, position)
);

CREATE INDEX dead_letters_by_signal ON dead_letters (signal_id) WHERE signal_id IS NOT NULL;

-- The audit log, hash-chained as on SQLite. The chain's end is one row: the highest seq ever
-- handed out and its hash, so entries removed from the end cannot go unnoticed.
CREATE TABLE audit_log (
    seq             BIGINT PRIMARY KEY,
    at              BIGINT NOT NULL,
    action          TEXT NOT NULL,
    actor_kind      TEXT NOT NULL CHECK (actor_kind IN ('professional', 'municipality', 'system')),
    actor_id        TEXT NOT NULL,
    actor_person_id TEXT NOT NULL,
    signal_ids      TEXT NOT NULL,
    detail          TEXT NOT NULL,
    hash            TEXT NOT NULL
);

CREATE TABLE audit_head (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL
);

INSERT INTO audit_head (singleton, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END
$$;

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
