-- The national hub on PostgreSQL, for several hub instances on one database. The same tables
-- and columns as the SQLite hub (migrations/hub-sqlite, all four), so rows read alike: ids,
-- keys and dates (YYYY-MM-DD) are text, instants are microseconds since the Unix epoch (UTC).
-- No BSN, name, address or birth date (ARCHITECTURE.md invariant 1).
-- Every statement on a hot path is served by an index (checked by the store's plan test).

CREATE TABLE signals (
    signal_id            TEXT PRIMARY KEY,
    region_id            TEXT NOT NULL,
    revision             BIGINT NOT NULL CHECK (revision >= 1),
    organisation_id      TEXT NOT NULL,
    organisation_name    TEXT NOT NULL,
    professional_id      TEXT NOT NULL,
    professional_name    TEXT NOT NULL,
    professional_email   TEXT NOT NULL,
    professional_phone   TEXT,
    subject_key          TEXT NOT NULL,
    registered_at        BIGINT NOT NULL,
    planned_removal_date TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('active', 'inactive')),
    inactive_since       TEXT,
    CHECK ((state = 'active') = (inactive_since IS NULL))
);

-- A youth's signals (matching), and a party's: "has the party any signal left".
CREATE INDEX signals_by_party ON signals (subject_key, organisation_id);
-- The lifecycle sweep: expiry by R, end of archive (inactive signals only).
CREATE INDEX signals_by_removal ON signals (state, planned_removal_date);
CREATE INDEX signals_by_inactive_since ON signals (inactive_since) WHERE inactive_since IS NOT NULL;

CREATE TABLE signal_family_keys (
    signal_id  TEXT NOT NULL REFERENCES signals (signal_id) ON DELETE CASCADE,
    family_key TEXT NOT NULL,
    PRIMARY KEY (signal_id, family_key)
);

CREATE INDEX signal_family_keys_by_key ON signal_family_keys (family_key);

-- A deleted signal: enough to refuse a replay that would revive it, nothing more.
CREATE TABLE tombstones (
    signal_id TEXT PRIMARY KEY,
    region_id TEXT NOT NULL,
    revision  BIGINT NOT NULL
);

CREATE TABLE notices (
    notice_id                       TEXT PRIMARY KEY,
    recipient_region_id             TEXT NOT NULL,
    recipient_signal_id             TEXT NOT NULL,
    recipient_organisation_id       TEXT NOT NULL,
    recipient_subject_key           TEXT NOT NULL,
    counterpart_signal_id           TEXT NOT NULL,
    counterpart_region_id           TEXT NOT NULL,
    counterpart_organisation_id     TEXT NOT NULL,
    counterpart_subject_key         TEXT NOT NULL,
    counterpart_organisation_name   TEXT NOT NULL,
    counterpart_professional_id     TEXT NOT NULL,
    counterpart_professional_name   TEXT NOT NULL,
    counterpart_professional_email  TEXT NOT NULL,
    counterpart_professional_phone  TEXT,
    counterpart_state               TEXT NOT NULL CHECK (counterpart_state IN ('active', 'inactive')),
    match_type                      TEXT NOT NULL CHECK (match_type IN ('youth', 'family')),
    kind                            TEXT NOT NULL CHECK (kind IN ('match', 'history')),
    found_at                        BIGINT NOT NULL
);

CREATE INDEX notices_by_recipient_signal ON notices (recipient_signal_id);
CREATE INDEX notices_by_counterpart_signal ON notices (counterpart_signal_id);

-- Pairs of parties already told about each other (DOMAIN.md section 5).
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

-- Every region's notice log, numbered per region. Several hub instances append at once, and a
-- sequence would hand out numbers that commit out of order: a region streaming meanwhile would
-- read 12, move its cursor past 11 and never see 11 when it commits. So each region's next
-- numbers are taken from its row in region_heads, which stays locked until the transaction
-- ends: the entries of one region commit in the order of their numbers, and a reader never
-- sees a number before every lower one is committed or was never handed out.
CREATE TABLE region_heads (
    region_id   TEXT PRIMARY KEY,
    last_cursor BIGINT NOT NULL CHECK (last_cursor >= 0)
);

CREATE TABLE region_log (
    region_id TEXT NOT NULL,
    cursor    BIGINT NOT NULL,
    notice_id TEXT NOT NULL,
    entry     TEXT NOT NULL CHECK (entry IN ('notice', 'retraction', 'coordination')),
    PRIMARY KEY (region_id, cursor)
);

CREATE TABLE coordination_changes (
    change_id              TEXT PRIMARY KEY,
    by_signal_id           TEXT NOT NULL,
    other_signal_id        TEXT NOT NULL,
    at                     BIGINT NOT NULL,
    regievoerder_signal_id TEXT
);

CREATE INDEX coordination_changes_by_by_signal ON coordination_changes (by_signal_id);
CREATE INDEX coordination_changes_by_other_signal ON coordination_changes (other_signal_id);

-- How far each region has acknowledged its log, and the acknowledgement noted for pruning.
CREATE TABLE region_cursors (
    region_id    TEXT PRIMARY KEY,
    acked_cursor BIGINT NOT NULL CHECK (acked_cursor >= 0),
    noted_cursor BIGINT NOT NULL DEFAULT 0,
    noted_at     BIGINT NOT NULL DEFAULT 0
);

-- The notice log's identity (see the SQLite hub's migration 0003).
CREATE TABLE log_identity (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    epoch     TEXT NOT NULL
);

INSERT INTO log_identity (singleton, epoch) VALUES (1, replace(gen_random_uuid()::text, '-', ''));

-- The hub's audit log, hash-chained like the nodes'. The chain's end is one row, locked by the
-- appending transaction until it ends, so the instances' entries form one chain in commit order.
CREATE TABLE audit_log (
    seq             BIGINT PRIMARY KEY,
    at              BIGINT NOT NULL,
    action          TEXT NOT NULL,
    actor_kind      TEXT NOT NULL CHECK (actor_kind IN ('region', 'system')),
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
