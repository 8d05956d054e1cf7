//! Invariant 4: a certificate from another CA, expired or revoked gets no access. Each test
//! makes a real call, because with TLS 1.3 the client may believe the handshake succeeded.

use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use vix_protocol::region::v1 as pb;
use vix_tests::spawn_region;

async fn list_matches_as(org: &str) -> Result<usize, tonic::Status> {
    let north = spawn_region("north").await;
    let result = north
        .client(org)
        .list_matches(pb::ListMatchesRequest {
            acting_professional_id: "p-acting".into(),
            ..Default::default()
        })
        .await
        .map(|response| response.into_inner().matches.len());
    north.stop().await;
    result
}

fn assert_refused(result: Result<usize, tonic::Status>, what: &str) {
    let status = result.expect_err(what);
    // The handshake fails, so the call never reaches a service: no PermissionDenied from a
    // handler, but a transport failure.
    assert!(
        matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled
        ),
        "{what}: {status:?}"
    );
}

#[tokio::test]
async fn a_certificate_of_the_federation_ca_is_served() {
    assert_eq!(list_matches_as("jgz-north").await.unwrap(), 0);
}

#[tokio::test]
async fn a_certificate_from_a_rogue_ca_is_refused() {
    assert_refused(
        list_matches_as(vix_certs_dev::files::ROGUE_ORG).await,
        "rogue CA",
    );
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    assert_refused(
        list_matches_as(vix_certs_dev::files::EXPIRED_ORG).await,
        "expired",
    );
}

#[tokio::test]
async fn a_revoked_certificate_is_refused() {
    assert_refused(
        list_matches_as(vix_certs_dev::files::REVOKED_ORG).await,
        "revoked",
    );
}

#[tokio::test]
async fn health_answers_on_the_same_port() {
    let north = spawn_region("north").await;
    let mut health = HealthClient::new(north.channel("jgz-north"));
    let response = health
        .check(HealthCheckRequest {
            service: "vix.region.v1.RegionService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.status, 1, "SERVING");
}
