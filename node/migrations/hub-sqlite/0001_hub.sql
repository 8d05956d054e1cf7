-- The national hub: pseudonymous signals of every region, tombstones of deleted ones, and one
-- notice log per region. No BSN, name, address or birth date (ARCHITECTURE.md invariant 1).
-- Instants are microseconds since the Unix epoch (UTC); dates are YYYY-MM-DD text.

CREATE TABLE signals (
    signal_id            TEXT PRIMARY KEY NOT NULL,
    region_id            TEXT NOT NULL,
    revision             INTEGER NOT NULL CHECK (revision >= 1),
    organisation_id      TEXT NOT NULL,
    organisation_name    TEXT NOT NULL,
    professional_id      TEXT NOT NULL,
    professional_name    TEXT NOT NULL,
    professional_email   TEXT NOT NULL,
    professional_phone   TEXT,
    subject_key          TEXT NOT NULL,
    registered_at        INTEGER NOT NULL,
    planned_removal_date TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('active', 'inactive')),
    inactive_since       TEXT,
    CHECK ((state = 'active') = (inactive_since IS NULL))
) STRICT;

CREATE INDEX signals_by_subject ON signals (subject_key);
-- The lifecycle sweep: expiry by R, end of archive.
CREATE INDEX signals_by_removal ON signals (state, planned_removal_date);
CREATE INDEX signals_by_inactive_since ON signals (inactive_since);

CREATE TABLE signal_family_keys (
    signal_id  TEXT NOT NULL REFERENCES signals (signal_id) ON DELETE CASCADE,
    family_key TEXT NOT NULL,
    PRIMARY KEY (signal_id, family_key)
) STRICT;

CREATE INDEX signal_family_keys_by_key ON signal_family_keys (family_key);

-- A deleted signal: enough to refuse a replay that would revive it, nothing more.
CREATE TABLE tombstones (
    signal_id TEXT PRIMARY KEY NOT NULL,
    region_id TEXT NOT NULL,
    revision  INTEGER NOT NULL
) STRICT;

-- The notices the hub found. Recipient and counterpart subject keys make "nobody is told twice"
-- checkable. A notice goes when either of its signals is deleted.
CREATE TABLE notices (
    notice_id                       TEXT PRIMARY KEY NOT NULL,
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
    found_at                        INTEGER NOT NULL
) STRICT;

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

-- Every region's notice log: `cursor` orders it, a region streams its own entries after the
-- cursor it last stored. Entries hold ids only: a notice entry whose notice was deleted before
-- delivery is skipped, and a retraction tells the region to delete a notice it holds.
CREATE TABLE region_log (
    cursor    INTEGER PRIMARY KEY AUTOINCREMENT,
    region_id TEXT NOT NULL,
    notice_id TEXT NOT NULL,
    entry     TEXT NOT NULL CHECK (entry IN ('notice', 'retraction', 'coordination'))
) STRICT;

CREATE INDEX region_log_by_region ON region_log (region_id, cursor);
CREATE INDEX notices_by_recipient ON notices (recipient_organisation_id, recipient_subject_key);
CREATE INDEX notices_by_counterpart ON notices (counterpart_organisation_id, counterpart_subject_key);

-- Coordination changes relayed between the regions of a cross-region match (ids only), so a
-- resent change is relayed once and a region's log can refer to it.
CREATE TABLE coordination_changes (
    change_id              TEXT PRIMARY KEY NOT NULL,
    by_signal_id           TEXT NOT NULL,
    other_signal_id        TEXT NOT NULL,
    at                     INTEGER NOT NULL,
    regievoerder_signal_id TEXT
) STRICT;

-- Each organisation belongs to one region (DOMAIN.md glossary): bound on its first signal, so no
-- region can later submit signals in another region's organisation's name.
CREATE TABLE organisations (
    organisation_id TEXT PRIMARY KEY NOT NULL,
    region_id       TEXT NOT NULL
) STRICT;

-- How far each region has acknowledged its notice log.
CREATE TABLE region_cursors (
    region_id    TEXT PRIMARY KEY NOT NULL,
    acked_cursor INTEGER NOT NULL CHECK (acked_cursor >= 0)
) STRICT;

-- The hub's audit log: every region call (DOMAIN.md section 9), ids and codes only; append-only
-- and hash-chained like the nodes' (`vix-node verify-audit --config hub.toml`).
CREATE TABLE audit_log (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    action          TEXT NOT NULL,
    actor_kind      TEXT NOT NULL CHECK (actor_kind IN ('region', 'system')),
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
