//! The notice consumer: keeps `StreamNotices` open from the last stored cursor, stores each
//! notice (deduplicated by notice id) with its e-mail job and the new cursor in one transaction,
//! then acknowledges it to the hub. After a break it reconnects with backoff and resumes from
//! the stored cursor, so a notice is neither lost nor stored twice.
//!
//! Every stream starts with the log's head; a head that does not continue the log this node
//! consumed (another epoch, or an end before the stored cursor) stops the consumer for good and
//! turns the node's health to `NOT_SERVING`: an operator must look. An entry the node cannot
//! read is kept as a dead letter and the stream goes on.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use prost::Message;
use tokio::sync::watch;
use tonic::transport::Channel;
use vix_protocol::federation::v1 as pb;
use vix_protocol::federation::v1::federation_service_client::FederationServiceClient;

use super::RegionContext;
use super::link::LinkBackoff;
use crate::domain::contact::ContactInput;
use crate::domain::matching::{MatchType, NoticeKind, ToldPair};
use crate::domain::notice_log::{self, Mismatch};
use crate::domain::{
    OrganisationId, OrganisationName, ProfessionalContact, RegionId, Revision, SignalId,
    SignalState, ValidationErrors,
};
use crate::store::hub::{LogEntry, LoggedAdoption, LoggedNotice};
use crate::store::{CounterpartView, SignalStore, StoreError};
use crate::store::{HubLogApplied, NoticeDelivery};
use crate::telemetry::error_chain;

/// The most log entries stored in one commit.
const RUN_MAX: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("storing a notice: {0}")]
    Store(#[from] StoreError),
    #[error("the hub: {0}")]
    Hub(#[from] tonic::Status),
    /// The stream did not start with the log's head.
    #[error("the hub's notice stream did not start with the log's head")]
    NoHead,
    /// The hub serves another log than the one this node consumed; retrying cannot help.
    #[error(transparent)]
    OtherLog(#[from] Mismatch),
}

/// An entry of the log that the node cannot read.
#[derive(Debug, thiserror::Error)]
#[error("notice-log entry at cursor {cursor} is malformed: {errors}")]
pub struct Malformed {
    pub cursor: u64,
    pub errors: ValidationErrors,
}

pub struct NoticeConsumer<S> {
    context: Arc<RegionContext<S>>,
    hub: FederationServiceClient<Channel>,
    /// A stream opened since the last look: the link works.
    opened: bool,
}

impl<S: SignalStore> NoticeConsumer<S> {
    pub fn new(context: Arc<RegionContext<S>>, hub: Channel) -> Self {
        Self {
            context,
            hub: FederationServiceClient::new(hub),
            opened: false,
        }
    }

    /// Opens the stream after the stored cursor, checks its head and stores notices until the
    /// stream ends, fails, or `stopping` turns true. Returns how many entries it handled.
    pub async fn consume(
        &mut self,
        stopping: &mut watch::Receiver<bool>,
    ) -> Result<usize, ConsumeError> {
        let position = self.context.store.hub_log_position().await?;
        let mut stream = self
            .hub
            .stream_notices(pb::StreamNoticesRequest {
                region_id: self.context.region_id.to_string(),
                after_cursor: position.cursor,
            })
            .await?
            .into_inner();
        self.opened = true;
        self.context.outages.hub(true);
        let head = tokio::select! {
            message = stream.message() => message?,
            _ = stopping.changed() => return Ok(0),
        };
        let Some(pb::NoticeLogEntry {
            entry: Some(pb::notice_log_entry::Entry::Head(head)),
            ..
        }) = head
        else {
            return Err(ConsumeError::NoHead);
        };
        let stored = notice_log::Stored {
            cursor: position.cursor,
            epoch: position.epoch.as_deref(),
        };
        let served = notice_log::Head {
            epoch: &head.epoch,
            end_cursor: head.end_cursor,
        };
        if notice_log::check(&stored, &served)? == notice_log::Continue::Adopt {
            tracing::info!(epoch = %head.epoch, "consuming the hub's notice log");
            self.context
                .store
                .adopt_hub_epoch(head.epoch.clone())
                .await?;
        }
        if position.cursor > 0 {
            // A node stopped between storing a run and acknowledging it has the run (its cursor
            // moved in the same commit) but the hub does not know: tell it now, or the hub
            // counts the run as owed and never prunes it.
            self.hub
                .ack_notices(pb::AckNoticesRequest {
                    region_id: self.context.region_id.to_string(),
                    cursor: position.cursor,
                })
                .await?;
        }
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
            handled += self.store_run(run).await?;
            match ended {
                None => {}
                Some(Ok(())) => return Ok(handled),
                Some(Err(status)) => return Err(status.into()),
            }
        }
    }

    /// Stores a run of entries in order, keeps the ones it cannot read as dead letters, then
    /// acknowledges the run.
    async fn store_run(&mut self, run: Vec<pb::NoticeLogEntry>) -> Result<usize, ConsumeError> {
        let count = run.len();
        let mut last_cursor = None;
        let mut entries = Vec::with_capacity(run.len());
        for message in run {
            let cursor = message.cursor;
            last_cursor = Some(cursor);
            let payload = message.encode_to_vec();
            let kept_aside = match entry_from_pb(message) {
                Ok(LogEntry::Adoption { cursor, adoption }) => {
                    // The entries before it first, so the cursor only moves forward.
                    self.store_entries(std::mem::take(&mut entries)).await?;
                    match super::adoption::open(
                        self.context.adopter.as_ref(),
                        &self.context.region_id,
                        &adoption,
                    ) {
                        Ok(opened) => {
                            let adopted = self
                                .context
                                .store
                                .adopt(cursor, opened, self.context.clock.now())
                                .await?;
                            tracing::info!(cursor, adopted, from = %adoption.from_region_id, "handed-over signal adopted");
                            self.context.notices_stored.send_modify(|n| *n += 1);
                            None
                        }
                        Err(reason) => Some(reason),
                    }
                }
                Ok(entry) => {
                    entries.push(entry);
                    None
                }
                Err(malformed) => {
                    self.store_entries(std::mem::take(&mut entries)).await?;
                    Some(malformed.to_string())
                }
            };
            if let Some(reason) = kept_aside {
                tracing::error!(cursor, %reason, "notice-log entry kept as a dead letter");
                self.context
                    .store
                    .quarantine_hub_entry(cursor, payload, reason, self.context.clock.now())
                    .await?;
                self.context.report_dead_letters().await;
            }
        }
        self.store_entries(entries).await?;
        self.context.failpoint(super::FAILPOINT_BEFORE_ACK).await;
        if let Some(cursor) = last_cursor {
            self.hub
                .ack_notices(pb::AckNoticesRequest {
                    region_id: self.context.region_id.to_string(),
                    cursor,
                })
                .await?;
        }
        Ok(count)
    }

    async fn store_entries(&self, entries: Vec<LogEntry>) -> Result<(), ConsumeError> {
        let Some(cursor) = entries.last().map(LogEntry::cursor) else {
            return Ok(());
        };
        let count = entries.len();
        let match_types: Vec<Option<&'static str>> = entries
            .iter()
            .map(|entry| match entry {
                LogEntry::Notice(notice) => Some(notice.match_type.as_str()),
                _ => None,
            })
            .collect();
        let applied = self
            .context
            .store
            .store_hub_log(entries, self.context.clock.now())
            .await?;
        tracing::info!(count, cursor, ?applied, "hub notice log stored");
        for (done, match_type) in applied.iter().zip(match_types) {
            if let (HubLogApplied::Notice(NoticeDelivery::Stored { .. }), Some(match_type)) =
                (done, match_type)
            {
                metrics::counter!(
                    "vix_notices_total",
                    "region" => self.context.region_id.to_string(),
                    "scope" => "cross_region",
                    "match_type" => match_type,
                )
                .increment(1);
            }
        }
        self.context
            .notices_stored
            .send_modify(|n| *n += u64::try_from(count).unwrap_or(u64::MAX));
        Ok(())
    }

    pub async fn run(mut self, mut stopping: watch::Receiver<bool>) {
        let mut backoff = LinkBackoff::new(self.context.hub_retry_delay_max);
        while !*stopping.borrow() {
            let result = self.consume(&mut stopping).await;
            if std::mem::take(&mut self.opened) {
                backoff.reset();
            }
            let delay = match result {
                // A clean end (hub restart): reconnect soon, but not in a tight loop.
                Ok(_) => backoff.next_delay(),
                Err(ConsumeError::OtherLog(mismatch)) => {
                    tracing::error!(error = %mismatch, "notice consumer stopped: the hub serves another notice log; nothing more is consumed until an operator resolves it");
                    self.context
                        .hub_log_halted
                        .send_replace(Some(mismatch.to_string()));
                    let _ = stopping.wait_for(|stop| *stop).await;
                    return;
                }
                Err(error) => {
                    self.context.outages.hub(false);
                    let delay = backoff.next_delay();
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

/// Reads one notice-log entry as stored in a dead letter (for a retry after an upgrade).
pub fn entry_from_bytes(payload: &[u8]) -> Result<LogEntry, Malformed> {
    let message = pb::NoticeLogEntry::decode(payload).map_err(|error| Malformed {
        cursor: 0,
        errors: ValidationErrors::single("entry", format!("cannot be decoded: {error}")),
    })?;
    entry_from_pb(message)
}

/// One entry of the hub's log, checked.
pub fn entry_from_pb(message: pb::NoticeLogEntry) -> Result<LogEntry, Malformed> {
    let cursor = message.cursor;
    match message.entry {
        Some(pb::notice_log_entry::Entry::Notice(notice)) => notice_from_pb(notice, cursor)
            .map(|notice| LogEntry::Notice(Box::new(notice)))
            .map_err(|errors| Malformed { cursor, errors }),
        Some(pb::notice_log_entry::Entry::Retraction(retraction)) => {
            if uuid::Uuid::try_parse(&retraction.notice_id).is_err() {
                return Err(Malformed {
                    cursor,
                    errors: ValidationErrors::single("retraction.notice_id", "is not a UUID"),
                });
            }
            Ok(LogEntry::Retraction {
                cursor,
                notice_id: retraction.notice_id,
            })
        }
        Some(pb::notice_log_entry::Entry::Coordination(change)) => {
            let mut errors = ValidationErrors::new();
            crate::hub::convert::coordination_from_pb(&change, "coordination", &mut errors)
                .map(|change| LogEntry::Coordination { cursor, change })
                .ok_or(Malformed { cursor, errors })
        }
        // A signal handed over by a region that left: opened by the consumer, which holds the
        // key (see `store_run`).
        Some(pb::notice_log_entry::Entry::Adoption(adoption)) => adoption_from_pb(adoption)
            .map(|adoption| LogEntry::Adoption {
                cursor,
                adoption: Box::new(adoption),
            })
            .map_err(|errors| Malformed { cursor, errors }),
        Some(pb::notice_log_entry::Entry::Head(_)) => Err(Malformed {
            cursor,
            errors: ValidationErrors::single("entry", "a head in the middle of the log"),
        }),
        None => Err(Malformed {
            cursor,
            errors: ValidationErrors::single("entry", "is required"),
        }),
    }
}

fn adoption_from_pb(adoption: pb::Adoption) -> Result<LoggedAdoption, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let signal_id = errors.check("adoption.signal_id", SignalId::parse(&adoption.signal_id));
    let revision = Revision::new(adoption.revision);
    if revision.is_none() {
        errors.add("adoption.revision", "must be at least 1");
    }
    let from_region_id = errors.check(
        "adoption.from_region_id",
        RegionId::parse(&adoption.from_region_id),
    );
    if adoption.sealed_record.is_empty() {
        errors.add("adoption.sealed_record", "is required");
    }
    let told_pairs: Vec<Option<ToldPair>> = adoption
        .told_pairs
        .iter()
        .enumerate()
        .map(|(index, pair)| {
            crate::hub::convert::told_pair_from_pb(
                pair,
                &format!("adoption.told_pairs[{index}]"),
                &mut errors,
            )
        })
        .collect();
    errors.clone().into_result()?;
    Ok(LoggedAdoption {
        signal_id: signal_id.ok_or_else(|| errors.clone())?,
        revision: revision.ok_or_else(|| errors.clone())?,
        from_region_id: from_region_id.ok_or_else(|| errors.clone())?,
        sealed_record: adoption.sealed_record,
        told_pairs: told_pairs
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or(errors)?,
    })
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
    // The name goes into notice e-mails (headers included): checked as the hub checks its
    // registry, so a hub bug or a tampered stream cannot inject a header or a line.
    let organisation_name = errors.check(
        "counterpart.organisation_name",
        OrganisationName::parse(&counterpart.organisation_name),
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
        organisation_name: organisation_name?,
        contact: contact?,
        signal_id: signal_id?,
        state: state?,
        region_id: region_id?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(counterpart_name: &str, professional_name: &str) -> pb::NoticeLogEntry {
        pb::NoticeLogEntry {
            cursor: 7,
            entry: Some(pb::notice_log_entry::Entry::Notice(pb::Notice {
                notice_id: uuid::Uuid::new_v4().to_string(),
                match_type: pb::MatchType::Youth.into(),
                kind: pb::NoticeKind::Match.into(),
                recipient_signal_id: SignalId::generate().to_string(),
                recipient_organisation_id: "jgz-north".into(),
                found_at: "2026-11-25T12:00:00Z".into(),
                counterpart: Some(pb::Counterpart {
                    organisation_id: "vt-south".into(),
                    organisation_name: counterpart_name.into(),
                    professional: Some(pb::ProfessionalContact {
                        professional_id: "v9".into(),
                        name: professional_name.into(),
                        email: "c.visser@veiligthuis-zuid.example.nl".into(),
                        phone: String::new(),
                    }),
                    signal_id: SignalId::generate().to_string(),
                    state: pb::SignalState::Active.into(),
                    region_id: "south".into(),
                }),
            })),
        }
    }

    #[test]
    fn a_good_notice_is_read_with_its_counterpart_name() {
        let entry = entry_from_pb(notice(" Veilig Thuis Zuid ", "C. Visser")).unwrap();
        let LogEntry::Notice(notice) = entry else {
            panic!("a notice");
        };
        assert_eq!(
            notice.counterpart.organisation_name.as_str(),
            "Veilig Thuis Zuid"
        );
    }

    #[test]
    fn a_counterpart_name_that_could_inject_an_email_header_is_refused() {
        for name in [
            "Veilig Thuis Zuid\r\nBcc: everyone@example.nl",
            "Zuid\u{0}",
            "",
            &"a".repeat(201),
        ] {
            let error = entry_from_pb(notice(name, "C. Visser")).unwrap_err();
            assert!(
                error.to_string().contains("counterpart.organisation_name"),
                "{name:?}: {error}"
            );
        }
    }

    #[test]
    fn a_counterpart_professional_name_with_a_line_break_is_refused() {
        let error = entry_from_pb(notice("Veilig Thuis Zuid", "C.\r\nBcc: x@y.nl")).unwrap_err();
        assert!(
            error.to_string().contains("counterpart.professional.name"),
            "{error}"
        );
    }

    fn adoption(told_pair_org: &str) -> pb::NoticeLogEntry {
        let key = || pb::Pseudonym {
            key_version: 1,
            digest: vec![7; 32],
        };
        pb::NoticeLogEntry {
            cursor: 9,
            entry: Some(pb::notice_log_entry::Entry::Adoption(pb::Adoption {
                signal_id: SignalId::generate().to_string(),
                revision: 3,
                from_region_id: "north".into(),
                sealed_record: vec![1; 64],
                told_pairs: vec![pb::ToldPair {
                    recipient_organisation_id: told_pair_org.into(),
                    recipient_subject_key: Some(key()),
                    counterpart_organisation_id: "vt-south".into(),
                    counterpart_subject_key: Some(key()),
                    match_type: pb::MatchType::Youth.into(),
                }],
            })),
        }
    }

    #[test]
    fn an_adoption_entry_is_checked_before_it_is_opened() {
        let read = entry_from_pb(adoption("jgz-north")).unwrap();
        let LogEntry::Adoption {
            cursor,
            adoption: read,
        } = read
        else {
            panic!("{read:?}");
        };
        assert_eq!(cursor, 9);
        assert_eq!(read.told_pairs.len(), 1);
        // Malformed: says what is wrong.
        let malformed = entry_from_pb(adoption("not an id")).unwrap_err();
        assert!(
            malformed
                .errors
                .to_string()
                .contains("adoption.told_pairs[0].recipient_organisation_id"),
            "{}",
            malformed.errors
        );
    }
}
