//! Field-level validation errors. A request is checked completely before it is refused, so the
//! caller learns about every bad field at once (one violation per field).

use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;

/// A date as it travels in requests: strictly `YYYY-MM-DD` (jiff alone would also take a
/// datetime here).
pub fn parse_date(input: &str) -> Result<Date, &'static str> {
    if input.len() != 10 {
        return Err("must be a date as YYYY-MM-DD");
    }
    Date::from_str(input).map_err(|_| "must be a date as YYYY-MM-DD")
}

/// One bad field: its path in the request (`professional.email`) and why it was refused.
/// The description never repeats the submitted value, so no BSN or contact ends up in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// Every violation found in one request, in field order. Never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    violations: Vec<FieldViolation>,
}

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, description);
        errors
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Records the error of `result` under `field` and returns its value, if any.
    pub fn check<T, E: fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error.to_string());
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn violations(&self) -> &[FieldViolation] {
        &self.violations
    }

    /// `Ok(())` when nothing was found, the collected errors otherwise.
    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for violation in &self.violations {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{}: {}", violation.field, violation.description)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}
