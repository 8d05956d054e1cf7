//! The burgerservicenummer. It exists only in memory, long enough to compute pseudonyms
//! (ARCHITECTURE.md invariant 1): it has no `Display`, no serde, and `Debug` hides the digits.

use std::fmt;

/// A BSN that passed the 11-proof (DOMAIN.md section 3.1).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bsn([u8; 9]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BsnError {
    #[error("must be exactly 9 digits")]
    Format,
    #[error("fails the 11-proof")]
    ElevenProof,
}

impl Bsn {
    pub fn parse(input: &str) -> Result<Self, BsnError> {
        let bytes = input.as_bytes();
        if bytes.len() != 9 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(BsnError::Format);
        }
        let mut digits = [0u8; 9];
        for (digit, byte) in digits.iter_mut().zip(bytes) {
            *digit = byte - b'0';
        }
        // Weights 9..2 for the first eight digits and -1 for the last one.
        let weighted: i32 = digits[..8]
            .iter()
            .zip((2..=9).rev())
            .map(|(&d, w)| i32::from(d) * w)
            .sum::<i32>()
            - i32::from(digits[8]);
        if weighted == 0 || weighted % 11 != 0 {
            return Err(BsnError::ElevenProof);
        }
        Ok(Self(digits))
    }

    /// The nine ASCII digits, for keyed hashing only. Never log or store them.
    pub fn expose_digits(&self) -> [u8; 9] {
        self.0.map(|d| d + b'0')
    }
}

impl fmt::Debug for Bsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bsn(*********)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_example_is_valid() {
        assert!(Bsn::parse("999993653").is_ok());
    }

    #[test]
    fn former_bsn_from_the_fixture_fails_the_eleven_proof() {
        assert_eq!(Bsn::parse("010008579"), Err(BsnError::ElevenProof));
    }

    #[test]
    fn all_zeros_is_invalid() {
        assert_eq!(Bsn::parse("000000000"), Err(BsnError::ElevenProof));
    }

    #[test]
    fn wrong_length_and_non_digits_are_invalid() {
        for input in [
            "",
            "99999365",
            "9999936530",
            "99999365a",
            " 99999365",
            "９99993653",
        ] {
            assert_eq!(Bsn::parse(input), Err(BsnError::Format), "{input:?}");
        }
    }

    #[test]
    fn leading_zero_is_allowed() {
        assert!(Bsn::parse("010082426").is_ok());
    }

    #[test]
    fn debug_hides_the_digits() {
        let bsn = Bsn::parse("999993653").unwrap();
        assert!(!format!("{bsn:?}").contains("9999"));
    }

    #[test]
    fn every_fixture_person_passes() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/brp-test-persons.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let persons: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(persons.len(), 677);
        for person in persons {
            let bsn = person["bsn"].as_str().unwrap();
            assert!(Bsn::parse(bsn).is_ok(), "{bsn}");
        }
    }
}
