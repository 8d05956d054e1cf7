//! A region leaving the federation, written once over [`RegionTx`]: the leaving node reads its
//! signals as handover records and, once the hub has made them the successor's, deletes its
//! copy; the successor stores each adopted signal as it was, telling nobody (they were told).
//! Without a successor, the leaving node deletes its signals as any deletion does: on node and
//! hub, with every notice naming them.

use jiff::Timestamp;

use super::handover::{Adoption, HandoverRecord, RECORD_FORMAT, SignalRecord, ToldPairRecord};
use super::tx::RegionTx;
use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::{RegionId, Revision, SignalId, SignalState};
use crate::store::StoreError;
use crate::store::hub::tx::Party;

/// Handover records of a page of the leaving node's signals, and how far its copy of the hub's
/// log reached when they were read: what the hub must see stored before it hands them over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverPage {
    pub log_cursor: u64,
    pub records: Vec<(SignalId, Revision, HandoverRecord)>,
}

/// Up to `limit` signals after `after`, each as its record. Read under the writes' lock, so the
/// records and the log cursor are one moment's.
pub(crate) async fn handover_page<T: RegionTx>(
    tx: &mut T,
    after: Option<SignalId>,
    limit: u32,
) -> Result<HandoverPage, StoreError> {
    tx.lock_writes().await?;
    let log_cursor = tx.hub_cursor().await?;
    let mut records = Vec::new();
    for signal_id in tx.signals_after(after, limit).await? {
        let Some(signal) = tx.signal(signal_id).await? else {
            continue;
        };
        let party = Party {
            organisation_id: signal.organisation_id.clone(),
            subject_key: signal.subject_key,
        };
        let mut told_pairs: Vec<ToldPairRecord> = tx
            .told_pairs(&party)
            .await?
            .iter()
            .map(ToldPairRecord::of)
            .collect();
        told_pairs.sort_by(|a, b| {
            (&a.recipient_organisation_id, &a.counterpart_organisation_id)
                .cmp(&(&b.recipient_organisation_id, &b.counterpart_organisation_id))
        });
        let record = HandoverRecord {
            format: RECORD_FORMAT,
            signal: SignalRecord::of(&signal),
            notices: tx.notices_to(signal_id).await?,
            told_pairs,
            coordination: tx.coordination_of(signal_id).await?,
            deceased: tx.is_deceased(&signal.subject_key).await?,
        };
        records.push((signal_id, signal.revision, record));
    }
    Ok(HandoverPage {
        log_cursor,
        records,
    })
}

/// Deletes the leaving node's copy of signals the hub has made `successor`'s: the signal, its
/// notices and e-mail jobs, its coordination and queued events, and the told pairs of a party
/// with no signal left. No event for the hub: the signals live on at the successor.
pub(crate) async fn handed_over<T: RegionTx>(
    tx: &mut T,
    signal_ids: &[SignalId],
    successor: &RegionId,
    now: Timestamp,
) -> Result<(), StoreError> {
    tx.lock_writes().await?;
    for &signal_id in signal_ids {
        let Some(signal) = tx.signal(signal_id).await? else {
            continue;
        };
        tx.delete_coordination_naming(signal_id).await?;
        tx.drop_outbox_of(signal_id).await?;
        tx.delete_signal_row(signal_id).await?;
        let party = Party {
            organisation_id: signal.organisation_id,
            subject_key: signal.subject_key,
        };
        if !tx.party_exists(&party).await? {
            tx.forget_told(&party).await?;
        }
    }
    tx.audit(&AuditEntry {
        at: now,
        action: AuditAction::HandOver,
        actor: Actor::System,
        signal_ids: signal_ids.to_vec(),
        detail: Some(successor.as_str().to_owned()),
    })
    .await
}

/// Stores a signal handed over by a region that left, at `cursor` of the hub's log: with its
/// number, revision, dates, informing record and notices as they were, its unsent e-mails
/// queued again (to an active recipient only), the pairs told so they are not told again, and
/// its matches' coordination. No notice is made and no event queued: the hub holds this
/// revision already. False if the signal is held here already (the entry came again).
pub(crate) async fn adopt<T: RegionTx>(
    tx: &mut T,
    cursor: u64,
    adoption: Adoption,
    now: Timestamp,
) -> Result<bool, StoreError> {
    tx.lock_writes().await?;
    let signal = adoption.signal;
    let signal_id = signal.signal_id;
    if tx.signal(signal_id).await?.is_some() {
        tx.raise_hub_cursor(cursor).await?;
        return Ok(false);
    }
    // The request that made it was the leaving node's; a key no request can produce keeps the
    // organisation's requests unique without pretending to know it.
    tx.insert_signal(&signal, &format!("adopted-{signal_id}"), "adopted")
        .await?;
    for notice in &adoption.notices {
        if tx.notice_exists(&notice.notice_id).await? {
            continue;
        }
        tx.insert_notice_record(&signal, notice).await?;
        if notice.email_pending && signal.state == SignalState::Active {
            tx.insert_email_job(&notice.notice_id, now).await?;
        }
    }
    for pair in &adoption.told_pairs {
        tx.remember_told(pair).await?;
    }
    for (low, high, state) in &adoption.coordination {
        // A match with a signal of this region was coordinated here too, through the hub:
        // the copy held here stands.
        if tx.coordination(*low, *high).await?.is_none() {
            tx.save_coordination(*low, *high, state).await?;
        }
    }
    if adoption.deceased {
        tx.record_deceased(&signal.subject_key, now).await?;
    }
    tx.raise_hub_cursor(cursor).await?;
    tx.audit(&AuditEntry {
        at: now,
        action: AuditAction::Adopt,
        actor: Actor::System,
        signal_ids: vec![signal_id],
        detail: Some(adoption.from_region.as_str().to_owned()),
    })
    .await?;
    Ok(true)
}

/// Deletes up to `limit` of the node's signals as the lifecycle deletes one (notices naming it
/// retracted, a deletion event for the hub), each audited as a purge for the decommission.
/// Returns how many went; 0 when none is left.
pub(crate) async fn purge_page<T: RegionTx>(
    tx: &mut T,
    limit: u32,
    now: Timestamp,
) -> Result<u32, StoreError> {
    tx.lock_writes().await?;
    let mut purged = 0;
    for signal_id in tx.signals_after(None, limit).await? {
        let Some(signal) = tx.signal(signal_id).await? else {
            continue;
        };
        super::rules::delete_signal(tx, &signal, now).await?;
        tx.audit(&AuditEntry {
            at: now,
            action: AuditAction::Purge,
            actor: Actor::System,
            signal_ids: vec![signal_id],
            detail: Some("decommission".to_owned()),
        })
        .await?;
        purged += 1;
    }
    Ok(purged)
}
