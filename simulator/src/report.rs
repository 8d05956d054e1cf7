//! What a run found, as data: the summary table, `report.json` and `report.html` are all
//! rendered from this one value, so they cannot disagree.

use serde::{Deserialize, Serialize};

/// Every parameter a run drew or was given: the seed and these reproduce it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Parameters {
    pub seed: u64,
    /// `in-process` or `process`.
    pub mode: String,
    pub regions: usize,
    pub families: usize,
    /// Simulated days the workload spans.
    pub days: u32,
    pub first_day: String,
    /// Registrations in flight at once.
    pub concurrency: usize,
    /// Fault kinds asked for (`outage`, `partition`, `kill`, ...).
    pub fault_kinds: Vec<String>,
    /// The fault schedule drawn from the seed, printed before the run.
    pub schedule: Vec<String>,
    /// Registrations each region receives over the run (its size), by region id.
    pub region_weights: Vec<(String, u32)>,
}

/// Counts of the operations the federation acknowledged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Operations {
    pub registrations: u64,
    pub re_registrations: u64,
    pub updates: u64,
    pub withdrawals_risk_gone: u64,
    pub withdrawals_unjustified: u64,
    pub erasure_orders: u64,
    pub deaths: u64,
    /// Youths whose signals were purged on their 23rd birthday.
    pub birthdays: u64,
    /// Signals that turned inactive on their planned removal date.
    pub expired: u64,
}

/// The oracle's verdict.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Verdict {
    /// Notices the rule says must stand at the end.
    pub expected: u64,
    /// Notices the regions show through `ListMatches`.
    pub delivered: u64,
    /// Each names the notice: recipient organisation and signal, counterpart, type.
    pub missing: Vec<String>,
    pub duplicated: Vec<String>,
    pub unexpected: Vec<String>,
    pub youth_matches: u64,
    pub family_matches: u64,
    pub history_notices: u64,
    pub local: u64,
    pub cross_region: u64,
}

/// One fault as injected.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fault {
    /// From the vocabulary: `hub-down`, `region-down`, `link-cut`, `link-stall`, `link-delay`,
    /// `replay`, `kill-hub`, `kill-region`.
    pub kind: String,
    /// What it hit, e.g. `r03` or `hub`.
    pub target: String,
    pub day: String,
    /// Wall time since the run started when it began, and how long it lasted.
    pub at_ms: u64,
    pub duration_ms: u64,
    /// After healing: wall time until the federation was quiet again.
    pub convergence_ms: u64,
}

/// One simulated day.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Day {
    pub day: String,
    pub registrations: u64,
    /// Other acknowledged changes: updates, withdrawals, erasures, deaths.
    pub changes: u64,
    /// New notices the oracle expects that day, by type.
    pub youth_notices: u64,
    pub family_notices: u64,
    /// Wall time from the day's last acknowledgement until the federation was quiet: an upper
    /// bound on the delivery latency of every notice found that day.
    pub settle_ms: u64,
}

/// The backlog, sampled while faults were on: what the regions' outboxes and the hub's notice
/// logs held.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Backlog {
    pub at_ms: u64,
    pub outbox: u64,
    pub hub_unacked: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Privacy {
    pub files_scanned: u64,
    pub bytes_scanned: u64,
    /// Files holding a BSN of the population in plain text.
    pub hits: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub parameters: Parameters,
    pub persons: u64,
    /// Signals registered (acknowledged) over the run.
    pub signals: u64,
    pub operations: Operations,
    pub verdict: Verdict,
    pub faults: Vec<Fault>,
    /// The longest convergence after healing, in wall milliseconds.
    pub convergence_ms: u64,
    pub days: Vec<Day>,
    pub backlog: Vec<Backlog>,
    /// Signals registered per region id.
    pub load: Vec<(String, u64)>,
    pub privacy: Privacy,
    pub wall_ms: u64,
}

impl Report {
    /// The oracle and the privacy scan found nothing wrong.
    pub fn passed(&self) -> bool {
        self.verdict.missing.is_empty()
            && self.verdict.duplicated.is_empty()
            && self.verdict.unexpected.is_empty()
            && self.privacy.hits.is_empty()
    }

    pub fn signals_per_second(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)] // a rate for people
        let rate = self.signals as f64 * 1000.0 / self.wall_ms.max(1) as f64;
        rate
    }
}
