//! A signal's state and the date rules of registration (DOMAIN.md sections 3 and 4).

use jiff::ToSpan;
use jiff::civil::Date;

/// Age at which every signal on a youth is purged.
pub const YOUTH_AGE_LIMIT_YEARS: i16 = 23;
/// Longest time a signal may stay active.
pub const ACTIVE_YEARS_MAX: i16 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalState {
    /// Can match; its owner gets notices.
    Active,
    /// Archived: shown to new parties, its owner gets no notices. Never active again.
    Inactive,
}

impl SignalState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "active" => Some(Self::Active),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithdrawReason {
    /// Wrong youth or wrongly made: deleted at once, no archive.
    Unjustified,
    /// The risk is gone: archived from now.
    RiskGone,
}

/// Every change to a signal is a new revision, so the hub can ignore replays and old news.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Revision(u64);

impl Revision {
    pub const FIRST: Self = Self(1);

    pub fn new(revision: u64) -> Option<Self> {
        (revision > 0).then_some(Self(revision))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

/// The day a youth born on `birth_date` turns 23. Born on 29 February: 28 February, as jiff
/// clamps to the last day of the month (a vix decision in DOMAIN.md 3.2).
pub fn twenty_third_birthday(birth_date: Date) -> Date {
    birth_date
        .checked_add(YOUTH_AGE_LIMIT_YEARS.years())
        .unwrap_or(Date::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AgeError {
    #[error("birth date lies in the future")]
    BornInFuture,
    #[error("youth is 23 or older")]
    NotAYouth,
}

/// A youth is someone whose 23rd birthday is after `today`.
pub fn check_youth(birth_date: Date, today: Date) -> Result<(), AgeError> {
    if birth_date > today {
        return Err(AgeError::BornInFuture);
    }
    if twenty_third_birthday(birth_date) <= today {
        return Err(AgeError::NotAYouth);
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RemovalDateError {
    #[error("must be after the registration date")]
    NotAfterRegistration,
    #[error("may be at most two years after the registration date")]
    BeyondTwoYears,
    #[error("may only move earlier")]
    Later,
    #[error("must be after today; to end a signal now, withdraw it")]
    NotAfterToday,
}

/// The latest allowed planned removal date for a signal registered on `registered_on`.
pub fn latest_removal_date(registered_on: Date) -> Date {
    registered_on
        .checked_add(ACTIVE_YEARS_MAX.years())
        .unwrap_or(Date::MAX)
}

/// The planned removal date R of a new signal: the requested one if it lies in
/// (registration, registration + 2 years], or the latest allowed one when none is requested.
pub fn planned_removal_date(
    registered_on: Date,
    requested: Option<Date>,
) -> Result<Date, RemovalDateError> {
    let latest = latest_removal_date(registered_on);
    let Some(requested) = requested else {
        return Ok(latest);
    };
    if requested <= registered_on {
        return Err(RemovalDateError::NotAfterRegistration);
    }
    if requested > latest {
        return Err(RemovalDateError::BeyondTwoYears);
    }
    Ok(requested)
}

/// A changed R may only move earlier, and must still lie after `today` (the signal stays active
/// until 00:00 on R; ending it today is a withdrawal, not an update).
pub fn moved_removal_date(
    current: Date,
    requested: Date,
    today: Date,
) -> Result<Date, RemovalDateError> {
    if requested > current {
        return Err(RemovalDateError::Later);
    }
    if requested <= today {
        return Err(RemovalDateError::NotAfterToday);
    }
    Ok(requested)
}

/// A municipality's correction of R (DOMAIN.md section 8): within the cap, so it may also move
/// later than the professional set it, but stays after today and at most two years after the
/// registration.
pub fn corrected_removal_date(
    registered_on: Date,
    requested: Date,
    today: Date,
) -> Result<Date, RemovalDateError> {
    if requested <= today {
        return Err(RemovalDateError::NotAfterToday);
    }
    if requested > latest_removal_date(registered_on) {
        return Err(RemovalDateError::BeyondTwoYears);
    }
    Ok(requested)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("the signal is inactive; register a new signal instead")]
    NotActive,
}

/// What a withdrawal does to a signal (DOMAIN.md section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawal {
    /// Gone at once, with its notices; no archive.
    Delete,
    /// Archived from `inactive_since`.
    Archive { inactive_since: Date },
}

pub fn withdraw(
    state: SignalState,
    reason: WithdrawReason,
    today: Date,
) -> Result<Withdrawal, LifecycleError> {
    match (reason, state) {
        (WithdrawReason::Unjustified, _) => Ok(Withdrawal::Delete),
        (WithdrawReason::RiskGone, SignalState::Active) => Ok(Withdrawal::Archive {
            inactive_since: today,
        }),
        (WithdrawReason::RiskGone, SignalState::Inactive) => Err(LifecycleError::NotActive),
    }
}

/// Professionals change only active signals; an archived one is corrected by the municipality.
pub fn check_updatable(state: SignalState) -> Result<(), LifecycleError> {
    match state {
        SignalState::Active => Ok(()),
        SignalState::Inactive => Err(LifecycleError::NotActive),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn youth_on_the_day_before_the_23rd_birthday() {
        assert_eq!(check_youth(date(2003, 12, 2), date(2026, 12, 1)), Ok(()));
    }

    #[test]
    fn not_a_youth_on_the_23rd_birthday() {
        assert_eq!(
            check_youth(date(2003, 12, 2), date(2026, 12, 2)),
            Err(AgeError::NotAYouth)
        );
    }

    #[test]
    fn leap_day_birth_turns_23_on_28_february() {
        assert_eq!(twenty_third_birthday(date(2004, 2, 29)), date(2027, 2, 28));
        assert_eq!(check_youth(date(2004, 2, 29), date(2027, 2, 27)), Ok(()));
        assert_eq!(
            check_youth(date(2004, 2, 29), date(2027, 2, 28)),
            Err(AgeError::NotAYouth)
        );
    }

    #[test]
    fn future_birth_date_is_refused() {
        assert_eq!(
            check_youth(date(2026, 11, 26), date(2026, 11, 25)),
            Err(AgeError::BornInFuture)
        );
    }

    #[test]
    fn removal_date_defaults_to_two_years() {
        assert_eq!(
            planned_removal_date(date(2026, 11, 25), None),
            Ok(date(2028, 11, 25))
        );
    }

    #[test]
    fn removal_date_two_years_on_is_the_last_allowed() {
        let today = date(2026, 11, 25);
        assert_eq!(
            planned_removal_date(today, Some(date(2028, 11, 25))),
            Ok(date(2028, 11, 25))
        );
        assert_eq!(
            planned_removal_date(today, Some(date(2028, 11, 26))),
            Err(RemovalDateError::BeyondTwoYears)
        );
    }

    #[test]
    fn removal_date_must_be_after_registration() {
        let today = date(2026, 11, 25);
        assert_eq!(
            planned_removal_date(today, Some(today)),
            Err(RemovalDateError::NotAfterRegistration)
        );
    }

    #[test]
    fn removal_cap_from_leap_day_is_28_february() {
        assert_eq!(latest_removal_date(date(2028, 2, 29)), date(2030, 2, 28));
    }

    #[test]
    fn unjustified_deletes_in_any_state_and_risk_gone_archives_active_only() {
        let today = date(2026, 11, 25);
        for state in [SignalState::Active, SignalState::Inactive] {
            assert_eq!(
                withdraw(state, WithdrawReason::Unjustified, today),
                Ok(Withdrawal::Delete)
            );
        }
        assert_eq!(
            withdraw(SignalState::Active, WithdrawReason::RiskGone, today),
            Ok(Withdrawal::Archive {
                inactive_since: today
            })
        );
        assert_eq!(
            withdraw(SignalState::Inactive, WithdrawReason::RiskGone, today),
            Err(LifecycleError::NotActive)
        );
    }

    #[test]
    fn a_correction_stays_within_the_cap_but_may_move_later() {
        let registered = date(2026, 11, 25);
        let today = date(2027, 1, 10);
        assert_eq!(
            corrected_removal_date(registered, date(2028, 11, 25), today),
            Ok(date(2028, 11, 25))
        );
        assert_eq!(
            corrected_removal_date(registered, date(2028, 11, 26), today),
            Err(RemovalDateError::BeyondTwoYears)
        );
        assert_eq!(
            corrected_removal_date(registered, today, today),
            Err(RemovalDateError::NotAfterToday)
        );
    }

    #[test]
    fn removal_date_only_moves_earlier() {
        let today = date(2026, 11, 25);
        let current = date(2027, 6, 1);
        assert_eq!(
            moved_removal_date(current, date(2027, 1, 1), today),
            Ok(date(2027, 1, 1))
        );
        assert_eq!(
            moved_removal_date(current, date(2027, 6, 2), today),
            Err(RemovalDateError::Later)
        );
        assert_eq!(
            moved_removal_date(current, today, today),
            Err(RemovalDateError::NotAfterToday)
        );
    }
}
