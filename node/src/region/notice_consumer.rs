//! The notice consumer: keeps `StreamNotices` open from the last stored cursor, stores each
//! notice (deduplicated by notice id) with its e-mail job and the new cursor in one transaction,
//! then acknowledges it to the hub. After a break it reconnects with backoff and resumes from
//! the stored cursor, so a notice is neither lost nor stored twice.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use jiff::Timestamp;
use tokio::sync::watch;
use tonic::transport::Channel;
use vix_protocol::federation::v1 as pb;
use vix_protocol::federation::v1::federation_service_client::FederationServiceClient;

use super::RegionContext;
use crate::domain::contact::ContactInput;
use crate::domain::matching::{MatchType, NoticeKind};
use crate::domain::{
    OrganisationId, ProfessionalContact, RegionId, SignalId, SignalState, ValidationErrors,
};
use crate::store::hub::{LogEntry, LoggedNotice};
use crate::store::{CounterpartView, SignalStore, StoreError};
use crate::telemetry::error_chain;

const RETRY_DELAY_MIN: Duration = Duration::from_millis(100);
const RETRY_DELAY_MAX: Duration = Duration::from_secs(30);
/// The most log entries stored in one commit.
const RUN_MAX: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("storing a notice: {0}")]
    Store(#[from] StoreError),
    #[error("the hub: {0}")]
    Hub(#[from] tonic::Status),
    /// A notice the node cannot read; it is not acknowledged, so the hub keeps it.
    #[error("notice at cursor {cursor} is malformed: {errors}")]
    Malformed {
        cursor: u64,
        errors: ValidationErrors,
    },
}

pub struct NoticeConsumer<S> {
    context: Arc<RegionContext<S>>,
    hub: FederationServiceClient<Channel>,
}

impl<S: SignalStore> NoticeConsumer<S> {
    pub fn new(context: Arc<RegionContext<S>>, hub: Channel) -> Self {
        Self {
            context,
            hub: FederationServiceClient::new(hub),
        }
    }

    /// Opens the stream after the stored cursor and stores notices until the stream ends,
    /// fails, or `stopping` turns true. Returns how many notices it handled.
    pub async fn consume(
        &mut self,
        stopping: &mut watch::Receiver<bool>,
    ) -> Result<usize, ConsumeError> {
        let after_cursor = self.context.store.hub_cursor().await?;
        let mut stream = self
            .hub
            .stream_notices(pb::StreamNoticesRequest {
                region_id: self.context.region_id.to_string(),
                after_cursor,
            })
            .await?
            .into_inner();
        let mut handled = 0;
        loop {
            let first = tokio::select! {
                message = stream.message() => message?,
                _ = stopping.changed() => return Ok(handled),
            };
            let Some(first) = first else {
                return Ok(handled); // the hub closed the stream, e.g. on shutdown
            };
            // Whatever else the stream already holds joins this run, so a burst (a region back
            // after an outage) is stored with one commit and acknowledged once per run.
            let mut run = vec![first];
            let mut ended = None;
            while run.len() < RUN_MAX {
                match tokio::time::timeout(Duration::ZERO, stream.message()).await {
                    Ok(Ok(Some(message))) => run.push(message),
                    Ok(Ok(None)) => {
                        ended = Some(Ok(()));
                        break;
                    }
                    Ok(Err(status)) => {
                        ended = Some(Err(status));
                        break;
                    }
                    Err(_) => break, // nothing more ready yet
                }
            }
            // Entries are checked in order; a malformed one ends the run after the good ones
            // before it are stored.
            let mut entries = Vec::with_capacity(run.len());
            let mut malformed = None;
            for message in run {
                match entry_from_pb(message) {
                    Ok(entry) => entries.push(entry),
                    Err(error) => {
                        malformed = Some(error);
                        break;
                    }
                }
            }
            if let Some(last) = entries.last() {
                let cursor = last.cursor();
                let count = entries.len();
                let applied = self
                    .context
                    .store
                    .store_hub_log(entries, self.context.clock.now())
                    .await?;
                tracing::info!(count, cursor, ?applied, "hub notice log stored");
                self.context
                    .notices_stored
                    .send_modify(|n| *n += u64::try_from(count).unwrap_or(u64::MAX));
                self.hub
                    .ack_notices(pb::AckNoticesRequest {
                        region_id: self.context.region_id.to_string(),
                        cursor,
                    })
                    .await?;
                handled += count;
            }
            if let Some(error) = malformed {
                return Err(error);
            }
            match ended {
                None => {}
                Some(Ok(())) => return Ok(handled),
                Some(Err(status)) => return Err(status.into()),
            }
        }
    }

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
        while !*stopping.borrow() {
            let delay = match self.consume(&mut stopping).await {
                Ok(handled) => {
                    if handled > 0 {
                        delays = backoff();
                    }
                    // A clean end (hub restart): reconnect soon, but not in a tight loop.
                    delays.next().unwrap_or(RETRY_DELAY_MAX)
                }
                Err(error) => {
                    let delay = delays.next().unwrap_or(RETRY_DELAY_MAX);
                    tracing::warn!(error = %error_chain(&error), ?delay, "notice stream broken; will reconnect");
                    delay
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {},
                _ = stopping.changed() => {},
            }
        }
    }
}

/// One entry of the hub's log, checked.
fn entry_from_pb(message: pb::NoticeLogEntry) -> Result<LogEntry, ConsumeError> {
    let cursor = message.cursor;
    match message.entry {
        Some(pb::notice_log_entry::Entry::Notice(notice)) => notice_from_pb(notice, cursor)
            .map(|notice| LogEntry::Notice(Box::new(notice)))
            .map_err(|errors| ConsumeError::Malformed { cursor, errors }),
        Some(pb::notice_log_entry::Entry::Retraction(retraction)) => Ok(LogEntry::Retraction {
            cursor,
            notice_id: retraction.notice_id,
        }),
        Some(pb::notice_log_entry::Entry::Coordination(change)) => {
            let mut errors = ValidationErrors::new();
            crate::hub::convert::coordination_from_pb(&change, "coordination", &mut errors)
                .map(|change| LogEntry::Coordination { cursor, change })
                .ok_or(ConsumeError::Malformed { cursor, errors })
        }
        None => Err(ConsumeError::Malformed {
            cursor,
            errors: ValidationErrors::single("entry", "is required"),
        }),
    }
}

fn notice_from_pb(notice: pb::Notice, cursor: u64) -> Result<LoggedNotice, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let match_type = match pb::MatchType::try_from(notice.match_type) {
        Ok(pb::MatchType::Youth) => Some(MatchType::Youth),
        Ok(pb::MatchType::Family) => Some(MatchType::Family),
        _ => {
            errors.add("match_type", "unknown");
            None
        }
    };
    let kind = match pb::NoticeKind::try_from(notice.kind) {
        Ok(pb::NoticeKind::Match) => Some(NoticeKind::Match),
        Ok(pb::NoticeKind::History) => Some(NoticeKind::History),
        _ => {
            errors.add("kind", "unknown");
            None
        }
    };
    if uuid::Uuid::try_parse(&notice.notice_id).is_err() {
        errors.add("notice_id", "is not a UUID");
    }
    let recipient_signal_id = errors.check(
        "recipient_signal_id",
        SignalId::parse(&notice.recipient_signal_id),
    );
    let recipient_organisation_id = errors.check(
        "recipient_organisation_id",
        OrganisationId::parse(&notice.recipient_organisation_id),
    );
    let found_at = errors.check(
        "found_at",
        Timestamp::from_str(&notice.found_at).map_err(|_| "must be an RFC 3339 instant"),
    );
    let counterpart = match &notice.counterpart {
        None => {
            errors.add("counterpart", "is required");
            None
        }
        Some(counterpart) => counterpart_from_pb(counterpart, &mut errors),
    };
    errors.into_result()?;
    match (
        match_type,
        kind,
        recipient_signal_id,
        recipient_organisation_id,
        found_at,
        counterpart,
    ) {
        (
            Some(match_type),
            Some(kind),
            Some(recipient_signal_id),
            Some(recipient_organisation_id),
            Some(found_at),
            Some(counterpart),
        ) => Ok(LoggedNotice {
            cursor,
            notice_id: notice.notice_id,
            match_type,
            kind,
            recipient_signal_id,
            recipient_organisation_id,
            found_at,
            counterpart,
        }),
        _ => Err(ValidationErrors::single("notice", "incomplete")),
    }
}

fn counterpart_from_pb(
    counterpart: &pb::Counterpart,
    errors: &mut ValidationErrors,
) -> Option<CounterpartView> {
    let organisation_id = errors.check(
        "counterpart.organisation_id",
        OrganisationId::parse(&counterpart.organisation_id),
    );
    let contact = match &counterpart.professional {
        None => {
            errors.add("counterpart.professional", "is required");
            None
        }
        Some(contact) => ProfessionalContact::parse(
            ContactInput {
                professional_id: &contact.professional_id,
                name: &contact.name,
                email: &contact.email,
                phone: &contact.phone,
            },
            "counterpart.professional",
            errors,
        ),
    };
    let signal_id = errors.check(
        "counterpart.signal_id",
        SignalId::parse(&counterpart.signal_id),
    );
    let state = match pb::SignalState::try_from(counterpart.state) {
        Ok(pb::SignalState::Active) => Some(SignalState::Active),
        Ok(pb::SignalState::Inactive) => Some(SignalState::Inactive),
        _ => {
            errors.add("counterpart.state", "unknown");
            None
        }
    };
    let region_id = errors.check(
        "counterpart.region_id",
        RegionId::parse(&counterpart.region_id),
    );
    Some(CounterpartView {
        organisation_id: organisation_id?,
        organisation_name: counterpart.organisation_name.clone(),
        contact: contact?,
        signal_id: signal_id?,
        state: state?,
        region_id: region_id?,
    })
}
