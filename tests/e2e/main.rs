//! End-to-end tests: vix nodes over real mutual TLS on loopback. One binary for the workspace.

mod region_api;
mod tls_refusals;
