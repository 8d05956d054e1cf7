//! The clock-driven lifecycle of DOMAIN.md section 4: active until 00:00 on the planned removal
//! date R, then inactive (archived) for five years, then deleted; and every signal on a youth
//! deleted on their 23rd birthday. Pure: the caller passes the dates and today.

use jiff::ToSpan;
use jiff::civil::Date;

use super::SignalState;
use super::signal::twenty_third_birthday;

/// How long an inactive signal stays visible to new parties.
pub const ARCHIVE_YEARS: i16 = 5;

/// The dates that decide a signal's fate. The hub knows no birth date: `None` there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleDates {
    pub state: SignalState,
    pub planned_removal_date: Date,
    pub inactive_since: Option<Date>,
    pub birth_date: Option<Date>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteReason {
    /// Five years inactive.
    ArchiveEnded,
    /// The youth turned 23: every signal in every state goes.
    Age23,
}

/// What is due for a signal on `today`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Nothing,
    /// Active past R: inactive since R (not since today, if the tick came late).
    Expire {
        inactive_since: Date,
    },
    Delete(DeleteReason),
}

/// The day an archive that began on `inactive_since` ends (29 February: 28 February).
pub fn archive_end(inactive_since: Date) -> Date {
    inactive_since
        .checked_add(ARCHIVE_YEARS.years())
        .unwrap_or(Date::MAX)
}

pub fn due(dates: LifecycleDates, today: Date) -> Due {
    if dates
        .birth_date
        .is_some_and(|birth| twenty_third_birthday(birth) <= today)
    {
        return Due::Delete(DeleteReason::Age23);
    }
    let expired = dates.state == SignalState::Active && dates.planned_removal_date <= today;
    let inactive_since = if expired {
        Some(dates.planned_removal_date)
    } else {
        dates.inactive_since
    };
    if inactive_since.is_some_and(|since| archive_end(since) <= today) {
        return Due::Delete(DeleteReason::ArchiveEnded);
    }
    if expired {
        return Due::Expire {
            inactive_since: dates.planned_removal_date,
        };
    }
    Due::Nothing
}

/// The latest dates that are due on `today`, for a database query that selects exactly the
/// signals to change: inactive since on or before the first, or born on or before the second.
/// (One day later than "today minus N years" when 29 February makes that day due as well.)
pub fn sweep_cutoffs(today: Date) -> (Date, Date) {
    let latest = |years: i16, ends: fn(Date) -> Date| {
        let base = today.checked_sub(years.years()).unwrap_or(Date::MIN);
        match base.checked_add(1.day()) {
            Ok(next) if ends(next) <= today => next,
            _ => base,
        }
    };
    (
        latest(ARCHIVE_YEARS, archive_end),
        latest(super::signal::YOUTH_AGE_LIMIT_YEARS, twenty_third_birthday),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn active(r: Date, birth: Option<Date>) -> LifecycleDates {
        LifecycleDates {
            state: SignalState::Active,
            planned_removal_date: r,
            inactive_since: None,
            birth_date: birth,
        }
    }

    #[test]
    fn active_until_the_day_before_r_and_inactive_since_r_from_r() {
        let dates = active(date(2027, 6, 1), None);
        assert_eq!(due(dates, date(2027, 5, 31)), Due::Nothing);
        assert_eq!(
            due(dates, date(2027, 6, 1)),
            Due::Expire {
                inactive_since: date(2027, 6, 1)
            }
        );
        // A late tick still dates the archive from R.
        assert_eq!(
            due(dates, date(2027, 9, 1)),
            Due::Expire {
                inactive_since: date(2027, 6, 1)
            }
        );
    }

    #[test]
    fn the_archive_ends_after_five_years() {
        let archived = LifecycleDates {
            state: SignalState::Inactive,
            planned_removal_date: date(2027, 6, 1),
            inactive_since: Some(date(2027, 6, 1)),
            birth_date: None,
        };
        assert_eq!(due(archived, date(2032, 5, 31)), Due::Nothing);
        assert_eq!(
            due(archived, date(2032, 6, 1)),
            Due::Delete(DeleteReason::ArchiveEnded)
        );
        // An active signal whose R is more than five years past is deleted at once.
        assert_eq!(
            due(active(date(2020, 1, 1), None), date(2026, 1, 1)),
            Due::Delete(DeleteReason::ArchiveEnded)
        );
    }

    #[test]
    fn every_state_is_deleted_on_the_23rd_birthday() {
        let birth = Some(date(2004, 2, 29));
        assert_eq!(
            due(active(date(2028, 1, 1), birth), date(2027, 2, 27)),
            Due::Nothing
        );
        assert_eq!(
            due(active(date(2028, 1, 1), birth), date(2027, 2, 28)),
            Due::Delete(DeleteReason::Age23)
        );
        let archived = LifecycleDates {
            state: SignalState::Inactive,
            planned_removal_date: date(2026, 1, 1),
            inactive_since: Some(date(2026, 1, 1)),
            birth_date: birth,
        };
        assert_eq!(
            due(archived, date(2027, 2, 28)),
            Due::Delete(DeleteReason::Age23)
        );
    }

    #[test]
    fn sweep_cutoffs_are_exact_around_leap_days() {
        // 28 February 2027: someone born 29 February 2004 turns 23 today, 1 March 2004 not.
        let (_, born) = sweep_cutoffs(date(2027, 2, 28));
        assert_eq!(born, date(2004, 2, 29));
        let (_, born) = sweep_cutoffs(date(2026, 11, 25));
        assert_eq!(born, date(2003, 11, 25));
        // 28 February 2029: an archive begun 29 February 2024 ends today.
        let (archived, _) = sweep_cutoffs(date(2029, 2, 28));
        assert_eq!(archived, date(2024, 2, 29));
        let (archived, _) = sweep_cutoffs(date(2029, 3, 1));
        assert_eq!(archived, date(2024, 3, 1));
        // Exactness: every date up to the cutoff is due, the day after is not.
        for today in [date(2027, 2, 28), date(2028, 2, 29), date(2026, 11, 25)] {
            let (archived, born) = sweep_cutoffs(today);
            assert!(archive_end(archived) <= today);
            assert!(archive_end(archived.tomorrow().unwrap()) > today);
            assert!(twenty_third_birthday(born) <= today);
            assert!(twenty_third_birthday(born.tomorrow().unwrap()) > today);
        }
    }
}
