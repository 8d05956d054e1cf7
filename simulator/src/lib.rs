//! vix-sim: a federation of real vix nodes, a synthetic population, a seeded workload and an
//! oracle that does not trust the system (ARCHITECTURE.md invariant 2: every pair told exactly
//! once). Deterministic simulation testing in the manner of FoundationDB's simulator and
//! TigerBeetle's VOPR: the same seed gives the same run.
#![forbid(unsafe_code)]

pub mod check;
pub mod faults;
pub mod federation;
pub mod html;
pub mod ledger;
pub mod oracle;
pub mod plots;
pub mod population;
pub mod privacy;
pub mod processes;
pub mod progress;
pub mod proxy;
pub mod report;
pub mod requests;
pub mod run;
pub mod summary;
#[cfg(test)]
mod svg_probe;
pub mod workload;
