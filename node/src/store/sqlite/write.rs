//! The region node's writes, each one savepoint of a group commit on the writer's rusqlite
//! connection (`store::writer`). They decide nothing the domain does not: they load, ask the
//! domain's rules, and store what those say.

use jiff::Timestamp;
use jiff::civil::Date;
use rusqlite::Connection;

use super::super::outbox::OutboxEvent;
use super::super::row::{
    Columns, parse_instant, parse_org, parse_signal_id, parse_state, parse_subject, revision_to_db,
};
use super::super::sql::query;
use super::super::told;
use super::super::{
    Acting, NewSignal, Registered, SignalUpdate, StoreError, StoredSignal, SweepReport, Withdrawn,
    audit,
};
use super::SIGNAL_COLUMNS;
use super::rows::{parse_family_keys, signal_from_row};
use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::informing::InformingRecord;
use crate::domain::lifecycle::{self, Due, LifecycleDates};
use crate::domain::matching::{
    MatchScope, MatchSignal, PartySignal, PlannedNotice, plan_notices, standing_signal,
};
use crate::domain::signal::{self, Withdrawal};
use crate::domain::{
    FamilyKey, OrganisationId, RegionId, Revision, SignalId, SignalState, SubjectKey,
    WithdrawReason,
};

pub(super) fn register(
    tx: &Connection,
    new: NewSignal,
    region_id: &RegionId,
) -> Result<Registered, StoreError> {
    let earlier = query(
        "SELECT signal_id, request_fingerprint FROM signals \
         WHERE organisation_id = ? AND request_key = ?",
    )
    .bind(new.organisation_id.as_str())
    .bind(&new.request_key)
    .fetch_optional(tx)?;
    if let Some(row) = earlier {
        let fingerprint: String = row.try_get("request_fingerprint")?;
        if fingerprint != new.request_fingerprint {
            return Err(StoreError::RequestMismatch);
        }
        let signal_id = parse_signal_id(&row.try_get::<String>("signal_id")?)?;
        let signal = load_signal(tx, signal_id)?.ok_or(StoreError::Corrupt("signals"))?;
        return Ok(Registered::Replayed(signal));
    }

    let deceased: Option<String> = query("SELECT subject_key FROM deceased WHERE subject_key = ?")
        .bind(new.subject_key.to_stored())
        .scalar_optional(tx)?;
    if deceased.is_some() {
        return Err(StoreError::Deceased);
    }

    // Re-registration while the organisation's signal on this youth is active: that signal
    // stands, and nobody is told again (DOMAIN.md section 5).
    let active: Option<String> = query(
        "SELECT signal_id FROM signals \
         WHERE organisation_id = ? AND subject_key = ? AND state = 'active' \
         ORDER BY registered_at DESC, signal_id DESC LIMIT 1",
    )
    .bind(new.organisation_id.as_str())
    .bind(new.subject_key.to_stored())
    .scalar_optional(tx)?;
    if let Some(active) = active {
        let signal =
            load_signal(tx, parse_signal_id(&active)?)?.ok_or(StoreError::Corrupt("signals"))?;
        return Ok(Registered::AlreadyActive(signal));
    }

    let signal = StoredSignal {
        signal_id: new.signal_id,
        revision: Revision::FIRST,
        organisation_id: new.organisation_id,
        organisation_name: new.organisation_name,
        contact: new.contact,
        subject_key: new.subject_key,
        family_keys: new.family_keys,
        birth_date: new.birth_date,
        registered_at: new.registered_at,
        planned_removal_date: new.planned_removal_date,
        state: SignalState::Active,
        inactive_since: None,
        informing: new.informing,
    };

    // Matching sees exactly what is committed before this transaction: the single writer
    // serialises registrations, so of two signals on one youth the later finds the earlier.
    let candidates = load_candidates(tx, &signal, region_id)?;
    let told = told::load(tx, &signal.organisation_id, &signal.subject_key)?;
    let new_match = match_signal(&signal, region_id);
    let notices = plan_notices(&new_match, &candidates, &told, MatchScope::WithinRegion);

    query(format!(
        "INSERT INTO signals ({SIGNAL_COLUMNS}, request_key, request_fingerprint) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(signal.signal_id.to_string())
    .bind(revision_to_db(signal.revision))
    .bind(signal.organisation_id.as_str())
    .bind(signal.organisation_name.as_str())
    .bind(signal.contact.professional_id())
    .bind(signal.contact.name())
    .bind(signal.contact.email())
    .bind(signal.contact.phone())
    .bind(signal.subject_key.to_stored())
    .bind(signal.birth_date.to_string())
    .bind(signal.registered_at.as_microsecond())
    .bind(signal.planned_removal_date.to_string())
    .bind(signal.state.as_str())
    .bind(signal.inactive_since.map(|d| d.to_string()))
    .bind(InformingColumns::of(&signal.informing).kind)
    .bind(InformingColumns::of(&signal.informing).parents)
    .bind(InformingColumns::of(&signal.informing).youth)
    .bind(InformingColumns::of(&signal.informing).informed_on)
    .bind(InformingColumns::of(&signal.informing).reason)
    .bind(&new.request_key)
    .bind(&new.request_fingerprint)
    .execute(tx)?;
    for key in &signal.family_keys {
        query("INSERT INTO signal_family_keys (signal_id, family_key) VALUES (?, ?)")
            .bind(signal.signal_id.to_string())
            .bind(key.to_stored())
            .execute(tx)?;
    }
    for notice in &notices {
        insert_notice(tx, notice, signal.registered_at)?;
    }
    append_outbox(tx, &OutboxEvent::upsert(&signal), signal.registered_at)?;
    let entry = AuditEntry {
        at: signal.registered_at,
        action: AuditAction::Register,
        actor: Actor::Professional {
            organisation_id: signal.organisation_id.clone(),
            professional_id: signal.contact.professional_id().to_owned(),
        },
        signal_ids: vec![signal.signal_id],
        detail: None,
    };
    audit::append(tx, &entry)?;
    Ok(Registered::Created {
        signal,
        notices: notices.len(),
    })
}

pub(super) fn withdraw(
    tx: &Connection,
    acting: &Acting,
    signal_id: SignalId,
    reason: WithdrawReason,
    now: Timestamp,
) -> Result<(Withdrawn, bool), StoreError> {
    let current = load_owned_signal(tx, &acting.organisation_id, signal_id)?;
    let entry = AuditEntry {
        at: now,
        action: AuditAction::Withdraw,
        actor: acting.actor(),
        signal_ids: vec![signal_id],
        detail: Some(
            match reason {
                WithdrawReason::Unjustified => "unjustified",
                WithdrawReason::RiskGone => "risk_gone",
            }
            .to_owned(),
        ),
    };
    let today = crate::domain::clock::local_date(now);
    let outcome = match signal::withdraw(current.state, reason, today)? {
        Withdrawal::Delete => {
            delete_signal(tx, &current, now)?;
            Withdrawn::Deleted
        }
        Withdrawal::Archive { inactive_since } => {
            let previous = current.revision;
            let archived = StoredSignal {
                revision: previous.next(),
                state: SignalState::Inactive,
                inactive_since: Some(inactive_since),
                ..current
            };
            save_revision(tx, previous, &archived, now)?;
            Withdrawn::Archived(Box::new(archived))
        }
    };
    audit::append(tx, &entry)?;
    let purge = outcome == Withdrawn::Deleted;
    Ok((outcome, purge))
}

pub(super) fn update_signal(
    tx: &Connection,
    acting: &Acting,
    signal_id: SignalId,
    update: SignalUpdate,
    now: Timestamp,
) -> Result<StoredSignal, StoreError> {
    let current = load_owned_signal(tx, &acting.organisation_id, signal_id)?;
    signal::check_updatable(current.state)?;
    let today = crate::domain::clock::local_date(now);
    let planned_removal_date = match update.planned_removal_date {
        Some(requested) => {
            signal::moved_removal_date(current.planned_removal_date, requested, today)
                .map_err(StoreError::RemovalDate)?
        }
        None => current.planned_removal_date,
    };
    let previous = current.revision;
    let informing = match update.informing {
        Some(record) => {
            let registered_on = crate::domain::clock::local_date(current.registered_at);
            crate::domain::informing::check(record, current.birth_date, registered_on, today)
                .map_err(StoreError::Informing)?;
            record
        }
        None => current.informing,
    };
    let updated = StoredSignal {
        revision: previous.next(),
        contact: update.contact.unwrap_or_else(|| current.contact.clone()),
        planned_removal_date,
        informing,
        ..current
    };
    save_revision(tx, previous, &updated, now)?;
    let entry = AuditEntry {
        at: now,
        action: AuditAction::Update,
        actor: acting.actor(),
        signal_ids: vec![signal_id],
        detail: None,
    };
    audit::append(tx, &entry)?;
    Ok(updated)
}

pub(super) fn record_death(
    tx: &Connection,
    subject_key: &SubjectKey,
    now: Timestamp,
) -> Result<(u32, bool), StoreError> {
    query(
        "INSERT INTO deceased (subject_key, recorded_at) VALUES (?, ?) \
         ON CONFLICT (subject_key) DO NOTHING",
    )
    .bind(subject_key.to_stored())
    .bind(now.as_microsecond())
    .execute(tx)?;
    let ids: Vec<String> = query("SELECT signal_id FROM signals WHERE subject_key = ?")
        .bind(subject_key.to_stored())
        .scalars(tx)?;
    let mut deleted = 0;
    for id in ids {
        let signal =
            load_signal(tx, parse_signal_id(&id)?)?.ok_or(StoreError::Corrupt("signals"))?;
        delete_signal(tx, &signal, now)?;
        let entry = AuditEntry {
            at: now,
            action: AuditAction::Purge,
            actor: Actor::System,
            signal_ids: vec![signal.signal_id],
            detail: Some("death".to_owned()),
        };
        audit::append(tx, &entry)?;
        deleted += 1;
    }
    Ok((deleted, deleted > 0))
}

/// Corrects the signal `signal_id` of the youth `subject_key`; a signal of another youth is
/// [`StoreError::NotFound`], as one that does not exist.
pub(super) fn correct(
    tx: &Connection,
    subject_key: &SubjectKey,
    signal_id: SignalId,
    correction: SignalUpdate,
    actor: &Actor,
    reference: &str,
    now: Timestamp,
) -> Result<StoredSignal, StoreError> {
    let current = load_signal(tx, signal_id)?
        .filter(|signal| signal.subject_key == *subject_key)
        .ok_or(StoreError::NotFound)?;
    let today = crate::domain::clock::local_date(now);
    let registered_on = crate::domain::clock::local_date(current.registered_at);
    let planned_removal_date = match correction.planned_removal_date {
        Some(requested) => {
            // An archived signal's R is history; only an active one's can change.
            signal::check_updatable(current.state)?;
            signal::corrected_removal_date(registered_on, requested, today)
                .map_err(StoreError::RemovalDate)?
        }
        None => current.planned_removal_date,
    };
    let informing = match correction.informing {
        Some(record) => {
            crate::domain::informing::check(record, current.birth_date, registered_on, today)
                .map_err(StoreError::Informing)?;
            record
        }
        None => current.informing,
    };
    let previous = current.revision;
    let corrected = StoredSignal {
        revision: previous.next(),
        contact: correction
            .contact
            .unwrap_or_else(|| current.contact.clone()),
        planned_removal_date,
        informing,
        ..current
    };
    save_revision(tx, previous, &corrected, now)?;
    let entry = AuditEntry {
        at: now,
        action: AuditAction::Correct,
        actor: actor.clone(),
        signal_ids: vec![signal_id],
        detail: Some(reference.to_owned()),
    };
    audit::append(tx, &entry)?;
    Ok(corrected)
}

pub(super) fn erase(
    tx: &Connection,
    subject_key: &SubjectKey,
    only: &[SignalId],
    actor: &Actor,
    reference: &str,
    now: Timestamp,
) -> Result<(Vec<SignalId>, bool), StoreError> {
    let ids: Vec<String> = query("SELECT signal_id FROM signals WHERE subject_key = ?")
        .bind(subject_key.to_stored())
        .scalars(tx)?;
    let of_youth = ids
        .iter()
        .map(|id| parse_signal_id(id))
        .collect::<Result<Vec<_>, _>>()?;
    // Every named signal must be the youth's, or nothing is erased.
    if only.iter().any(|id| !of_youth.contains(id)) {
        return Err(StoreError::NotFound);
    }
    let mut erased = Vec::new();
    for id in of_youth {
        if !only.is_empty() && !only.contains(&id) {
            continue;
        }
        let signal = load_signal(tx, id)?.ok_or(StoreError::Corrupt("signals"))?;
        delete_signal(tx, &signal, now)?;
        erased.push(id);
    }
    let entry = AuditEntry {
        at: now,
        action: AuditAction::ErasureOrder,
        actor: actor.clone(),
        signal_ids: erased.clone(),
        detail: Some(reference.to_owned()),
    };
    audit::append(tx, &entry)?;
    let purge = !erased.is_empty();
    Ok((erased, purge))
}

pub(super) fn sweep(
    tx: &Connection,
    today: Date,
    limit: u32,
) -> Result<(SweepReport, bool), StoreError> {
    let (archive_cutoff, birth_cutoff) = lifecycle::sweep_cutoffs(today);
    // One range query per transition, each on its own index and bounded by `limit`: an OR
    // of the three (with one ORDER BY) made SQLite scan the whole table.
    let mut ids: Vec<String> = Vec::new();
    for (statement, cutoff) in [
        (
            "SELECT signal_id FROM signals \
             WHERE state = 'active' AND planned_removal_date <= ? LIMIT ?",
            today,
        ),
        (
            "SELECT signal_id FROM signals \
             WHERE state = 'inactive' AND inactive_since <= ? LIMIT ?",
            archive_cutoff,
        ),
        (
            "SELECT signal_id FROM signals WHERE birth_date <= ? LIMIT ?",
            birth_cutoff,
        ),
    ] {
        let due: Vec<String> = query(statement)
            .bind(cutoff.to_string())
            .bind(i64::from(limit))
            .scalars(tx)?;
        ids.extend(due);
    }
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    // Events carry the instant of the change: the start of `today`, when it became due.
    let now = today
        .to_zoned_datetime(crate::domain::clock::rules_time_zone())
        .map(|zoned| zoned.timestamp())
        .map_err(|_| StoreError::Corrupt("date"))?;
    let mut report = SweepReport::default();
    for id in ids {
        let signal =
            load_signal(tx, parse_signal_id(&id)?)?.ok_or(StoreError::Corrupt("signals"))?;
        let dates = LifecycleDates {
            state: signal.state,
            planned_removal_date: signal.planned_removal_date,
            inactive_since: signal.inactive_since,
            birth_date: Some(signal.birth_date),
        };
        match lifecycle::due(dates, today) {
            Due::Nothing => {}
            Due::Expire { inactive_since } => {
                let previous = signal.revision;
                let expired = StoredSignal {
                    revision: previous.next(),
                    state: SignalState::Inactive,
                    inactive_since: Some(inactive_since),
                    ..signal
                };
                save_revision(tx, previous, &expired, now)?;
                let entry = AuditEntry {
                    at: now,
                    action: AuditAction::Expire,
                    actor: Actor::System,
                    signal_ids: vec![expired.signal_id],
                    detail: None,
                };
                audit::append(tx, &entry)?;
                report.expired += 1;
            }
            Due::Delete(reason) => {
                delete_signal(tx, &signal, now)?;
                let entry = AuditEntry {
                    at: now,
                    action: AuditAction::Purge,
                    actor: Actor::System,
                    signal_ids: vec![signal.signal_id],
                    detail: Some(
                        match reason {
                            lifecycle::DeleteReason::ArchiveEnded => "archive_ended",
                            lifecycle::DeleteReason::Age23 => "age23",
                        }
                        .to_owned(),
                    ),
                };
                audit::append(tx, &entry)?;
                report.deleted += 1;
            }
        }
    }
    let purge = report.deleted > 0;
    Ok((report, purge))
}

pub(super) fn load_signal(
    conn: &Connection,
    signal_id: SignalId,
) -> Result<Option<StoredSignal>, StoreError> {
    let row = query(format!(
        "SELECT {SIGNAL_COLUMNS} FROM signals WHERE signal_id = ?"
    ))
    .bind(signal_id.to_string())
    .fetch_optional(conn)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let family_keys = load_family_keys(conn, signal_id)?;
    signal_from_row(&row, family_keys).map(Some)
}

fn load_owned_signal(
    tx: &Connection,
    organisation_id: &OrganisationId,
    signal_id: SignalId,
) -> Result<StoredSignal, StoreError> {
    let signal = load_signal(tx, signal_id)?.ok_or(StoreError::NotFound)?;
    if &signal.organisation_id != organisation_id {
        return Err(StoreError::NotOwner);
    }
    Ok(signal)
}

fn load_family_keys(conn: &Connection, signal_id: SignalId) -> Result<Vec<FamilyKey>, StoreError> {
    let keys: Vec<String> =
        query("SELECT family_key FROM signal_family_keys WHERE signal_id = ? ORDER BY family_key")
            .bind(signal_id.to_string())
            .scalars(conn)?;
    parse_family_keys(&keys)
}

/// Every signal on the node that shares the new signal's subject key or a family key, in one
/// query: a busy youth has many signals, and this runs inside the single writer's transaction.
fn load_candidates(
    tx: &Connection,
    new: &StoredSignal,
    region_id: &RegionId,
) -> Result<Vec<MatchSignal>, StoreError> {
    // A youth has at most two BRP parents; a missing one binds NULL, which matches nothing.
    let family_key = |index: usize| new.family_keys.get(index).map(FamilyKey::to_stored);
    if new.family_keys.len() > 2 {
        return Err(StoreError::Corrupt("more than two family keys"));
    }
    let rows = query(
        "SELECT s.signal_id, s.organisation_id, s.subject_key, s.state, s.registered_at, \
                (SELECT group_concat(f.family_key, ' ') FROM signal_family_keys f \
                 WHERE f.signal_id = s.signal_id) AS family_keys \
         FROM signals s \
         WHERE s.subject_key = ?1 \
            OR s.signal_id IN (SELECT signal_id FROM signal_family_keys \
                               WHERE family_key IN (?2, ?3))",
    )
    .bind(new.subject_key.to_stored())
    .bind(family_key(0))
    .bind(family_key(1))
    .fetch_all(tx)?;
    rows.iter()
        .map(|row| {
            let family_keys = row
                .try_get::<Option<String>>("family_keys")?
                .unwrap_or_default()
                .split_whitespace()
                .map(|key| {
                    FamilyKey::parse_stored(key).map_err(|_| StoreError::Corrupt("family_key"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(MatchSignal {
                signal_id: parse_signal_id(&row.text("signal_id")?)?,
                organisation_id: parse_org(&row.text("organisation_id")?)?,
                region_id: region_id.clone(),
                subject_key: parse_subject(&row.text("subject_key")?)?,
                family_keys,
                state: parse_state(&row.text("state")?)?,
                registered_at: parse_instant(row.int("registered_at")?)?,
            })
        })
        .collect()
}

/// Stores a notice found on this node, with the e-mail to its recipient.
fn insert_notice(
    tx: &Connection,
    notice: &PlannedNotice,
    found_at: Timestamp,
) -> Result<(), StoreError> {
    let notice_id = uuid::Uuid::new_v4().to_string();
    query(
        "INSERT INTO notices (notice_id, source, recipient_signal_id, recipient_organisation_id, \
             recipient_subject_key, counterpart_signal_id, counterpart_organisation_id, \
             counterpart_region_id, counterpart_subject_key, match_type, kind, found_at) \
         VALUES (?, 'node', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&notice_id)
    .bind(notice.recipient_signal_id.to_string())
    .bind(notice.recipient_organisation_id.as_str())
    .bind(notice.recipient_subject_key.to_stored())
    .bind(notice.counterpart_signal_id.to_string())
    .bind(notice.counterpart_organisation_id.as_str())
    .bind(notice.counterpart_region_id.as_str())
    .bind(notice.counterpart_subject_key.to_stored())
    .bind(notice.match_type.as_str())
    .bind(notice.kind.as_str())
    .bind(found_at.as_microsecond())
    .execute(tx)?;
    told::remember(tx, notice)?;
    insert_email_job(tx, &notice_id, found_at)
}

pub(super) fn insert_email_job(
    tx: &Connection,
    notice_id: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    query("INSERT INTO email_jobs (notice_id, created_at) VALUES (?, ?)")
        .bind(notice_id)
        .bind(now.as_microsecond())
        .execute(tx)?;
    Ok(())
}

fn append_outbox(tx: &Connection, event: &OutboxEvent, now: Timestamp) -> Result<(), StoreError> {
    let json = serde_json::to_string(event).map_err(|_| StoreError::Corrupt("outbox event"))?;
    query("INSERT INTO outbox (signal_id, revision, event, created_at) VALUES (?, ?, ?, ?)")
        .bind(event.signal_id())
        .bind(i64::try_from(event.revision()).map_err(|_| StoreError::Corrupt("revision"))?)
        .bind(json)
        .bind(now.as_microsecond())
        .execute(tx)?;
    Ok(())
}

/// Writes `signal`, a new revision of a signal stored at `previous`, and owes the hub an event
/// for it. The revision check makes a lost update impossible even if the single writer goes.
fn save_revision(
    tx: &Connection,
    previous: Revision,
    signal: &StoredSignal,
    now: Timestamp,
) -> Result<(), StoreError> {
    let updated = query(
        "UPDATE signals SET revision = ?, professional_id = ?, professional_name = ?, \
             professional_email = ?, professional_phone = ?, planned_removal_date = ?, \
             state = ?, inactive_since = ?, informing = ?, informed_parents = ?, \
             informed_youth = ?, informed_on = ?, not_informed_reason = ? \
         WHERE signal_id = ? AND revision = ?",
    )
    .bind(revision_to_db(signal.revision))
    .bind(signal.contact.professional_id())
    .bind(signal.contact.name())
    .bind(signal.contact.email())
    .bind(signal.contact.phone())
    .bind(signal.planned_removal_date.to_string())
    .bind(signal.state.as_str())
    .bind(signal.inactive_since.map(|d| d.to_string()))
    .bind(InformingColumns::of(&signal.informing).kind)
    .bind(InformingColumns::of(&signal.informing).parents)
    .bind(InformingColumns::of(&signal.informing).youth)
    .bind(InformingColumns::of(&signal.informing).informed_on)
    .bind(InformingColumns::of(&signal.informing).reason)
    .bind(signal.signal_id.to_string())
    .bind(revision_to_db(previous))
    .execute(tx)?;
    if updated.rows_affected() != 1 {
        return Err(StoreError::Corrupt("signals.revision"));
    }
    append_outbox(tx, &OutboxEvent::upsert(signal), now)
}

/// Deletes a signal with everything that names it. Events still waiting for the hub carry its
/// contact, so they go too; one delete event replaces them.
fn delete_signal(tx: &Connection, signal: &StoredSignal, now: Timestamp) -> Result<(), StoreError> {
    let id = signal.signal_id.to_string();
    match standing_after(tx, signal)? {
        // The party goes on through another signal: what named the deleted signal, or was
        // addressed to it, now names or is addressed to the signal that stands for the party,
        // so the two parties keep seeing each other (invariant 2). Same notice, no new e-mail.
        Some(standing) => {
            let standing = standing.to_string();
            query("UPDATE notices SET counterpart_signal_id = ? WHERE counterpart_signal_id = ?")
                .bind(&standing)
                .bind(&id)
                .execute(tx)?;
            query("UPDATE notices SET recipient_signal_id = ? WHERE recipient_signal_id = ?")
                .bind(&standing)
                .bind(&id)
                .execute(tx)?;
        }
        // The party is gone: the notices naming it go (those addressed to it cascade below).
        None => {
            query("DELETE FROM notices WHERE counterpart_signal_id = ?")
                .bind(&id)
                .execute(tx)?;
        }
    }
    query("DELETE FROM coordination WHERE signal_low = ?1 OR signal_high = ?1")
        .bind(&id)
        .execute(tx)?;
    // Notices to this signal (and their e-mail jobs) cascade with it.
    query("DELETE FROM signals WHERE signal_id = ?")
        .bind(&id)
        .execute(tx)?;
    told::forget_party_if_gone(
        tx,
        signal.organisation_id.as_str(),
        &signal.subject_key.to_stored(),
    )?;
    // The deletion supersedes every earlier event of the signal, a refused one included: the
    // hub needs only the tombstone, and the deletion must not wait behind a dead letter.
    query("DELETE FROM outbox WHERE signal_id = ?")
        .bind(&id)
        .execute(tx)?;
    query("DELETE FROM dead_letters WHERE signal_id = ?")
        .bind(&id)
        .execute(tx)?;
    let event = OutboxEvent::Delete {
        signal_id: id,
        revision: signal.revision.next().get(),
    };
    append_outbox(tx, &event, now)
}

/// The signal that stands for `signal`'s party once `signal` is gone; `None` if it was the
/// party's last.
fn standing_after(tx: &Connection, signal: &StoredSignal) -> Result<Option<SignalId>, StoreError> {
    let rows = query(
        "SELECT signal_id, state, registered_at FROM signals \
         WHERE subject_key = ? AND organisation_id = ? AND signal_id <> ?",
    )
    .bind(signal.subject_key.to_stored())
    .bind(signal.organisation_id.as_str())
    .bind(signal.signal_id.to_string())
    .fetch_all(tx)?;
    let remaining = rows
        .iter()
        .map(|row| {
            Ok(PartySignal {
                signal_id: parse_signal_id(&row.text("signal_id")?)?,
                state: parse_state(&row.text("state")?)?,
                registered_at: parse_instant(row.int("registered_at")?)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(standing_signal(remaining).map(|standing| standing.signal_id))
}

fn match_signal(signal: &StoredSignal, region_id: &RegionId) -> MatchSignal {
    MatchSignal {
        signal_id: signal.signal_id,
        organisation_id: signal.organisation_id.clone(),
        region_id: region_id.clone(),
        subject_key: signal.subject_key,
        family_keys: signal.family_keys.clone(),
        state: signal.state,
        registered_at: signal.registered_at,
    }
}

/// The informing record as its five columns.
struct InformingColumns {
    kind: &'static str,
    parents: bool,
    youth: bool,
    informed_on: Option<String>,
    reason: Option<&'static str>,
}

impl InformingColumns {
    fn of(record: &InformingRecord) -> Self {
        match *record {
            InformingRecord::Informed {
                parents,
                youth,
                informed_on,
            } => Self {
                kind: "informed",
                parents,
                youth,
                informed_on: Some(informed_on.to_string()),
                reason: None,
            },
            InformingRecord::NotInformed(reason) => Self {
                kind: "not_informed",
                parents: false,
                youth: false,
                informed_on: None,
                reason: Some(reason.as_str()),
            },
        }
    }
}
