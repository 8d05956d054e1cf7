//! Validated identifiers. Each constructor is the only way in, so an id that exists is valid.

use std::fmt;

/// Characters allowed in identifiers that travel in certificates, URNs and SQL: letters, digits,
/// and `-`, `_`, `.`. Nothing that needs escaping anywhere.
fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is required")]
    Empty,
    #[error("is longer than {0} characters")]
    TooLong(usize),
    #[error("may hold only letters, digits, '-', '_' and '.'")]
    Characters,
    #[error("is not a valid signal id (a UUID)")]
    NotUuid,
}

fn check_id(input: &str, max_len: usize) -> Result<(), IdError> {
    if input.is_empty() {
        return Err(IdError::Empty);
    }
    if input.chars().count() > max_len {
        return Err(IdError::TooLong(max_len));
    }
    if !input.chars().all(is_id_char) {
        return Err(IdError::Characters);
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(input: &str) -> Result<Self, IdError> {
                check_id(input, Self::MAX_LEN)?;
                Ok(Self(input.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

string_id!(
    /// A region (convenantgebied), as named in its certificate: `urn:vix:region:<id>`.
    RegionId,
    64
);
string_id!(
    /// An organisation (instantie), as named in its certificate: `urn:vix:org:<id>`.
    OrganisationId,
    64
);
string_id!(
    /// The caller's idempotency key for `RegisterSignal`, unique per organisation.
    RequestId,
    128
);

/// A municipality (gemeente) by its four-digit CBS code: it handles the rights of the youths
/// living there (DOMAIN.md section 8).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MunicipalityCode(String);

impl MunicipalityCode {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        if input.is_empty() {
            return Err(IdError::Empty);
        }
        if input.len() != 4 || !input.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::Characters);
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MunicipalityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MunicipalityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MunicipalityCode({})", self.0)
    }
}

/// A signal number: random, so it says nothing about the youth (DOMAIN.md section 2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignalId(uuid::Uuid);

impl SignalId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    pub fn parse(input: &str) -> Result<Self, IdError> {
        if input.is_empty() {
            return Err(IdError::Empty);
        }
        uuid::Uuid::try_parse(input)
            .map(Self)
            .map_err(|_| IdError::NotUuid)
    }
}

impl fmt::Display for SignalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

impl fmt::Debug for SignalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignalId({self})")
    }
}

impl serde::Serialize for SignalId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The identifier of a youth without a BSN: an issuer code plus a number (DOMAIN.md 3.6).
/// It is keyed under its own label, so it never matches a BSN key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AltYouthId {
    issuer: String,
    number: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AltYouthIdError {
    #[error("issuer {0}")]
    Issuer(IdError),
    #[error("number {0}")]
    Number(IdError),
}

impl AltYouthId {
    pub const ISSUER_MAX_LEN: usize = 32;
    pub const NUMBER_MAX_LEN: usize = 64;

    pub fn parse(issuer: &str, number: &str) -> Result<Self, AltYouthIdError> {
        check_id(issuer, Self::ISSUER_MAX_LEN).map_err(AltYouthIdError::Issuer)?;
        check_id(number, Self::NUMBER_MAX_LEN).map_err(AltYouthIdError::Number)?;
        Ok(Self {
            issuer: issuer.to_owned(),
            number: number.to_owned(),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn number(&self) -> &str {
        &self.number
    }
}

impl fmt::Debug for AltYouthId {
    /// The number identifies a youth as much as a BSN does, so it is not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AltYouthId({}:***)", self.issuer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_empty_long_and_odd_characters() {
        assert_eq!(RegionId::parse(""), Err(IdError::Empty));
        assert_eq!(RegionId::parse(&"a".repeat(65)), Err(IdError::TooLong(64)));
        assert_eq!(OrganisationId::parse("ggd north"), Err(IdError::Characters));
        assert_eq!(OrganisationId::parse("ggd:north"), Err(IdError::Characters));
        assert!(OrganisationId::parse("ggd-north.jgz_1").is_ok());
    }

    #[test]
    fn signal_id_round_trips_and_refuses_garbage() {
        let id = SignalId::generate();
        assert_eq!(SignalId::parse(&id.to_string()), Ok(id));
        assert_eq!(SignalId::parse("42"), Err(IdError::NotUuid));
        assert_eq!(SignalId::parse(""), Err(IdError::Empty));
    }

    #[test]
    fn alt_youth_id_debug_hides_the_number() {
        let id = AltYouthId::parse("coa", "V1234567").unwrap();
        assert!(!format!("{id:?}").contains("1234567"));
    }
}
