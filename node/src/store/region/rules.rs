//! What a region node's store decides, written once over [`RegionTx`]: registration and local
//! matching, withdrawal, update and correction, death and erasure, deletion with notices moved
//! to the party's standing signal or deleted, the lifecycle sweep, coordination, the hub's
//! notice log and the dead letters. Each function is one transaction's work; the backend opens
//! and commits it. The domain's rules decide; these functions load, ask and store.

use std::collections::HashSet;

use jiff::Timestamp;
use jiff::civil::Date;

use super::tx::RegionTx;
use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::coordination::{
    ChangeKind, CoordinationAction, CoordinationChange, CoordinationState, Party as Side,
};
use crate::domain::lifecycle::{self, Due, LifecycleDates};
use crate::domain::matching::{MatchScope, MatchSignal, plan_notices, standing_signal};
use crate::domain::signal::{self, Withdrawal};
use crate::domain::{
    LiveKeys, RegionId, Revision, SignalId, SignalState, SubjectKey, WithdrawReason,
};
use crate::store::dead_letter::{DeadLetterSource, Retried};
use crate::store::hub::tx::Party;
use crate::store::hub::{LogEntry, LoggedNotice};
use crate::store::outbox::OutboxEvent;
use crate::store::{
    Acting, ClaimedEmail, HubLogApplied, NewSignal, NoticeDelivery, Registered, SignalUpdate,
    StoreError, StoredSignal, SweepReport, Withdrawn,
};

pub(crate) async fn register<T: RegionTx>(
    tx: &mut T,
    new: NewSignal,
    region_id: &RegionId,
) -> Result<Registered, StoreError> {
    tx.lock_writes().await?;
    // First, so every check below sees this youth and these parents under one key version.
    rekey(tx, &new.rekeys, new.registered_at).await?;
    if let Some((signal_id, fingerprint)) = tx
        .earlier_request(&new.organisation_id, &new.request_key)
        .await?
    {
        if fingerprint != new.request_fingerprint
            && !new.previous_request_fingerprints.contains(&fingerprint)
        {
            return Err(StoreError::RequestMismatch);
        }
        return Ok(Registered::Replayed(stored(tx, signal_id).await?));
    }
    if tx.is_deceased(&new.subject_key).await? {
        return Err(StoreError::Deceased);
    }
    // Re-registration while the organisation's signal on this youth is active: that signal
    // stands, and nobody is told again (DOMAIN.md section 5).
    let party = Party {
        organisation_id: new.organisation_id.clone(),
        subject_key: new.subject_key,
    };
    if let Some(active) = tx.active_signal(&party).await? {
        return Ok(Registered::AlreadyActive(stored(tx, active).await?));
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
    // Matching sees exactly what was committed before this transaction: writes run one at a
    // time (`lock_writes`), so of two signals on one youth the later finds the earlier.
    let candidates = tx.candidates(&signal, region_id).await?;
    let notices = if candidates.is_empty() {
        // Alone on its keys (most signals): nobody to tell, no told pairs to read.
        Vec::new()
    } else {
        let told = tx.told_pairs(&party).await?;
        plan_notices(
            &match_signal(&signal, region_id),
            &candidates,
            &told,
            MatchScope::WithinRegion,
        )
    };
    tx.insert_signal(&signal, &new.request_key, &new.request_fingerprint)
        .await?;
    for notice in &notices {
        let notice_id = uuid::Uuid::new_v4().to_string();
        tx.insert_notice(&notice_id, notice, signal.registered_at)
            .await?;
        tx.remember_told(&notice.told_pair()).await?;
        tx.insert_email_job(&notice_id, signal.registered_at)
            .await?;
    }
    let event = OutboxEvent::upsert(&signal).finding_with(&new.rekeys.previous_keys());
    tx.append_outbox(&event, signal.registered_at).await?;
    tx.audit(&AuditEntry {
        at: signal.registered_at,
        action: AuditAction::Register,
        actor: Actor::Professional {
            organisation_id: signal.organisation_id.clone(),
            professional_id: signal.contact.professional_id().to_owned(),
        },
        signal_ids: vec![signal.signal_id],
        detail: None,
    })
    .await?;
    Ok(Registered::Created {
        signal,
        notices: notices.len(),
    })
}

pub(crate) async fn withdraw<T: RegionTx>(
    tx: &mut T,
    acting: &Acting,
    signal_id: SignalId,
    reason: WithdrawReason,
    now: Timestamp,
) -> Result<Withdrawn, StoreError> {
    tx.lock_writes().await?;
    let current = owned(tx, acting, signal_id).await?;
    let today = crate::domain::clock::local_date(now);
    let outcome = match signal::withdraw(current.state, reason, today)? {
        Withdrawal::Delete => {
            delete_signal(tx, &current, now).await?;
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
            save_revision(tx, previous, &archived, now).await?;
            Withdrawn::Archived(Box::new(archived))
        }
    };
    tx.audit(&AuditEntry {
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
    })
    .await?;
    Ok(outcome)
}

pub(crate) async fn update<T: RegionTx>(
    tx: &mut T,
    acting: &Acting,
    signal_id: SignalId,
    update: SignalUpdate,
    now: Timestamp,
) -> Result<StoredSignal, StoreError> {
    tx.lock_writes().await?;
    let current = owned(tx, acting, signal_id).await?;
    signal::check_updatable(current.state)?;
    let today = crate::domain::clock::local_date(now);
    let planned_removal_date = match update.planned_removal_date {
        Some(requested) => {
            signal::moved_removal_date(current.planned_removal_date, requested, today)
                .map_err(StoreError::RemovalDate)?
        }
        None => current.planned_removal_date,
    };
    let informing = match update.informing {
        Some(record) => {
            let registered_on = crate::domain::clock::local_date(current.registered_at);
            crate::domain::informing::check(record, current.birth_date, registered_on, today)
                .map_err(StoreError::Informing)?;
            record
        }
        None => current.informing,
    };
    let previous = current.revision;
    let updated = StoredSignal {
        revision: previous.next(),
        contact: update.contact.unwrap_or_else(|| current.contact.clone()),
        planned_removal_date,
        informing,
        ..current
    };
    save_revision(tx, previous, &updated, now).await?;
    tx.audit(&AuditEntry {
        at: now,
        action: AuditAction::Update,
        actor: acting.actor(),
        signal_ids: vec![signal_id],
        detail: None,
    })
    .await?;
    Ok(updated)
}

/// Corrects the signal `signal_id` of the youth `subject_key`; a signal of another youth is
/// [`StoreError::NotFound`], as one that does not exist.
pub(crate) async fn correct<T: RegionTx>(
    tx: &mut T,
    subject_keys: &LiveKeys<SubjectKey>,
    signal_id: SignalId,
    correction: SignalUpdate,
    actor: &Actor,
    reference: &str,
    now: Timestamp,
) -> Result<StoredSignal, StoreError> {
    tx.lock_writes().await?;
    let current = tx
        .signal(signal_id)
        .await?
        .filter(|signal| subject_keys.all().contains(&signal.subject_key))
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
    save_revision(tx, previous, &corrected, now).await?;
    tx.audit(&AuditEntry {
        at: now,
        action: AuditAction::Correct,
        actor: actor.clone(),
        signal_ids: vec![signal_id],
        detail: Some(reference.to_owned()),
    })
    .await?;
    Ok(corrected)
}

/// A death reported by the person registry: every signal on the youth goes, and new ones are
/// refused from now on. Returns how many signals were deleted.
pub(crate) async fn record_death<T: RegionTx>(
    tx: &mut T,
    subject_keys: &LiveKeys<SubjectKey>,
    now: Timestamp,
) -> Result<u32, StoreError> {
    tx.lock_writes().await?;
    // Under every live version: a registration under any of them is refused from now on.
    for subject_key in subject_keys.all() {
        tx.record_deceased(subject_key, now).await?;
    }
    let mut deleted = 0;
    for signal_id in subject_signals(tx, subject_keys).await? {
        let signal = stored(tx, signal_id).await?;
        delete_signal(tx, &signal, now).await?;
        tx.audit(&AuditEntry {
            at: now,
            action: AuditAction::Purge,
            actor: Actor::System,
            signal_ids: vec![signal_id],
            detail: Some("death".to_owned()),
        })
        .await?;
        deleted += 1;
    }
    Ok(deleted)
}

/// The youth's signals under every live key version: some may be stored under a version being
/// retired.
async fn subject_signals<T: RegionTx>(
    tx: &mut T,
    subject_keys: &LiveKeys<SubjectKey>,
) -> Result<Vec<SignalId>, StoreError> {
    let mut signals = Vec::new();
    for subject_key in subject_keys.all() {
        signals.extend(tx.subject_signals(subject_key).await?);
    }
    Ok(signals)
}

/// A municipality's erasure order: the youth's signals, or only those named (each of which
/// must be the youth's, or nothing is erased). Returns the erased signal ids.
pub(crate) async fn erase<T: RegionTx>(
    tx: &mut T,
    subject_keys: &LiveKeys<SubjectKey>,
    only: &[SignalId],
    actor: &Actor,
    reference: &str,
    now: Timestamp,
) -> Result<Vec<SignalId>, StoreError> {
    tx.lock_writes().await?;
    let of_youth = subject_signals(tx, subject_keys).await?;
    if only.iter().any(|id| !of_youth.contains(id)) {
        return Err(StoreError::NotFound);
    }
    let mut erased = Vec::new();
    for signal_id in of_youth {
        if !only.is_empty() && !only.contains(&signal_id) {
            continue;
        }
        let signal = stored(tx, signal_id).await?;
        delete_signal(tx, &signal, now).await?;
        erased.push(signal_id);
    }
    tx.audit(&AuditEntry {
        at: now,
        action: AuditAction::ErasureOrder,
        actor: actor.clone(),
        signal_ids: erased.clone(),
        detail: Some(reference.to_owned()),
    })
    .await?;
    Ok(erased)
}

/// Applies the lifecycle due on `today` (expiry, end of archive, 23rd birthday) to at most
/// `limit` signals.
pub(crate) async fn sweep<T: RegionTx>(
    tx: &mut T,
    today: Date,
    limit: u32,
) -> Result<SweepReport, StoreError> {
    tx.lock_writes().await?;
    let (archive_cutoff, birth_cutoff) = lifecycle::sweep_cutoffs(today);
    // One range read per transition, each on its own index and bounded by `limit`: one
    // statement with an OR of the three would read the whole table.
    let mut ids = tx.due_for_expiry(today, limit).await?;
    ids.extend(tx.due_for_purge(archive_cutoff, limit).await?);
    ids.extend(tx.due_for_age(birth_cutoff, limit).await?);
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    // Events carry the instant of the change: the start of `today`, when it became due.
    let now = today
        .to_zoned_datetime(crate::domain::clock::rules_time_zone())
        .map(|zoned| zoned.timestamp())
        .map_err(|_| StoreError::Corrupt("date"))?;
    let mut report = SweepReport::default();
    for signal_id in ids {
        let signal = stored(tx, signal_id).await?;
        let dates = LifecycleDates {
            state: signal.state,
            planned_removal_date: signal.planned_removal_date,
            inactive_since: signal.inactive_since,
            birth_date: Some(signal.birth_date),
        };
        let (action, detail) = match lifecycle::due(dates, today) {
            Due::Nothing => continue,
            Due::Expire { inactive_since } => {
                let previous = signal.revision;
                let expired = StoredSignal {
                    revision: previous.next(),
                    state: SignalState::Inactive,
                    inactive_since: Some(inactive_since),
                    ..signal
                };
                save_revision(tx, previous, &expired, now).await?;
                report.expired += 1;
                (AuditAction::Expire, None)
            }
            Due::Delete(reason) => {
                delete_signal(tx, &signal, now).await?;
                report.deleted += 1;
                let detail = match reason {
                    lifecycle::DeleteReason::ArchiveEnded => "archive_ended",
                    lifecycle::DeleteReason::Age23 => "age23",
                };
                (AuditAction::Purge, Some(detail.to_owned()))
            }
        };
        tx.audit(&AuditEntry {
            at: now,
            action,
            actor: Actor::System,
            signal_ids: vec![signal_id],
            detail,
        })
        .await?;
    }
    Ok(report)
}

/// Records a party's coordination change on one of its matches (`notice_id`); a change on a
/// match the hub found is queued for it. Returns the change.
pub(crate) async fn coordinate<T: RegionTx>(
    tx: &mut T,
    acting: &Acting,
    notice_id: &str,
    action: CoordinationAction,
    now: Timestamp,
) -> Result<CoordinationChange, StoreError> {
    tx.lock_writes().await?;
    let notice = tx
        .notice_parties(notice_id)
        .await?
        // Another organisation's notice is answered as a missing one: no probing of ids.
        .filter(|notice| notice.recipient_organisation_id == acting.organisation_id)
        .ok_or(StoreError::NoSuchMatch)?;
    let own = notice.recipient_signal_id;
    let other = notice.counterpart_signal_id;
    let kind = match action {
        CoordinationAction::NameRegievoerder(Side::Own) => ChangeKind::Regievoerder(own),
        CoordinationAction::NameRegievoerder(Side::Counterpart) => ChangeKind::Regievoerder(other),
        CoordinationAction::MarkAfgestemd => ChangeKind::Afgestemd,
    };
    let change = CoordinationChange {
        change_id: uuid::Uuid::new_v4(),
        by_signal: own,
        other_signal: other,
        at: now,
        kind,
    };
    merge_coordination(tx, &change).await?;
    if notice.from_hub {
        tx.queue_coordination(&change).await?;
    }
    let (action, mut signal_ids) = match kind {
        ChangeKind::Regievoerder(named) => (AuditAction::Regievoerder, vec![own, other, named]),
        ChangeKind::Afgestemd => (AuditAction::Afgestemd, vec![own, other]),
    };
    signal_ids.dedup();
    tx.audit(&AuditEntry {
        at: now,
        action,
        actor: acting.actor(),
        signal_ids,
        detail: None,
    })
    .await?;
    Ok(change)
}

/// Applies a run of the hub's notice log in order and moves the hub cursor past it.
pub(crate) async fn store_hub_log<T: RegionTx>(
    tx: &mut T,
    entries: Vec<LogEntry>,
    now: Timestamp,
) -> Result<Vec<HubLogApplied>, StoreError> {
    tx.lock_writes().await?;
    let mut applied = Vec::with_capacity(entries.len());
    for entry in entries {
        applied.push(match entry {
            LogEntry::Notice(notice) => {
                HubLogApplied::Notice(apply_hub_notice(tx, *notice, now).await?)
            }
            LogEntry::Retraction { cursor, notice_id } => {
                tx.raise_hub_cursor(cursor).await?;
                HubLogApplied::Retraction {
                    held: tx.delete_hub_notice(&notice_id).await?,
                }
            }
            LogEntry::Coordination { cursor, change } => {
                tx.raise_hub_cursor(cursor).await?;
                // Only for a match this node still holds: a notice to its signal about the
                // other party's.
                let held = tx
                    .holds_match(change.other_signal, change.by_signal)
                    .await?;
                if held {
                    merge_coordination(tx, &change).await?;
                }
                HubLogApplied::Coordination { held }
            }
            // Sealed: only the notice consumer, which holds the key, can open it.
            LogEntry::Adoption { .. } => {
                return Err(StoreError::Corrupt(
                    "an adoption entry must be opened before it is stored",
                ));
            }
        });
    }
    Ok(applied)
}

/// Stores one notice from the hub and moves the cursor to it.
pub(crate) async fn store_hub_notice<T: RegionTx>(
    tx: &mut T,
    notice: LoggedNotice,
    now: Timestamp,
) -> Result<NoticeDelivery, StoreError> {
    tx.lock_writes().await?;
    apply_hub_notice(tx, notice, now).await
}

pub(crate) async fn quarantine_hub_entry<T: RegionTx>(
    tx: &mut T,
    cursor: u64,
    payload: &[u8],
    reason: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    tx.lock_writes().await?;
    tx.keep_hub_entry(cursor, payload, reason, now).await?;
    tx.raise_hub_cursor(cursor).await
}

/// Puts an outbox or coordination dead letter back in its queue at its old place; hands a
/// notice-log entry back to the caller to read again.
pub(crate) async fn retry_dead_letter<T: RegionTx>(
    tx: &mut T,
    id: i64,
) -> Result<Retried, StoreError> {
    tx.lock_writes().await?;
    let Some(letter) = tx.dead_letter(id).await? else {
        return Ok(Retried::Unknown);
    };
    match letter.source {
        DeadLetterSource::Outbox => tx.requeue_outbox(&letter).await?,
        DeadLetterSource::Coordination => tx.requeue_coordination(&letter).await?,
        DeadLetterSource::NoticeLog => return Ok(Retried::Reread(letter)),
    }
    tx.remove_dead_letter(id).await?;
    Ok(Retried::Requeued)
}

/// Takes due notice e-mails for sending, each claimed for `lease`.
pub(crate) async fn claim_emails<T: RegionTx>(
    tx: &mut T,
    now: Timestamp,
    lease: std::time::Duration,
    limit: u32,
) -> Result<Vec<ClaimedEmail>, StoreError> {
    tx.lock_writes().await?;
    let lease = jiff::SignedDuration::try_from(lease).map_err(|_| StoreError::Corrupt("lease"))?;
    let until = now
        .checked_add(lease)
        .map_err(|_| StoreError::Corrupt("lease"))?;
    tx.claim_email_jobs(now, until, limit).await
}

/// Marks a notice e-mail sent and audits it as the recipient's read of the counterpart's
/// contact (DOMAIN.md section 9: a sent notice e-mail counts as a read).
pub(crate) async fn email_sent<T: RegionTx>(
    tx: &mut T,
    notice_id: &str,
    recipient: &Acting,
    signal_ids: Vec<SignalId>,
    now: Timestamp,
) -> Result<bool, StoreError> {
    tx.lock_writes().await?;
    if !tx.mark_email_sent(notice_id, now).await? {
        return Ok(false);
    }
    tx.audit(&AuditEntry {
        at: now,
        action: AuditAction::ContactLookup,
        actor: recipient.actor(),
        signal_ids,
        detail: Some("email".to_owned()),
    })
    .await?;
    Ok(true)
}

async fn apply_hub_notice<T: RegionTx>(
    tx: &mut T,
    notice: LoggedNotice,
    now: Timestamp,
) -> Result<NoticeDelivery, StoreError> {
    tx.raise_hub_cursor(notice.cursor).await?;
    if tx.notice_exists(&notice.notice_id).await? {
        // Sent again: the hub refreshed the counterpart's contact or state, or moved the
        // notice to the signal that now stands for a party.
        tx.refresh_hub_notice(&notice).await?;
        return Ok(NoticeDelivery::Duplicate);
    }
    match tx.signal(notice.recipient_signal_id).await? {
        Some(recipient) if recipient.organisation_id == notice.recipient_organisation_id => {
            tx.insert_hub_notice(&notice, &recipient).await?;
            // The owner of an inactive signal gets no notice e-mail (invariant 3), also when
            // today's sweep has not reached the signal yet.
            let dates = LifecycleDates {
                state: recipient.state,
                planned_removal_date: recipient.planned_removal_date,
                inactive_since: recipient.inactive_since,
                birth_date: Some(recipient.birth_date),
            };
            let emailed = recipient.state == SignalState::Active
                && lifecycle::due(dates, crate::domain::clock::local_date(now)) == Due::Nothing;
            if emailed {
                tx.insert_email_job(&notice.notice_id, now).await?;
            }
            Ok(NoticeDelivery::Stored { emailed })
        }
        Some(_) => {
            tracing::warn!(
                notice_id = %notice.notice_id,
                "hub notice names a recipient of another organisation; dropped"
            );
            Ok(NoticeDelivery::Dropped)
        }
        None => Ok(NoticeDelivery::Dropped),
    }
}

/// Loads, merges `change` into, and stores the coordination of its pair.
async fn merge_coordination<T: RegionTx>(
    tx: &mut T,
    change: &CoordinationChange,
) -> Result<(), StoreError> {
    let (low, high) = change.pair();
    let mut state = tx
        .coordination(low, high)
        .await?
        .unwrap_or_else(CoordinationState::default);
    state.apply(low, change);
    tx.save_coordination(low, high, &state).await
}

/// Deletes a signal with everything that names it. Events still waiting for the hub carry its
/// contact, so they go too; one delete event replaces them.
pub(super) async fn delete_signal<T: RegionTx>(
    tx: &mut T,
    signal: &StoredSignal,
    now: Timestamp,
) -> Result<(), StoreError> {
    let party = Party {
        organisation_id: signal.organisation_id.clone(),
        subject_key: signal.subject_key,
    };
    match standing_signal(tx.party_signals(&party, signal.signal_id).await?) {
        // The party goes on through another signal: what named the deleted signal, or was
        // addressed to it, now names or is addressed to the signal that stands for the party,
        // so the two parties keep seeing each other (invariant 2). Same notice, no new e-mail.
        Some(standing) => {
            tx.repoint_notices(signal.signal_id, standing.signal_id)
                .await?;
        }
        // The party is gone: the notices naming it go (those addressed to it go with the row).
        None => tx.delete_notices_showing(signal.signal_id).await?,
    }
    tx.delete_coordination_naming(signal.signal_id).await?;
    tx.delete_signal_row(signal.signal_id).await?;
    // A party with no signal left no longer exists, and the pairs it was in may be told again
    // (DOMAIN.md section 5).
    if !tx.party_exists(&party).await? {
        tx.forget_told(&party).await?;
    }
    // The deletion supersedes every earlier event of the signal, a refused one included: the
    // hub needs only the tombstone, and the deletion must not wait behind a dead letter.
    tx.drop_outbox_of(signal.signal_id).await?;
    let event = OutboxEvent::Delete {
        signal_id: signal.signal_id.to_string(),
        revision: signal.revision.next().get(),
    };
    tx.append_outbox(&event, now).await
}

/// Writes `signal`, a new revision of a signal stored at `previous`, and owes the hub an event
/// for it. The revision check makes a lost update impossible even if the writes' lock goes.
async fn save_revision<T: RegionTx>(
    tx: &mut T,
    previous: Revision,
    signal: &StoredSignal,
    now: Timestamp,
) -> Result<(), StoreError> {
    if !tx.save_revision(previous, signal).await? {
        return Err(StoreError::Corrupt("signals.revision"));
    }
    tx.append_outbox(&OutboxEvent::upsert(signal), now).await
}

/// A key rotation under way: what this node stored under an identifier's older keys now
/// carries its current key (the registration has the identifier, which the node never
/// stores). Signals, deaths, family keys and told pairs move together, so the node's rules see
/// one version; each signal that changed goes to the hub at a new revision, before the new
/// signal, so the hub's copy and its told pairs follow.
async fn rekey<T: RegionTx>(
    tx: &mut T,
    rekeys: &crate::domain::Rekeys,
    now: Timestamp,
) -> Result<(), StoreError> {
    if rekeys.is_empty() {
        return Ok(());
    }
    let mut changed = Vec::new();
    for (old, new) in &rekeys.subject {
        let signals = tx.subject_signals(old).await?;
        let mut organisations = HashSet::new();
        for signal_id in &signals {
            organisations.insert(stored(tx, *signal_id).await?.organisation_id);
        }
        tx.rekey_subject(old, new).await?;
        for organisation in &organisations {
            tx.rekey_told(organisation, old, new).await?;
        }
        changed.extend(signals);
    }
    for (old, new) in &rekeys.family {
        changed.extend(tx.family_signals(old).await?);
        tx.rekey_family(old, new).await?;
    }
    changed.sort_unstable();
    changed.dedup();
    for signal_id in changed {
        let current = stored(tx, signal_id).await?;
        let previous = current.revision;
        let rekeyed = StoredSignal {
            revision: previous.next(),
            ..current
        };
        save_revision(tx, previous, &rekeyed, now).await?;
    }
    Ok(())
}

async fn stored<T: RegionTx>(tx: &mut T, signal_id: SignalId) -> Result<StoredSignal, StoreError> {
    tx.signal(signal_id)
        .await?
        .ok_or(StoreError::Corrupt("signals"))
}

async fn owned<T: RegionTx>(
    tx: &mut T,
    acting: &Acting,
    signal_id: SignalId,
) -> Result<StoredSignal, StoreError> {
    let signal = tx.signal(signal_id).await?.ok_or(StoreError::NotFound)?;
    if signal.organisation_id != acting.organisation_id {
        return Err(StoreError::NotOwner);
    }
    Ok(signal)
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
        previous_keys: Default::default(),
    }
}
