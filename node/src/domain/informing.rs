//! The informing duty (DOMAIN.md section 7): the professional tells the parents; from 12 also
//! the youth; from 16 only the youth. Or, to protect the youth or the professional, tells no one
//! and records why, as a code. The record stays on the node; the hub never sees it.

use jiff::ToSpan;
use jiff::civil::Date;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SafetyReason {
    YouthSafety,
    ProfessionalSafety,
}

impl SafetyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::YouthSafety => "youth_safety",
            Self::ProfessionalSafety => "professional_safety",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "youth_safety" => Some(Self::YouthSafety),
            "professional_safety" => Some(Self::ProfessionalSafety),
            _ => None,
        }
    }
}

/// Who was told, or why no one was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InformingRecord {
    Informed {
        parents: bool,
        youth: bool,
        informed_on: Date,
    },
    NotInformed(SafetyReason),
}

/// Whom the duty requires to be told at a given age: `(parents, youth)`.
pub fn required_audience(age_years: i16) -> (bool, bool) {
    match age_years {
        ..12 => (true, false),
        12..16 => (true, true),
        _ => (false, true),
    }
}

/// Age in whole years on `today`; a 29 February birthday counts on 28 February.
pub fn age_on(birth_date: Date, today: Date) -> i16 {
    let mut age = today.year() - birth_date.year();
    if birth_date
        .checked_add(age.years())
        .is_ok_and(|birthday| birthday > today)
    {
        age -= 1;
    }
    age
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InformingError {
    #[error("at age {age} the duty is to inform {required}; the record says {recorded}")]
    WrongAudience {
        age: i16,
        required: &'static str,
        recorded: &'static str,
    },
    #[error("the informing date lies after today")]
    InFuture,
}

fn audience(parents: bool, youth: bool) -> &'static str {
    match (parents, youth) {
        (true, true) => "parents and youth",
        (true, false) => "parents",
        (false, true) => "youth",
        (false, false) => "no one",
    }
}

/// Checks a record: whom to tell follows the youth's age on the registration day
/// (`registered_on`); the informing date may not lie after `today` (it may be later than the
/// registration, when the record is completed afterwards).
pub fn check(
    record: InformingRecord,
    birth_date: Date,
    registered_on: Date,
    today: Date,
) -> Result<(), InformingError> {
    let InformingRecord::Informed {
        parents,
        youth,
        informed_on,
    } = record
    else {
        return Ok(()); // not informing for safety is allowed at every age, with its code
    };
    if informed_on > today {
        return Err(InformingError::InFuture);
    }
    let age = age_on(birth_date, registered_on);
    let required = required_audience(age);
    if (parents, youth) != required {
        return Err(InformingError::WrongAudience {
            age,
            required: audience(required.0, required.1),
            recorded: audience(parents, youth),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    const TODAY: Date = date(2026, 11, 25);

    fn informed(parents: bool, youth: bool) -> InformingRecord {
        InformingRecord::Informed {
            parents,
            youth,
            informed_on: TODAY,
        }
    }

    /// A birth date that makes the youth exactly `age` today.
    fn born(age: i16) -> Date {
        date(2026 - age, 11, 25)
    }

    #[test]
    fn at_11_the_parents_are_told() {
        assert_eq!(check(informed(true, false), born(11), TODAY, TODAY), Ok(()));
        assert!(check(informed(true, true), born(11), TODAY, TODAY).is_err());
        assert!(check(informed(false, true), born(11), TODAY, TODAY).is_err());
    }

    #[test]
    fn at_12_and_15_parents_and_youth_are_told() {
        for age in [12, 15] {
            assert_eq!(
                check(informed(true, true), born(age), TODAY, TODAY),
                Ok(()),
                "{age}"
            );
            assert!(
                check(informed(true, false), born(age), TODAY, TODAY).is_err(),
                "{age}"
            );
            assert!(
                check(informed(false, true), born(age), TODAY, TODAY).is_err(),
                "{age}"
            );
        }
    }

    #[test]
    fn at_16_and_22_only_the_youth_is_told() {
        for age in [16, 22] {
            assert_eq!(
                check(informed(false, true), born(age), TODAY, TODAY),
                Ok(()),
                "{age}"
            );
            assert!(
                check(informed(true, true), born(age), TODAY, TODAY).is_err(),
                "{age}"
            );
            assert!(
                check(informed(true, false), born(age), TODAY, TODAY).is_err(),
                "{age}"
            );
        }
    }

    #[test]
    fn the_day_before_the_12th_birthday_is_still_11() {
        let birth = date(2014, 11, 26);
        assert_eq!(age_on(birth, TODAY), 11);
        assert_eq!(age_on(date(2014, 11, 25), TODAY), 12);
        assert_eq!(age_on(date(2012, 2, 29), date(2026, 2, 28)), 14);
        assert_eq!(age_on(date(2012, 2, 29), date(2026, 2, 27)), 13);
    }

    #[test]
    fn no_one_informed_for_safety_is_allowed_at_any_age_with_a_code() {
        for age in [0, 11, 12, 16, 22] {
            let record = InformingRecord::NotInformed(SafetyReason::YouthSafety);
            assert_eq!(check(record, born(age), TODAY, TODAY), Ok(()));
        }
    }

    #[test]
    fn a_record_completed_after_registration_follows_the_age_at_registration() {
        // Registered the day before the 12th birthday, the parents told a week later: the
        // youth was 11 on the registration day, so the parents alone.
        let birth = date(2014, 11, 26);
        let record = InformingRecord::Informed {
            parents: true,
            youth: false,
            informed_on: date(2026, 12, 2),
        };
        assert_eq!(check(record, birth, TODAY, date(2026, 12, 2)), Ok(()));
        assert_eq!(
            check(record, birth, TODAY, date(2026, 12, 1)),
            Err(InformingError::InFuture)
        );
    }

    #[test]
    fn an_informing_date_in_the_future_is_refused() {
        let record = InformingRecord::Informed {
            parents: false,
            youth: true,
            informed_on: date(2026, 11, 26),
        };
        assert_eq!(
            check(record, born(16), TODAY, TODAY),
            Err(InformingError::InFuture)
        );
    }
}
