//! End-to-end tests: vix nodes over real mutual TLS on loopback. One binary for the workspace.
// Test code: a failed unwrap is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod coordination;
mod dead_letters;
mod decommission;
mod examples;
mod federation;
mod health;
mod lifecycle;
mod mail;
mod metrics;
mod no_probing;
mod notice_log;
mod organisation_registry;
mod party;
mod plans;
mod plans_postgres;
mod plans_postgres_region;
mod ports;
mod postgres_hubs;
mod postgres_regions;
mod pseudonyms;
mod region_api;
mod request_bounds;
mod rights;
mod rights_scope;
mod server_limits;
mod tls_refusals;
