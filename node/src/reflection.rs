//! gRPC server reflection for every vix endpoint, so `grpcurl` works with only the dev
//! certificates: the vix services and `grpc.health.v1`.

use tonic_reflection::server::{Builder, v1, v1alpha};

fn builder() -> Builder<'static> {
    Builder::configure()
        .register_encoded_file_descriptor_set(vix_protocol::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// `None` only if the compiled-in descriptors were corrupt; the node then serves without it.
pub(crate) fn v1() -> Option<v1::ServerReflectionServer<impl v1::ServerReflection>> {
    builder()
        .build_v1()
        .inspect_err(|error| tracing::error!(%error, "reflection v1 unavailable"))
        .ok()
}

pub(crate) fn v1alpha() -> Option<v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>> {
    builder()
        .build_v1alpha()
        .inspect_err(|error| tracing::error!(%error, "reflection v1alpha unavailable"))
        .ok()
}
