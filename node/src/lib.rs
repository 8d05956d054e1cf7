//! vix-node: the region node and (later) the national hub of the vix federation.
#![forbid(unsafe_code)]

mod bad_request;
pub mod config;
pub mod dead_letters;
pub mod decommission;
pub mod domain;
/// Entry points of the fuzz targets in `fuzz/`.
pub mod fuzzing;
pub mod handover_seal;
pub mod health;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod mutations;
pub mod oprf;
pub mod person_registry;
pub mod pseudonym;
pub mod pseudonymizer;
mod reflection;
pub mod region;
pub mod secret_file;
pub mod startup;
pub mod store;
pub mod sweeper;
pub mod telemetry;
pub mod tls;
