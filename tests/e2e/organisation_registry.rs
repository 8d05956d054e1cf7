//! The organisation registry (issue 9, item 2): which region serves which organisation and the
//! name it is shown by come from one file the hub and every region load, never from a
//! certificate's CN or from a message, and nothing binds on first use (see also
//! `dead_letters.rs`, where a region with a wrong registry speaks for another region's
//! organisation first and is refused).

use tonic::Code;
use vix_certs_dev::{DevCa, LeafSpec};
use vix_protocol::region::v1 as pb;
use vix_tests::{eventually, pki, spawn_hub, spawn_linked_region};

const YOUTH: &str = "999991383";

/// Issues a client certificate into the shared dev PKI as `org-<file_id>.pem`/`.key`, so that
/// `TestRegion::client(file_id)` calls with it.
fn issue_org_certificate(file_id: &str, common_name: &str, uri: &str) {
    let (cert, key) = vix_certs_dev::files::organisation(file_id);
    DevCa::load(pki())
        .unwrap()
        .issue(&LeafSpec::client(common_name, uri), &cert, &key)
        .unwrap();
}

#[tokio::test]
async fn a_certificate_with_another_organisations_cn_is_shown_by_the_registry_name() {
    // The right URI SAN (jgz-north) with the CN of an organisation of another region.
    issue_org_certificate(
        "jgz-north-posing",
        "Veilig Thuis Zuid",
        "urn:vix:org:jgz-north",
    );
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;

    let posing = north
        .register_bsn("jgz-north-posing", YOUTH, "posing")
        .await;
    assert_eq!(posing.organisation_id, "jgz-north");
    assert_eq!(posing.organisation_name, "JGZ Noord");
    north.register_bsn("school-north", YOUTH, "school").await;
    south.register_bsn("vt-south", YOUTH, "vt").await;

    // Across regions, through the hub: south's party is shown the registry's name.
    let seen_in_south = eventually("vt-south sees both north parties", || async {
        let matches = south.matches("vt-south").await;
        (matches.len() == 2).then_some(matches)
    })
    .await;
    // Within the region: the local party too.
    let seen_in_north = north.matches("school-north").await;
    for (who, matches) in [
        ("vt-south", &seen_in_south),
        ("school-north", &seen_in_north),
    ] {
        let jgz = matches
            .iter()
            .filter_map(|m| m.counterpart.as_ref())
            .find(|c| c.organisation_id == "jgz-north")
            .unwrap_or_else(|| panic!("{who} sees jgz-north: {matches:#?}"));
        assert_eq!(jgz.organisation_name, "JGZ Noord", "{who}");
    }
    // The certificate's CN is shown for nobody but the organisation the registry names so.
    for matches in [&seen_in_south, &seen_in_north] {
        for counterpart in matches.iter().filter_map(|m| m.counterpart.as_ref()) {
            if counterpart.organisation_name == "Veilig Thuis Zuid" {
                assert_eq!(counterpart.organisation_id, "vt-south", "{matches:#?}");
            }
        }
    }
}

#[tokio::test]
async fn an_organisation_the_registry_does_not_know_is_refused_by_the_region() {
    issue_org_certificate(
        "unregistered",
        "Onbekende Organisatie",
        "urn:vix:org:unregistered",
    );
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let status = north
        .client("unregistered")
        .list_matches(pb::ListMatchesRequest {
            acting_professional_id: "p-acting".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
}
