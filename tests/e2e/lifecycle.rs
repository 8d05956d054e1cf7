//! The lifecycle of DOMAIN.md section 4 on real nodes, driven by their clocks: years pass in
//! milliseconds, and no request ever sees a signal past its date.

use jiff::civil::{Date, date};
use tonic::Code;
use vix_node::domain::Clock;
use vix_node::store::SignalStore;
use vix_protocol::region::v1 as pb;
use vix_tests::{TestRegion, eventually, spawn_hub, spawn_linked_region, spawn_region};

const YOUTH: &str = "999991383";
/// Born 2018: a youth through every year of these tests.
const YOUNG: &str = "999995807";
/// Born 2003-12-02: 23 a week after the test day.
const ALMOST_23: &str = "999997853";

use vix_tests::professional as contact;

async fn register(region: &TestRegion, org: &str, bsn: &str, removal: &str) -> pb::Signal {
    region
        .client(org)
        .register_signal(pb::RegisterSignalRequest {
            request_id: format!("{org}-{bsn}-{}", region.clock.today()),
            youth: Some(pb::register_signal_request::Youth::Bsn(bsn.into())),
            professional: Some(contact(org)),
            planned_removal_date: removal.into(),
            informing: Some(vix_tests::informing_for(bsn, region.clock.today())),
        })
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap()
}

async fn get(
    region: &TestRegion,
    org: &str,
    signal: &pb::Signal,
) -> Result<pb::Signal, tonic::Status> {
    region
        .client(org)
        .get_signal(pb::GetSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: signal.signal_id.clone(),
        })
        .await
        .map(|response| response.into_inner().signal.unwrap())
}

fn set_day(region: &TestRegion, day: Date) {
    region
        .clock
        .set(vix_node::domain::ManualClock::at_noon(day).now());
}

#[tokio::test]
async fn a_signal_runs_through_seven_years_of_lifecycle() {
    let started = std::time::Instant::now();
    let north = spawn_region("north").await;
    let jgz = register(&north, "jgz-north", YOUNG, "2027-06-01").await;

    // The day before R: still active.
    set_day(&north, date(2027, 5, 31));
    assert_eq!(
        get(&north, "jgz-north", &jgz).await.unwrap().state,
        pb::SignalState::Active as i32
    );

    // On R: inactive since R, and a new revision owed to the hub.
    set_day(&north, date(2027, 6, 1));
    let archived = get(&north, "jgz-north", &jgz).await.unwrap();
    assert_eq!(archived.state, pb::SignalState::Inactive as i32);
    assert_eq!(archived.inactive_since, "2027-06-01");
    assert_eq!(archived.revision, 2);

    // A new party meets the archived signal: a one-sided history notice with its contact.
    set_day(&north, date(2028, 3, 1));
    let school = north
        .client("school-north")
        .register_signal(pb::RegisterSignalRequest {
            request_id: "later".into(),
            youth: Some(pb::register_signal_request::Youth::Bsn(YOUNG.into())),
            professional: Some(contact("school-north")),
            planned_removal_date: String::new(),
            informing: Some(vix_tests::informing_for(YOUNG, date(2028, 3, 1))),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!school.already_registered && !school.replayed);
    let seen = north.matches("school-north").await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].kind, pb::NoticeKind::History as i32);
    let counterpart = seen[0].counterpart.as_ref().unwrap();
    assert_eq!(counterpart.signal_id, jgz.signal_id);
    assert_eq!(counterpart.state, pb::SignalState::Inactive as i32);
    assert_eq!(
        counterpart.professional.as_ref().unwrap(),
        &contact("jgz-north")
    );
    assert!(
        north.matches("jgz-north").await.is_empty(),
        "the archived owner is told nothing"
    );

    // Five years after R: deleted, with every notice that named it.
    set_day(&north, date(2032, 5, 31));
    assert!(get(&north, "jgz-north", &jgz).await.is_ok());
    set_day(&north, date(2032, 6, 1));
    assert_eq!(
        get(&north, "jgz-north", &jgz).await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(north.matches("school-north").await.is_empty());
    eprintln!("seven years of lifecycle in {:?}", started.elapsed());
}

#[tokio::test]
async fn no_notice_email_goes_to_the_owner_of_a_signal_past_its_date_before_the_sweep() {
    use vix_node::store::hub::LoggedNotice;
    use vix_node::store::{CounterpartView, NoticeDelivery};
    let north = spawn_region("north").await;
    let jgz = register(&north, "jgz-north", YOUTH, "2027-01-01").await;
    // A notice from the hub arrives on R, before the node's sweep of that day ran.
    let on_r = vix_node::domain::ManualClock::at_noon(date(2027, 1, 1)).now();
    let notice = LoggedNotice {
        cursor: 1,
        notice_id: "3f2e1d0c-9b8a-4765-8432-10fedcba9876".into(),
        match_type: vix_node::domain::matching::MatchType::Youth,
        kind: vix_node::domain::matching::NoticeKind::Match,
        recipient_signal_id: vix_node::domain::SignalId::parse(&jgz.signal_id).unwrap(),
        recipient_organisation_id: vix_node::domain::OrganisationId::parse("jgz-north").unwrap(),
        found_at: on_r,
        counterpart: CounterpartView {
            organisation_id: vix_node::domain::OrganisationId::parse("vt-south").unwrap(),
            organisation_name: vix_node::domain::OrganisationName::parse("Veilig Thuis Zuid")
                .unwrap(),
            contact: vix_node::domain::ProfessionalContact::from_stored(
                "v9".into(),
                "C. Visser".into(),
                "c.visser@vt-zuid.example.nl".into(),
                None,
            ),
            signal_id: vix_node::domain::SignalId::generate(),
            state: vix_node::domain::SignalState::Active,
            region_id: vix_node::domain::RegionId::parse("south").unwrap(),
        },
    };
    let delivery = north
        .context
        .store
        .store_hub_notice(notice, on_r)
        .await
        .unwrap();
    assert_eq!(delivery, NoticeDelivery::Stored { emailed: false });
    assert_eq!(north.row_counts().await["email_jobs"], 0);
}

#[tokio::test]
async fn every_signal_on_a_youth_is_deleted_on_the_23rd_birthday() {
    let north = spawn_region("north").await;
    let jgz = register(&north, "jgz-north", ALMOST_23, "").await;
    let school = register(&north, "school-north", ALMOST_23, "").await;
    // An archived one goes too.
    north
        .client("school-north")
        .withdraw_signal(pb::WithdrawSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: school.signal_id.clone(),
            reason: pb::WithdrawReason::RiskGone as i32,
        })
        .await
        .unwrap();
    set_day(&north, date(2026, 12, 1));
    assert!(get(&north, "jgz-north", &jgz).await.is_ok());
    set_day(&north, date(2026, 12, 2));
    assert_eq!(
        get(&north, "jgz-north", &jgz).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        get(&north, "school-north", &school)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(north.row_counts().await["signals"], 0);
    assert_eq!(north.row_counts().await["notices"], 0);
    // The hub is owed the deletions, and nothing of the signals' contacts remains queued.
    let outbox = north.context.store.outbox_batch(100).await.unwrap();
    assert!(outbox.iter().all(|entry| matches!(
        entry.event,
        Some(vix_node::store::outbox::OutboxEvent::Delete { .. })
    )));
}

#[tokio::test]
async fn an_unjustified_signal_is_retracted_from_the_other_region() {
    // DOMAIN.md worked example 6.
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    let east = spawn_linked_region("east", &hub).await;
    let wrong = register(&north, "jgz-north", YOUTH, "").await;
    register(&south, "vt-south", YOUTH, "").await;
    eventually("B told about A", || async {
        (south.matches("vt-south").await.len() == 1).then_some(())
    })
    .await;
    assert_eq!(south.row_counts().await["email_jobs"], 1);

    north
        .client("jgz-north")
        .withdraw_signal(pb::WithdrawSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: wrong.signal_id.clone(),
            reason: pb::WithdrawReason::Unjustified as i32,
        })
        .await
        .unwrap();
    eventually("B's notice about A retracted", || async {
        south.matches("vt-south").await.is_empty().then_some(())
    })
    .await;
    assert_eq!(south.row_counts().await["notices"], 0);

    // C registers on the youth: C and B are told about each other, nobody about A.
    register(&east, "wijkteam-east", YOUTH, "").await;
    let at_east = eventually("C told about B", || async {
        let seen = east.matches("wijkteam-east").await;
        (!seen.is_empty()).then_some(seen)
    })
    .await;
    let at_south = eventually("B told about C", || async {
        let seen = south.matches("vt-south").await;
        (!seen.is_empty()).then_some(seen)
    })
    .await;
    east.quiet().await;
    assert_eq!(east.matches("wijkteam-east").await.len(), 1);
    assert_eq!(south.matches("vt-south").await.len(), 1);
    assert_eq!(
        at_east[0].counterpart.as_ref().unwrap().organisation_id,
        "vt-south"
    );
    assert_eq!(
        at_south[0].counterpart.as_ref().unwrap().organisation_id,
        "wijkteam-east"
    );
}

#[tokio::test]
async fn the_hub_expires_signals_itself_and_shows_them_as_history() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    register(&north, "jgz-north", YOUTH, "2027-01-01").await;
    eventually("the north signal at the hub", || async {
        (north.row_counts().await["outbox"] == 0).then_some(())
    })
    .await;
    // Only the hub's and south's days move: north says nothing about the expiry.
    set_day_hub(&hub, date(2027, 1, 1));
    set_day(&south, date(2027, 1, 1));
    register(&south, "vt-south", YOUTH, "").await;
    let at_south = eventually("south told about the archived north signal", || async {
        let seen = south.matches("vt-south").await;
        (!seen.is_empty()).then_some(seen)
    })
    .await;
    assert_eq!(at_south[0].kind, pb::NoticeKind::History as i32);
    assert_eq!(
        at_south[0].counterpart.as_ref().unwrap().state,
        pb::SignalState::Inactive as i32
    );
    north.quiet().await;
    assert!(
        north.matches("jgz-north").await.is_empty(),
        "the archived owner is told nothing"
    );
}

fn set_day_hub(hub: &vix_tests::TestHub, day: Date) {
    hub.clock
        .set(vix_node::domain::ManualClock::at_noon(day).now());
}

/// Whether `needle` occurs in the SQLite database `db` or its WAL and shared-memory files.
fn database_holds(db: &std::path::Path, needle: &str) -> bool {
    ["", "-wal", "-shm"].iter().any(|suffix| {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        std::fs::read(&path)
            .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .unwrap_or(false)
    })
}

#[tokio::test]
async fn a_deleted_signal_leaves_no_contact_in_the_node_or_hub_database_files() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    let email = "retentie.proef@jgz-noord.example.nl";
    let name = "Retentie Proef";
    let signal = north
        .client("jgz-north")
        .register_signal(pb::RegisterSignalRequest {
            request_id: "retention".into(),
            youth: Some(pb::register_signal_request::Youth::Bsn(YOUTH.into())),
            professional: Some(pb::ProfessionalContact {
                professional_id: "p-ret".into(),
                name: name.into(),
                email: email.into(),
                phone: "+31 6 1234 5678".into(),
            }),
            planned_removal_date: String::new(),
            informing: Some(vix_tests::informing_for(YOUTH, vix_tests::test_day())),
        })
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap();
    register(&north, "school-north", YOUTH, "").await;
    register(&south, "vt-south", YOUTH, "").await;
    // South is told about both northern parties.
    eventually("south told about the signal", || async {
        (south.matches("vt-south").await.len() == 2).then_some(())
    })
    .await;
    let north_db = north.dir.path().join("region-north.sqlite");
    let hub_db = hub.dir.path().join("hub.sqlite");
    let south_db = south.dir.path().join("region-south.sqlite");
    // The scan finds the contact while it is there.
    for db in [&north_db, &hub_db, &south_db] {
        assert!(
            database_holds(db, email),
            "{} holds the contact",
            db.display()
        );
    }

    north
        .client("jgz-north")
        .withdraw_signal(pb::WithdrawSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: signal.signal_id.clone(),
            reason: pb::WithdrawReason::Unjustified as i32,
        })
        .await
        .unwrap();
    eventually("the deletion retracted at south", || async {
        (south.matches("vt-south").await.len() == 1).then_some(())
    })
    .await;
    // A reader holding an old snapshot can delay the WAL's truncation; the writer retries it,
    // so the contact must be gone from every file shortly, not at some later deletion.
    eventually("no contact left in any database file", || async {
        let left: Vec<String> = [&north_db, &hub_db, &south_db]
            .iter()
            .flat_map(|db| {
                [email, name, "+31 6 1234 5678"]
                    .into_iter()
                    .filter(|needle| database_holds(db, needle))
                    .map(move |needle| format!("{} holds {needle}", db.display()))
            })
            .collect();
        left.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_signal_withdrawn_as_risk_gone_is_archived_at_the_hub_too() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    let jgz = register(&north, "jgz-north", YOUTH, "").await;
    north
        .client("jgz-north")
        .withdraw_signal(pb::WithdrawSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: jgz.signal_id.clone(),
            reason: pb::WithdrawReason::RiskGone as i32,
        })
        .await
        .unwrap();
    eventually("the archive at the hub", || async {
        (north.row_counts().await["outbox"] == 0).then_some(())
    })
    .await;
    register(&south, "vt-south", YOUTH, "").await;
    let seen = eventually("south told about the archived signal", || async {
        let seen = south.matches("vt-south").await;
        (!seen.is_empty()).then_some(seen)
    })
    .await;
    assert_eq!(seen[0].kind, pb::NoticeKind::History as i32);
    north.quiet().await;
    assert!(north.matches("jgz-north").await.is_empty());
}

#[tokio::test]
async fn a_signal_that_reaches_the_hub_after_its_removal_date_is_matched_as_registered() {
    let hub = spawn_hub().await;
    let mut north = spawn_linked_region("north", &hub).await;
    let mut south = spawn_linked_region("south", &hub).await;
    let vt = register(&south, "vt-south", YOUTH, "").await;
    south.quiet().await;
    // North is cut off from the hub while JGZ registers, and stays so past the signal's planned
    // removal date: north matched it locally while active, then archived it.
    let addr = hub.addr;
    let hub_dir = hub.stop().await;
    let jgz = register(&north, "jgz-north", YOUTH, "2026-12-01").await;
    let later = date(2026, 12, 2);
    set_day(&north, later);
    set_day(&south, later);
    assert_eq!(
        get(&north, "jgz-north", &jgz).await.unwrap().state,
        pb::SignalState::Inactive as i32
    );
    let hub = vix_tests::spawn_hub_in_at_on(hub_dir, addr, later).await;
    hub.link(&mut north);
    hub.link(&mut south);
    north.quiet().await;

    // The hub matched it as registered: VT, active, is told about it (now archived) ...
    let at_south = south.matches("vt-south").await;
    assert_eq!(at_south.len(), 1, "{at_south:#?}");
    let counterpart = at_south[0].counterpart.as_ref().unwrap();
    assert_eq!(counterpart.signal_id, jgz.signal_id);
    assert_eq!(counterpart.state, pb::SignalState::Inactive as i32);
    assert_eq!(south.row_counts().await["email_jobs"], 1);
    // ... and JGZ's notice about VT is stored, without an e-mail to the archived signal.
    let at_north = north.matches("jgz-north").await;
    assert_eq!(at_north.len(), 1, "{at_north:#?}");
    assert_eq!(
        at_north[0].counterpart.as_ref().unwrap().signal_id,
        vt.signal_id
    );
    assert_eq!(north.row_counts().await["email_jobs"], 0);
}
