//! The forwarder: drains the outbox to the hub in batches, in the order events were written (so
//! in order per signal), and forgets a batch only after the hub has applied it. A batch the hub
//! never confirmed is sent again; `(signal_id, revision)` makes that harmless.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::watch;
use tonic::transport::Channel;
use vix_protocol::federation::v1 as pb;
use vix_protocol::federation::v1::federation_service_client::FederationServiceClient;

use super::RegionContext;
use crate::domain::{FamilyKey, SubjectKey};
use crate::store::outbox::{OutboxEvent, SignalSnapshot};
use crate::store::{SignalStore, StoreError};
use crate::telemetry::error_chain;

/// Events per `SubmitSignals`; below the hub's limit of 500.
pub const BATCH_EVENTS_MAX: u32 = 256;
/// Fallback when no registration wakes the forwarder (e.g. events left by a previous run).
const IDLE_POLL: Duration = Duration::from_secs(1);
const RETRY_DELAY_MIN: Duration = Duration::from_millis(100);
const RETRY_DELAY_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("outbox: {0}")]
    Store(#[from] StoreError),
    #[error("the hub refused the batch: {0}")]
    Hub(#[from] tonic::Status),
    #[error("outbox event for signal {signal_id} holds an unreadable key")]
    Event { signal_id: String },
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// This many events were applied by the hub and removed from the outbox.
    Sent(usize),
    /// Nothing to send.
    Empty,
}

pub struct Forwarder<S> {
    context: Arc<RegionContext<S>>,
    hub: FederationServiceClient<Channel>,
}

impl<S: SignalStore> Forwarder<S> {
    pub fn new(context: Arc<RegionContext<S>>, hub: Channel) -> Self {
        Self {
            context,
            hub: FederationServiceClient::new(hub),
        }
    }

    /// Sends the oldest batch of the outbox and removes it once the hub confirms.
    pub async fn drain_once(&mut self) -> Result<Drained, ForwardError> {
        let batch = self.context.store.outbox_batch(BATCH_EVENTS_MAX).await?;
        let Some(last) = batch.last().map(|entry| entry.seq) else {
            // Signals first: a coordination change refers to signals the hub must know.
            return self.drain_coordination().await;
        };
        let events = batch
            .iter()
            .map(|entry| event_to_pb(&entry.event))
            .collect::<Result<Vec<_>, _>>()?;
        let response = self
            .hub
            .submit_signals(pb::SubmitSignalsRequest {
                region_id: self.context.region_id.to_string(),
                events,
            })
            .await?
            .into_inner();
        self.context.store.outbox_remove_through(last).await?;
        tracing::info!(
            events = batch.len(),
            applied = response.applied,
            ignored = response.ignored,
            "outbox batch forwarded"
        );
        Ok(Drained::Sent(batch.len()))
    }

    /// Sends the oldest coordination changes and forgets them once the hub confirms.
    async fn drain_coordination(&mut self) -> Result<Drained, ForwardError> {
        let batch = self
            .context
            .store
            .coordination_outbox_batch(BATCH_EVENTS_MAX)
            .await?;
        let Some(last) = batch.last().map(|(seq, _)| *seq) else {
            return Ok(Drained::Empty);
        };
        self.hub
            .submit_coordination(pb::SubmitCoordinationRequest {
                region_id: self.context.region_id.to_string(),
                changes: batch
                    .iter()
                    .map(|(_, change)| crate::hub::convert::coordination_to_pb(change))
                    .collect(),
            })
            .await?;
        self.context
            .store
            .coordination_outbox_remove_through(last)
            .await?;
        Ok(Drained::Sent(batch.len()))
    }

    /// Drains the outbox until `stopping` turns true: immediately when woken by a write, every
    /// second otherwise, and after a failure with exponential backoff and jitter.
    pub async fn run(mut self, mut stopping: watch::Receiver<bool>) {
        let backoff = || {
            ExponentialBuilder::new()
                .with_min_delay(RETRY_DELAY_MIN)
                .with_max_delay(RETRY_DELAY_MAX)
                .with_jitter()
                .without_max_times()
                .build()
        };
        let mut delays = backoff();
        let wake = Arc::clone(&self.context.outbox_ready);
        while !*stopping.borrow() {
            let pause = match self.drain_once().await {
                Ok(Drained::Sent(_)) => {
                    delays = backoff();
                    continue;
                }
                Ok(Drained::Empty) => {
                    delays = backoff();
                    IDLE_POLL
                }
                Err(error) => {
                    let lag = self.context.store.outbox_len().await.unwrap_or_default();
                    let delay = delays.next().unwrap_or(RETRY_DELAY_MAX);
                    tracing::warn!(error = %error_chain(&error), lag, ?delay, "forwarding failed; will retry");
                    delay
                }
            };
            tokio::select! {
                () = wake.notified() => {},
                () = tokio::time::sleep(pause) => {},
                _ = stopping.changed() => {},
            }
        }
    }
}

fn event_to_pb(event: &OutboxEvent) -> Result<pb::SignalEvent, ForwardError> {
    let change = match event {
        OutboxEvent::Delete { .. } => pb::signal_event::Change::Deletion(pb::SignalDeletion {}),
        OutboxEvent::Upsert(snapshot) => pb::signal_event::Change::Upsert(upsert_to_pb(snapshot)?),
    };
    Ok(pb::SignalEvent {
        signal_id: event.signal_id().to_owned(),
        revision: event.revision(),
        change: Some(change),
    })
}

fn upsert_to_pb(snapshot: &SignalSnapshot) -> Result<pb::SignalUpsert, ForwardError> {
    let unreadable = || ForwardError::Event {
        signal_id: snapshot.signal_id.clone(),
    };
    let subject = SubjectKey::parse_stored(&snapshot.subject_key).map_err(|_| unreadable())?;
    let family_keys = snapshot
        .family_keys
        .iter()
        .map(|key| {
            FamilyKey::parse_stored(key)
                .map(|key| pb::Pseudonym {
                    key_version: key.version().get(),
                    digest: key.digest().to_vec(),
                })
                .map_err(|_| unreadable())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(pb::SignalUpsert {
        subject_key: Some(pb::Pseudonym {
            key_version: subject.version().get(),
            digest: subject.digest().to_vec(),
        }),
        family_keys,
        organisation_id: snapshot.organisation_id.clone(),
        organisation_name: snapshot.organisation_name.clone(),
        professional: Some(pb::ProfessionalContact {
            professional_id: snapshot.professional_id.clone(),
            name: snapshot.professional_name.clone(),
            email: snapshot.professional_email.clone(),
            phone: snapshot.professional_phone.clone().unwrap_or_default(),
        }),
        registered_at: snapshot.registered_at.to_string(),
        planned_removal_date: snapshot.planned_removal_date.to_string(),
        state: match snapshot.state.as_str() {
            "inactive" => pb::SignalState::Inactive,
            _ => pb::SignalState::Active,
        }
        .into(),
        inactive_since: snapshot
            .inactive_since
            .map(|date| date.to_string())
            .unwrap_or_default(),
    })
}
