//! Each port describes what it serves (issue 9, item 11): reflection on the hub lists the
//! federation service and not the region's, on a region the region and rights services and not
//! the federation's; health knows every service a port serves.

use tonic::transport::Channel;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use vix_tests::{channel_with, spawn_hub, spawn_linked_region};

async fn listed_services(channel: Channel) -> Vec<String> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list: {response:?}");
    };
    let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    names
}

#[tokio::test]
async fn reflection_and_health_describe_what_each_port_serves() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let (cert, key) = vix_certs_dev::files::region_client("north");
    let at_hub = listed_services(channel_with(hub.addr, &cert, &key)).await;
    assert_eq!(
        at_hub,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "vix.federation.v1.FederationService",
        ]
    );
    let at_region = listed_services(north.channel("jgz-north")).await;
    assert_eq!(
        at_region,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "vix.region.v1.RegionService",
            "vix.region.v1.RightsService",
        ]
    );
    let mut health = HealthClient::new(north.channel("jgz-north"));
    for service in [
        "",
        "vix.region.v1.RegionService",
        "vix.region.v1.RightsService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "vix.federation.v1.FederationService".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}
