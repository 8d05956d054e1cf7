//! gRPC server reflection for every vix endpoint, so `grpcurl` works with only the dev
//! certificates. Each port describes what it serves and nothing else: a hub does not advertise
//! the region API, a region does not advertise the federation API.

use tonic_reflection::server::{Builder, v1, v1alpha};

const HEALTH: &str = "grpc.health.v1.Health";

fn builder(services: &[&str], reflection: &str) -> Builder<'static> {
    let builder = Builder::configure()
        .register_encoded_file_descriptor_set(vix_protocol::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(HEALTH)
        .with_service_name(reflection);
    services
        .iter()
        .fold(builder, |builder, name| builder.with_service_name(*name))
}

/// `None` only if the compiled-in descriptors were corrupt; the node then serves without it.
pub(crate) fn v1(
    services: &[&str],
) -> Option<v1::ServerReflectionServer<impl v1::ServerReflection>> {
    builder(services, "grpc.reflection.v1.ServerReflection")
        .build_v1()
        .inspect_err(|error| tracing::error!(%error, "reflection v1 unavailable"))
        .ok()
}

pub(crate) fn v1alpha(
    services: &[&str],
) -> Option<v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>> {
    builder(services, "grpc.reflection.v1alpha.ServerReflection")
        .build_v1alpha()
        .inspect_err(|error| tracing::error!(%error, "reflection v1alpha unavailable"))
        .ok()
}
