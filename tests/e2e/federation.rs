//! The federation: a hub and three regions over mutual TLS, each a real node in this process.
//! Cross-region notices travel node -> hub -> node through the forwarder, the hub's matcher and
//! the notice stream.

use tonic::Code;
use vix_node::store::hub::HubStore;
use vix_protocol::federation::v1 as fed;
use vix_protocol::region::v1 as pb;
use vix_tests::{
    TestRegion, eventually, spawn_hub, spawn_hub_in_at, spawn_linked_region, spawn_region_in,
};

/// Youth of the BRP fixture (born 2008); SIBLING shares both BRP parents.
const YOUTH: &str = "999991383";
const SIBLING: &str = "999992065";
const PARENTS: [&str; 2] = ["999993562", "999990937"];
/// Born 2019, parents without other children in these tests.
const OTHER_YOUTH: &str = "999996046";
/// Born 2009, lives in Amsterdam (0363, served by south).
const AMSTERDAM_YOUTH: &str = "999995832";

use vix_tests::professional as contact;

async fn register(region: &TestRegion, org: &str, bsn: &str) -> pb::Signal {
    register_as(region, org, bsn, &format!("{org}-{bsn}")).await
}

async fn register_as(region: &TestRegion, org: &str, bsn: &str, request_id: &str) -> pb::Signal {
    region.register_bsn(org, bsn, request_id).await
}

/// Waits until the federation is quiet, then expects `org` to have exactly `count` matches: a
/// late duplicate would have been stored by then.
async fn settled_matches(region: &TestRegion, org: &str, count: usize) -> Vec<pb::Match> {
    region.quiet().await;
    let matches = region.matches(org).await;
    assert_eq!(matches.len(), count, "{org}: {matches:#?}");
    matches
}

#[tokio::test]
async fn a_cross_region_youth_match_gives_exactly_one_notice_at_each_side() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    let jgz = register(&north, "jgz-north", YOUTH).await;
    let vt = register(&south, "vt-south", YOUTH).await;

    let at_north = settled_matches(&north, "jgz-north", 1).await;
    let seen = &at_north[0];
    assert_eq!(seen.signal_id, jgz.signal_id);
    assert_eq!(seen.match_type, pb::MatchType::Youth as i32);
    assert_eq!(seen.kind, pb::NoticeKind::Match as i32);
    let counterpart = seen.counterpart.as_ref().unwrap();
    assert_eq!(counterpart.signal_id, vt.signal_id);
    assert_eq!(counterpart.region_id, "south");
    assert_eq!(counterpart.organisation_name, "Veilig Thuis Zuid");
    assert_eq!(
        counterpart.professional.as_ref().unwrap(),
        &contact("vt-south")
    );
    assert_eq!(counterpart.state, pb::SignalState::Active as i32);

    let at_south = settled_matches(&south, "vt-south", 1).await;
    assert_eq!(
        at_south[0].counterpart.as_ref().unwrap().signal_id,
        jgz.signal_id
    );
    assert_eq!(at_south[0].counterpart.as_ref().unwrap().region_id, "north");
    // Each node owes its professional one e-mail.
    assert_eq!(north.row_counts().await["email_jobs"], 1);
    assert_eq!(south.row_counts().await["email_jobs"], 1);
}

#[tokio::test]
async fn siblings_in_two_regions_make_one_family_match() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    register(&north, "jgz-north", YOUTH).await;
    register(&south, "vt-south", SIBLING).await;
    register(&south, "vt-south", OTHER_YOUTH).await;
    let at_north = settled_matches(&north, "jgz-north", 1).await;
    assert_eq!(at_north[0].match_type, pb::MatchType::Family as i32);
    let at_south = settled_matches(&south, "vt-south", 1).await;
    assert_eq!(at_south[0].match_type, pb::MatchType::Family as i32);
}

#[tokio::test]
async fn three_parties_in_three_regions_tell_each_pair_once() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    let east = spawn_linked_region("east", &hub).await;
    register(&north, "jgz-north", YOUTH).await;
    register(&south, "vt-south", YOUTH).await;
    register(&east, "wijkteam-east", YOUTH).await;
    // A second signal of a party that was already told re-notifies nobody.
    register_as(&north, "jgz-north", YOUTH, "again").await;
    let north_seen = settled_matches(&north, "jgz-north", 2).await;
    let south_seen = settled_matches(&south, "vt-south", 2).await;
    let east_seen = settled_matches(&east, "wijkteam-east", 2).await;
    let regions = |seen: &[pb::Match]| {
        let mut regions: Vec<String> = seen
            .iter()
            .map(|m| m.counterpart.as_ref().unwrap().region_id.clone())
            .collect();
        regions.sort();
        regions
    };
    assert_eq!(regions(&north_seen), ["east", "south"]);
    assert_eq!(regions(&south_seen), ["east", "north"]);
    assert_eq!(regions(&east_seen), ["north", "south"]);
}

#[tokio::test]
async fn a_youth_who_moves_is_matched_by_the_hub() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    // JGZ knew the youth in the north; after a move, Veilig Thuis registers in the south.
    register(&north, "jgz-north", OTHER_YOUTH).await;
    eventually("the north signal at the hub", || async {
        (north.row_counts().await["outbox"] == 0).then_some(())
    })
    .await;
    register(&south, "gp-south", OTHER_YOUTH).await;
    settled_matches(&north, "jgz-north", 1).await;
    settled_matches(&south, "gp-south", 1).await;
}

#[tokio::test]
async fn a_region_offline_while_its_match_is_made_gets_the_notice_after_reconnecting() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    register(&south, "vt-south", YOUTH).await;
    eventually("the south signal at the hub", || async {
        (south.row_counts().await["outbox"] == 0).then_some(())
    })
    .await;
    let south_dir = south.stop().await;

    register(&north, "jgz-north", YOUTH).await;
    settled_matches(&north, "jgz-north", 1).await;

    let mut south = spawn_region_in("south", south_dir, Some(hub.addr)).await;
    hub.link(&mut south);
    let at_south = settled_matches(&south, "vt-south", 1).await;
    assert_eq!(at_south[0].counterpart.as_ref().unwrap().region_id, "north");
}

/// A registration of an alternative youth id (no BSN): any number of distinct youths.
async fn register_alt(region: &TestRegion, org: &str, number: u32) {
    region
        .client(org)
        .register_signal(pb::RegisterSignalRequest {
            request_id: format!("{org}-alt-{number}"),
            youth: Some(pb::register_signal_request::Youth::AltYouthId(
                pb::AltYouthId {
                    issuer: "burst".into(),
                    number: number.to_string(),
                    birth_date: "2015-03-01".into(),
                },
            )),
            professional: Some(contact(org)),
            planned_removal_date: String::new(),
            informing: Some(vix_tests::informing_for_birth(
                jiff::civil::date(2015, 3, 1),
                vix_tests::test_day(),
            )),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_burst_of_notices_after_an_outage_is_stored_whole_in_few_commits() {
    const BURST: u32 = 60;
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    for n in 0..BURST {
        register_alt(&south, "vt-south", n).await;
    }
    eventually("the south signals at the hub", || async {
        (south.row_counts().await["outbox"] == 0).then_some(())
    })
    .await;
    let south_dir = south.stop().await;
    for n in 0..BURST {
        register_alt(&north, "jgz-north", n).await;
    }
    let south_id = vix_node::domain::RegionId::parse("south").unwrap();
    let unacked = || hub.context.store.unacked(&south_id);
    eventually("the hub's notices for south", || async {
        (unacked().await.unwrap() == u64::from(BURST)).then_some(())
    })
    .await;

    let south = spawn_region_in("south", south_dir, Some(hub.addr)).await;
    let stored = south.context.notices_stored.subscribe();
    eventually("south stored the whole burst", || {
        let seen = *stored.borrow();
        async move { (seen >= u64::from(BURST)).then_some(()) }
    })
    .await;
    let matches = south
        .client("vt-south")
        .list_matches(pb::ListMatchesRequest {
            acting_professional_id: "p".into(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .matches;
    assert_eq!(matches.len(), BURST as usize, "each notice once");
    // Runs of what the stream already holds share a commit: far fewer commits than notices
    // (the notices' commits plus the start-up sweep and the forwarder's bookkeeping).
    let vix_node::store::region_database::RegionDatabase::Sqlite(store) = &south.context.store
    else {
        panic!("the test's regions run on SQLite");
    };
    let commits = store.writer_stats().commits;
    assert!(
        commits < u64::from(BURST) / 2,
        "{commits} commits for {BURST} notices"
    );
    eventually("the hub saw south acknowledge everything", || async {
        (unacked().await.unwrap() == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_restarted_hub_resumes_streams_without_losing_or_repeating_notices() {
    let hub = spawn_hub().await;
    let mut north = spawn_linked_region("north", &hub).await;
    let mut south = spawn_linked_region("south", &hub).await;
    register(&north, "jgz-north", YOUTH).await;
    register(&south, "vt-south", YOUTH).await;
    settled_matches(&north, "jgz-north", 1).await;
    settled_matches(&south, "vt-south", 1).await;

    let addr = hub.addr;
    let hub_dir = hub.stop().await;
    // While the hub is down the regions keep working; their events wait in the outbox.
    register(&north, "school-north", SIBLING).await;
    register(&south, "gp-south", SIBLING).await;

    // The restarted hub takes the port the regions know.
    let hub = spawn_hub_in_at(hub_dir, addr).await;
    hub.link(&mut north);
    hub.link(&mut south);
    // school-north <-> gp-south (youth); school-north <-> vt-south and gp-south <-> jgz-north
    // (family). Nodes found school-north <-> jgz-north and gp-south <-> vt-south themselves.
    settled_matches(&north, "school-north", 3).await;
    settled_matches(&south, "gp-south", 3).await;
    settled_matches(&north, "jgz-north", 3).await;
    settled_matches(&south, "vt-south", 3).await;
    drop(hub);
}

#[tokio::test]
async fn the_hub_never_receives_a_bsn() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    register(&north, "jgz-north", YOUTH).await;
    register(&south, "vt-south", SIBLING).await;
    register(&south, "gp-south", YOUTH).await;
    settled_matches(&north, "jgz-north", 2).await;
    let received = hub.received.lock().unwrap().clone();
    assert!(
        received.len() >= 3,
        "the hub received the regions' messages"
    );
    let bsns = [YOUTH, SIBLING, PARENTS[0], PARENTS[1]];
    for message in &received {
        for bsn in bsns {
            assert!(
                !message.windows(bsn.len()).any(|w| w == bsn.as_bytes()),
                "a message to the hub contains BSN {bsn}"
            );
        }
        // Nor a birth date of the youths (2008-01-26, 2007-01-25).
        for birth_date in ["2008-01-26", "2007-01-25"] {
            assert!(!message.windows(10).any(|w| w == birth_date.as_bytes()));
        }
    }
}

fn upsert(org: &str, digest: u8, state: fed::SignalState) -> fed::signal_event::Change {
    fed::signal_event::Change::Upsert(fed::SignalUpsert {
        subject_key: Some(fed::Pseudonym {
            key_version: 1,
            digest: vec![digest; 32],
        }),
        family_keys: vec![],
        organisation_id: org.into(),
        professional: Some(fed::ProfessionalContact {
            professional_id: "p1".into(),
            name: "P. One".into(),
            email: format!("p1@{org}.example.nl"),
            phone: String::new(),
        }),
        registered_at: "2026-11-25T10:00:00Z".into(),
        planned_removal_date: "2028-11-25".into(),
        state: state as i32,
        inactive_since: if state == fed::SignalState::Inactive {
            "2026-11-25".into()
        } else {
            String::new()
        },
        previous_subject_keys: vec![],
        previous_family_keys: vec![],
    })
}

#[tokio::test]
async fn a_batch_submitted_twice_with_revisions_out_of_order_has_one_effect() {
    let hub = spawn_hub().await;
    let mut north = hub.client("north");
    let signal_id = "8b0f6a0e-3f43-4c3a-9d0e-5e7f1d2c3b4a".to_owned();
    let event = |revision, state| fed::SignalEvent {
        signal_id: signal_id.clone(),
        revision,
        change: Some(upsert("school-north", 7, state)),
    };
    // Revision 2 (archived) arrives before revision 1 (active).
    let batch = fed::SubmitSignalsRequest {
        region_id: "north".into(),
        events: vec![
            event(2, fed::SignalState::Inactive),
            event(1, fed::SignalState::Active),
        ],
    };
    let first = north
        .submit_signals(batch.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.applied, first.ignored), (1, 1));
    let again = north.submit_signals(batch).await.unwrap().into_inner();
    assert_eq!((again.applied, again.ignored), (0, 2));

    // The latest revision won: a new party in the south is shown an inactive, archived party.
    let mut south = hub.client("south");
    let response = south
        .submit_signals(fed::SubmitSignalsRequest {
            region_id: String::new(),
            events: vec![fed::SignalEvent {
                signal_id: "0c9e2b1a-7d6f-4e5a-8b3c-2a1f0e9d8c7b".into(),
                revision: 1,
                change: Some(upsert("vt-south", 7, fed::SignalState::Active)),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        response.notices, 1,
        "one history notice, none to the archived owner"
    );
}

#[tokio::test]
async fn a_region_certificate_cannot_act_as_another_region() {
    let hub = spawn_hub().await;
    let mut north = hub.client("north");
    let status = north
        .submit_signals(fed::SubmitSignalsRequest {
            region_id: "south".into(),
            events: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = north
        .stream_notices(fed::StreamNoticesRequest {
            region_id: "south".into(),
            after_cursor: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = north
        .ack_notices(fed::AckNoticesRequest {
            region_id: "south".into(),
            cursor: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Nor overwrite another region's signal by its id.
    let signal_id = "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a".to_owned();
    let mut south = hub.client("south");
    south
        .submit_signals(fed::SubmitSignalsRequest {
            region_id: "south".into(),
            events: vec![fed::SignalEvent {
                signal_id: signal_id.clone(),
                revision: 1,
                change: Some(upsert("vt-south", 9, fed::SignalState::Active)),
            }],
        })
        .await
        .unwrap();
    let status = north
        .submit_signals(fed::SubmitSignalsRequest {
            region_id: String::new(),
            events: vec![fed::SignalEvent {
                signal_id,
                revision: 2,
                change: Some(fed::signal_event::Change::Deletion(fed::SignalDeletion {})),
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Nor speak for an organisation of another region, or one the registry does not know:
    // refused naming the event, so the region's forwarder sets exactly that event aside.
    for org in ["vt-south", "unregistered"] {
        let status = north
            .submit_signals(fed::SubmitSignalsRequest {
                region_id: String::new(),
                events: vec![
                    fed::SignalEvent {
                        signal_id: "6f5e4d3c-2b1a-4098-8765-43210fedcba9".into(),
                        revision: 1,
                        change: Some(upsert("jgz-north", 9, fed::SignalState::Active)),
                    },
                    fed::SignalEvent {
                        signal_id: "7e6d5c4b-3a29-4817-9605-f4e3d2c1b0a9".into(),
                        revision: 1,
                        change: Some(upsert(org, 9, fed::SignalState::Active)),
                    },
                ],
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{org}: {status:?}");
        let fields: Vec<String> = tonic_types::StatusExt::get_details_bad_request(&status)
            .map(|details| {
                details
                    .field_violations
                    .into_iter()
                    .map(|violation| violation.field)
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(fields, ["events[1].upsert.organisation_id"], "{org}");
    }
}

#[tokio::test]
async fn an_organisation_certificate_cannot_use_the_federation_api() {
    let hub = spawn_hub().await;
    let mut as_org = fed::federation_service_client::FederationServiceClient::new(
        vix_tests::channel_with(hub.addr, "org-jgz-north.pem", "org-jgz-north.key"),
    );
    let status = as_org
        .submit_signals(fed::SubmitSignalsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn rogue_expired_and_revoked_certificates_are_refused_by_the_hub_on_the_first_call() {
    let hub = spawn_hub().await;
    for org in [
        vix_certs_dev::files::ROGUE_ORG,
        vix_certs_dev::files::EXPIRED_ORG,
        vix_certs_dev::files::REVOKED_ORG,
    ] {
        let (cert, key) = vix_certs_dev::files::organisation(org);
        let mut client = fed::federation_service_client::FederationServiceClient::new(
            vix_tests::channel_with(hub.addr, &cert, &key),
        );
        let status = client
            .submit_signals(fed::SubmitSignalsRequest::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                status.code(),
                Code::Unavailable | Code::Unknown | Code::Cancelled
            ),
            "{org}: {status:?}"
        );
    }
}

#[tokio::test]
async fn a_bad_batch_is_refused_whole_naming_the_field() {
    let hub = spawn_hub().await;
    let mut north = hub.client("north");
    let good = fed::SignalEvent {
        signal_id: "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d".into(),
        revision: 1,
        change: Some(upsert("school-north", 8, fed::SignalState::Active)),
    };
    let mut bad = upsert("school-north", 7, fed::SignalState::Active);
    if let fed::signal_event::Change::Upsert(upsert) = &mut bad {
        upsert.subject_key.as_mut().unwrap().digest = vec![1; 31];
    }
    let status = north
        .submit_signals(fed::SubmitSignalsRequest {
            region_id: String::new(),
            events: vec![
                good.clone(),
                fed::SignalEvent {
                    signal_id: "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d".into(),
                    revision: 1,
                    change: Some(bad),
                },
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("events[1].upsert.subject_key"),
        "{}",
        status.message()
    );
    // The good event of the refused batch was not applied: alone, it applies now.
    let alone = north
        .submit_signals(fed::SubmitSignalsRequest {
            region_id: String::new(),
            events: vec![good],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alone.applied, 1);
}

#[tokio::test]
async fn a_family_key_named_twice_is_refused_naming_the_field() {
    let hub = spawn_hub().await;
    let mut twice = upsert("school-north", 6, fed::SignalState::Active);
    if let fed::signal_event::Change::Upsert(upsert) = &mut twice {
        let parent = fed::Pseudonym {
            key_version: 1,
            digest: vec![9; 32],
        };
        upsert.family_keys = vec![parent.clone(), parent];
    }
    let status = hub
        .client("north")
        .submit_signals(fed::SubmitSignalsRequest {
            region_id: String::new(),
            events: vec![fed::SignalEvent {
                signal_id: "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e".into(),
                revision: 1,
                change: Some(twice),
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("events[0].upsert.family_keys"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn the_hub_logs_each_region_call_in_its_own_chained_audit_log() {
    use vix_node::store::hub::HubStore;
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    let jgz = register(&north, "jgz-north", YOUTH).await;
    register(&south, "vt-south", YOUTH).await;
    settled_matches(&north, "jgz-north", 1).await;
    settled_matches(&south, "vt-south", 1).await;

    let entries = hub.context.store.verify_audit().await.unwrap();
    assert!(
        entries >= 6,
        "two submits, two streams, two acks at least: {entries}"
    );
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(hub.dir.path().join("hub.sqlite"))
                .read_only(true),
        )
        .await
        .unwrap();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT action, actor_id, signal_ids FROM audit_log WHERE actor_kind = 'region' ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let submits: Vec<_> = rows
        .iter()
        .filter(|(action, ..)| action == "submit_signals")
        .collect();
    assert!(
        submits
            .iter()
            .any(|(_, region, ids)| region == "north" && ids.contains(&jgz.signal_id))
    );
    assert!(submits.iter().any(|(_, region, _)| region == "south"));
    for action in ["stream_notices", "ack_notices"] {
        assert!(
            rows.iter().any(|(a, ..)| a == action),
            "{action} not logged"
        );
    }
    assert!(!format!("{rows:?}").contains(YOUTH));
}

#[tokio::test]
async fn a_corrected_contact_and_an_archive_reach_the_other_regions_notice() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    register(&north, "jgz-north", AMSTERDAM_YOUTH).await;
    let vt = register(&south, "vt-south", AMSTERDAM_YOUTH).await;
    settled_matches(&north, "jgz-north", 1).await;

    // South's municipality, where the youth lives, corrects the VT professional's e-mail.
    let corrected = pb::ProfessionalContact {
        email: "p.corrected@vt-south.example.nl".into(),
        ..contact("vt-south")
    };
    south
        .rights("0363")
        .correct_signal(pb::CorrectSignalRequest {
            youth: Some(pb::correct_signal_request::Youth::Bsn(
                AMSTERDAM_YOUTH.into(),
            )),
            signal_id: vt.signal_id.clone(),
            professional: Some(corrected.clone()),
            planned_removal_date: String::new(),
            informing: None,
            officer_id: "officer-2".into(),
            reference: "COR-7".into(),
        })
        .await
        .unwrap();
    eventually("north shows the corrected contact", || async {
        let seen = north.matches("jgz-north").await;
        (seen[0].counterpart.as_ref().unwrap().professional.as_ref() == Some(&corrected))
            .then_some(())
    })
    .await;

    // VT withdraws: the risk is gone. North's notice shows the counterpart inactive.
    south
        .client("vt-south")
        .withdraw_signal(pb::WithdrawSignalRequest {
            acting_professional_id: "p".into(),
            signal_id: vt.signal_id.clone(),
            reason: pb::WithdrawReason::RiskGone as i32,
        })
        .await
        .unwrap();
    eventually("north shows the counterpart archived", || async {
        let seen = north.matches("jgz-north").await;
        (seen[0].counterpart.as_ref().unwrap().state == pb::SignalState::Inactive as i32)
            .then_some(())
    })
    .await;
    assert_eq!(
        north.matches("jgz-north").await.len(),
        1,
        "refreshed, not duplicated"
    );
    assert_eq!(
        north.row_counts().await["email_jobs"],
        1,
        "a refresh sends no e-mail"
    );
}
