//! Per-region rate limits of the pseudonym service: a token bucket of elements per region.
//!
//! The limit is what makes the service a brake on brute force: a compromised region can learn
//! the pseudonym of a BSN only by asking the service, so it can try at most `burst` BSNs at
//! once and `elements_per_second` after that, where trying all ~10^8 valid BSNs takes years,
//! and the audit shows it doing so. Time comes from the caller (an injected clock).

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::domain::RegionId;

/// `[pseudonymizer.rate_limit]`: how many elements each region may have evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// The sustained rate, per region. A registration is one element for the youth and one per
    /// parent; a region's busiest hour stays well below one per second.
    pub elements_per_second: u32,
    /// What a region may use at once after a quiet spell, and the largest call that can pass.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            elements_per_second: 20,
            burst: 2_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    #[error("rate_limit.elements_per_second and rate_limit.burst must be at least 1")]
    Zero,
}

/// Why a call is refused: the region has used its allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Exhausted {
    #[error(
        "this region's rate limit is used up; {elements} elements can be evaluated again in {}ms",
        retry_after.as_millis()
    )]
    Wait {
        elements: u32,
        retry_after: Duration,
    },
    #[error("a call of {elements} elements is larger than this region's burst of {burst}")]
    Larger { elements: u32, burst: u32 },
}

struct Bucket {
    tokens: f64,
    at: Timestamp,
}

/// Every region's bucket. Regions appear on their first call, with a full bucket.
pub struct Buckets {
    limit: RateLimit,
    buckets: HashMap<RegionId, Bucket>,
}

impl Buckets {
    pub fn new(limit: RateLimit) -> Result<Self, RateLimitError> {
        if limit.elements_per_second == 0 || limit.burst == 0 {
            return Err(RateLimitError::Zero);
        }
        Ok(Self {
            limit,
            buckets: HashMap::new(),
        })
    }

    /// Takes `elements` from `region`'s bucket at `now`, or refuses and takes nothing.
    pub fn take(
        &mut self,
        region: &RegionId,
        elements: u32,
        now: Timestamp,
    ) -> Result<(), Exhausted> {
        let burst = f64::from(self.limit.burst);
        if elements > self.limit.burst {
            return Err(Exhausted::Larger {
                elements,
                burst: self.limit.burst,
            });
        }
        let rate = f64::from(self.limit.elements_per_second);
        let bucket = self.buckets.entry(region.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        // A clock that steps back refills nothing (and never drains).
        let elapsed = now.duration_since(bucket.at).as_secs_f64().max(0.0);
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = bucket.at.max(now);
        let wanted = f64::from(elements);
        if bucket.tokens < wanted {
            let retry_after = Duration::from_secs_f64((wanted - bucket.tokens) / rate);
            return Err(Exhausted::Wait {
                elements,
                retry_after,
            });
        }
        bucket.tokens -= wanted;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: &str) -> RegionId {
        RegionId::parse(id).unwrap()
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn a_region_gets_its_burst_then_its_rate_and_never_more() {
        let mut buckets = Buckets::new(RateLimit {
            elements_per_second: 10,
            burst: 100,
        })
        .unwrap();
        let north = region("north");
        buckets.take(&north, 60, at(0)).unwrap();
        buckets.take(&north, 40, at(0)).unwrap();
        let refused = buckets.take(&north, 5, at(0)).unwrap_err();
        assert_eq!(
            refused,
            Exhausted::Wait {
                elements: 5,
                retry_after: Duration::from_millis(500)
            }
        );
        // A refusal takes nothing: half a second later the five pass.
        buckets
            .take(
                &north,
                5,
                Timestamp::from_millisecond(at(0).as_millisecond() + 500).unwrap(),
            )
            .unwrap();
        // Another region has its own bucket.
        buckets.take(&region("south"), 100, at(0)).unwrap();
        // A long pause refills to the burst, not beyond it.
        buckets.take(&north, 100, at(3600)).unwrap();
        assert!(buckets.take(&north, 1, at(3600)).is_err());
    }

    #[test]
    fn a_call_larger_than_the_burst_is_refused_as_such_and_zero_limits_do_not_construct() {
        let mut buckets = Buckets::new(RateLimit {
            elements_per_second: 10,
            burst: 100,
        })
        .unwrap();
        assert_eq!(
            buckets.take(&region("north"), 101, at(0)),
            Err(Exhausted::Larger {
                elements: 101,
                burst: 100
            })
        );
        for limit in [
            RateLimit {
                elements_per_second: 0,
                burst: 1,
            },
            RateLimit {
                elements_per_second: 1,
                burst: 0,
            },
        ] {
            assert!(Buckets::new(limit).is_err());
        }
    }

    #[test]
    fn a_clock_that_steps_back_refills_nothing() {
        let mut buckets = Buckets::new(RateLimit {
            elements_per_second: 10,
            burst: 10,
        })
        .unwrap();
        let north = region("north");
        buckets.take(&north, 10, at(100)).unwrap();
        assert!(buckets.take(&north, 1, at(50)).is_err());
        assert!(buckets.take(&north, 1, at(100)).is_err());
        buckets.take(&north, 10, at(101)).unwrap();
    }
}
