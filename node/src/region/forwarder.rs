//! The forwarder: drains the outbox to the hub in batches, in the order events were written (so
//! in order per signal), and forgets a batch only after the hub has applied it. A batch the hub
//! never confirmed is sent again; `(signal_id, revision)` makes that harmless.
//!
//! Poison never blocks: when the hub refuses events for good (`INVALID_ARGUMENT`,
//! `PERMISSION_DENIED`, `FAILED_PRECONDITION`) and names them (`events[i]` in the status's
//! `BadRequest`), those events become dead letters with the hub's reason, their signals' later
//! events wait behind them, and every other event goes on at once. A refusal that names no
//! event is about the link itself (a certificate, a region unknown to the hub): it is retried
//! with backoff and logged, never turned into dead letters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;
use vix_protocol::federation::v1 as pb;
use vix_protocol::federation::v1::federation_service_client::FederationServiceClient;

use super::RegionContext;
use super::link::LinkBackoff;
use crate::domain::{FamilyKey, SubjectKey};
use crate::store::outbox::{OutboxEvent, SignalSnapshot};
use crate::store::{SignalStore, StoreError};
use crate::telemetry::error_chain;

/// Events per `SubmitSignals`; below the hub's limit of 500.
pub const BATCH_EVENTS_MAX: u32 = 256;
/// Fallback when no registration wakes the forwarder (e.g. events left by a previous run).
const IDLE_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("outbox: {0}")]
    Store(#[from] StoreError),
    #[error("the hub refused the batch: {0}")]
    Hub(#[from] tonic::Status),
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// This many events were applied by the hub and removed from the outbox.
    Sent(usize),
    /// This many events were refused for good and became dead letters.
    Quarantined(usize),
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

    /// Sends the oldest batch of the outbox and removes it once the hub confirms; or moves the
    /// events the hub refused for good to the dead letters.
    pub async fn drain_once(&mut self) -> Result<Drained, ForwardError> {
        let batch = self.context.store.outbox_batch(BATCH_EVENTS_MAX).await?;
        if batch.is_empty() {
            // Signals first: a coordination change refers to signals the hub must know.
            return self.drain_coordination().await;
        }
        let mut seqs = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        let mut unreadable = BTreeMap::new();
        for entry in &batch {
            match entry.event.as_ref().map(event_to_pb) {
                Some(Ok(event)) => {
                    seqs.push(entry.seq);
                    events.push(event);
                }
                Some(Err(reason)) => {
                    unreadable.insert(entry.seq, reason);
                }
                None => {
                    unreadable.insert(entry.seq, "the stored event cannot be read".to_owned());
                }
            }
        }
        if !unreadable.is_empty() {
            // The next batch is read without them and without their signals' later events.
            return self.quarantine(unreadable).await;
        }
        let sent = self
            .hub
            .submit_signals(pb::SubmitSignalsRequest {
                region_id: self.context.region_id.to_string(),
                events,
            })
            .await;
        match sent {
            Ok(response) => {
                let response = response.into_inner();
                self.context.store.outbox_remove(seqs).await?;
                tracing::info!(
                    events = batch.len(),
                    applied = response.applied,
                    ignored = response.ignored,
                    "outbox batch forwarded"
                );
                Ok(Drained::Sent(batch.len()))
            }
            Err(status) => match refused_items(&status, "events") {
                Some(refused) => {
                    let refused = refused
                        .into_iter()
                        .filter_map(|(index, reason)| seqs.get(index).map(|seq| (*seq, reason)))
                        .collect();
                    self.quarantine(refused).await
                }
                None => Err(status.into()),
            },
        }
    }

    async fn quarantine(&self, refused: BTreeMap<i64, String>) -> Result<Drained, ForwardError> {
        let mut count = 0;
        for (seq, reason) in refused {
            tracing::error!(seq, %reason, "outbox event refused for good; kept as a dead letter");
            if self
                .context
                .store
                .quarantine_outbox(seq, reason, self.context.clock.now())
                .await?
            {
                count += 1;
            }
        }
        self.context.report_dead_letters().await;
        Ok(Drained::Quarantined(count))
    }

    /// Sends the oldest coordination changes and forgets them once the hub confirms.
    async fn drain_coordination(&mut self) -> Result<Drained, ForwardError> {
        let batch = self
            .context
            .store
            .coordination_outbox_batch(BATCH_EVENTS_MAX)
            .await?;
        if batch.is_empty() {
            return Ok(Drained::Empty);
        }
        let seqs: Vec<i64> = batch.iter().map(|(seq, _)| *seq).collect();
        let sent = self
            .hub
            .submit_coordination(pb::SubmitCoordinationRequest {
                region_id: self.context.region_id.to_string(),
                changes: batch
                    .iter()
                    .map(|(_, change)| crate::hub::convert::coordination_to_pb(change))
                    .collect(),
            })
            .await;
        match sent {
            Ok(_) => {
                self.context.store.coordination_outbox_remove(seqs).await?;
                Ok(Drained::Sent(batch.len()))
            }
            Err(status) => match refused_items(&status, "changes") {
                Some(refused) => {
                    let mut count = 0;
                    for (index, reason) in refused {
                        let Some(seq) = seqs.get(index) else { continue };
                        tracing::error!(seq, %reason, "coordination change refused for good; kept as a dead letter");
                        if self
                            .context
                            .store
                            .quarantine_coordination(*seq, reason, self.context.clock.now())
                            .await?
                        {
                            count += 1;
                        }
                    }
                    self.context.report_dead_letters().await;
                    Ok(Drained::Quarantined(count))
                }
                None => Err(status.into()),
            },
        }
    }

    /// Drains the outbox until `stopping` turns true: immediately when woken by a write, every
    /// second otherwise. After a failure it waits with backoff, and writes meanwhile do not cut
    /// the wait short (each would be one more failed attempt, and a longer wait after it).
    pub async fn run(mut self, mut stopping: watch::Receiver<bool>) {
        let mut backoff = LinkBackoff::new(self.context.hub_retry_delay_max);
        let wake = Arc::clone(&self.context.outbox_ready);
        while !*stopping.borrow() {
            match self.drain_once().await {
                Ok(Drained::Sent(_) | Drained::Quarantined(_)) => {
                    self.context.outages.hub(true);
                    backoff.reset();
                }
                Ok(Drained::Empty) => {
                    backoff.reset();
                    tokio::select! {
                        () = wake.notified() => {},
                        () = tokio::time::sleep(IDLE_POLL) => {},
                        _ = stopping.changed() => {},
                    }
                }
                Err(error) => {
                    self.context.outages.hub(false);
                    let lag = self.context.store.outbox_len().await.unwrap_or_default();
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %error_chain(&error), lag, ?delay, "forwarding failed; will retry");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {},
                        _ = stopping.changed() => {},
                    }
                }
            }
        }
    }
}

/// The items of a request that the hub refused for good, by index, with the hub's reason; `None`
/// if the status is retryable or names no item of `list` (then it concerns the whole link).
fn refused_items(status: &tonic::Status, list: &str) -> Option<BTreeMap<usize, String>> {
    if !matches!(
        status.code(),
        Code::InvalidArgument | Code::PermissionDenied | Code::FailedPrecondition
    ) {
        return None;
    }
    let mut refused = BTreeMap::<usize, String>::new();
    for violation in status
        .get_details_bad_request()
        .map(|details| details.field_violations)
        .unwrap_or_default()
    {
        let Some(index) = item_index(&violation.field, list) else {
            continue;
        };
        let reason = refused.entry(index).or_insert_with(|| {
            format!("{:?}: {}", status.code(), status.message())
                .chars()
                .take(REASON_LEN_MAX)
                .collect()
        });
        if reason.len() < REASON_LEN_MAX {
            reason.push_str(&format!("; {} {}", violation.field, violation.description));
        }
    }
    (!refused.is_empty()).then_some(refused)
}

/// The most characters of a dead letter's reason kept from the hub's answer.
const REASON_LEN_MAX: usize = 1_000;

/// `3` from `events[3]` or `events[3].upsert.subject_key`.
fn item_index(field: &str, list: &str) -> Option<usize> {
    let rest = field.strip_prefix(list)?.strip_prefix('[')?;
    let (index, after) = rest.split_once(']')?;
    if !(after.is_empty() || after.starts_with('.')) {
        return None;
    }
    index.parse().ok()
}

fn event_to_pb(event: &OutboxEvent) -> Result<pb::SignalEvent, String> {
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

fn upsert_to_pb(snapshot: &SignalSnapshot) -> Result<pb::SignalUpsert, String> {
    let unreadable = || "the stored event holds an unreadable key".to_owned();
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
        previous_subject_keys: snapshot
            .previous_subject_keys
            .iter()
            .map(|key| {
                SubjectKey::parse_stored(key)
                    .map(|key| pb_key(key.version(), key.digest()))
                    .map_err(|_| unreadable())
            })
            .collect::<Result<_, _>>()?,
        previous_family_keys: snapshot
            .previous_family_keys
            .iter()
            .map(|key| {
                FamilyKey::parse_stored(key)
                    .map(|key| pb_key(key.version(), key.digest()))
                    .map_err(|_| unreadable())
            })
            .collect::<Result<_, _>>()?,
    })
}

fn pb_key(version: crate::domain::KeyVersion, digest: [u8; 32]) -> pb::Pseudonym {
    pb::Pseudonym {
        key_version: version.get(),
        digest: digest.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, FieldViolation};

    fn refused(code: Code, fields: &[&str]) -> tonic::Status {
        let violations = fields
            .iter()
            .map(|field| FieldViolation::new(*field, "is wrong"))
            .collect::<Vec<_>>();
        tonic::Status::with_error_details(
            code,
            "refused",
            ErrorDetails::with_bad_request(violations),
        )
    }

    #[test]
    fn permanent_refusals_name_their_events() {
        let status = refused(
            Code::InvalidArgument,
            &[
                "events[3].upsert.subject_key",
                "events[3].registered_at",
                "events[0]",
            ],
        );
        let items = refused_items(&status, "events").unwrap();
        assert_eq!(items.keys().copied().collect::<Vec<_>>(), vec![0, 3]);
        assert!(
            items[&3].contains("events[3].registered_at"),
            "{}",
            items[&3]
        );
        for code in [Code::PermissionDenied, Code::FailedPrecondition] {
            assert!(refused_items(&refused(code, &["events[1]"]), "events").is_some());
        }
    }

    #[test]
    fn the_hubs_refusals_of_single_items_are_read_as_those_items() {
        use crate::hub::HubError;
        use crate::store::hub::HubStoreError;
        let status = |error: HubStoreError| tonic::Status::from(HubError::from(error));
        let events = |error| {
            refused_items(&status(error), "events").map(|r| r.into_keys().collect::<Vec<_>>())
        };
        let changes = |error| {
            refused_items(&status(error), "changes").map(|r| r.into_keys().collect::<Vec<_>>())
        };
        assert_eq!(events(HubStoreError::NotOwner { index: 3 }), Some(vec![3]));
        // The registry's refusal of an organisation (hub::convert::parse_events names it so).
        let foreign = tonic::Status::from(HubError::Forbidden(
            crate::domain::ValidationErrors::single(
                "events[0].upsert.organisation_id",
                "names an organisation of another region",
            ),
        ));
        assert_eq!(
            refused_items(&foreign, "events").map(|r| r.into_keys().collect::<Vec<_>>()),
            Some(vec![0])
        );
        assert_eq!(
            changes(HubStoreError::NotOwnerOfChange { index: 2 }),
            Some(vec![2])
        );
    }

    #[test]
    fn retryable_codes_and_refusals_of_the_link_are_not_poison() {
        for code in [Code::Unavailable, Code::Internal, Code::ResourceExhausted] {
            assert_eq!(
                refused_items(&refused(code, &["events[1]"]), "events"),
                None
            );
        }
        // A refusal that names no event is about the caller (certificate, region).
        assert_eq!(
            refused_items(
                &tonic::Status::permission_denied("unknown region"),
                "events"
            ),
            None
        );
        assert_eq!(
            refused_items(&refused(Code::InvalidArgument, &["region_id"]), "events"),
            None
        );
        assert_eq!(
            refused_items(&refused(Code::InvalidArgument, &["events"]), "events"),
            None
        );
        assert_eq!(
            refused_items(&refused(Code::InvalidArgument, &["eventsx[1]"]), "events"),
            None
        );
    }
}
