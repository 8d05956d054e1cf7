//! How a region waits between attempts to reach the hub. The link should be up, so the wait
//! grows only while attempts keep failing, and its ceiling is a few seconds (configurable): after
//! a hub restart every region is back within that much. Once a connection has worked the wait
//! starts again from the bottom, however that connection ended (a killed hub never ends a stream
//! cleanly).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

const DELAY_MIN: Duration = Duration::from_millis(100);

pub(crate) struct LinkBackoff {
    max: Duration,
    delays: backon::ExponentialBackoff,
}

impl LinkBackoff {
    pub(crate) fn new(max: Duration) -> Self {
        let max = max.max(DELAY_MIN);
        Self {
            max,
            delays: Self::build(max),
        }
    }

    fn build(max: Duration) -> backon::ExponentialBackoff {
        ExponentialBuilder::new()
            .with_min_delay(DELAY_MIN)
            .with_max_delay(max)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// The wait before the next attempt after a failure; jitter never takes it past the
    /// ceiling.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.max).min(self.max)
    }

    /// The link worked: the next failure waits the least again.
    pub(crate) fn reset(&mut self) {
        self.delays = Self::build(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_ceiling_and_start_over_after_a_reset() {
        let max = Duration::from_secs(2);
        let mut backoff = LinkBackoff::new(max);
        let first = backoff.next_delay();
        // Jitter adds up to one delay again.
        assert!(first <= DELAY_MIN * 2, "{first:?}");
        let later: Vec<_> = (0..20).map(|_| backoff.next_delay()).collect();
        assert!(later.iter().all(|d| *d <= max), "{later:?}");
        assert_eq!(later.last(), Some(&max));
        backoff.reset();
        assert!(backoff.next_delay() <= DELAY_MIN * 2);
    }
}
