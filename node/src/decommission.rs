//! `vix-node decommission`: a region leaving the federation hands every signal it holds to a
//! successor region through the hub (issue 12). Run on the leaving node's database with the node
//! stopped; the national operator has given the leaving region's organisations to the
//! successor in the organisation registry, and the successor's operator has made a handover key
//! (`vix-node handover-key`) and named this region a predecessor.
//!
//! In order: the outbox is forwarded (the hub must hold each signal at the revision handed
//! over), the hub's log is consumed meanwhile (notices for these signals reach the records),
//! then page by page each signal's record is sealed for the successor and handed over; once the
//! hub confirms a page, this node deletes its copy. A rerun after a crash goes on where it
//! stopped: the hub ignores what it handed over already.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic::Code;
use tonic::transport::Channel;
use vix_protocol::federation::v1 as pb;
use vix_protocol::federation::v1::federation_service_client::FederationServiceClient;

use crate::domain::RegionId;
use crate::handover_seal::{HandoverPublicKey, SealContext, SealError};
use crate::region::RegionContext;
use crate::region::forwarder::{Drained, ForwardError, Forwarder};
use crate::region::notice_consumer::NoticeConsumer;
use crate::store::{SignalStore, StoreError};

/// Signals per HandOverSignals call: the hub's limit.
const PAGE: u32 = 100;
/// How long the hub may keep saying the log is not stored yet before the command gives up:
/// the consumer normally stores a backlog in well under a second.
const LOG_PATIENCE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DecommissionError {
    #[error("the successor must be another region")]
    SameRegion,
    #[error("forwarding the outbox: {0}")]
    Forward(#[from] ForwardError),
    #[error(
        "{0} dead letters: the hub refused events or entries of this node; resolve them \
         (vix-node dead-letters) before handing over"
    )]
    DeadLetters(u64),
    #[error("the store: {0}")]
    Store(#[from] StoreError),
    #[error("sealing a record: {0}")]
    Seal(#[from] SealError),
    #[error("encoding a record: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the hub refused the handover: {0}")]
    Hub(tonic::Status),
    #[error("the hub still holds notices this node has not stored after {0:?}")]
    LogBehind(Duration),
}

/// What the node holds, as a dry run reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holdings {
    pub active_signals: u64,
    pub inactive_signals: u64,
    pub outbox_events: u64,
    pub dead_letters: u64,
    pub emails_pending: u64,
    pub log_cursor: u64,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Handed {
    /// Outbox events forwarded first.
    pub forwarded: usize,
    /// Signals now the successor's.
    pub handed_over: u32,
    /// Handed over by an earlier run already.
    pub ignored: u32,
}

/// What a purge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Signals deleted here, each with a deletion event for the hub.
    pub deleted: u32,
    /// Outbox events forwarded (the deletions among them).
    pub forwarded: usize,
}

/// What the node holds and would hand over; changes nothing.
pub async fn holdings<S: SignalStore>(store: &S) -> Result<Holdings, StoreError> {
    let gauges = store.gauges().await?;
    Ok(Holdings {
        active_signals: gauges.active_signals,
        inactive_signals: gauges.inactive_signals,
        outbox_events: gauges.outbox_events,
        dead_letters: gauges.dead_letters,
        emails_pending: gauges.emails_pending,
        log_cursor: store.hub_log_position().await?.cursor,
    })
}

/// Hands every signal of the node to `successor`, sealed for `successor_key`.
pub async fn run<S: SignalStore>(
    context: Arc<RegionContext<S>>,
    hub: Channel,
    successor: &RegionId,
    successor_key: &HandoverPublicKey,
) -> Result<Handed, DecommissionError> {
    if successor == &context.region_id {
        return Err(DecommissionError::SameRegion);
    }
    let mut handed = Handed::default();
    let mut forwarder = Forwarder::new(Arc::clone(&context), hub.clone());
    loop {
        match forwarder.drain_once().await? {
            Drained::Sent(count) => handed.forwarded += count,
            Drained::Quarantined(_) => {}
            Drained::Empty => break,
        }
    }
    let dead_letters = context.store.dead_letter_count().await?;
    if dead_letters > 0 {
        return Err(DecommissionError::DeadLetters(dead_letters));
    }
    // The log is consumed throughout: the hub hands a page over only once this node has stored
    // every entry of its log, so that no notice stays behind with a node that holds nothing.
    let (stop, stopping) = watch::channel(false);
    let consumer =
        tokio::spawn(NoticeConsumer::new(Arc::clone(&context), hub.clone()).run(stopping));
    let result = hand_over_all(&context, hub, successor, successor_key, &mut handed).await;
    let _ = stop.send(true);
    let _ = consumer.await;
    result.map(|()| handed)
}

/// Deletes every signal of the node, on the node and (forwarded) at the hub, which retracts
/// the notices naming them in every region: a region that leaves without a successor. The
/// audit log stays.
pub async fn purge<S: SignalStore>(
    context: Arc<RegionContext<S>>,
    hub: Channel,
) -> Result<Purged, DecommissionError> {
    let mut purged = Purged::default();
    loop {
        let deleted = context.store.purge_page(PAGE, context.clock.now()).await?;
        if deleted == 0 {
            break;
        }
        purged.deleted += deleted;
    }
    let mut forwarder = Forwarder::new(Arc::clone(&context), hub);
    loop {
        match forwarder.drain_once().await? {
            Drained::Sent(count) => purged.forwarded += count,
            Drained::Quarantined(_) => {}
            Drained::Empty => break,
        }
    }
    let dead_letters = context.store.dead_letter_count().await?;
    if dead_letters > 0 {
        return Err(DecommissionError::DeadLetters(dead_letters));
    }
    Ok(purged)
}

async fn hand_over_all<S: SignalStore>(
    context: &RegionContext<S>,
    hub: Channel,
    successor: &RegionId,
    successor_key: &HandoverPublicKey,
    handed: &mut Handed,
) -> Result<(), DecommissionError> {
    let mut client = FederationServiceClient::new(hub);
    let mut stored = context.notices_stored.subscribe();
    let mut behind_since = None;
    loop {
        // Always from the start: a page handed over is deleted here.
        let page = context.store.handover_page(None, PAGE).await?;
        if page.records.is_empty() {
            return Ok(());
        }
        let mut handovers = Vec::with_capacity(page.records.len());
        let mut ids = Vec::with_capacity(page.records.len());
        for (signal_id, revision, record) in &page.records {
            let signal = signal_id.to_string();
            let sealed = successor_key.seal(
                &serde_json::to_vec(record)?,
                &SealContext {
                    from_region: context.region_id.as_str(),
                    to_region: successor.as_str(),
                    signal_id: &signal,
                    revision: revision.get(),
                },
            )?;
            handovers.push(pb::Handover {
                signal_id: signal,
                revision: revision.get(),
                sealed_record: sealed,
            });
            ids.push(*signal_id);
        }
        let answer = client
            .hand_over_signals(pb::HandOverSignalsRequest {
                region_id: context.region_id.to_string(),
                successor_region_id: successor.to_string(),
                after_cursor: page.log_cursor,
                handovers,
            })
            .await;
        match answer {
            Ok(answer) => {
                let answer = answer.into_inner();
                handed.handed_over += answer.handed_over;
                handed.ignored += answer.ignored;
                context
                    .store
                    .handed_over(ids, successor.clone(), context.clock.now())
                    .await?;
                behind_since = None;
                tracing::info!(
                    handed_over = answer.handed_over,
                    ignored = answer.ignored,
                    %successor,
                    "signals handed over"
                );
            }
            // Entries the consumer has not stored yet, or the hub busy: wait for the next run
            // it stores (the watermark), at most a second, then read the page again.
            Err(status)
                if matches!(status.code(), Code::FailedPrecondition | Code::Unavailable) =>
            {
                let since = *behind_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > LOG_PATIENCE {
                    return Err(DecommissionError::LogBehind(LOG_PATIENCE));
                }
                tracing::info!(reason = %status.message(), "handover waits for the notice log");
                let _ = tokio::time::timeout(Duration::from_secs(1), stored.changed()).await;
            }
            Err(status) => return Err(DecommissionError::Hub(status)),
        }
    }
}
