//! The region API of one node, over mutual TLS, as organisation systems use it.

use tonic::Code;
use tonic_types::StatusExt;
use vix_node::store::SignalStore;
use vix_protocol::region::v1 as pb;
use vix_tests::{TestRegion, spawn_region};

/// A youth of the BRP fixture (born 2008) whose parents also have the children below.
const YOUTH: &str = "999991383";
const SIBLING: &str = "999992065";
/// A youth without registered parents (born 2007).
const OTHER_YOUTH: &str = "999990287";
/// Born 2003-12-02: a youth on the test day, 23 a week later.
const ALMOST_23: &str = "999997853";
/// Born and died in 2015.
const DECEASED: &str = "999992077";
/// Born 1985.
const ADULT: &str = "999993653";
/// Passes the 11-proof, not in the fixture.
const UNKNOWN: &str = "123456782";

fn contact(id: &str, name: &str, email: &str) -> pb::ProfessionalContact {
    pb::ProfessionalContact {
        professional_id: id.into(),
        name: name.into(),
        email: email.into(),
        phone: "+31 50 123 4567".into(),
    }
}

fn jgz_contact() -> pb::ProfessionalContact {
    contact("p-17", "A. de Jong", "a.dejong@jgz-noord.example.nl")
}

fn school_contact() -> pb::ProfessionalContact {
    contact("m-7", "B. Bakker", "b.bakker@noorderpoort.example.nl")
}

fn register_bsn(
    request_id: &str,
    bsn: &str,
    professional: pb::ProfessionalContact,
) -> pb::RegisterSignalRequest {
    pb::RegisterSignalRequest {
        request_id: request_id.into(),
        youth: Some(pb::register_signal_request::Youth::Bsn(bsn.into())),
        professional: Some(professional),
        planned_removal_date: String::new(),
        informing: Some(vix_tests::informing_for(bsn, vix_tests::test_day())),
    }
}

async fn register(
    region: &TestRegion,
    org: &str,
    request: pb::RegisterSignalRequest,
) -> pb::Signal {
    region
        .client(org)
        .register_signal(request)
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap()
}

async fn matches(region: &TestRegion, org: &str) -> Vec<pb::Match> {
    region
        .client(org)
        .list_matches(pb::ListMatchesRequest {
            acting_professional_id: "p-acting".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .matches
}

#[tokio::test]
async fn two_organisations_on_one_youth_each_see_one_match_with_the_others_contact() {
    let north = spawn_region("north").await;
    let jgz = register(
        &north,
        "jgz-north",
        register_bsn("r1", YOUTH, jgz_contact()),
    )
    .await;
    assert_eq!(jgz.organisation_name, "JGZ Noord");
    assert_eq!(jgz.state, pb::SignalState::Active as i32);
    assert_eq!(jgz.planned_removal_date, "2028-11-25");
    let school = register(
        &north,
        "school-north",
        register_bsn("r1", YOUTH, school_contact()),
    )
    .await;

    let jgz_matches = matches(&north, "jgz-north").await;
    assert_eq!(jgz_matches.len(), 1);
    let seen_by_jgz = &jgz_matches[0];
    assert_eq!(seen_by_jgz.signal_id, jgz.signal_id);
    assert_eq!(seen_by_jgz.match_type, pb::MatchType::Youth as i32);
    assert_eq!(seen_by_jgz.kind, pb::NoticeKind::Match as i32);
    let counterpart = seen_by_jgz.counterpart.as_ref().unwrap();
    assert_eq!(counterpart.signal_id, school.signal_id);
    assert_eq!(counterpart.organisation_name, "Noorderpoort College");
    assert_eq!(
        counterpart.professional.as_ref().unwrap(),
        &school_contact()
    );
    assert_eq!(counterpart.region_id, "north");

    let school_matches = matches(&north, "school-north").await;
    assert_eq!(school_matches.len(), 1);
    let counterpart = school_matches[0].counterpart.as_ref().unwrap();
    assert_eq!(counterpart.signal_id, jgz.signal_id);
    assert_eq!(counterpart.professional.as_ref().unwrap(), &jgz_contact());

    // One e-mail owed to each professional.
    assert_eq!(north.row_counts().await["email_jobs"], 2);

    // No BSN anywhere in what the caller sees.
    assert!(!format!("{jgz_matches:?}{school_matches:?}").contains(YOUTH));
}

#[tokio::test]
async fn siblings_with_shared_brp_parents_make_one_family_match() {
    let north = spawn_region("north").await;
    register(
        &north,
        "jgz-north",
        register_bsn("r1", YOUTH, jgz_contact()),
    )
    .await;
    register(
        &north,
        "school-north",
        register_bsn("r1", SIBLING, school_contact()),
    )
    .await;
    register(
        &north,
        "school-north",
        register_bsn("r2", OTHER_YOUTH, school_contact()),
    )
    .await;
    let seen = matches(&north, "jgz-north").await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].match_type, pb::MatchType::Family as i32);
    assert_eq!(matches(&north, "school-north").await.len(), 1);
}

#[tokio::test]
async fn re_registration_while_active_returns_the_signal_and_notifies_nobody() {
    let north = spawn_region("north").await;
    let first = register(
        &north,
        "jgz-north",
        register_bsn("r1", YOUTH, jgz_contact()),
    )
    .await;
    register(
        &north,
        "school-north",
        register_bsn("r1", YOUTH, school_contact()),
    )
    .await;
    let before = north.row_counts().await;
    let again = north
        .client("jgz-north")
        .register_signal(register_bsn("r2", YOUTH, jgz_contact()))
        .await
        .unwrap()
        .into_inner();
    assert!(again.already_registered);
    assert!(!again.replayed);
    assert_eq!(again.signal.unwrap(), first);
    assert_eq!(
        north.row_counts().await,
        before,
        "nothing new: no signal, notice or e-mail"
    );

    // Once archived, the organisation registers anew: a new signal.
    north
        .client("jgz-north")
        .withdraw_signal(pb::WithdrawSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: first.signal_id.clone(),
            reason: pb::WithdrawReason::RiskGone as i32,
        })
        .await
        .unwrap();
    let anew = north
        .client("jgz-north")
        .register_signal(register_bsn("r3", YOUTH, jgz_contact()))
        .await
        .unwrap()
        .into_inner();
    assert!(!anew.already_registered);
    assert_ne!(anew.signal.unwrap().signal_id, first.signal_id);
}

#[tokio::test]
async fn the_same_organisation_twice_is_no_match() {
    let north = spawn_region("north").await;
    register(
        &north,
        "jgz-north",
        register_bsn("r1", YOUTH, jgz_contact()),
    )
    .await;
    register(
        &north,
        "jgz-north",
        register_bsn("r2", YOUTH, jgz_contact()),
    )
    .await;
    assert!(matches(&north, "jgz-north").await.is_empty());
}

#[tokio::test]
async fn a_retried_register_with_the_same_request_id_yields_one_signal() {
    let north = spawn_region("north").await;
    let mut client = north.client("jgz-north");
    let first = client
        .register_signal(register_bsn("retry-1", YOUTH, jgz_contact()))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .register_signal(register_bsn("retry-1", YOUTH, jgz_contact()))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.replayed);
    assert!(again.replayed);
    assert_eq!(first.signal, again.signal);
    assert_eq!(north.row_counts().await["signals"], 1);
    assert_eq!(north.row_counts().await["outbox"], 1);

    // The same request_id for another youth is a caller's bug, not a retry.
    let status = client
        .register_signal(register_bsn("retry-1", OTHER_YOUTH, jgz_contact()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(north.row_counts().await["signals"], 1);

    // Another organisation may use the same request_id for its own signal.
    let school = north
        .client("school-north")
        .register_signal(register_bsn("retry-1", YOUTH, school_contact()))
        .await
        .unwrap()
        .into_inner();
    assert!(!school.replayed);
    assert_eq!(north.row_counts().await["signals"], 2);
}

struct BadInput {
    name: &'static str,
    field: &'static str,
    request: pb::RegisterSignalRequest,
}

fn bad_inputs() -> Vec<BadInput> {
    let good = || register_bsn("bad-1", YOUTH, jgz_contact());
    let with = |name, field, change: &dyn Fn(&mut pb::RegisterSignalRequest)| {
        let mut request = good();
        change(&mut request);
        BadInput {
            name,
            field,
            request,
        }
    };
    let alt = |issuer: &str, number: &str, birth_date: &str| {
        Some(pb::register_signal_request::Youth::AltYouthId(
            pb::AltYouthId {
                issuer: issuer.into(),
                number: number.into(),
                birth_date: birth_date.into(),
            },
        ))
    };
    let bsn = |bsn: &str| Some(pb::register_signal_request::Youth::Bsn(bsn.into()));
    vec![
        with("empty request_id", "request_id", &|r| r.request_id.clear()),
        with("request_id with a space", "request_id", &|r| {
            r.request_id = "a b".into()
        }),
        with("request_id too long", "request_id", &|r| {
            r.request_id = "x".repeat(129)
        }),
        with("no youth", "youth", &|r| r.youth = None),
        with("bsn of 8 digits", "bsn", &|r| r.youth = bsn("99999365")),
        with("bsn with a letter", "bsn", &|r| r.youth = bsn("99999365a")),
        with("bsn failing the 11-proof", "bsn", &|r| {
            r.youth = bsn("010008579")
        }),
        with("bsn of zeros", "bsn", &|r| r.youth = bsn("000000000")),
        with("no professional", "professional", &|r| {
            r.professional = None
        }),
        with(
            "empty professional_id",
            "professional.professional_id",
            &|r| r.professional.as_mut().unwrap().professional_id.clear(),
        ),
        with("empty name", "professional.name", &|r| {
            r.professional.as_mut().unwrap().name = "  ".into()
        }),
        with("name with a control character", "professional.name", &|r| {
            r.professional.as_mut().unwrap().name = "A.\u{0}de Jong".into()
        }),
        with("name too long", "professional.name", &|r| {
            r.professional.as_mut().unwrap().name = "a".repeat(201)
        }),
        with("e-mail without @", "professional.email", &|r| {
            r.professional.as_mut().unwrap().email = "a.dejong.example.nl".into()
        }),
        with(
            "e-mail to a host without a domain",
            "professional.email",
            &|r| r.professional.as_mut().unwrap().email = "a@localhost".into(),
        ),
        with("phone with letters", "professional.phone", &|r| {
            r.professional.as_mut().unwrap().phone = "call me".into()
        }),
        with("removal date not a date", "planned_removal_date", &|r| {
            r.planned_removal_date = "next year".into()
        }),
        with("removal date as a datetime", "planned_removal_date", &|r| {
            r.planned_removal_date = "2027-01-01T00:00".into()
        }),
        with("removal date today", "planned_removal_date", &|r| {
            r.planned_removal_date = "2026-11-25".into()
        }),
        with(
            "removal date beyond two years",
            "planned_removal_date",
            &|r| r.planned_removal_date = "2028-11-26".into(),
        ),
        with("alt id without issuer", "alt_youth_id", &|r| {
            r.youth = alt("", "V123", "2015-01-01")
        }),
        with("alt id with a bad number", "alt_youth_id", &|r| {
            r.youth = alt("coa", "V 123", "2015-01-01")
        }),
        with(
            "alt id without birth date",
            "alt_youth_id.birth_date",
            &|r| r.youth = alt("coa", "V123", ""),
        ),
        with("alt id born tomorrow", "alt_youth_id.birth_date", &|r| {
            r.youth = alt("coa", "V123", "2026-11-26")
        }),
        with("no informing record", "informing", &|r| r.informing = None),
        with("informed no one", "informing.informed", &|r| {
            r.informing = Some(pb::InformingRecord {
                record: Some(pb::informing_record::Record::Informed(pb::Informed {
                    parents: false,
                    youth: false,
                    informed_on: "2026-11-20".into(),
                })),
            })
        }),
        with(
            "informing date not a date",
            "informing.informed.informed_on",
            &|r| {
                r.informing = Some(pb::InformingRecord {
                    record: Some(pb::informing_record::Record::Informed(pb::Informed {
                        parents: false,
                        youth: true,
                        informed_on: "last week".into(),
                    })),
                })
            },
        ),
        with("informing date tomorrow", "informing", &|r| {
            r.informing = Some(pb::InformingRecord {
                record: Some(pb::informing_record::Record::Informed(pb::Informed {
                    parents: false,
                    youth: true,
                    informed_on: "2026-11-26".into(),
                })),
            })
        }),
        with(
            "not informed without a reason",
            "informing.not_informed.reason",
            &|r| {
                r.informing = Some(pb::InformingRecord {
                    record: Some(pb::informing_record::Record::NotInformed(pb::NotInformed {
                        reason: pb::NotInformedReason::Unspecified as i32,
                    })),
                })
            },
        ),
        with("parents told about a youth of 18", "informing", &|r| {
            r.informing = Some(pb::InformingRecord {
                record: Some(pb::informing_record::Record::Informed(pb::Informed {
                    parents: true,
                    youth: false,
                    informed_on: "2026-11-20".into(),
                })),
            })
        }),
        with("youth alone told, aged 6 (alt id)", "informing", &|r| {
            r.youth = alt("coa", "V123", "2020-01-01");
            r.informing = Some(pb::InformingRecord {
                record: Some(pb::informing_record::Record::Informed(pb::Informed {
                    parents: false,
                    youth: true,
                    informed_on: "2026-11-20".into(),
                })),
            })
        }),
        with("alt id aged 23", "alt_youth_id.birth_date", &|r| {
            r.youth = alt("coa", "V123", "2003-11-25")
        }),
    ]
}

#[tokio::test]
async fn every_bad_input_is_invalid_argument_naming_the_field_and_changes_nothing() {
    let north = spawn_region("north").await;
    // Something in the database, so "unchanged" is not trivially "empty".
    register(
        &north,
        "school-north",
        register_bsn("seed", YOUTH, school_contact()),
    )
    .await;
    let before = north.row_counts().await;
    let mut client = north.client("jgz-north");
    let cases = bad_inputs();
    assert!(cases.len() >= 15);
    for case in cases {
        let status = client.register_signal(case.request).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{}: {status:?}",
            case.name
        );
        let fields: Vec<String> = status
            .get_details_bad_request()
            .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default();
        assert_eq!(fields, [case.field], "{}", case.name);
        assert!(
            status.message().contains(case.field),
            "{}: {}",
            case.name,
            status.message()
        );
        assert!(
            !status.message().contains(YOUTH),
            "{}: the BSN is echoed",
            case.name
        );
        assert_eq!(
            north.row_counts().await,
            before,
            "{} changed the database",
            case.name
        );
    }
}

#[tokio::test]
async fn all_bad_fields_are_reported_at_once() {
    let north = spawn_region("north").await;
    let request = pb::RegisterSignalRequest {
        request_id: String::new(),
        youth: Some(pb::register_signal_request::Youth::Bsn("010008579".into())),
        professional: Some(contact("", "A", "nope")),
        planned_removal_date: "2030-01-01".into(),
        informing: None,
    };
    let status = north
        .client("jgz-north")
        .register_signal(request)
        .await
        .unwrap_err();
    let fields: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "request_id",
            "bsn",
            "professional.professional_id",
            "professional.email",
            "informing",
            "planned_removal_date"
        ]
    );
}

#[tokio::test]
async fn youths_the_registry_refuses_are_clear_errors_and_store_nothing() {
    let north = spawn_region("north").await;
    let mut client = north.client("jgz-north");
    let cases = [
        (UNKNOWN, Code::NotFound),
        (DECEASED, Code::FailedPrecondition),
        (ADULT, Code::FailedPrecondition),
    ];
    for (bsn, code) in cases {
        let status = client
            .register_signal(register_bsn("r", bsn, jgz_contact()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{bsn}");
        assert!(!status.message().contains(bsn));
    }
    assert_eq!(north.row_counts().await["signals"], 0);
}

#[tokio::test]
async fn a_youth_is_accepted_the_day_before_the_23rd_birthday_and_refused_on_it() {
    let north = spawn_region("north").await;
    let mut client = north.client("jgz-north");
    north.clock.set(noon(jiff::civil::date(2026, 12, 1)));
    client
        .register_signal(register_bsn("r1", ALMOST_23, jgz_contact()))
        .await
        .unwrap();
    north.clock.set(noon(jiff::civil::date(2026, 12, 2)));
    let status = client
        .register_signal(register_bsn("r2", ALMOST_23, jgz_contact()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
}

fn noon(date: jiff::civil::Date) -> jiff::Timestamp {
    use vix_node::domain::Clock;
    vix_node::domain::ManualClock::at_noon(date).now()
}

#[tokio::test]
async fn an_alt_youth_id_never_matches_a_bsn() {
    let north = spawn_region("north").await;
    register(
        &north,
        "jgz-north",
        register_bsn("r1", YOUTH, jgz_contact()),
    )
    .await;
    let alt = pb::RegisterSignalRequest {
        request_id: "alt-1".into(),
        youth: Some(pb::register_signal_request::Youth::AltYouthId(
            pb::AltYouthId {
                issuer: "bsn".into(),
                number: YOUTH.into(),
                birth_date: "2008-01-26".into(),
            },
        )),
        professional: Some(school_contact()),
        planned_removal_date: String::new(),
        informing: Some(vix_tests::informing_for_birth(
            jiff::civil::date(2008, 1, 26),
            vix_tests::test_day(),
        )),
    };
    register(&north, "school-north", alt.clone()).await;
    assert!(matches(&north, "jgz-north").await.is_empty());
    // Two organisations on the same alternative id do match.
    register(&north, "jgz-north", alt).await;
    assert_eq!(matches(&north, "jgz-north").await.len(), 1);
}

#[tokio::test]
async fn an_organisation_cannot_read_change_or_withdraw_another_organisations_signal() {
    let north = spawn_region("north").await;
    let signal = register(
        &north,
        "jgz-north",
        register_bsn("r1", YOUTH, jgz_contact()),
    )
    .await;
    let mut school = north.client("school-north");

    let status = school
        .get_signal(pb::GetSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: signal.signal_id.clone(),
        })
        .await
        .unwrap_err();
    // As if it did not exist: no probing of signal ids.
    assert_eq!(status.code(), Code::NotFound);
    assert!(!status.message().contains("de Jong"));

    let before = north.row_counts().await;
    let status = school
        .withdraw_signal(pb::WithdrawSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: signal.signal_id.clone(),
            reason: pb::WithdrawReason::Unjustified as i32,
        })
        .await
        .unwrap_err();
    // As if it did not exist: no probing of signal ids.
    assert_eq!(status.code(), Code::NotFound);
    let status = school
        .update_signal(pb::UpdateSignalRequest {
            acting_professional_id: "p-acting".into(),
            informing: None,
            signal_id: signal.signal_id.clone(),
            professional: Some(school_contact()),
            planned_removal_date: String::new(),
        })
        .await
        .unwrap_err();
    // As if it did not exist: no probing of signal ids.
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(north.row_counts().await, before);
    assert!(matches(&north, "school-north").await.is_empty());

    // The owner still can.
    let mine = north
        .client("jgz-north")
        .get_signal(pb::GetSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: signal.signal_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.signal.unwrap(), signal);

    let status = school
        .get_signal(pb::GetSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: uuid_like(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

fn uuid_like() -> String {
    "6f1d3c1e-1f9b-4f3e-9a57-0d1c2b3a4f5e".into()
}

#[tokio::test]
async fn organisations_of_other_regions_and_region_certificates_are_refused() {
    let north = spawn_region("north").await;
    let status = north
        .client("vt-south")
        .register_signal(register_bsn("r1", YOUTH, jgz_contact()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let (cert, key) = vix_certs_dev::files::region_client("north");
    let mut as_region = vix_protocol::region::v1::region_service_client::RegionServiceClient::new(
        vix_tests::channel_with(north.addr, &cert, &key),
    );
    let status = as_region
        .list_matches(pb::ListMatchesRequest {
            acting_professional_id: "p-acting".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(north.row_counts().await["signals"], 0);
}

#[tokio::test]
async fn withdrawing_as_unjustified_deletes_the_signal_and_the_notices_naming_it() {
    let north = spawn_region("north").await;
    let jgz = register(
        &north,
        "jgz-north",
        register_bsn("r1", YOUTH, jgz_contact()),
    )
    .await;
    register(
        &north,
        "school-north",
        register_bsn("r1", YOUTH, school_contact()),
    )
    .await;
    assert_eq!(matches(&north, "school-north").await.len(), 1);

    let withdrawn = north
        .client("jgz-north")
        .withdraw_signal(pb::WithdrawSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: jgz.signal_id.clone(),
            reason: pb::WithdrawReason::Unjustified as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(withdrawn.deleted);
    assert!(matches(&north, "school-north").await.is_empty());
    assert!(matches(&north, "jgz-north").await.is_empty());
    let status = north
        .client("jgz-north")
        .get_signal(pb::GetSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: jgz.signal_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // The hub is owed exactly one event about the deleted signal: its deletion. The upsert
    // that still waited (it holds the contact) is gone.
    let events = north.context.store.outbox_batch(10).await.unwrap();
    let about_jgz: Vec<_> = events
        .iter()
        .filter(|entry| entry.event.as_ref().map(|e| e.signal_id()) == Some(jgz.signal_id.as_str()))
        .collect();
    assert_eq!(about_jgz.len(), 1);
    assert!(matches!(
        about_jgz[0].event,
        Some(vix_node::store::outbox::OutboxEvent::Delete { revision: 2, .. })
    ));
}

#[tokio::test]
async fn withdrawing_as_risk_gone_archives_and_the_archive_is_shown_as_history() {
    let north = spawn_region("north").await;
    let jgz = register(
        &north,
        "jgz-north",
        register_bsn("r1", YOUTH, jgz_contact()),
    )
    .await;
    let mut client = north.client("jgz-north");
    let withdrawn = client
        .withdraw_signal(pb::WithdrawSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: jgz.signal_id.clone(),
            reason: pb::WithdrawReason::RiskGone as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let archived = withdrawn.signal.unwrap();
    assert_eq!(archived.state, pb::SignalState::Inactive as i32);
    assert_eq!(archived.inactive_since, "2026-11-25");
    assert_eq!(archived.revision, 2);

    // Archived once is archived: a second RISK_GONE is refused, and so is an update.
    let status = client
        .withdraw_signal(pb::WithdrawSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: jgz.signal_id.clone(),
            reason: pb::WithdrawReason::RiskGone as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    register(
        &north,
        "school-north",
        register_bsn("r1", YOUTH, school_contact()),
    )
    .await;
    let seen = matches(&north, "school-north").await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].kind, pb::NoticeKind::History as i32);
    assert_eq!(
        seen[0].counterpart.as_ref().unwrap().state,
        pb::SignalState::Inactive as i32
    );
    assert!(
        matches(&north, "jgz-north").await.is_empty(),
        "the archived owner is told nothing"
    );
}

#[tokio::test]
async fn an_update_changes_the_contact_and_only_moves_the_removal_date_earlier() {
    let north = spawn_region("north").await;
    let jgz = register(
        &north,
        "jgz-north",
        register_bsn("r1", YOUTH, jgz_contact()),
    )
    .await;
    let mut client = north.client("jgz-north");
    let new_contact = contact("p-18", "C. Visser", "c.visser@jgz-noord.example.nl");
    let updated = client
        .update_signal(pb::UpdateSignalRequest {
            acting_professional_id: "p-acting".into(),
            informing: None,
            signal_id: jgz.signal_id.clone(),
            professional: Some(new_contact.clone()),
            planned_removal_date: "2027-06-01".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap();
    assert_eq!(updated.professional.unwrap(), new_contact);
    assert_eq!(updated.planned_removal_date, "2027-06-01");
    assert_eq!(updated.revision, 2);

    let before = north.row_counts().await;
    let status = client
        .update_signal(pb::UpdateSignalRequest {
            acting_professional_id: "p-acting".into(),
            informing: None,
            signal_id: jgz.signal_id.clone(),
            professional: None,
            planned_removal_date: "2027-06-02".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("planned_removal_date"));
    assert_eq!(north.row_counts().await, before);

    // A counterpart sees the current contact.
    register(
        &north,
        "school-north",
        register_bsn("r1", YOUTH, school_contact()),
    )
    .await;
    let seen = matches(&north, "school-north").await;
    assert_eq!(
        seen[0]
            .counterpart
            .as_ref()
            .unwrap()
            .professional
            .as_ref()
            .unwrap(),
        &new_contact
    );
}

#[tokio::test]
async fn no_bsn_is_stored_at_rest() {
    let north = spawn_region("north").await;
    // A careless front-end even puts the BSN in its idempotency key.
    let careless = format!("{YOUTH}-1");
    register(
        &north,
        "jgz-north",
        register_bsn(&careless, YOUTH, jgz_contact()),
    )
    .await;
    register(
        &north,
        "school-north",
        register_bsn("r1", SIBLING, school_contact()),
    )
    .await;
    let db = north.dir.path().join("region-north.sqlite");
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.clone().into_os_string();
        path.push(suffix);
        if let Ok(mut more) = std::fs::read(&path) {
            bytes.append(&mut more);
        }
    }
    assert!(bytes.len() > 4096, "the database files were read");
    // The youths and their BRP parents (fixture: 999993562 and 999990937).
    for bsn in [YOUTH, SIBLING, "999993562", "999990937"] {
        let found = bytes
            .windows(bsn.len())
            .any(|window| window == bsn.as_bytes());
        assert!(!found, "BSN {bsn} found in the database files");
    }
    // The contact is stored (it is what a match shows), so the scan can find what is there.
    let email = b"a.dejong@jgz-noord.example.nl";
    assert!(bytes.windows(email.len()).any(|window| window == email));
}

#[tokio::test]
async fn concurrent_registrations_on_one_youth_notify_each_pair_once() {
    let north = spawn_region("north").await;
    let mut calls = Vec::new();
    for n in 0..10 {
        let (org, professional) = if n % 2 == 0 {
            ("jgz-north", jgz_contact())
        } else {
            ("school-north", school_contact())
        };
        let mut client = north.client(org);
        calls.push(tokio::spawn(async move {
            client
                .register_signal(register_bsn(&format!("c{n}"), YOUTH, professional))
                .await
                .unwrap()
        }));
    }
    let mut again = 0;
    for call in calls {
        if call.await.unwrap().into_inner().already_registered {
            again += 1;
        }
    }
    // One signal per organisation; the rest were re-registrations of an active signal.
    assert_eq!(north.row_counts().await["signals"], 2);
    assert_eq!(again, 8);
    assert_eq!(matches(&north, "jgz-north").await.len(), 1);
    assert_eq!(matches(&north, "school-north").await.len(), 1);
}

#[tokio::test]
async fn the_informing_record_is_kept_shown_and_corrected_against_the_age_at_registration() {
    let north = spawn_region("north").await;
    // 999995807 was born in 2018: at 8, the parents are told.
    let young = "999995807";
    let signal = register(
        &north,
        "jgz-north",
        register_bsn("r1", young, jgz_contact()),
    )
    .await;
    let told = |parents, youth| pb::InformingRecord {
        record: Some(pb::informing_record::Record::Informed(pb::Informed {
            parents,
            youth,
            informed_on: "2026-11-25".into(),
        })),
    };
    assert_eq!(signal.informing, Some(told(true, false)));

    // Correcting it to "the youth alone" does not fit an 8-year-old.
    let mut client = north.client("jgz-north");
    let status = client
        .update_signal(pb::UpdateSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: signal.signal_id.clone(),
            professional: None,
            planned_removal_date: String::new(),
            informing: Some(told(false, true)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("informing"),
        "{}",
        status.message()
    );

    // Completed later: the parents were told three days after the registration.
    north
        .clock
        .advance(jiff::SignedDuration::from_hours(24 * 3));
    let later = pb::InformingRecord {
        record: Some(pb::informing_record::Record::Informed(pb::Informed {
            parents: true,
            youth: false,
            informed_on: "2026-11-28".into(),
        })),
    };
    let updated = client
        .update_signal(pb::UpdateSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: signal.signal_id.clone(),
            professional: None,
            planned_removal_date: String::new(),
            informing: Some(later.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap();
    assert_eq!(updated.informing, Some(later));

    // Not informing for the youth's safety is recorded with its code.
    let safety = pb::InformingRecord {
        record: Some(pb::informing_record::Record::NotInformed(pb::NotInformed {
            reason: pb::NotInformedReason::YouthSafety as i32,
        })),
    };
    let updated = client
        .update_signal(pb::UpdateSignalRequest {
            acting_professional_id: "p-acting".into(),
            signal_id: signal.signal_id.clone(),
            professional: None,
            planned_removal_date: String::new(),
            informing: Some(safety.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap();
    assert_eq!(updated.informing, Some(safety));

    // It stays on the node: no event for the hub carries it.
    let events = north.context.store.outbox_batch(10).await.unwrap();
    let json = serde_json::to_string(&events.iter().map(|e| &e.event).collect::<Vec<_>>()).unwrap();
    assert!(!json.contains("inform"), "{json}");
}

#[tokio::test]
async fn deleting_one_of_a_partys_signals_does_not_let_the_pair_be_told_again() {
    let north = spawn_region("north").await;
    let withdraw = |signal_id: String, reason: pb::WithdrawReason| pb::WithdrawSignalRequest {
        acting_professional_id: "p-acting".into(),
        signal_id,
        reason: reason as i32,
    };
    let s1 = register(
        &north,
        "jgz-north",
        register_bsn("s1", YOUTH, jgz_contact()),
    )
    .await;
    let s2 = register(
        &north,
        "school-north",
        register_bsn("s2", YOUTH, school_contact()),
    )
    .await;
    let mut jgz = north.client("jgz-north");
    let mut school = north.client("school-north");
    // JGZ archives S1 and registers S3: both parties were told already, nobody is again.
    jgz.withdraw_signal(withdraw(s1.signal_id.clone(), pb::WithdrawReason::RiskGone))
        .await
        .unwrap();
    let s3 = register(
        &north,
        "jgz-north",
        register_bsn("s3", YOUTH, jgz_contact()),
    )
    .await;
    let before = (
        matches(&north, "jgz-north").await,
        matches(&north, "school-north").await,
    );
    assert_eq!((before.0.len(), before.1.len()), (1, 1));
    let e_mails = north.row_counts().await["email_jobs"];
    // S1 turns out to have been unjustified: it goes, but JGZ's party still exists through
    // S3, and the notices that named S1 or were addressed to it move there (invariant 2).
    jgz.withdraw_signal(withdraw(
        s1.signal_id.clone(),
        pb::WithdrawReason::Unjustified,
    ))
    .await
    .unwrap();
    let at_jgz = matches(&north, "jgz-north").await;
    let at_school = matches(&north, "school-north").await;
    assert_eq!(at_jgz.len(), 1, "{at_jgz:#?}");
    assert_eq!(at_jgz[0].notice_id, before.0[0].notice_id);
    assert_eq!(at_jgz[0].signal_id, s3.signal_id);
    assert_eq!(
        at_jgz[0].counterpart.as_ref().unwrap().signal_id,
        s2.signal_id
    );
    assert_eq!(at_school.len(), 1, "{at_school:#?}");
    assert_eq!(at_school[0].notice_id, before.1[0].notice_id);
    assert_eq!(
        at_school[0].counterpart.as_ref().unwrap().signal_id,
        s3.signal_id
    );
    assert_eq!(north.row_counts().await["email_jobs"], e_mails);
    // The school archives S2 and registers S4: still nobody is told twice.
    school
        .withdraw_signal(withdraw(s2.signal_id.clone(), pb::WithdrawReason::RiskGone))
        .await
        .unwrap();
    register(
        &north,
        "school-north",
        register_bsn("s4", YOUTH, school_contact()),
    )
    .await;
    assert_eq!(
        north.row_counts().await["email_jobs"],
        e_mails,
        "a pair was told twice"
    );
}

#[tokio::test]
async fn list_matches_reads_page_by_page_in_order_without_gaps_or_repeats() {
    let region = spawn_region("north").await;
    let youths = ["999991383", "999992065", "999996046"];
    for (i, bsn) in youths.iter().enumerate() {
        register(
            &region,
            "jgz-north",
            register_bsn(&format!("j{i}"), bsn, jgz_contact()),
        )
        .await;
        register(
            &region,
            "school-north",
            register_bsn(&format!("s{i}"), bsn, school_contact()),
        )
        .await;
    }
    // Siblings add a family match; whatever the count, the pages must add up to the whole.
    let whole = matches(&region, "jgz-north").await;
    assert!(whole.len() >= 3, "{whole:#?}");
    let mut client = region.client("jgz-north");
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_matches(pb::ListMatchesRequest {
                acting_professional_id: "p-acting".into(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.matches.len() <= 2);
        paged.extend(page.matches);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, whole);

    for (page_size, page_token, field) in [
        (1001, "", "page_size"),
        (0, "not-a-token", "page_token"),
        (0, "12.not-a-uuid", "page_token"),
    ] {
        let status = client
            .list_matches(pb::ListMatchesRequest {
                acting_professional_id: "p-acting".into(),
                page_size,
                page_token: page_token.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let fields: Vec<String> = status
            .get_details_bad_request()
            .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default();
        assert_eq!(fields, [field]);
    }
}
