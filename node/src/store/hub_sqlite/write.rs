//! The hub's writes, each one savepoint of a group commit on the writer's rusqlite connection
//! (`store::writer`): batches of several regions share a commit.

use std::collections::HashMap;

use jiff::Timestamp;
use jiff::civil::Date;
use rusqlite::Connection;

use super::super::hub::{BatchOutcome, HubSignal, HubStoreError, SignalEvent};
use super::super::row::{
    Columns, contact_from_row, parse_date, parse_instant, parse_org, parse_org_name,
    parse_signal_id, parse_state, parse_subject, revision_to_db,
};
use super::super::sql::{OwnedRow, query};
use super::super::told;
use super::super::{StoreError, SweepReport};
use super::{StoredHubSignal, parse_region};
use crate::domain::coordination::{ChangeKind, CoordinationChange};
use crate::domain::lifecycle::{self, Due, LifecycleDates};
use crate::domain::matching::{
    MatchScope, MatchSignal, PartySignal, PlannedNotice, plan_notices, standing_signal,
};
use crate::domain::{FamilyKey, RegionId, Revision, SignalId, SignalState};

pub(super) fn submit(
    tx: &Connection,
    region_id: &RegionId,
    events: Vec<SignalEvent>,
    now: Timestamp,
) -> Result<(BatchOutcome, bool), HubStoreError> {
    let mut outcome = BatchOutcome::default();
    let mut deleted_any = false;
    let submitted: Vec<SignalId> = events.iter().map(|event| event.signal_id).collect();
    for (index, event) in events.into_iter().enumerate() {
        let id = event.signal_id.to_string();
        let tombstone: Option<String> =
            query("SELECT region_id FROM tombstones WHERE signal_id = ?")
                .bind(&id)
                .scalar_optional(tx)?;
        let current = query("SELECT region_id, revision FROM signals WHERE signal_id = ?")
            .bind(&id)
            .fetch_optional(tx)?;
        let owner = match (&tombstone, &current) {
            (Some(owner), _) => Some(owner.clone()),
            (None, Some(row)) => Some(row.try_get::<String>("region_id")?),
            (None, None) => None,
        };
        if owner
            .as_deref()
            .is_some_and(|owner| owner != region_id.as_str())
        {
            // Dropping the transaction rolls back what this batch already applied.
            return Err(HubStoreError::NotOwner { index });
        }
        if tombstone.is_some() {
            outcome.ignored += 1; // deleted is final: a replay cannot revive it
            continue;
        }
        let current_revision = current
            .as_ref()
            .map(|row| row.try_get::<i64>("revision"))
            .transpose()?;
        if current_revision.is_some_and(|current| current >= revision_to_db(event.revision)) {
            outcome.ignored += 1;
            continue;
        }
        // A region that was away may send a revision that is already past its dates: the
        // hub applies the lifecycle on arrival, as its daily sweep has run already.
        let today = crate::domain::clock::local_date(now);
        let Some(signal) = event.upsert else {
            delete_signal(tx, region_id, event.signal_id, event.revision)?;
            deleted_any = true;
            outcome.applied += 1;
            continue;
        };
        let due = lifecycle::due(
            LifecycleDates {
                state: signal.state,
                planned_removal_date: signal.planned_removal_date,
                inactive_since: signal.inactive_since,
                birth_date: None,
            },
            today,
        );
        let mut expired = signal.clone();
        match due {
            Due::Nothing => {}
            Due::Expire { inactive_since } => {
                expired.state = SignalState::Inactive;
                expired.inactive_since = Some(inactive_since);
            }
            Due::Delete(_) => {
                delete_signal(tx, region_id, event.signal_id, event.revision)?;
                deleted_any = true;
                outcome.applied += 1;
                continue;
            }
        }
        if current_revision.is_some() {
            update_signal(tx, event.signal_id, event.revision, &expired)?;
        } else {
            // New here. It matches as it was registered, active, even when it arrives after
            // its planned removal date because its region was cut off: the node matched it
            // locally the same way, and the other regions' parties must not miss it. Then the
            // lifecycle applies; its owner, inactive by then, gets no e-mail (the node's
            // delivery rule).
            let new = StoredHubSignal {
                signal_id: event.signal_id,
                region_id: region_id.clone(),
                signal,
            };
            insert_signal(tx, &new, event.revision)?;
            outcome.notices += match_new_signal(tx, &new, now)?;
            if expired != new.signal {
                update_signal(tx, event.signal_id, event.revision, &expired)?;
            }
        }
        outcome.applied += 1;
    }
    let entry = crate::domain::audit::AuditEntry {
        at: now,
        action: crate::domain::audit::AuditAction::SubmitSignals,
        actor: crate::domain::audit::Actor::Region(region_id.clone()),
        signal_ids: submitted,
        detail: Some(format!(
            "applied={},ignored={},notices={}",
            outcome.applied, outcome.ignored, outcome.notices
        )),
    };
    super::super::audit::append(tx, &entry)?;
    Ok((outcome, deleted_any))
}

pub(super) fn sweep(
    tx: &Connection,
    today: Date,
    limit: u32,
) -> Result<(SweepReport, bool), StoreError> {
    let (archive_cutoff, _) = lifecycle::sweep_cutoffs(today);
    // One range query per transition, each on its own index and bounded by `limit`.
    let mut rows = Vec::new();
    for (statement, cutoff) in [
        (
            "SELECT signal_id, region_id, revision, state, planned_removal_date, \
                    inactive_since \
             FROM signals WHERE state = 'active' AND planned_removal_date <= ? LIMIT ?",
            today,
        ),
        (
            "SELECT signal_id, region_id, revision, state, planned_removal_date, \
                    inactive_since \
             FROM signals WHERE state = 'inactive' AND inactive_since <= ? LIMIT ?",
            archive_cutoff,
        ),
    ] {
        let limit_left = i64::from(limit) - i64::try_from(rows.len()).unwrap_or(i64::MAX);
        if limit_left <= 0 {
            break;
        }
        rows.extend(
            query(statement)
                .bind(cutoff.to_string())
                .bind(limit_left)
                .fetch_all(tx)?,
        );
    }
    let mut report = SweepReport::default();
    for row in &rows {
        let signal_id = parse_signal_id(&row.text("signal_id")?)?;
        let dates = LifecycleDates {
            state: parse_state(&row.text("state")?)?,
            planned_removal_date: parse_date(&row.text("planned_removal_date")?)?,
            inactive_since: row
                .try_get::<Option<String>>("inactive_since")?
                .as_deref()
                .map(parse_date)
                .transpose()?,
            birth_date: None,
        };
        match lifecycle::due(dates, today) {
            Due::Nothing => {}
            Due::Expire { inactive_since } => {
                // The hub's own expiry: no new revision, the region's will follow.
                query(
                    "UPDATE signals SET state = 'inactive', inactive_since = ? \
                     WHERE signal_id = ?",
                )
                .bind(inactive_since.to_string())
                .bind(signal_id.to_string())
                .execute(tx)?;
                refresh_notices(tx, signal_id)?;
                system_entry(
                    tx,
                    crate::domain::audit::AuditAction::Expire,
                    signal_id,
                    None,
                    today,
                )?;
                report.expired += 1;
            }
            Due::Delete(_) => {
                let region_id = parse_region(&row.text("region_id")?)?;
                let revision: i64 = row.try_get("revision")?;
                let revision = u64::try_from(revision)
                    .ok()
                    .and_then(Revision::new)
                    .ok_or(StoreError::Corrupt("revision"))?;
                delete_signal(tx, &region_id, signal_id, revision)?;
                system_entry(
                    tx,
                    crate::domain::audit::AuditAction::Purge,
                    signal_id,
                    Some("archive_ended"),
                    today,
                )?;
                report.deleted += 1;
            }
        }
    }
    let purge = report.deleted > 0;
    Ok((report, purge))
}

pub(super) fn ack(
    tx: &Connection,
    region_id: &RegionId,
    cursor: u64,
    now: Timestamp,
) -> Result<(), StoreError> {
    query(
        "INSERT INTO region_cursors (region_id, acked_cursor, noted_cursor, noted_at) \
         VALUES (?1, ?2, 0, ?3) \
         ON CONFLICT (region_id) DO UPDATE \
         SET acked_cursor = MAX(acked_cursor, excluded.acked_cursor)",
    )
    .bind(region_id.as_str())
    .bind(i64::try_from(cursor).map_err(|_| StoreError::Corrupt("cursor"))?)
    .bind(now.as_microsecond())
    .execute(tx)?;
    let entry = crate::domain::audit::AuditEntry {
        at: now,
        action: crate::domain::audit::AuditAction::AckNotices,
        actor: crate::domain::audit::Actor::Region(region_id.clone()),
        signal_ids: Vec::new(),
        detail: Some(format!("cursor={cursor}")),
    };
    super::super::audit::append(tx, &entry)?;
    Ok(())
}

/// Forgets log entries acknowledged at least a retention period ago (`noted_before`): each
/// region's acknowledgement noted then goes, and today's is noted. Returns the entries removed
/// and whether the WAL should be truncated.
pub(super) fn prune_log(
    tx: &Connection,
    noted_before: Timestamp,
    now: Timestamp,
) -> Result<(u64, bool), StoreError> {
    let due = query("SELECT region_id, noted_cursor FROM region_cursors WHERE noted_at <= ?")
        .bind(noted_before.as_microsecond())
        .fetch_all(tx)?;
    let mut pruned = 0;
    for row in due {
        let region_id: String = row.try_get("region_id")?;
        let noted: i64 = row.try_get("noted_cursor")?;
        pruned += query("DELETE FROM region_log WHERE region_id = ? AND cursor <= ?")
            .bind(&region_id)
            .bind(noted)
            .execute(tx)?
            .rows_affected();
        query(
            "UPDATE region_cursors SET noted_cursor = acked_cursor, noted_at = ? \
             WHERE region_id = ?",
        )
        .bind(now.as_microsecond())
        .bind(&region_id)
        .execute(tx)?;
    }
    Ok((pruned, pruned > 0))
}

pub(super) fn submit_coordination(
    tx: &Connection,
    region_id: &RegionId,
    changes: Vec<CoordinationChange>,
    now: Timestamp,
) -> Result<u32, HubStoreError> {
    let mut relayed = 0;
    let mut ids = Vec::new();
    for (index, change) in changes.iter().enumerate() {
        let by_region: Option<String> = query("SELECT region_id FROM signals WHERE signal_id = ?")
            .bind(change.by_signal.to_string())
            .scalar_optional(tx)?;
        match by_region {
            Some(owner) if owner != region_id.as_str() => {
                return Err(HubStoreError::NotOwnerOfChange { index });
            }
            Some(_) => {}
            None => continue, // deleted meanwhile: nothing left to coordinate
        }
        let other_region: Option<String> =
            query("SELECT region_id FROM signals WHERE signal_id = ?")
                .bind(change.other_signal.to_string())
                .scalar_optional(tx)?;
        let Some(other_region) = other_region else {
            continue;
        };
        if other_region == region_id.as_str() {
            continue; // same region: the node holds both sides
        }
        let inserted = query(
            "INSERT INTO coordination_changes (change_id, by_signal_id, other_signal_id, at, \
                 regievoerder_signal_id) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (change_id) DO NOTHING",
        )
        .bind(change.change_id.to_string())
        .bind(change.by_signal.to_string())
        .bind(change.other_signal.to_string())
        .bind(change.at.as_microsecond())
        .bind(match change.kind {
            ChangeKind::Regievoerder(named) => Some(named.to_string()),
            ChangeKind::Afgestemd => None,
        })
        .execute(tx)?;
        if inserted.rows_affected() == 1 {
            query(
                "INSERT INTO region_log (region_id, notice_id, entry) \
                 VALUES (?, ?, 'coordination')",
            )
            .bind(&other_region)
            .bind(change.change_id.to_string())
            .execute(tx)?;
            relayed += 1;
        }
        ids.push(change.by_signal);
    }
    let entry = crate::domain::audit::AuditEntry {
        at: now,
        action: crate::domain::audit::AuditAction::SubmitCoordination,
        actor: crate::domain::audit::Actor::Region(region_id.clone()),
        signal_ids: ids,
        detail: Some(format!("relayed={relayed}")),
    };
    super::super::audit::append(tx, &entry)?;
    Ok(relayed)
}

/// An audit entry for the hub's own lifecycle, at the start of the day it became due.
fn system_entry(
    tx: &Connection,
    action: crate::domain::audit::AuditAction,
    signal_id: SignalId,
    detail: Option<&str>,
    today: Date,
) -> Result<(), StoreError> {
    let at = today
        .to_zoned_datetime(crate::domain::clock::rules_time_zone())
        .map(|zoned| zoned.timestamp())
        .map_err(|_| StoreError::Corrupt("date"))?;
    let entry = crate::domain::audit::AuditEntry {
        at,
        action,
        actor: crate::domain::audit::Actor::System,
        signal_ids: vec![signal_id],
        detail: detail.map(str::to_owned),
    };
    super::super::audit::append(tx, &entry)
}

fn insert_signal(
    tx: &Connection,
    new: &StoredHubSignal,
    revision: Revision,
) -> Result<(), StoreError> {
    let signal = &new.signal;
    query(
        "INSERT INTO signals (signal_id, region_id, revision, organisation_id, \
             organisation_name, professional_id, professional_name, professional_email, \
             professional_phone, subject_key, registered_at, planned_removal_date, state, \
             inactive_since) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(new.signal_id.to_string())
    .bind(new.region_id.as_str())
    .bind(revision_to_db(revision))
    .bind(signal.organisation_id.as_str())
    .bind(signal.organisation_name.as_str())
    .bind(signal.contact.professional_id())
    .bind(signal.contact.name())
    .bind(signal.contact.email())
    .bind(signal.contact.phone())
    .bind(signal.subject_key.to_stored())
    .bind(signal.registered_at.as_microsecond())
    .bind(signal.planned_removal_date.to_string())
    .bind(signal.state.as_str())
    .bind(signal.inactive_since.map(|d| d.to_string()))
    .execute(tx)?;
    for key in &signal.family_keys {
        query("INSERT INTO signal_family_keys (signal_id, family_key) VALUES (?, ?)")
            .bind(new.signal_id.to_string())
            .bind(key.to_stored())
            .execute(tx)?;
    }
    Ok(())
}

/// A newer revision of a known signal. Keys and registration never change; no matching
/// (DOMAIN.md section 5: only a newly registered signal matches).
fn update_signal(
    tx: &Connection,
    signal_id: SignalId,
    revision: Revision,
    signal: &HubSignal,
) -> Result<(), StoreError> {
    query(
        "UPDATE signals SET revision = ?, organisation_name = ?, professional_id = ?, \
             professional_name = ?, professional_email = ?, professional_phone = ?, \
             planned_removal_date = ?, state = ?, inactive_since = ? \
         WHERE signal_id = ?",
    )
    .bind(revision_to_db(revision))
    .bind(signal.organisation_name.as_str())
    .bind(signal.contact.professional_id())
    .bind(signal.contact.name())
    .bind(signal.contact.email())
    .bind(signal.contact.phone())
    .bind(signal.planned_removal_date.to_string())
    .bind(signal.state.as_str())
    .bind(signal.inactive_since.map(|d| d.to_string()))
    .bind(signal_id.to_string())
    .execute(tx)?;
    refresh_notices(tx, signal_id)
}

/// The notices that show `signal_id` as counterpart carry its contact and state as they were
/// found: bring them up to date and send them again to their regions, which update their copy
/// (DOMAIN.md section 6: the other party's contact and state; section 8: corrections).
fn refresh_notices(tx: &Connection, signal_id: SignalId) -> Result<(), StoreError> {
    let id = signal_id.to_string();
    let refreshed = query(
        "UPDATE notices SET \
             counterpart_organisation_name = s.organisation_name, \
             counterpart_professional_id = s.professional_id, \
             counterpart_professional_name = s.professional_name, \
             counterpart_professional_email = s.professional_email, \
             counterpart_professional_phone = s.professional_phone, \
             counterpart_state = s.state \
         FROM signals s \
         WHERE s.signal_id = ?1 AND notices.counterpart_signal_id = ?1",
    )
    .bind(&id)
    .execute(tx)?;
    if refreshed.rows_affected() > 0 {
        query(
            "INSERT INTO region_log (region_id, notice_id, entry) \
             SELECT recipient_region_id, notice_id, 'notice' FROM notices \
             WHERE counterpart_signal_id = ? ORDER BY found_at",
        )
        .bind(&id)
        .execute(tx)?;
    }
    Ok(())
}

fn delete_signal(
    tx: &Connection,
    region_id: &RegionId,
    signal_id: SignalId,
    revision: Revision,
) -> Result<(), StoreError> {
    let id = signal_id.to_string();
    let party = query("SELECT organisation_id, subject_key FROM signals WHERE signal_id = ?")
        .bind(&id)
        .fetch_optional(tx)?;
    let standing = match &party {
        Some(party) => standing_after(
            tx,
            &party.text("organisation_id")?,
            &party.text("subject_key")?,
            &id,
        )?,
        None => None,
    };
    match standing {
        // The party goes on through another signal (in the same region: an organisation is in
        // one): the notices move to it and are sent again, same id, so both parties keep
        // seeing each other (invariant 2) and nobody is e-mailed twice.
        Some(standing) => move_notices(tx, &id, &standing.to_string())?,
        // The party is gone: the notices naming it hold its contact and go with it
        // (invariant 6), and each recipient region is told to delete its copy (DOMAIN.md
        // section 4).
        None => {
            query(
                "INSERT INTO region_log (region_id, notice_id, entry) \
                 SELECT recipient_region_id, notice_id, 'retraction' FROM notices \
                 WHERE recipient_signal_id = ?1 OR counterpart_signal_id = ?1 ORDER BY found_at",
            )
            .bind(&id)
            .execute(tx)?;
            query(
                "DELETE FROM notices WHERE recipient_signal_id = ?1 OR counterpart_signal_id = ?1",
            )
            .bind(&id)
            .execute(tx)?;
        }
    }
    query("DELETE FROM coordination_changes WHERE by_signal_id = ?1 OR other_signal_id = ?1")
        .bind(&id)
        .execute(tx)?;
    query("DELETE FROM signals WHERE signal_id = ?")
        .bind(&id)
        .execute(tx)?;
    if let Some(party) = party {
        told::forget_party_if_gone(
            tx,
            &party.text("organisation_id")?,
            &party.text("subject_key")?,
        )?;
    }
    query("INSERT INTO tombstones (signal_id, region_id, revision) VALUES (?, ?, ?)")
        .bind(&id)
        .bind(region_id.as_str())
        .bind(revision_to_db(revision))
        .execute(tx)?;
    Ok(())
}

/// The signal that stands for the party `(organisation_id, subject_key)` once `deleted` is gone.
fn standing_after(
    tx: &Connection,
    organisation_id: &str,
    subject_key: &str,
    deleted: &str,
) -> Result<Option<SignalId>, StoreError> {
    let rows = query(
        "SELECT signal_id, state, registered_at FROM signals \
         WHERE subject_key = ? AND organisation_id = ? AND signal_id <> ?",
    )
    .bind(subject_key)
    .bind(organisation_id)
    .bind(deleted)
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

/// Moves the notices naming `from`, or addressed to it, to `to` (with `to`'s contact and state)
/// and sends each again to its recipient region.
fn move_notices(tx: &Connection, from: &str, to: &str) -> Result<(), StoreError> {
    let moved = query(
        "SELECT notice_id, recipient_region_id FROM notices \
         WHERE recipient_signal_id = ?1 OR counterpart_signal_id = ?1 ORDER BY found_at",
    )
    .bind(from)
    .fetch_all(tx)?;
    query(
        "UPDATE notices SET counterpart_signal_id = s.signal_id, \
             counterpart_organisation_name = s.organisation_name, \
             counterpart_professional_id = s.professional_id, \
             counterpart_professional_name = s.professional_name, \
             counterpart_professional_email = s.professional_email, \
             counterpart_professional_phone = s.professional_phone, \
             counterpart_state = s.state \
         FROM signals s \
         WHERE s.signal_id = ?2 AND notices.counterpart_signal_id = ?1",
    )
    .bind(from)
    .bind(to)
    .execute(tx)?;
    query("UPDATE notices SET recipient_signal_id = ?2 WHERE recipient_signal_id = ?1")
        .bind(from)
        .bind(to)
        .execute(tx)?;
    for row in moved {
        query("INSERT INTO region_log (region_id, notice_id, entry) VALUES (?, ?, 'notice')")
            .bind(row.text("recipient_region_id")?)
            .bind(row.text("notice_id")?)
            .execute(tx)?;
    }
    Ok(())
}

/// The match rule across regions for a newly registered signal; returns the notices written.
fn match_new_signal(
    tx: &Connection,
    new: &StoredHubSignal,
    now: Timestamp,
) -> Result<u32, StoreError> {
    if new.signal.state != SignalState::Active {
        return Ok(0);
    }
    let candidates = load_candidates(tx, &new.signal)?;
    let told = told::load(tx, &new.signal.organisation_id, &new.signal.subject_key)?;
    let others: Vec<MatchSignal> = candidates
        .iter()
        .map(StoredHubSignal::match_signal)
        .collect();
    let plan = plan_notices(
        &new.match_signal(),
        &others,
        &told,
        MatchScope::AcrossRegions(&new.region_id),
    );
    let by_id: HashMap<SignalId, &StoredHubSignal> = candidates
        .iter()
        .map(|candidate| (candidate.signal_id, candidate))
        .chain([(new.signal_id, new)])
        .collect();
    let mut written = 0;
    for notice in &plan {
        let (Some(recipient), Some(counterpart)) = (
            by_id.get(&notice.recipient_signal_id),
            by_id.get(&notice.counterpart_signal_id),
        ) else {
            return Err(StoreError::Corrupt(
                "planned notice names an unknown signal",
            ));
        };
        insert_notice(tx, notice, recipient, counterpart, now)?;
        written += 1;
    }
    Ok(written)
}

fn load_candidates(tx: &Connection, new: &HubSignal) -> Result<Vec<StoredHubSignal>, StoreError> {
    if new.family_keys.len() > 2 {
        return Err(StoreError::Corrupt("more than two family keys"));
    }
    let family_key = |index: usize| new.family_keys.get(index).map(FamilyKey::to_stored);
    let rows = query(
        "SELECT s.*, \
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
    rows.iter().map(stored_signal).collect()
}

fn stored_signal(row: &OwnedRow) -> Result<StoredHubSignal, StoreError> {
    let family_keys = row
        .try_get::<Option<String>>("family_keys")?
        .unwrap_or_default()
        .split_whitespace()
        .map(|key| FamilyKey::parse_stored(key).map_err(|_| StoreError::Corrupt("family_key")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StoredHubSignal {
        signal_id: parse_signal_id(&row.text("signal_id")?)?,
        region_id: parse_region(&row.text("region_id")?)?,
        signal: HubSignal {
            organisation_id: parse_org(&row.text("organisation_id")?)?,
            organisation_name: parse_org_name(&row.try_get::<String>("organisation_name")?)?,
            contact: contact_from_row(row)?,
            subject_key: parse_subject(&row.text("subject_key")?)?,
            family_keys,
            registered_at: parse_instant(row.int("registered_at")?)?,
            planned_removal_date: parse_date(&row.text("planned_removal_date")?)?,
            state: parse_state(&row.text("state")?)?,
            inactive_since: row
                .try_get::<Option<String>>("inactive_since")?
                .as_deref()
                .map(parse_date)
                .transpose()?,
        },
    })
}

fn insert_notice(
    tx: &Connection,
    notice: &PlannedNotice,
    recipient: &StoredHubSignal,
    counterpart: &StoredHubSignal,
    now: Timestamp,
) -> Result<(), StoreError> {
    let shown = &counterpart.signal;
    let notice_id = uuid::Uuid::new_v4().to_string();
    query(
        "INSERT INTO notices (notice_id, recipient_region_id, recipient_signal_id, \
             recipient_organisation_id, recipient_subject_key, counterpart_signal_id, \
             counterpart_region_id, counterpart_organisation_id, counterpart_subject_key, \
             counterpart_organisation_name, counterpart_professional_id, \
             counterpart_professional_name, counterpart_professional_email, \
             counterpart_professional_phone, counterpart_state, match_type, kind, found_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&notice_id)
    .bind(recipient.region_id.as_str())
    .bind(notice.recipient_signal_id.to_string())
    .bind(notice.recipient_organisation_id.as_str())
    .bind(notice.recipient_subject_key.to_stored())
    .bind(notice.counterpart_signal_id.to_string())
    .bind(counterpart.region_id.as_str())
    .bind(notice.counterpart_organisation_id.as_str())
    .bind(notice.counterpart_subject_key.to_stored())
    .bind(shown.organisation_name.as_str())
    .bind(shown.contact.professional_id())
    .bind(shown.contact.name())
    .bind(shown.contact.email())
    .bind(shown.contact.phone())
    .bind(shown.state.as_str())
    .bind(notice.match_type.as_str())
    .bind(notice.kind.as_str())
    .bind(now.as_microsecond())
    .execute(tx)?;
    told::remember(tx, notice)?;
    query("INSERT INTO region_log (region_id, notice_id, entry) VALUES (?, ?, 'notice')")
        .bind(recipient.region_id.as_str())
        .bind(&notice_id)
        .execute(tx)?;
    Ok(())
}
