//! Notice e-mails over SMTP to a real server (aiosmtpd on loopback, STARTTLS with the dev
//! PKI's certificate): each notice mailed once to its professional with the other party's
//! details and nothing about the youth; nothing to an inactive recipient; a relay that went away
//! gets every mail once when it is back; the organisation's language.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::SignedDuration;
use vix_node::domain::OrganisationId;
use vix_node::domain::mail::Language;
use vix_node::region::mailer::{MailRound, Mailer};
use vix_node::store::SignalStore;
use vix_protocol::region::v1 as pb;
use vix_tests::smtp::{Mail, SmtpSink};
use vix_tests::{TestRegion, eventually, new_dir, pki, smtp_settings, spawn_region_with};

const YOUTH: &str = "999991383";
const SIBLING: &str = "999992065";
const OTHER_YOUTH: &str = "999995807";

/// The one mail to `address`, failing if there is none or more than one.
fn mail_to<'a>(mails: &'a [Mail], address: &str) -> &'a Mail {
    let to: Vec<&Mail> = mails
        .iter()
        .filter(|mail| mail.recipients == [address])
        .collect();
    assert_eq!(to.len(), 1, "mails to {address}: {mails:#?}");
    to[0]
}

/// A mailer for `region` whose rounds the test runs itself.
fn mailer(
    region: &TestRegion,
    port: u16,
    english: &[&str],
) -> Mailer<vix_node::store::region_database::RegionDatabase> {
    let languages: HashMap<OrganisationId, Language> = english
        .iter()
        .map(|org| (OrganisationId::parse(org).unwrap(), Language::English))
        .collect();
    Mailer::new(Arc::clone(&region.context), &smtp_settings(port), languages).unwrap()
}

async fn pending(region: &TestRegion) -> u64 {
    region.context.store.emails_pending().await.unwrap()
}

#[tokio::test]
async fn each_notice_is_mailed_once_to_its_professional_with_the_other_partys_details() {
    let sink = SmtpSink::start(pki(), true).await;
    let port = sink.port;
    let region = spawn_region_with("north", new_dir("north"), None, move |settings| {
        settings.smtp = Some(smtp_settings(port));
    })
    .await;
    let jgz = region.register_bsn("jgz-north", YOUTH, "mail-1").await;
    let school = region.register_bsn("school-north", YOUTH, "mail-2").await;
    // The node's own mailer sends both; the outbox empty is the watermark.
    eventually("both notice e-mails sent", || async {
        (sink.messages().len() >= 2 && pending(&region).await == 0).then_some(())
    })
    .await;
    let mails = sink.messages();
    assert_eq!(mails.len(), 2, "{mails:#?}");
    // Two registrations, and each send audited as the recipient's read of the other party's
    // contact.
    assert_eq!(region.audit_entries().await, 4);

    let to_jgz = mail_to(&mails, "p@jgz-north.example.nl");
    assert_eq!(
        to_jgz.header("From").as_deref(),
        Some("\"Verwijsindex Noord\" <noreply@vix-noord.example.nl>")
    );
    let to = to_jgz.header("To").unwrap();
    assert!(
        to.contains("Professional of jgz-north") && to.contains("<p@jgz-north.example.nl>"),
        "{to}"
    );
    assert_eq!(
        to_jgz.header("Subject").as_deref(),
        Some("Verwijsindex: match op uw signaal")
    );
    let notice = region.matches("jgz-north").await.remove(0);
    assert_eq!(
        to_jgz.header("Message-ID"),
        Some(format!("<{}@north.vix.invalid>", notice.notice_id))
    );
    let body = to_jgz.body();
    for expected in [
        format!("Uw signaal: {}", jgz.signal_id),
        "dezelfde jongere".to_owned(),
        "Organisatie: Noorderpoort College".to_owned(),
        "Naam: Professional of school-north".to_owned(),
        "E-mail: p@school-north.example.nl".to_owned(),
        format!("Signaal: {}", school.signal_id),
        "Status: actief".to_owned(),
        "Regio: north".to_owned(),
        "ouders of de jongere".to_owned(),
    ] {
        assert!(body.contains(&expected), "{expected:?} in\n{body}");
    }
    let to_school = mail_to(&mails, "p@school-north.example.nl");
    assert!(
        to_school
            .body()
            .contains(&format!("Signaal: {}", jgz.signal_id))
    );
    for mail in &mails {
        assert!(!mail.raw.contains(YOUTH), "a BSN in a mail");
    }

    // A changed contact is shown in the match, and mailed to nobody; a replayed registration
    // neither. The outbox empty again is the watermark after which nothing more may arrive.
    region
        .client("school-north")
        .update_signal(pb::UpdateSignalRequest {
            signal_id: school.signal_id.clone(),
            professional: Some(pb::ProfessionalContact {
                professional_id: "p2".into(),
                name: "Another professional".into(),
                email: "p2@school-north.example.nl".into(),
                phone: String::new(),
            }),
            acting_professional_id: "p2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    region.register_bsn("jgz-north", YOUTH, "mail-1").await;
    assert_eq!(pending(&region).await, 0);
    assert_eq!(sink.messages().len(), 2);
}

#[tokio::test]
async fn an_inactive_recipient_gets_no_mail_and_the_other_party_does() {
    let sink = SmtpSink::start(pki(), true).await;
    let region = spawn_region_with("north", new_dir("north"), None, |_| {}).await;
    let mailer = mailer(&region, sink.port, &[]);
    let jgz = region.register_bsn("jgz-north", YOUTH, "inactive-1").await;
    region
        .register_bsn("school-north", YOUTH, "inactive-2")
        .await;
    // JGZ's signal is archived before any mail went out: its professional is not mailed.
    region
        .client("jgz-north")
        .withdraw_signal(pb::WithdrawSignalRequest {
            signal_id: jgz.signal_id.clone(),
            reason: pb::WithdrawReason::RiskGone as i32,
            acting_professional_id: "p-jgz-north".into(),
        })
        .await
        .unwrap();
    let round = mailer.step().await.unwrap();
    assert_eq!(
        round,
        MailRound {
            claimed: 2,
            sent: 1,
            retried: 0,
            dropped: 1
        }
    );
    let mails = sink.messages();
    assert_eq!(mails.len(), 1);
    let to_school = mail_to(&mails, "p@school-north.example.nl");
    assert!(to_school.body().contains("Status: niet actief"));
    assert_eq!(mailer.step().await.unwrap(), MailRound::default());
    assert_eq!(pending(&region).await, 0);
}

#[tokio::test]
async fn mails_wait_while_the_relay_is_away_and_each_goes_once_when_it_is_back() {
    let mut sink = SmtpSink::start(pki(), true).await;
    sink.stop().await;
    let region = spawn_region_with("north", new_dir("north"), None, |_| {}).await;
    let mailer = mailer(&region, sink.port, &[]);
    for (n, youth) in [YOUTH, SIBLING, OTHER_YOUTH].into_iter().enumerate() {
        region
            .register_bsn("jgz-north", youth, &format!("away-jgz-{n}"))
            .await;
        region
            .register_bsn("school-north", youth, &format!("away-school-{n}"))
            .await;
    }
    let expected = u32::try_from(pending(&region).await).unwrap();
    assert!(expected >= 6, "{expected} mails");
    // The relay refuses connections: every mail is tried and put off, none lost.
    let round = mailer.step().await.unwrap();
    assert_eq!(
        (round.claimed, round.retried, round.sent),
        (expected, expected, 0)
    );
    // Put off: nothing is due until the retry delay has passed.
    assert_eq!(mailer.step().await.unwrap(), MailRound::default());
    region.clock.advance(SignedDuration::from_secs(1));
    let round = mailer.step().await.unwrap();
    assert_eq!(round.retried, expected, "tried again while still away");

    sink.run().await;
    region.clock.advance(SignedDuration::from_secs(1));
    let round = mailer.step().await.unwrap();
    assert_eq!((round.claimed, round.sent), (expected, expected));
    region.clock.advance(SignedDuration::from_secs(3600));
    assert_eq!(mailer.step().await.unwrap(), MailRound::default());
    let mails = sink.messages();
    assert_eq!(mails.len(), expected as usize);
    let ids: std::collections::HashSet<_> = mails
        .iter()
        .filter_map(|mail| mail.header("Message-ID"))
        .collect();
    assert_eq!(ids.len(), mails.len(), "a notice mailed twice");
}

#[tokio::test]
async fn an_organisation_that_chose_english_is_mailed_in_english() {
    let sink = SmtpSink::start(pki(), true).await;
    let region = spawn_region_with("north", new_dir("north"), None, |_| {}).await;
    let mailer = mailer(&region, sink.port, &["school-north"]);
    region.register_bsn("jgz-north", YOUTH, "lang-1").await;
    region.register_bsn("school-north", YOUTH, "lang-2").await;
    assert_eq!(mailer.step().await.unwrap().sent, 2);
    let mails = sink.messages();
    let english = mail_to(&mails, "p@school-north.example.nl");
    assert_eq!(
        english.header("Subject").as_deref(),
        Some("Referral index: a match on your signal")
    );
    assert!(
        english
            .body()
            .contains("after consulting the parents or the youth")
    );
    let dutch = mail_to(&mails, "p@jgz-north.example.nl");
    assert_eq!(
        dutch.header("Subject").as_deref(),
        Some("Verwijsindex: match op uw signaal")
    );
}

#[tokio::test]
async fn a_plain_relay_elsewhere_and_a_bad_sender_are_refused_at_start() {
    let region = spawn_region_with("north", new_dir("north"), None, |_| {}).await;
    let mut plain = smtp_settings(25);
    plain.security = vix_node::config::SmtpSecurity::Plain;
    plain.host = "smtp.example.nl".into();
    let error = Mailer::new(Arc::clone(&region.context), &plain, HashMap::new())
        .err()
        .expect("plain SMTP to another machine refused");
    assert!(error.to_string().contains("loopback"), "{error}");
    let mut sender = smtp_settings(25);
    sender.sender = "not a mailbox".into();
    let error = Mailer::new(Arc::clone(&region.context), &sender, HashMap::new())
        .err()
        .expect("a sender that is no mailbox refused");
    assert!(error.to_string().contains("region.smtp.sender"), "{error}");
}
