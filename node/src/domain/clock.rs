//! The injectable clock. Every rule that depends on time reads it here, so a test can move a
//! [`ManualClock`] through years of lifecycle without sleeping.

use std::sync::Mutex;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Dates in the rules are Europe/Amsterdam local dates (DOMAIN.md section 3). The zone is
/// compiled in, so no tz database is needed at run time.
pub fn rules_time_zone() -> TimeZone {
    jiff::tz::get!("Europe/Amsterdam")
}

/// The local date in Europe/Amsterdam at `instant`.
pub fn local_date(instant: Timestamp) -> Date {
    instant.to_zoned_datetime(rules_time_zone()).date()
}

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;

    /// Today's date in Europe/Amsterdam.
    fn today(&self) -> Date {
        local_date(self.now())
    }
}

/// The operating system's clock, for production.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the wall clock
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to, for tests and the simulator.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// A clock at noon (Amsterdam) on `date`, far from any midnight edge.
    pub fn at_noon(date: Date) -> Self {
        let start = date
            .at(12, 0, 0, 0)
            .to_zoned_datetime(rules_time_zone())
            .map(|zoned| zoned.timestamp())
            .unwrap_or(Timestamp::UNIX_EPOCH);
        Self::new(start)
    }

    pub fn advance(&self, by: SignedDuration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now = now.saturating_add(by).unwrap_or(*now);
    }

    pub fn set(&self, to: Timestamp) {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at_noon(date(2026, 11, 25));
        assert_eq!(clock.today(), date(2026, 11, 25));
        clock.advance(SignedDuration::from_hours(24 * 365 * 7));
        assert_eq!(clock.today(), date(2033, 11, 23));
    }

    #[test]
    fn late_evening_utc_is_the_next_day_in_amsterdam() {
        let instant: Timestamp = "2026-06-30T22:30:00Z".parse().unwrap();
        assert_eq!(local_date(instant), date(2026, 7, 1));
    }
}
