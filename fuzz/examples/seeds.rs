//! Writes the seed corpora in `fuzz/seeds/<target>/`: a few valid inputs per target, so the
//! fuzzer starts past the first checks. `vix_node::fuzzing`'s unit test checks that every seed
//! is still accepted.
//!
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds

use std::path::Path;

use prost::Message;
use vix_protocol::federation::v1 as fed;
use vix_protocol::region::v1 as pb;

/// 2026-11-20 as days after 2000-01-01, the `today` of the region seeds.
const TODAY: u16 = 9820;
const SIGNAL: &str = "0b3c1f7e-5a2d-4c7b-9e61-2f4a8d9c0e13";
const OTHER_SIGNAL: &str = "6f1d2c3b-4a59-4e8f-8d7c-1b2a3c4d5e6f";
const NOTICE: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::create_dir_all(dir).expect("create the seed folder");
    std::fs::write(dir.join(name), data).expect("write a seed");
}

fn region(dir: &Path, name: &str, kind: u8, message: &impl Message) {
    let mut data = vec![kind];
    data.extend_from_slice(&TODAY.to_be_bytes());
    data.extend(message.encode_to_vec());
    write(dir, name, &data);
}

fn contact() -> pb::ProfessionalContact {
    pb::ProfessionalContact {
        professional_id: "p1".into(),
        name: "A. de Jong".into(),
        email: "a.dejong@jgz-noord.example.nl".into(),
        phone: "+31 50 123 4567".into(),
    }
}

fn informed(parents: bool, youth: bool) -> pb::InformingRecord {
    pb::InformingRecord {
        record: Some(pb::informing_record::Record::Informed(pb::Informed {
            parents,
            youth,
            informed_on: "2026-11-20".into(),
        })),
    }
}

fn alt_youth() -> pb::AltYouthId {
    pb::AltYouthId {
        issuer: "coa".into(),
        number: "V1234567".into(),
        birth_date: "2012-03-04".into(),
    }
}

fn region_seeds(dir: &Path) {
    use pb::register_signal_request::Youth;
    region(
        dir,
        "register-bsn",
        0,
        &pb::RegisterSignalRequest {
            request_id: "demo-1".into(),
            youth: Some(Youth::Bsn("999991383".into())),
            professional: Some(contact()),
            informing: Some(informed(false, true)),
            planned_removal_date: String::new(),
        },
    );
    region(
        dir,
        "register-alt",
        0,
        &pb::RegisterSignalRequest {
            request_id: "demo-2".into(),
            youth: Some(Youth::AltYouthId(alt_youth())),
            professional: Some(contact()),
            informing: Some(informed(true, true)),
            planned_removal_date: "2027-06-01".into(),
        },
    );
    region(
        dir,
        "register-not-informed",
        0,
        &pb::RegisterSignalRequest {
            request_id: "demo-3".into(),
            youth: Some(Youth::Bsn("999991383".into())),
            professional: Some(contact()),
            informing: Some(pb::InformingRecord {
                record: Some(pb::informing_record::Record::NotInformed(pb::NotInformed {
                    reason: pb::NotInformedReason::YouthSafety.into(),
                })),
            }),
            planned_removal_date: String::new(),
        },
    );
    region(
        dir,
        "update",
        1,
        &pb::UpdateSignalRequest {
            signal_id: SIGNAL.into(),
            acting_professional_id: "p1".into(),
            professional: Some(contact()),
            planned_removal_date: "2027-01-31".into(),
            informing: Some(informed(false, true)),
        },
    );
    region(
        dir,
        "withdraw",
        2,
        &pb::WithdrawSignalRequest {
            signal_id: SIGNAL.into(),
            acting_professional_id: "p1".into(),
            reason: pb::WithdrawReason::RiskGone.into(),
        },
    );
    region(
        dir,
        "list-matches",
        3,
        &pb::ListMatchesRequest {
            signal_id: SIGNAL.into(),
            acting_professional_id: "p1".into(),
            page_size: 50,
            page_token: format!("1795132800000000.{NOTICE}"),
        },
    );
    region(
        dir,
        "get-signal",
        4,
        &pb::GetSignalRequest {
            signal_id: SIGNAL.into(),
            acting_professional_id: "p1".into(),
        },
    );
    region(
        dir,
        "coordinate",
        5,
        &pb::CoordinateRequest {
            notice_id: NOTICE.into(),
            acting_professional_id: "p1".into(),
            action: Some(pb::coordinate_request::Action::NameRegievoerder(
                pb::Party::Counterpart.into(),
            )),
        },
    );
    region(
        dir,
        "export-youth",
        6,
        &pb::ExportYouthRequest {
            youth: Some(pb::export_youth_request::Youth::Bsn("999991383".into())),
            officer_id: "officer-7".into(),
        },
    );
    region(
        dir,
        "correct-signal",
        7,
        &pb::CorrectSignalRequest {
            signal_id: SIGNAL.into(),
            professional: Some(contact()),
            planned_removal_date: "2027-01-31".into(),
            informing: Some(informed(true, true)),
            officer_id: "officer-7".into(),
            reference: "order/2026-17".into(),
        },
    );
    region(
        dir,
        "order-erasure",
        8,
        &pb::OrderErasureRequest {
            youth: Some(pb::order_erasure_request::Youth::AltYouthId(alt_youth())),
            signal_ids: vec![SIGNAL.into()],
            officer_id: "officer-7".into(),
            reference: "order/2026-18".into(),
        },
    );
}

fn fed_contact() -> fed::ProfessionalContact {
    fed::ProfessionalContact {
        professional_id: "v9".into(),
        name: "C. Visser".into(),
        email: "c.visser@veiligthuis-zuid.example.nl".into(),
        phone: String::new(),
    }
}

fn coordination_change() -> fed::CoordinationChange {
    fed::CoordinationChange {
        change_id: "3e2d1c0b-9a8f-4e7d-8c6b-5a4f3e2d1c0b".into(),
        by_signal_id: SIGNAL.into(),
        other_signal_id: OTHER_SIGNAL.into(),
        at: "2026-11-20T10:15:00Z".into(),
        change: Some(fed::coordination_change::Change::RegievoerderSignalId(
            OTHER_SIGNAL.into(),
        )),
    }
}

fn federation_seeds(dir: &Path) {
    let pseudonym = |byte| fed::Pseudonym {
        key_version: 1,
        digest: vec![byte; 32],
    };
    let upsert = fed::SignalUpsert {
        subject_key: Some(pseudonym(1)),
        family_keys: vec![pseudonym(2), pseudonym(3)],
        organisation_id: "vt-south".into(),
        professional: Some(fed_contact()),
        registered_at: "2026-11-20T09:00:00Z".into(),
        planned_removal_date: "2028-11-20".into(),
        state: fed::SignalState::Active.into(),
        inactive_since: String::new(),
    };
    let inactive = fed::SignalUpsert {
        state: fed::SignalState::Inactive.into(),
        inactive_since: "2026-12-01".into(),
        family_keys: Vec::new(),
        ..upsert.clone()
    };
    let request = fed::SubmitSignalsRequest {
        region_id: "south".into(),
        events: vec![
            fed::SignalEvent {
                signal_id: SIGNAL.into(),
                revision: 1,
                change: Some(fed::signal_event::Change::Upsert(upsert)),
            },
            fed::SignalEvent {
                signal_id: OTHER_SIGNAL.into(),
                revision: 3,
                change: Some(fed::signal_event::Change::Upsert(inactive)),
            },
            fed::SignalEvent {
                signal_id: NOTICE.into(),
                revision: 2,
                change: Some(fed::signal_event::Change::Deletion(fed::SignalDeletion {})),
            },
        ],
    };
    let mut data = vec![0];
    data.extend(request.encode_to_vec());
    write(dir, "submit-signals", &data);

    let afgestemd = fed::CoordinationChange {
        change: Some(fed::coordination_change::Change::Afgestemd(true)),
        ..coordination_change()
    };
    let request = fed::SubmitCoordinationRequest {
        region_id: "south".into(),
        changes: vec![coordination_change(), afgestemd],
    };
    let mut data = vec![1];
    data.extend(request.encode_to_vec());
    write(dir, "submit-coordination", &data);
}

fn notice_log_seeds(dir: &Path) {
    let notice = fed::NoticeLogEntry {
        cursor: 17,
        entry: Some(fed::notice_log_entry::Entry::Notice(fed::Notice {
            notice_id: NOTICE.into(),
            match_type: fed::MatchType::Youth.into(),
            kind: fed::NoticeKind::Match.into(),
            recipient_signal_id: SIGNAL.into(),
            recipient_organisation_id: "jgz-north".into(),
            found_at: "2026-11-20T10:00:00.123456Z".into(),
            counterpart: Some(fed::Counterpart {
                organisation_id: "vt-south".into(),
                organisation_name: "Veilig Thuis Zuid".into(),
                professional: Some(fed_contact()),
                signal_id: OTHER_SIGNAL.into(),
                state: fed::SignalState::Active.into(),
                region_id: "south".into(),
            }),
        })),
    };
    write(dir, "notice", &notice.encode_to_vec());
    let retraction = fed::NoticeLogEntry {
        cursor: 18,
        entry: Some(fed::notice_log_entry::Entry::Retraction(fed::Retraction {
            notice_id: NOTICE.into(),
        })),
    };
    write(dir, "retraction", &retraction.encode_to_vec());
    let coordination = fed::NoticeLogEntry {
        cursor: 19,
        entry: Some(fed::notice_log_entry::Entry::Coordination(
            coordination_change(),
        )),
    };
    write(dir, "coordination", &coordination.encode_to_vec());
}

const REGION_TOML: &str = r#"[log]
format = "json"
filter = "info,vix_node=debug"

[region]
region_id = "north"
listen = "127.0.0.1:50051"
database = "var/dev/north.sqlite"
federation_key_file = "var/dev/pki/federation.key"
federation_key_version = 1
person_registry_file = "../shared/fixtures/brp-test-persons.json"
organisation_registry_file = "var/dev/pki/organisations.toml"
municipalities = ["0014"]

[region.tls]
ca = "var/dev/pki/ca.pem"
cert = "var/dev/pki/region-north-server.pem"
key = "var/dev/pki/region-north-server.key"
crls = ["var/dev/pki/crl.pem"]

[region.hub]
address = "127.0.0.1:50050"
server_name = "hub.vix.test"

[region.hub.tls]
ca = "var/dev/pki/ca.pem"
cert = "var/dev/pki/region-north-client.pem"
key = "var/dev/pki/region-north-client.key"
"#;

const HUB_TOML: &str = r#"[hub]
listen = "127.0.0.1:50050"
database = "var/dev/hub.sqlite"
organisation_registry_file = "var/dev/pki/organisations.toml"

[hub.tls]
ca = "var/dev/pki/ca.pem"
cert = "var/dev/pki/hub-server.pem"
key = "var/dev/pki/hub-server.key"
"#;

fn config_seeds(dir: &Path) {
    write(dir, "region", REGION_TOML.as_bytes());
    write(dir, "hub", HUB_TOML.as_bytes());
    let with_env =
        format!("{HUB_TOML}\0VIX_HUB__LISTEN=127.0.0.1:6000\nVIX_LOG__FORMAT=text\nOTHER=1\n");
    write(dir, "hub-with-env", with_env.as_bytes());
}

fn file_seeds(registry: &Path, mutations: &Path) {
    write(
        registry,
        "persons",
        br#"[
{"bsn":"999990937","birth_date":"1980-01-23","death_date":null,"sex":"V","parents":[],"children":["999991383"],"municipality":"0530"},
{"bsn":"999991383","birth_date":"2008-01-26","death_date":null,"sex":"M","parents":["999993562","999990937"],"children":[],"municipality":"0530"},
{"bsn":"999992077","birth_date":"2015-01-01","death_date":"2015-10-01","sex":"M","parents":[],"children":[],"municipality":"1999"}
]
"#
    );
    write(
        mutations,
        "death-and-move",
        b"{\"bsn\":\"999991383\",\"death_date\":\"2026-11-20\"}\n\n{\"bsn\":\"999992065\",\"municipality\":\"0518\"}\n",
    );
}

fn main() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    region_seeds(&seeds.join("region_request"));
    federation_seeds(&seeds.join("federation_request"));
    notice_log_seeds(&seeds.join("notice_log_entry"));
    config_seeds(&seeds.join("config"));
    file_seeds(&seeds.join("person_registry"), &seeds.join("mutations"));
    println!("seeds written to {}", seeds.display());
}
