//! The region node's store written once: the rules ([`rules`]) over the statements a backend
//! provides ([`tx::RegionTx`]), and the parsing of its rows ([`rows`]).

pub(crate) mod decommission;
pub(crate) mod handover;
pub(crate) mod rows;
pub(crate) mod rules;
pub(crate) mod tx;

/// The metrics' counts in one statement, the same on both backends.
pub(crate) const GAUGES_SELECT: &str = "SELECT \
    (SELECT COUNT(*) FROM signals WHERE state = 'active') AS active_signals, \
    (SELECT COUNT(*) FROM signals WHERE state = 'inactive') AS inactive_signals, \
    (SELECT COUNT(*) FROM outbox) AS outbox_events, \
    (SELECT created_at FROM outbox ORDER BY seq LIMIT 1) AS oldest_outbox_event, \
    (SELECT COUNT(*) FROM dead_letters) AS dead_letters, \
    (SELECT COUNT(*) FROM email_jobs WHERE sent_at IS NULL) AS emails_pending";

#[cfg(test)]
mod contract_tests;
