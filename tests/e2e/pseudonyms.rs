//! Blind pseudonyms (issue 13): regions take their pseudonyms from the pseudonym service over
//! mutual TLS. A cross-region match still arises; neither the hub nor the service receives a
//! BSN; the service's rate limit refuses a region past it; without the service nothing is
//! stored; rights and death purges find signals under every live key version.

use tonic::Code;
use vix_node::config::KeyFileSetting;
use vix_node::domain::{Bsn, Clock};
use vix_node::pseudonym::HmacPseudonymiser;
use vix_node::pseudonymizer::audit;
use vix_node::pseudonymizer::rate::RateLimit;
use vix_node::store::SignalStore;
use vix_protocol::pseudonym::v1 as ps;
use vix_protocol::region::v1 as pb;
use vix_tests::pseudonymizer::{
    TestPseudonymizer, pseudonymizer_settings, spawn_pseudonymizer, use_pseudonymizer,
};
use vix_tests::{TestHub, TestRegion, new_dir, pki, spawn_hub, spawn_region_with, test_day};

const YOUTH: &str = "999991383";
const SIBLING: &str = "999992065";
/// Another youth of Hellevoetsluis (0530), north's municipality.
const OTHER: &str = "999995261";
/// And a third.
const THIRD: &str = "999995923";
const PARENTS: [&str; 2] = ["999993562", "999990937"];
const NORTH_MUNICIPALITY: &str = "0530";

async fn region_on(region: &str, service: &TestPseudonymizer, hub: Option<&TestHub>) -> TestRegion {
    let addr = service.addr;
    let mut node = spawn_region_with(region, new_dir(region), hub.map(|hub| hub.addr), |s| {
        use_pseudonymizer(s, addr)
    })
    .await;
    if let Some(hub) = hub {
        hub.link(&mut node);
    }
    node
}

/// school-north's registration of YOUTH, which must be refused.
async fn school_cannot_register(north: &TestRegion) -> tonic::Status {
    north
        .client("school-north")
        .register_signal(pb::RegisterSignalRequest {
            request_id: "r2".into(),
            youth: Some(pb::register_signal_request::Youth::Bsn(YOUTH.into())),
            professional: Some(vix_tests::professional("school-north")),
            planned_removal_date: String::new(),
            informing: Some(vix_tests::informing_for(YOUTH, test_day())),
        })
        .await
        .unwrap_err()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test]
async fn blind_pseudonyms_match_across_regions_and_no_bsn_reaches_hub_or_service() {
    let dir = new_dir("pseudonymizer");
    let service = spawn_pseudonymizer(pseudonymizer_settings(dir.path())).await;
    let hub = spawn_hub().await;
    let north = region_on("north", &service, Some(&hub)).await;
    let south = region_on("south", &service, Some(&hub)).await;
    north.register_bsn("jgz-north", YOUTH, "r1").await;
    south.register_bsn("vt-south", SIBLING, "r2").await;
    south.register_bsn("gp-south", YOUTH, "r3").await;
    hub.quiet().await;
    // jgz-north: the youth at gp-south (youth match) and the sibling at vt-south (family).
    let at_north = north.matches("jgz-north").await;
    assert_eq!(at_north.len(), 2, "{at_north:#?}");
    assert!(
        at_north
            .iter()
            .all(|notice| notice.counterpart.as_ref().unwrap().region_id == "south")
    );
    // gp-south: jgz-north (youth, across regions) and vt-south (family, found locally).
    assert_eq!(south.matches("gp-south").await.len(), 2);
    assert_eq!(south.matches("vt-south").await.len(), 2);

    // The keys came from the service: the federation key's pseudonym of the youth crossed no
    // wire, and no message to the hub or the service holds a BSN or a birth date.
    let federation_key = HmacPseudonymiser::from_file(
        &pki().join(vix_certs_dev::files::FEDERATION_KEY),
        vix_node::domain::KeyVersion::new(1).unwrap(),
    )
    .unwrap();
    let hmac_key = federation_key
        .subject_key(&Bsn::parse(YOUTH).unwrap())
        .digest();
    let to_hub = hub.received.lock().unwrap().clone();
    let to_service = service.received.lock().unwrap().clone();
    assert!(to_hub.len() >= 3 && to_service.len() == 3);
    for message in to_hub.iter().chain(&to_service) {
        for bsn in [YOUTH, SIBLING, PARENTS[0], PARENTS[1]] {
            assert!(
                !contains(message, bsn.as_bytes()),
                "a message holds BSN {bsn}"
            );
        }
        for birth_date in ["2008-01-26", "2007-01-25"] {
            assert!(!contains(message, birth_date.as_bytes()));
        }
        assert!(!contains(message, &hmac_key));
    }
    // What the service got: per registration one 32-byte element for the youth and one per
    // parent, nothing else.
    for message in &to_service {
        let request: ps::EvaluateRequest = prost::Message::decode(&message[..]).unwrap();
        assert_eq!(request.blinded.len(), 3);
        assert!(request.blinded.iter().all(|element| element.len() == 32));
    }
    // The same youth blinded twice (north, then south) gives unrelated elements.
    let first: ps::EvaluateRequest = prost::Message::decode(&to_service[0][..]).unwrap();
    let third: ps::EvaluateRequest = prost::Message::decode(&to_service[2][..]).unwrap();
    assert_ne!(first.blinded[0], third.blinded[0]);

    // The audit counts each region's elements.
    let summary = audit::verify(&service.settings.audit_file).unwrap();
    assert_eq!(summary.regions["north"].elements_evaluated, 3);
    assert_eq!(summary.regions["south"].elements_evaluated, 6);
}

#[tokio::test]
async fn past_its_rate_limit_a_region_is_refused_and_stores_nothing() {
    let dir = new_dir("pseudonymizer");
    let mut settings = pseudonymizer_settings(dir.path());
    // One registration (the youth and two parents) at once, then one element a second.
    settings.rate_limit = RateLimit {
        elements_per_second: 1,
        burst: 3,
    };
    let service = spawn_pseudonymizer(settings).await;
    let north = region_on("north", &service, None).await;
    north.register_bsn("jgz-north", YOUTH, "r1").await;
    let before = north.row_counts().await;

    let refused = school_cannot_register(&north).await;
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        north.row_counts().await,
        before,
        "a refused registration stored something"
    );

    // The service says so itself, to a region calling it directly.
    let (cert, key) = vix_certs_dev::files::region_client("south");
    let mut direct = ps::pseudonym_service_client::PseudonymServiceClient::new(
        vix_tests::channel_with(service.addr, &cert, &key),
    );
    let element = vix_node::oprf::Blinded::new(b"anything").unwrap().element();
    let call = || ps::EvaluateRequest {
        blinded: vec![element.to_vec(); 4],
    };
    // Larger than the burst: never possible.
    let status = direct.evaluate(call()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("burst"), "{}", status.message());

    // Three seconds later north's bucket holds three elements again.
    service
        .clock
        .set(service.clock.now() + jiff::SignedDuration::from_secs(3));
    north.register_bsn("school-north", YOUTH, "r2").await;

    let summary = audit::verify(&service.settings.audit_file).unwrap();
    assert_eq!(summary.regions["north"].elements_evaluated, 6);
    assert_eq!(summary.regions["north"].calls_refused, 1);
    assert_eq!(summary.regions["south"].calls_refused, 1);
}

#[tokio::test]
async fn without_the_pseudonym_service_registration_is_unavailable_and_stores_nothing() {
    let dir = new_dir("pseudonymizer");
    let service = spawn_pseudonymizer(pseudonymizer_settings(dir.path())).await;
    let north = region_on("north", &service, None).await;
    north.register_bsn("jgz-north", YOUTH, "r1").await;
    let before = north.row_counts().await;
    service.stop().await;

    let refused = school_cannot_register(&north).await;
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("nothing was stored"));
    assert_eq!(north.row_counts().await, before);
}

/// After a rotation of the service's keys, signals stored under version 1 are still found by
/// an export, an erasure order and a death purge; the youth's next registration moves its
/// signals to version 2.
#[tokio::test]
async fn export_erasure_and_death_find_signals_under_both_key_versions() {
    let dir = new_dir("pseudonymizer");
    let v1_settings = pseudonymizer_settings(dir.path());
    let service = spawn_pseudonymizer(v1_settings.clone()).await;
    let addr = service.addr;
    let north = region_on("north", &service, None).await;
    let youth_v1 = north.register_bsn("jgz-north", YOUTH, "r1").await;
    let other_v1 = north.register_bsn("jgz-north", OTHER, "r2").await;
    let third_v1 = north.register_bsn("jgz-north", THIRD, "r3").await;

    // Rotation: version 2 becomes current, version 1 stays live; same port, same audit.
    service.stop().await;
    let v2_file = dir.path().join("pseudonymizer-v2.key");
    vix_node::secret_file::write_new_key32(&v2_file).unwrap();
    let mut v2_settings = v1_settings.clone();
    v2_settings.listen = addr;
    v2_settings.keys.push(KeyFileSetting {
        version: 2,
        file: v2_file,
    });
    v2_settings.current_key_version = 2;
    let _service = spawn_pseudonymizer(v2_settings).await;

    // The export finds the youth's signal under version 1.
    assert_eq!(version_of(&north, &youth_v1).await, 1);
    assert_eq!(exported(&north).await, vec![youth_v1.signal_id.clone()]);

    // An erasure order finds the other youth's signal under version 1.
    let erased = north
        .rights(NORTH_MUNICIPALITY)
        .order_erasure(pb::OrderErasureRequest {
            youth: Some(pb::order_erasure_request::Youth::Bsn(OTHER.into())),
            signal_ids: vec![],
            officer_id: "officer-1".into(),
            reference: "ERA-ROT".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(erased.erased_signal_ids, vec![other_v1.signal_id.clone()]);

    // A death reported by the BRP purges the third youth's signal under version 1.
    let death = |bsn: &str| {
        vix_node::mutations::parse(&format!(
            "{{\"bsn\":\"{bsn}\",\"death_date\":\"2026-11-20\"}}\n"
        ))
        .unwrap()
    };
    let purge = |bsn: &'static str| {
        let mutations = death(bsn);
        let north = &north;
        async move {
            vix_node::mutations::apply(
                &north.context.store,
                north.context.pseudonymiser.as_ref(),
                &mutations,
                north.clock.now(),
            )
            .await
            .unwrap()
            .signals_deleted
        }
    };
    assert_eq!(purge(THIRD).await, 1);
    assert!(
        north
            .context
            .store
            .signal(parse(&third_v1))
            .await
            .unwrap()
            .is_none()
    );

    // The youth's next registration, under version 2, moves the first signal to version 2:
    // both are the youth's, in the export and in the death purge.
    let youth_v2 = north.register_bsn("school-north", YOUTH, "r4").await;
    assert_eq!(version_of(&north, &youth_v1).await, 2);
    assert_eq!(version_of(&north, &youth_v2).await, 2);
    let mut expected = vec![youth_v1.signal_id.clone(), youth_v2.signal_id.clone()];
    expected.sort();
    assert_eq!(exported(&north).await, expected);
    assert_eq!(purge(YOUTH).await, 2);
}

async fn version_of(region: &TestRegion, signal: &pb::Signal) -> u32 {
    let stored = region
        .context
        .store
        .signal(parse(signal))
        .await
        .unwrap()
        .unwrap();
    vix_node::domain::Versioned::key_version(&stored.subject_key).get()
}

/// The ids of the signals an export of YOUTH shows, sorted.
async fn exported(region: &TestRegion) -> Vec<String> {
    let export = region
        .rights(NORTH_MUNICIPALITY)
        .export_youth(pb::ExportYouthRequest {
            youth: Some(pb::export_youth_request::Youth::Bsn(YOUTH.into())),
            officer_id: "officer-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut ids: Vec<String> = export
        .signals
        .iter()
        .map(|s| s.signal.as_ref().unwrap().signal_id.clone())
        .collect();
    ids.sort();
    ids
}

fn parse(signal: &pb::Signal) -> vix_node::domain::SignalId {
    vix_node::domain::SignalId::parse(&signal.signal_id).unwrap()
}

/// Both regions' federation keys go from version 1 to 2 (version 1 stays live). A signal under
/// version 2 matches signals under version 1 across regions and within one, a region re-keys
/// what it holds of a youth when it next sees the youth, and nobody is told twice.
#[tokio::test]
async fn a_match_across_a_key_rotation_is_found_and_nobody_is_told_twice() {
    let hub = spawn_hub().await;
    let north = vix_tests::spawn_linked_region("north", &hub).await;
    let south = vix_tests::spawn_linked_region("south", &hub).await;
    let jgz = north.register_bsn("jgz-north", YOUTH, "r1").await;
    south.register_bsn("vt-south", SIBLING, "r2").await;
    hub.quiet().await;
    assert_eq!(north.matches("jgz-north").await.len(), 1);

    // The rotation: version 2 current, version 1 still live, on both regions.
    let keys = new_dir("rotation");
    let v2 = keys.path().join("federation-v2.key");
    vix_node::secret_file::write_new_key32(&v2).unwrap();
    let rotate = |settings: &mut vix_node::config::RegionSettings| {
        let v1 = settings.federation_key_file.replace(v2.clone()).unwrap();
        settings.federation_key_version = Some(2);
        settings.previous_federation_keys = vec![KeyFileSetting {
            version: 1,
            file: v1,
        }];
    };
    let mut north = spawn_region_with("north", north.stop().await, Some(hub.addr), rotate).await;
    let mut south = spawn_region_with("south", south.stop().await, Some(hub.addr), rotate).await;
    hub.link(&mut north);
    hub.link(&mut south);

    // gp-south, under version 2: the youth at jgz-north (version 1, through the hub) and the
    // sibling at vt-south (version 1, re-keyed by south first).
    let gp = south.register_bsn("gp-south", YOUTH, "r3").await;
    hub.quiet().await;
    let kinds = |matches: Vec<pb::Match>| {
        let mut kinds: Vec<(String, i32)> = matches
            .iter()
            .map(|m| {
                (
                    m.counterpart.as_ref().unwrap().organisation_id.clone(),
                    m.match_type,
                )
            })
            .collect();
        kinds.sort();
        kinds
    };
    let youth = pb::MatchType::Youth as i32;
    let family = pb::MatchType::Family as i32;
    assert_eq!(
        kinds(south.matches("gp-south").await),
        [
            ("jgz-north".to_owned(), youth),
            ("vt-south".to_owned(), family)
        ]
    );
    assert_eq!(
        kinds(north.matches("jgz-north").await),
        [
            ("gp-south".to_owned(), youth),
            ("vt-south".to_owned(), family)
        ]
    );
    // vt-south's signal now carries its parents' keys under version 2.
    let gp_id = parse(&gp);
    let gp_stored = south.context.store.signal(gp_id).await.unwrap().unwrap();
    assert_eq!(
        vix_node::domain::Versioned::key_version(&gp_stored.subject_key).get(),
        2
    );

    // school-north, under version 2: north re-keys jgz-north's signal to version 2 and sends
    // it to the hub again. Everybody hears of school-north once, and of nobody twice.
    north.register_bsn("school-north", YOUTH, "r4").await;
    hub.quiet().await;
    assert_eq!(
        kinds(north.matches("school-north").await),
        [
            ("gp-south".to_owned(), youth),
            ("jgz-north".to_owned(), youth),
            ("vt-south".to_owned(), family)
        ]
    );
    for (region, org) in [
        (&north, "jgz-north"),
        (&south, "gp-south"),
        (&south, "vt-south"),
    ] {
        let matches = kinds(region.matches(org).await);
        assert_eq!(matches.len(), 3, "{org}: {matches:?}");
        let mut unique = matches.clone();
        unique.dedup();
        assert_eq!(unique, matches, "{org} was told twice");
    }
    // jgz-north withdraws and registers again: a new signal of a party told before, whose
    // told pairs the hub moved to version 2 with its signal. Nobody hears of it again.
    let told_before: Vec<_> = [(&south, "gp-south"), (&south, "vt-south")]
        .into_iter()
        .map(|(region, org)| (org, region))
        .collect();
    let mut before = Vec::new();
    for (org, region) in &told_before {
        before.push(kinds(region.matches(org).await));
    }
    north
        .client("jgz-north")
        .withdraw_signal(pb::WithdrawSignalRequest {
            acting_professional_id: "p".into(),
            signal_id: jgz.signal_id.clone(),
            reason: pb::WithdrawReason::RiskGone as i32,
        })
        .await
        .unwrap();
    north.register_bsn("jgz-north", YOUTH, "r5").await;
    hub.quiet().await;
    for ((org, region), before) in told_before.iter().zip(before) {
        assert_eq!(
            kinds(region.matches(org).await),
            before,
            "{org} was told again"
        );
    }

    // What north held of the youth is under version 2 now.
    for signal in north
        .context
        .store
        .signals_of_subject(
            &vix_node::domain::LiveKeys::one(north_key(&north, YOUTH).await),
            vix_node::store::SignalPage {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap()
    {
        assert_eq!(
            vix_node::domain::Versioned::key_version(&signal.subject_key).get(),
            2
        );
    }
}

/// The youth's current key at `region`.
async fn north_key(region: &TestRegion, bsn: &str) -> vix_node::domain::SubjectKey {
    let bsn = Bsn::parse(bsn).unwrap();
    region
        .context
        .pseudonymiser
        .pseudonymise(vix_node::domain::YouthRef::Bsn(&bsn), &[])
        .await
        .unwrap()
        .subject
        .current()
}
