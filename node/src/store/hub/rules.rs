//! What the hub's store decides, written once for every backend over [`HubTx`]: applying a
//! region's batch (ownership, replays, lifecycle on arrival, matching), deletion with notices
//! moved or retracted, the refresh of notices that show a changed signal, the told pairs, the
//! lifecycle sweep, acknowledgements, pruning and relayed coordination. Each function is one
//! transaction's work; the caller commits it, or drops it on an error so nothing of it stays.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use jiff::civil::Date;

use super::tx::{EntryKind, HubTx, Known, NewNotice, Party, StoredHubSignal};
use super::{BatchOutcome, Handover, HandoverOutcome, HubStoreError, LoggedAdoption, SignalEvent};
use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::coordination::CoordinationChange;
use crate::domain::lifecycle::{self, Due, LifecycleDates};
use crate::domain::matching::{MatchScope, MatchSignal, ToldPair, plan_notices, standing_signal};
use crate::domain::{OrganisationId, RegionId, Revision, SignalId, SignalState};
use crate::store::{StoreError, SweepReport};

/// What a write did, and whether it deleted personal data (SQLite then truncates its WAL).
pub(crate) struct Written<T> {
    pub(crate) outcome: T,
    pub(crate) deleted: bool,
}

/// Applies `region_id`'s `events` in order.
pub(crate) async fn submit<T: HubTx>(
    tx: &mut T,
    region_id: &RegionId,
    events: Vec<SignalEvent>,
    now: Timestamp,
) -> Result<Written<BatchOutcome>, HubStoreError> {
    let submitted: Vec<SignalId> = events.iter().map(|event| event.signal_id).collect();
    let keys: Vec<String> = events
        .iter()
        .filter_map(|event| {
            event
                .upsert
                .as_ref()
                .map(|signal| (signal, &event.previous_keys))
        })
        .flat_map(|(signal, previous)| {
            std::iter::once(signal.subject_key.to_stored())
                .chain(signal.family_keys.iter().map(|key| key.to_stored()))
                .chain(previous.subject.iter().map(|key| key.to_stored()))
                .chain(previous.family.iter().map(|key| key.to_stored()))
        })
        .collect();
    tx.lock(&submitted, &keys).await?;
    let mut outcome = BatchOutcome::default();
    let mut deleted = false;
    // A region that was away may send a revision that is already past its dates: the hub
    // applies the lifecycle on arrival, as its daily sweep has run already.
    let today = crate::domain::clock::local_date(now);
    for (index, event) in events.into_iter().enumerate() {
        let known = tx.known(event.signal_id).await?;
        if known
            .as_ref()
            .is_some_and(|known| known.region_id() != region_id)
        {
            // The caller drops the transaction: what this batch applied is rolled back.
            return Err(HubStoreError::NotOwner { index });
        }
        let current_revision = match known {
            Some(Known::Tombstone { .. }) => {
                outcome.ignored += 1; // deleted is final: a replay cannot revive it
                continue;
            }
            Some(Known::Live { revision, .. }) => Some(revision),
            None => None,
        };
        if current_revision.is_some_and(|current| current >= event.revision) {
            outcome.ignored += 1;
            continue;
        }
        let Some(signal) = event.upsert else {
            delete_signal(tx, region_id, event.signal_id, event.revision).await?;
            deleted = true;
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
                delete_signal(tx, region_id, event.signal_id, event.revision).await?;
                deleted = true;
                outcome.applied += 1;
                continue;
            }
        }
        if current_revision.is_some() {
            rekey(tx, event.signal_id, &signal).await?;
            tx.update_signal(event.signal_id, event.revision, &expired)
                .await?;
            refresh_notices(tx, event.signal_id).await?;
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
            // The signals it could match, read before it is stored, so that a signal alone
            // on its keys (most) finds nothing at all.
            let candidates = if new.signal.state == SignalState::Active {
                tx.candidates(&new.signal, &event.previous_keys).await?
            } else {
                Vec::new()
            };
            tx.insert_signal(&new, event.revision).await?;
            outcome.notices +=
                match_new_signal(tx, &new, &event.previous_keys, candidates, now).await?;
            if expired != new.signal {
                tx.update_signal(event.signal_id, event.revision, &expired)
                    .await?;
                refresh_notices(tx, event.signal_id).await?;
            }
        }
        outcome.applied += 1;
    }
    tx.audit(&AuditEntry {
        at: now,
        action: AuditAction::SubmitSignals,
        actor: Actor::Region(region_id.clone()),
        signal_ids: submitted,
        detail: Some(format!(
            "applied={},ignored={},notices={}",
            outcome.applied, outcome.ignored, outcome.notices
        )),
    })
    .await?;
    Ok(Written { outcome, deleted })
}

/// Hands `region_id`'s signals to `successor`: each becomes the successor's, its notices with
/// it, the other regions' copies of notices showing it are sent again (they show the new
/// region), and the successor's log gets an adoption entry. The leaving region's log must be
/// stored through its end first: an entry after `after_cursor` would reach a region that no
/// longer holds the signal. The signals and their keys are locked, so no match in progress can
/// add an entry for one of them to the leaving region's log meanwhile, and the log itself is
/// locked (PostgreSQL) so no other writer appends to it.
pub(crate) async fn hand_over<T: HubTx>(
    tx: &mut T,
    region_id: &RegionId,
    successor: &RegionId,
    successor_organisations: &HashSet<OrganisationId>,
    after_cursor: u64,
    handovers: Vec<Handover>,
    now: Timestamp,
) -> Result<HandoverOutcome, HubStoreError> {
    let ids: Vec<SignalId> = handovers.iter().map(|item| item.signal_id).collect();
    // The signals with the keys they are stored under: a match that could add an entry for
    // one of them to the leaving region's log has committed before this, or runs after it.
    tx.lock(&ids, &[]).await?;
    let mut held = Vec::with_capacity(handovers.len());
    for item in &handovers {
        held.push(tx.hub_signal(item.signal_id).await?);
    }
    if let Some(end) = tx.lock_log_end(region_id).await?
        && end > after_cursor
    {
        return Err(HubStoreError::LogNotConsumed { end });
    }
    let mut outcome = HandoverOutcome::default();
    for (index, (item, held)) in handovers.into_iter().zip(held).enumerate() {
        let Some((stored, revision)) = held else {
            return Err(HubStoreError::NotHandable {
                index,
                held: "the hub holds no such signal (deleted, or never forwarded)".into(),
            });
        };
        if revision != item.revision {
            return Err(HubStoreError::NotHandable {
                index,
                held: format!(
                    "the hub holds revision {}, not {}: forward the outbox first",
                    revision.get(),
                    item.revision.get()
                ),
            });
        }
        if &stored.region_id == successor {
            outcome.ignored += 1; // handed over before: a rerun
            continue;
        }
        if &stored.region_id != region_id {
            return Err(HubStoreError::NotOwner { index });
        }
        let party = Party {
            organisation_id: stored.signal.organisation_id.clone(),
            subject_key: stored.signal.subject_key,
        };
        let mut told_pairs: Vec<ToldPair> = tx
            .told_pairs(&party)
            .await?
            .into_iter()
            .filter(|pair| {
                let other = if pair.recipient_organisation_id == party.organisation_id
                    && pair.recipient_subject_key == party.subject_key
                {
                    &pair.counterpart_organisation_id
                } else {
                    &pair.recipient_organisation_id
                };
                successor_organisations.contains(other)
            })
            .collect();
        told_pairs.sort_by(|a, b| {
            (
                a.recipient_organisation_id.as_str(),
                a.counterpart_organisation_id.as_str(),
            )
                .cmp(&(
                    b.recipient_organisation_id.as_str(),
                    b.counterpart_organisation_id.as_str(),
                ))
        });
        tx.move_signal(item.signal_id, successor).await?;
        refresh_notices(tx, item.signal_id).await?;
        let adoption_id = uuid::Uuid::new_v4().to_string();
        tx.insert_adoption(
            &adoption_id,
            &LoggedAdoption {
                signal_id: item.signal_id,
                revision,
                from_region_id: region_id.clone(),
                sealed_record: item.sealed_record,
                told_pairs,
            },
        )
        .await?;
        tx.log(successor, EntryKind::Adoption, &adoption_id).await?;
        outcome.handed_over += 1;
    }
    tx.audit(&AuditEntry {
        at: now,
        action: AuditAction::HandOver,
        actor: Actor::Region(region_id.clone()),
        signal_ids: ids,
        detail: Some(successor.as_str().to_owned()),
    })
    .await?;
    Ok(outcome)
}

/// Expires signals past their planned removal date and deletes those whose archive ended, at
/// most `limit`.
pub(crate) async fn sweep<T: HubTx>(
    tx: &mut T,
    today: Date,
    limit: u32,
) -> Result<Written<SweepReport>, StoreError> {
    tx.lock_sweep().await?;
    let (archive_cutoff, _) = lifecycle::sweep_cutoffs(today);
    let mut due = tx.due_for_expiry(today, limit).await?;
    let left = limit.saturating_sub(u32::try_from(due.len()).unwrap_or(u32::MAX));
    if left > 0 {
        due.extend(tx.due_for_purge(archive_cutoff, left).await?);
    }
    let ids: Vec<SignalId> = due.iter().map(|signal| signal.signal_id).collect();
    tx.lock(&ids, &[]).await?;
    let mut report = SweepReport::default();
    for signal_id in ids {
        // Read again under the locks: a region's batch may have changed it meanwhile.
        let Some(signal) = tx.due_signal(signal_id).await? else {
            continue;
        };
        let dates = LifecycleDates {
            state: signal.state,
            planned_removal_date: signal.planned_removal_date,
            inactive_since: signal.inactive_since,
            birth_date: None,
        };
        match lifecycle::due(dates, today) {
            Due::Nothing => {}
            Due::Expire { inactive_since } => {
                // The hub's own expiry: no new revision, the region's will follow.
                tx.expire_signal(signal_id, inactive_since).await?;
                refresh_notices(tx, signal_id).await?;
                system_entry(tx, AuditAction::Expire, signal_id, None, today).await?;
                report.expired += 1;
            }
            Due::Delete(_) => {
                delete_signal(tx, &signal.region_id, signal_id, signal.revision).await?;
                system_entry(
                    tx,
                    AuditAction::Purge,
                    signal_id,
                    Some("archive_ended"),
                    today,
                )
                .await?;
                report.deleted += 1;
            }
        }
    }
    let deleted = report.deleted > 0;
    Ok(Written {
        outcome: report,
        deleted,
    })
}

/// Records that `region_id` stored its log up to `cursor`.
pub(crate) async fn ack<T: HubTx>(
    tx: &mut T,
    region_id: &RegionId,
    cursor: u64,
    now: Timestamp,
) -> Result<(), StoreError> {
    tx.raise_ack(region_id, cursor, now).await?;
    tx.audit(&AuditEntry {
        at: now,
        action: AuditAction::AckNotices,
        actor: Actor::Region(region_id.clone()),
        signal_ids: Vec::new(),
        detail: Some(format!("cursor={cursor}")),
    })
    .await
}

/// Forgets log entries acknowledged at least a retention period ago (`noted_before`): each
/// region's acknowledgement noted then goes, and today's is noted. Unacknowledged entries stay
/// however old they are.
pub(crate) async fn prune_log<T: HubTx>(
    tx: &mut T,
    noted_before: Timestamp,
    now: Timestamp,
) -> Result<Written<u64>, StoreError> {
    let mut pruned = 0;
    for noted in tx.acks_noted_before(noted_before).await? {
        pruned += tx
            .prune_region_log(&noted.region_id, noted.noted_cursor)
            .await?;
        tx.note_ack(&noted.region_id, now).await?;
    }
    Ok(Written {
        outcome: pruned,
        deleted: pruned > 0,
    })
}

/// Relays coordination changes made by `region_id`'s parties to the regions holding the other
/// signals, each change once.
pub(crate) async fn submit_coordination<T: HubTx>(
    tx: &mut T,
    region_id: &RegionId,
    changes: Vec<CoordinationChange>,
    now: Timestamp,
) -> Result<u32, HubStoreError> {
    let named: Vec<SignalId> = changes
        .iter()
        .flat_map(|change| [change.by_signal, change.other_signal])
        .collect();
    tx.lock(&named, &[]).await?;
    let mut relayed = 0;
    let mut ids = Vec::new();
    for (index, change) in changes.iter().enumerate() {
        match tx.region_of(change.by_signal).await? {
            Some(owner) if owner != *region_id => {
                return Err(HubStoreError::NotOwnerOfChange { index });
            }
            Some(_) => {}
            None => continue, // deleted meanwhile: nothing left to coordinate
        }
        let Some(other_region) = tx.region_of(change.other_signal).await? else {
            continue;
        };
        if other_region == *region_id {
            continue; // same region: the node holds both sides
        }
        if tx.insert_coordination(change).await? {
            tx.log(
                &other_region,
                EntryKind::Coordination,
                &change.change_id.to_string(),
            )
            .await?;
            relayed += 1;
        }
        ids.push(change.by_signal);
    }
    tx.audit(&AuditEntry {
        at: now,
        action: AuditAction::SubmitCoordination,
        actor: Actor::Region(region_id.clone()),
        signal_ids: ids,
        detail: Some(format!("relayed={relayed}")),
    })
    .await?;
    Ok(relayed)
}

/// An audit entry for the hub's own lifecycle, at the start of the day it became due.
async fn system_entry<T: HubTx>(
    tx: &mut T,
    action: AuditAction,
    signal_id: SignalId,
    detail: Option<&str>,
    today: Date,
) -> Result<(), StoreError> {
    let at = today
        .to_zoned_datetime(crate::domain::clock::rules_time_zone())
        .map(|zoned| zoned.timestamp())
        .map_err(|_| StoreError::Corrupt("date"))?;
    tx.audit(&AuditEntry {
        at,
        action,
        actor: Actor::System,
        signal_ids: vec![signal_id],
        detail: detail.map(str::to_owned),
    })
    .await
}

/// The notices that show `signal_id` as counterpart carry its contact and state as they were
/// found: bring them up to date and send them again to their regions, which update their copy
/// (DOMAIN.md section 6: the other party's contact and state; section 8: corrections).
async fn refresh_notices<T: HubTx>(tx: &mut T, signal_id: SignalId) -> Result<(), StoreError> {
    let showing = tx.notices_showing(signal_id).await?;
    if showing.is_empty() {
        return Ok(());
    }
    tx.refresh_notices_showing(signal_id).await?;
    for target in showing {
        tx.log(&target.region_id, EntryKind::Notice, &target.notice_id)
            .await?;
    }
    Ok(())
}

async fn delete_signal<T: HubTx>(
    tx: &mut T,
    region_id: &RegionId,
    signal_id: SignalId,
    revision: Revision,
) -> Result<(), StoreError> {
    let party = tx.party_of(signal_id).await?;
    let standing = match &party {
        Some(party) => standing_signal(tx.party_signals(party, signal_id).await?),
        None => None,
    };
    let naming = tx.notices_naming(signal_id).await?;
    match standing {
        // The party goes on through another signal (in the same region: an organisation is in
        // one): the notices move to it and are sent again, same id, so both parties keep
        // seeing each other (invariant 2) and nobody is e-mailed twice.
        Some(standing) => {
            tx.repoint_notices(signal_id, standing.signal_id).await?;
            for target in naming {
                tx.log(&target.region_id, EntryKind::Notice, &target.notice_id)
                    .await?;
            }
        }
        // The party is gone: the notices naming it hold its contact and go with it
        // (invariant 6), and each recipient region is told to delete its copy (DOMAIN.md
        // section 4).
        None => {
            for target in naming {
                tx.log(&target.region_id, EntryKind::Retraction, &target.notice_id)
                    .await?;
            }
            tx.delete_notices_naming(signal_id).await?;
        }
    }
    tx.delete_coordination_naming(signal_id).await?;
    tx.delete_signal_row(signal_id).await?;
    // A party with no signal left no longer exists, and the pairs it was in may be told again
    // (DOMAIN.md section 5).
    if let Some(party) = party
        && !tx.party_exists(&party).await?
    {
        tx.forget_told(&party).await?;
    }
    tx.insert_tombstone(signal_id, region_id, revision).await
}

/// The match rule across regions for a newly registered signal, stored by now, against the
/// `candidates` on its keys read before; returns the notices written.
/// A revision whose keys differ from the stored ones: its region re-keyed it during a key
/// rotation (a signal's youth and parents never change). The hub's copy and its party's told
/// pairs move to the new keys, so the pairs keep naming what is stored.
async fn rekey<T: HubTx>(
    tx: &mut T,
    signal_id: SignalId,
    incoming: &super::HubSignal,
) -> Result<(), StoreError> {
    let Some((stored, _)) = tx.hub_signal(signal_id).await? else {
        return Err(StoreError::Corrupt("signals"));
    };
    let mut stored_family = stored.signal.family_keys.clone();
    let mut incoming_family = incoming.family_keys.clone();
    stored_family.sort_unstable();
    incoming_family.sort_unstable();
    if stored.signal.subject_key == incoming.subject_key && stored_family == incoming_family {
        return Ok(());
    }
    tx.rekey_signal(signal_id, &incoming.subject_key, &incoming.family_keys)
        .await?;
    if stored.signal.subject_key != incoming.subject_key {
        tx.rekey_told(
            &stored.signal.organisation_id,
            &stored.signal.subject_key,
            &incoming.subject_key,
        )
        .await?;
    }
    Ok(())
}

async fn match_new_signal<T: HubTx>(
    tx: &mut T,
    new: &StoredHubSignal,
    previous: &crate::domain::matching::PreviousKeys,
    candidates: Vec<StoredHubSignal>,
    now: Timestamp,
) -> Result<u32, StoreError> {
    // Inactive, or alone on its keys (most signals): nobody to tell, no told pairs to read.
    if new.signal.state != SignalState::Active || candidates.is_empty() {
        return Ok(0);
    }
    let told = tx
        .told_pairs(&Party {
            organisation_id: new.signal.organisation_id.clone(),
            subject_key: new.signal.subject_key,
        })
        .await?;
    let others: Vec<MatchSignal> = candidates
        .iter()
        .map(StoredHubSignal::match_signal)
        .collect();
    let plan = plan_notices(
        &MatchSignal {
            previous_keys: previous.clone(),
            ..new.match_signal()
        },
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
        let notice_id = uuid::Uuid::new_v4().to_string();
        tx.insert_notice(NewNotice {
            notice_id: &notice_id,
            plan: notice,
            recipient_region_id: &recipient.region_id,
            counterpart,
            found_at: now,
        })
        .await?;
        tx.remember_told(&notice.told_pair()).await?;
        tx.log(&recipient.region_id, EntryKind::Notice, &notice_id)
            .await?;
        written += 1;
    }
    Ok(written)
}
