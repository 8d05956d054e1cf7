//! The region node's half of the PostgreSQL plan test (`plans_postgres`): every flow of the
//! region store once, and a schema filled with 20,000 signals and their rows to plan on.

use jiff::civil::date;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};
use vix_node::domain::LiveKeys;
use vix_node::domain::audit::Actor;
use vix_node::domain::contact::ContactInput;
use vix_node::domain::coordination::{CoordinationAction, Party};
use vix_node::domain::informing::InformingRecord;
use vix_node::domain::matching::{MatchType, NoticeKind};
use vix_node::domain::{
    FamilyKey, KeyVersion, MunicipalityCode, OrganisationId, OrganisationName, ProfessionalContact,
    RegionId, SignalId, SignalState, SubjectKey, ValidationErrors, WithdrawReason,
};
use vix_node::store::hub::{LogEntry, LoggedNotice};
use vix_node::store::postgres::testing::Schema;
use vix_node::store::{
    Acting, CounterpartView, MatchPage, NewSignal, SignalPage, SignalStore, SignalUpdate,
};

/// Region tables that grow with the region's signals.
pub(crate) const GROWING: [&str; 8] = [
    "signals",
    "signal_family_keys",
    "notices",
    "told_pairs",
    "email_jobs",
    "coordination",
    "deceased",
    "dead_letters",
];

fn contact(org: &str) -> ProfessionalContact {
    let mut errors = ValidationErrors::new();
    ProfessionalContact::parse(
        ContactInput {
            professional_id: "p1",
            name: "A. Plan",
            email: &format!("p1@{org}.example.nl"),
            phone: "",
        },
        "professional",
        &mut errors,
    )
    .unwrap()
}

fn now() -> jiff::Timestamp {
    "2026-11-25T12:00:00Z".parse().unwrap()
}

fn new_signal(org: &str, youth: u8, family: u8) -> NewSignal {
    let v1 = KeyVersion::new(1).unwrap();
    let signal_id = SignalId::generate();
    NewSignal {
        signal_id,
        request_key: format!("request-{signal_id}"),
        request_fingerprint: format!("fingerprint-{signal_id}"),
        organisation_id: OrganisationId::parse(org).unwrap(),
        organisation_name: OrganisationName::parse(org).unwrap(),
        contact: contact(org),
        subject_key: SubjectKey::new(v1, [youth; 32]),
        family_keys: vec![FamilyKey::new(v1, [family; 32])],
        birth_date: date(2012, 6, 1),
        registered_at: now(),
        planned_removal_date: date(2027, 11, 25),
        informing: InformingRecord::Informed {
            parents: true,
            youth: true,
            informed_on: date(2026, 11, 25),
        },
        rekeys: Default::default(),
        previous_request_fingerprints: Vec::new(),
    }
}

fn acting(org: &str) -> Acting {
    Acting {
        organisation_id: OrganisationId::parse(org).unwrap(),
        professional_id: "p1".into(),
    }
}

async fn created(store: &impl SignalStore, new: NewSignal) -> SignalId {
    match store.register(new).await.unwrap() {
        vix_node::store::Registered::Created { signal, .. } => signal.signal_id,
        other => panic!("not created: {other:?}"),
    }
}

/// Every flow of the region store once, on PostgreSQL.
pub(crate) async fn every_flow(schema: &Schema) {
    let store = schema
        .open_region(RegionId::parse("north").unwrap())
        .await
        .unwrap();
    let officer = Actor::Municipality {
        code: MunicipalityCode::parse("0014").unwrap(),
        officer_id: "officer".into(),
    };
    // Local matches (youth and family), a replay, a second active request.
    let a = created(&store, new_signal("jgz-north", 1, 9)).await;
    let b = created(&store, new_signal("school-north", 1, 9)).await;
    let c = created(&store, new_signal("school-north", 2, 9)).await;
    let replay = new_signal("jgz-north", 1, 9);
    store.register(replay.clone()).await.unwrap();
    store.register(replay).await.unwrap();
    let school = acting("school-north");
    let jgz = acting("jgz-north");
    store
        .matches(&jgz.organisation_id, None, MatchPage::all())
        .await
        .unwrap();
    let mine = store
        .matches(&school.organisation_id, Some(b), MatchPage::all())
        .await
        .unwrap();
    store
        .coordinate(
            &school,
            &mine[0].notice_id,
            CoordinationAction::NameRegievoerder(Party::Own),
            now(),
        )
        .await
        .unwrap();
    store.record_lookup(&school, vec![a], now()).await.unwrap();
    store
        .update(
            &jgz,
            a,
            SignalUpdate {
                planned_removal_date: Some(date(2027, 6, 1)),
                ..Default::default()
            },
            now(),
        )
        .await
        .unwrap();
    let subject = SubjectKey::new(KeyVersion::new(1).unwrap(), [1; 32]);
    store
        .correct(
            &LiveKeys::one(subject),
            a,
            SignalUpdate::default(),
            &officer,
            "ref",
            now(),
        )
        .await
        .unwrap();
    store
        .signals_of_subject(
            &LiveKeys::one(subject),
            SignalPage {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    // The hub's log: a notice, the same again, a coordination change, a retraction.
    let counterpart = CounterpartView {
        organisation_id: OrganisationId::parse("vt-south").unwrap(),
        organisation_name: OrganisationName::parse("vt-south").unwrap(),
        contact: contact("vt-south"),
        signal_id: SignalId::generate(),
        state: SignalState::Active,
        region_id: RegionId::parse("south").unwrap(),
    };
    let notice = LoggedNotice {
        cursor: 1,
        notice_id: "hub-notice-1".into(),
        match_type: MatchType::Youth,
        kind: NoticeKind::Match,
        recipient_signal_id: c,
        recipient_organisation_id: school.organisation_id.clone(),
        found_at: now(),
        counterpart: counterpart.clone(),
    };
    store
        .store_hub_log(vec![LogEntry::Notice(Box::new(notice.clone()))], now())
        .await
        .unwrap();
    store.store_hub_notice(notice, now()).await.unwrap();
    store
        .coordinate(
            &school,
            "hub-notice-1",
            CoordinationAction::MarkAfgestemd,
            now(),
        )
        .await
        .unwrap();
    let changes = store.coordination_outbox_batch(10).await.unwrap();
    store
        .coordination_outbox_remove(changes.iter().map(|(seq, _)| *seq).collect())
        .await
        .unwrap();
    store
        .store_hub_log(
            vec![LogEntry::Retraction {
                cursor: 2,
                notice_id: "hub-notice-1".into(),
            }],
            now(),
        )
        .await
        .unwrap();
    store.adopt_hub_epoch("epoch".into()).await.unwrap();
    store.hub_log_position().await.unwrap();
    // Dead letters of each kind, retried and removed.
    let queued = store.outbox_batch(100).await.unwrap();
    store
        .quarantine_outbox(queued[0].seq, "refused".into(), now())
        .await
        .unwrap();
    store
        .quarantine_hub_entry(3, vec![1, 2, 3], "unreadable".into(), now())
        .await
        .unwrap();
    for letter in store.dead_letters(0, 10).await.unwrap() {
        store.retry_dead_letter(letter.id).await.unwrap();
        store.remove_dead_letter(letter.id).await.unwrap();
    }
    store.dead_letter_count().await.unwrap();
    store.outbox_len().await.unwrap();
    let queued = store.outbox_batch(100).await.unwrap();
    store
        .outbox_remove(queued.iter().map(|entry| entry.seq).collect())
        .await
        .unwrap();
    // The e-mail outbox: claimed, one sent, one put off, one dropped.
    let claimed = store
        .claim_emails(now(), std::time::Duration::from_secs(60), 10)
        .await
        .unwrap();
    let recipient = acting("school-north");
    for (n, job) in claimed.iter().enumerate() {
        match n % 3 {
            0 => {
                store
                    .email_sent(&job.notice_id, &recipient, vec![a, b], now())
                    .await
                    .unwrap();
            }
            1 => store.email_retry(&job.notice_id, now()).await.unwrap(),
            _ => store.email_dropped(&job.notice_id).await.unwrap(),
        }
    }
    store.emails_pending().await.unwrap();
    // Withdrawal of both kinds, erasure, death, and the lifecycle over years.
    store
        .withdraw(&school, b, WithdrawReason::RiskGone, now())
        .await
        .unwrap();
    store
        .withdraw(&jgz, a, WithdrawReason::Unjustified, now())
        .await
        .unwrap();
    let d = created(&store, new_signal("jgz-north", 3, 8)).await;
    let youth_3 = SubjectKey::new(KeyVersion::new(1).unwrap(), [3; 32]);
    store
        .erase(&LiveKeys::one(youth_3), &[d], &officer, "ref", now())
        .await
        .unwrap();
    created(&store, new_signal("jgz-north", 4, 8)).await;
    let youth_4 = SubjectKey::new(KeyVersion::new(1).unwrap(), [4; 32]);
    store
        .record_death(&LiveKeys::one(youth_4), now())
        .await
        .unwrap();
    store.sweep(date(2027, 12, 1), 100).await.unwrap();
    store.sweep(date(2033, 12, 1), 100).await.unwrap();
    store.verify_audit().await.unwrap();
    store.close().await;
}

/// A region schema with 20,000 signals, their family keys, notices, e-mail jobs, told pairs,
/// coordination, deceased youths and dead letters, statistics gathered.
pub(crate) async fn filled() -> Schema {
    let schema = Schema::create().await.unwrap();
    schema
        .open_region(RegionId::parse("north").unwrap())
        .await
        .unwrap()
        .close()
        .await;
    let mut conn = PgConnection::connect_with(&schema.options().unwrap())
        .await
        .unwrap();
    for statement in [
        "INSERT INTO signals SELECT 's' || n, 1, 'org' || (n % 50), 'Org', 'p1', 'P', 'p@x.nl', \
             NULL, 'k' || (n / 2), '2012-06-01', 1764000000000000 + n, '2028-01-01', \
             CASE WHEN n % 4 = 0 THEN 'inactive' ELSE 'active' END, \
             CASE WHEN n % 4 = 0 THEN '2026-01-01' END, 'informed', true, true, '2026-01-01', \
             NULL, 'r' || n, 'f' || n \
         FROM generate_series(1, 20000) n",
        "INSERT INTO signal_family_keys SELECT 's' || n, 'f' || (n / 3) \
         FROM generate_series(1, 20000) n",
        "INSERT INTO notices SELECT 'n' || n, 'node', 's' || n, 'org1', 'k' || n, \
             's' || (n + 1), 'org2', 'north', 'k' || (n + 1), NULL, NULL, NULL, NULL, NULL, \
             NULL, 'youth', 'match', n FROM generate_series(1, 19999) n",
        "INSERT INTO email_jobs SELECT 'n' || n, n FROM generate_series(1, 19999) n",
        "INSERT INTO told_pairs SELECT 'org1', 'k' || n, 'org2', 'k' || (n + 1), 'youth' \
         FROM generate_series(1, 20000) n",
        "INSERT INTO coordination SELECT 's' || n, 's' || n || 'x', NULL, NULL, NULL, true, \
             false FROM generate_series(1, 20000) n",
        "INSERT INTO deceased SELECT 'd' || n, n FROM generate_series(1, 20000) n",
        "INSERT INTO dead_letters (source, position, signal_id, revision, payload, reason, \
             quarantined_at) \
         SELECT 'outbox', n, 's' || n, 1, '\\x00', 'refused', n \
         FROM generate_series(1, 20000) n",
        "ANALYZE",
    ] {
        conn.execute(statement).await.unwrap();
    }
    conn.close().await.unwrap();
    schema
}
