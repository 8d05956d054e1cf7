//! Sends the notice e-mails of the e-mail outbox to the professionals over SMTP (DOMAIN.md
//! section 5, Delivery: "the professionals get an e-mail").
//!
//! Each round claims a batch of due jobs (so another instance of the node leaves them alone),
//! composes each in its organisation's language (`domain::mail`), sends it, and marks it sent
//! in the transaction that audits the send as the recipient's read of the counterpart's
//! contact. A job whose recipient signal is inactive, due to become so, or gone is dropped: no
//! mail to an inactive or deleted recipient. A failed send is tried again with backoff.
//!
//! One mail per notice: a job exists once per notice (a notice sent again by the hub, refreshed
//! or moved, makes none), and a sent job is never claimed again. The one duplicate possible is
//! a crash after the relay accepted a mail and before the commit that marks it sent: the job is
//! sent again when its claim runs out, at most once per crash for each mail of the batch in
//! flight. Every mail of a notice carries the same Message-ID, so a mail client shows such a
//! duplicate once.
//!
//! Logs name notices, never an address, a name or a relay's reply (which may quote the
//! address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::watch;

use super::RegionContext;
use crate::config::{SmtpSecurity, SmtpSettings};
use crate::domain::lifecycle::{self, Due, LifecycleDates};
use crate::domain::mail::{self, Language, MailCounterpart, NoticeMail};
use crate::domain::{OrganisationId, SignalState};
use crate::store::{Acting, ClaimedEmail, MatchPage, SignalStore, StoreError};

/// The first wait before a failed mail is tried again; each failure doubles it.
const RETRY_DELAY_FIRST: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("region.smtp.sender is not a mailbox: {0}")]
    Sender(#[source] lettre::address::AddressError),
    #[error(
        "region.smtp.security = \"plain\" sends without TLS, allowed only to a relay on this \
         machine (localhost or a loopback address), not {0:?}"
    )]
    PlainToRemote(String),
    #[error("region.smtp.credentials_file {path}: {reason}")]
    Credentials { path: String, reason: String },
    #[error("region.smtp.ca_file {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("region.smtp: {0}")]
    Tls(#[source] lettre::transport::smtp::Error),
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MailRound {
    pub claimed: u32,
    pub sent: u32,
    pub retried: u32,
    pub dropped: u32,
}

pub struct Mailer<S> {
    context: Arc<RegionContext<S>>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    sender: Mailbox,
    languages: HashMap<OrganisationId, Language>,
    batch: u32,
    lease: Duration,
    retry_delay_max: Duration,
    poll: Duration,
}

/// A mail ready to send, with what its send audits.
struct Prepared {
    message: Message,
    recipient: Acting,
    signal_ids: Vec<crate::domain::SignalId>,
}

impl<S: SignalStore> Mailer<S> {
    /// A mailer for the relay `settings` name; `languages` gives each organisation's language
    /// (Dutch for one not listed).
    pub fn new(
        context: Arc<RegionContext<S>>,
        settings: &SmtpSettings,
        languages: HashMap<OrganisationId, Language>,
    ) -> Result<Self, MailerError> {
        let sender: Mailbox = settings.sender.parse().map_err(MailerError::Sender)?;
        let timeout = Duration::from_millis(settings.timeout_ms.max(1));
        let tls = match settings.security {
            SmtpSecurity::Plain => {
                if !is_loopback(&settings.host) {
                    return Err(MailerError::PlainToRemote(settings.host.clone()));
                }
                Tls::None
            }
            SmtpSecurity::Starttls => Tls::Required(tls_parameters(settings)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(settings)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(path) = &settings.credentials_file {
            builder = builder.credentials(read_credentials(path)?);
        }
        Ok(Self {
            context,
            transport: builder.build(),
            sender,
            languages,
            batch: settings.batch.max(1),
            lease: Duration::from_millis(settings.claim_ms.max(1)),
            retry_delay_max: Duration::from_millis(settings.retry_delay_max_ms.max(1)),
            poll: Duration::from_millis(settings.poll_ms.max(10)),
        })
    }

    /// One round: claims a batch of due mails and sends each, or drops or reschedules it.
    pub async fn step(&self) -> Result<MailRound, StoreError> {
        let store = &self.context.store;
        let now = self.context.clock.now();
        let claimed = store.claim_emails(now, self.lease, self.batch).await?;
        let mut round = MailRound {
            claimed: u32::try_from(claimed.len()).unwrap_or(u32::MAX),
            ..MailRound::default()
        };
        for job in claimed {
            let Some(prepared) = self.prepare(&job).await? else {
                store.email_dropped(&job.notice_id).await?;
                round.dropped += 1;
                continue;
            };
            match self.transport.send(prepared.message).await {
                Ok(_) => {
                    let sent_at = self.context.clock.now();
                    store
                        .email_sent(
                            &job.notice_id,
                            &prepared.recipient,
                            prepared.signal_ids,
                            sent_at,
                        )
                        .await?;
                    tracing::info!(notice_id = %job.notice_id, "notice e-mail sent");
                    metrics::counter!(
                        "vix_emails_sent_total",
                        "region" => self.context.region_id.to_string(),
                    )
                    .increment(1);
                    round.sent += 1;
                }
                Err(error) => {
                    let delay = retry_delay(job.attempts, self.retry_delay_max);
                    // The relay's reply is left out: it may quote the address.
                    tracing::warn!(
                        notice_id = %job.notice_id,
                        attempts = job.attempts + 1,
                        code = ?error.status(),
                        permanent = error.is_permanent(),
                        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "notice e-mail not sent; will retry"
                    );
                    let at = jiff::SignedDuration::try_from(delay)
                        .ok()
                        .and_then(|delay| now.checked_add(delay).ok())
                        .unwrap_or(now);
                    store.email_retry(&job.notice_id, at).await?;
                    metrics::counter!(
                        "vix_email_failures_total",
                        "region" => self.context.region_id.to_string(),
                        "permanent" => if error.is_permanent() { "true" } else { "false" },
                    )
                    .increment(1);
                    round.retried += 1;
                }
            }
        }
        Ok(round)
    }

    /// Sends until `stopping` turns true: a round, then (unless the batch was full) a wait for
    /// a new notice or `poll_ms`.
    pub async fn run(self, mut stopping: watch::Receiver<bool>) {
        let mut stored = self.context.notices_stored.subscribe();
        while !*stopping.borrow() {
            let full = match self.step().await {
                Ok(round) => round.claimed >= self.batch,
                Err(error) => {
                    tracing::warn!(error = %crate::telemetry::error_chain(&error), "e-mail round failed; will retry");
                    false
                }
            };
            if full {
                continue;
            }
            tokio::select! {
                () = self.context.mail_ready.notified() => {}
                _ = stored.changed() => {}
                () = tokio::time::sleep(self.poll) => {}
                _ = stopping.changed() => {}
            }
        }
    }

    /// The mail for `job`, or `None` when there is nobody to mail: the recipient signal is
    /// gone, inactive or due to become so, or the notice is gone.
    async fn prepare(&self, job: &ClaimedEmail) -> Result<Option<Prepared>, StoreError> {
        let store = &self.context.store;
        let Some(recipient) = store
            .signal(job.recipient_signal_id)
            .await?
            .filter(|signal| signal.organisation_id == job.recipient_organisation_id)
        else {
            return Ok(None);
        };
        let today = crate::domain::clock::local_date(self.context.clock.now());
        let dates = LifecycleDates {
            state: recipient.state,
            planned_removal_date: recipient.planned_removal_date,
            inactive_since: recipient.inactive_since,
            birth_date: Some(recipient.birth_date),
        };
        if recipient.state != SignalState::Active || lifecycle::due(dates, today) != Due::Nothing {
            return Ok(None);
        }
        let Some(view) = store
            .matches(
                &recipient.organisation_id,
                Some(recipient.signal_id),
                MatchPage::all(),
            )
            .await?
            .into_iter()
            .find(|view| view.notice_id == job.notice_id)
        else {
            return Ok(None);
        };
        let language = self
            .languages
            .get(&recipient.organisation_id)
            .copied()
            .unwrap_or_default();
        let composed = mail::compose(
            &NoticeMail {
                signal_id: recipient.signal_id,
                match_type: view.match_type,
                kind: view.kind,
                counterpart: MailCounterpart {
                    organisation_name: view.counterpart.organisation_name.clone(),
                    contact: view.counterpart.contact.clone(),
                    signal_id: view.counterpart.signal_id,
                    state: view.counterpart.state,
                    region_id: view.counterpart.region_id.clone(),
                },
            },
            language,
        );
        let Some(message) = notice_message(
            self.sender.clone(),
            recipient.contact.name(),
            recipient.contact.email(),
            composed,
            format!("<{}@{}.vix.invalid>", job.notice_id, self.context.region_id),
        ) else {
            tracing::warn!(notice_id = %job.notice_id, "recipient unusable for a mail; e-mail dropped");
            return Ok(None);
        };
        Ok(Some(Prepared {
            message,
            recipient: Acting {
                organisation_id: recipient.organisation_id.clone(),
                professional_id: recipient.contact.professional_id().to_owned(),
            },
            signal_ids: vec![recipient.signal_id, view.counterpart.signal_id],
        }))
    }
}

/// The message to `name` at `email`, built with the library's header types. `None` when the
/// name holds a control character or the address does not parse: both were refused when the
/// contact was registered, and the library would fail (not encode) on a line break in a header.
fn notice_message(
    sender: Mailbox,
    name: &str,
    email: &str,
    composed: mail::Composed,
    message_id: String,
) -> Option<Message> {
    if name.chars().any(char::is_control) || composed.subject.chars().any(char::is_control) {
        return None;
    }
    let address = email.parse::<Address>().ok()?;
    Message::builder()
        .from(sender)
        .to(Mailbox::new(Some(name.to_owned()), address))
        .subject(composed.subject)
        .message_id(Some(message_id))
        .header(ContentType::TEXT_PLAIN)
        .body(composed.body)
        .ok()
}

/// The wait after `attempts` failed tries: doubling from [`RETRY_DELAY_FIRST`], at most `max`.
fn retry_delay(attempts: u32, max: Duration) -> Duration {
    RETRY_DELAY_FIRST
        .saturating_mul(1u32 << attempts.min(16))
        .min(max)
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn tls_parameters(settings: &SmtpSettings) -> Result<TlsParameters, MailerError> {
    let mut builder = TlsParameters::builder(settings.host.clone());
    if let Some(path) = &settings.ca_file {
        let ca = |reason: String| MailerError::Ca {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|error| ca(error.to_string()))?;
        let certificate = Certificate::from_pem(&pem).map_err(|error| ca(error.to_string()))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build_rustls().map_err(MailerError::Tls)
}

fn read_credentials(path: &std::path::Path) -> Result<Credentials, MailerError> {
    let refuse = |reason: &str| MailerError::Credentials {
        path: path.display().to_string(),
        reason: reason.to_owned(),
    };
    let text = std::fs::read_to_string(path).map_err(|_| refuse("cannot be read"))?;
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(user), Some(password)) if !user.trim().is_empty() && !password.is_empty() => Ok(
            Credentials::new(user.trim().to_owned(), password.to_owned()),
        ),
        _ => Err(refuse(
            "must hold the user name on the first line and the password on the second",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_up_to_the_maximum() {
        let max = Duration::from_secs(3600);
        assert_eq!(retry_delay(0, max), Duration::from_secs(30));
        assert_eq!(retry_delay(1, max), Duration::from_secs(60));
        assert_eq!(retry_delay(3, max), Duration::from_secs(240));
        assert_eq!(retry_delay(10, max), max);
        assert_eq!(retry_delay(u32::MAX, max), max);
        assert_eq!(
            retry_delay(0, Duration::from_millis(200)),
            Duration::from_millis(200)
        );
    }

    fn composed(subject: &str) -> mail::Composed {
        mail::Composed {
            subject: subject.to_owned(),
            body: "Beste professional,\n".to_owned(),
        }
    }

    fn sender() -> Mailbox {
        "Verwijsindex <noreply@example.nl>".parse().unwrap()
    }

    #[test]
    fn a_line_break_in_a_name_or_subject_cannot_add_a_header() {
        for (name, subject) in [
            ("Eve\r\nBcc: mallory@example.org", "Match"),
            ("Eve\nBcc: mallory@example.org", "Match"),
            ("Eve", "Match\r\nBcc: mallory@example.org"),
        ] {
            let message = notice_message(
                sender(),
                name,
                "eve@example.nl",
                composed(subject),
                "<n1@north.vix.invalid>".into(),
            );
            assert!(message.is_none(), "{name:?} / {subject:?}");
        }
        assert!(
            notice_message(
                sender(),
                "Eve",
                "eve@example.nl>\r\nBcc: mallory@example.org",
                composed("Match"),
                "<n1@north.vix.invalid>".into(),
            )
            .is_none()
        );
    }

    #[test]
    fn a_name_outside_ascii_is_encoded_into_one_header() {
        let message = notice_message(
            sender(),
            "Zoë Ã§ \"de\" Vries",
            "zoe@example.nl",
            composed("Verwijsindex: match op uw signaal"),
            "<n1@north.vix.invalid>".into(),
        )
        .unwrap();
        let formatted = String::from_utf8(message.formatted()).unwrap();
        let head = formatted.split("\r\n\r\n").next().unwrap();
        let to: Vec<&str> = head
            .split("\r\n")
            .filter(|line| line.to_ascii_lowercase().starts_with("to:"))
            .collect();
        assert_eq!(to.len(), 1, "{head}");
        assert!(to[0].contains("<zoe@example.nl>"), "{head}");
        assert!(head.is_ascii(), "{head}");
        assert!(
            head.contains("Message-ID: <n1@north.vix.invalid>"),
            "{head}"
        );
    }

    #[test]
    fn plain_smtp_only_to_this_machine() {
        for host in ["localhost", "127.0.0.1", "::1", "[::1]"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["smtp.example.nl", "10.0.0.1", "localhost.example.nl"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
