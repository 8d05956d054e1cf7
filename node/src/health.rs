//! When a region node says it is not serving (gRPC health `NOT_SERVING`): its database or the
//! link to the hub has been down for longer than a threshold. A short outage is not worth a
//! load balancer's reaction (the node answers `UNAVAILABLE` to what it cannot do meanwhile, and
//! retries by itself); a long one is. The workers report what they saw as it happens
//! ([`Outages`]); the health task asks at its own pace.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Since when the database and the hub link have been down, if they are.
#[derive(Debug, Default)]
pub struct Outages {
    database: Mutex<Option<Instant>>,
    hub: Mutex<Option<Instant>>,
}

fn mark(since: &Mutex<Option<Instant>>, up: bool) {
    if let Ok(mut since) = since.lock() {
        match (up, *since) {
            (true, _) => *since = None,
            (false, None) => *since = Some(Instant::now()),
            (false, Some(_)) => {}
        }
    }
}

fn down_longer(since: &Mutex<Option<Instant>>, threshold: Duration, now: Instant) -> bool {
    since
        .lock()
        .ok()
        .and_then(|since| *since)
        .is_some_and(|since| now.saturating_duration_since(since) > threshold)
}

impl Outages {
    /// The database answered (`true`) or failed.
    pub fn database(&self, up: bool) {
        mark(&self.database, up);
    }

    /// The hub answered or accepted (`true`), or could not be reached.
    pub fn hub(&self, up: bool) {
        mark(&self.hub, up);
    }

    /// Whether neither has been down for longer than `threshold` at `now`.
    pub fn serving(&self, threshold: Duration, now: Instant) -> bool {
        !down_longer(&self.database, threshold, now) && !down_longer(&self.hub, threshold, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_counts_from_its_first_failure_and_ends_with_a_success() {
        let outages = Outages::default();
        let threshold = Duration::from_secs(30);
        let start = Instant::now();
        assert!(outages.serving(threshold, start + Duration::from_secs(3600)));
        outages.hub(false);
        outages.hub(false);
        let after = |secs| start + Duration::from_secs(secs);
        assert!(outages.serving(threshold, after(10)));
        assert!(!outages.serving(threshold, after(31)));
        outages.hub(true);
        assert!(outages.serving(threshold, after(31)));
        outages.database(false);
        assert!(!outages.serving(threshold, after(40)));
        outages.database(true);
        assert!(outages.serving(threshold, after(40)));
    }
}
