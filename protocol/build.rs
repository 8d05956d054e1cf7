//! Generates the gRPC code from `proto/` with a vendored `protoc`, so no system install is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "proto/vix/region/v1/region.proto",
        "proto/vix/federation/v1/federation.proto",
        "proto/vix/pseudonym/v1/pseudonym.proto",
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("vix_descriptor.bin"))
        .compile_with_config(config, &protos, &["proto"])?;
    Ok(())
}
