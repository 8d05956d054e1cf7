//! Pseudonyms: the keyed hashes that stand for a youth (subject key) or a BRP parent (family
//! key) everywhere outside the node's memory. The hashing itself sits behind [`Pseudonymiser`],
//! so a blind pseudonymisation service (OPRF, RFC 9497) can replace the shared key later.

use std::fmt;

use super::{AltYouthId, Bsn, OrganisationId, RequestId};

/// Which federation key produced a pseudonym. Carried on every key so keys can rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct KeyVersion(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key version must be at least 1")]
    Version,
    #[error("a key is 64 hexadecimal characters")]
    Digest,
}

impl KeyVersion {
    pub fn new(version: u32) -> Result<Self, KeyError> {
        if version == 0 {
            return Err(KeyError::Version);
        }
        Ok(Self(version))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

macro_rules! pseudonym {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            version: KeyVersion,
            digest: [u8; 32],
        }

        impl $name {
            pub fn new(version: KeyVersion, digest: [u8; 32]) -> Self {
                Self { version, digest }
            }

            pub fn from_hex(version: KeyVersion, hex_digest: &str) -> Result<Self, KeyError> {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| KeyError::Digest)?;
                Ok(Self { version, digest })
            }

            pub fn version(&self) -> KeyVersion {
                self.version
            }

            pub fn digest(&self) -> [u8; 32] {
                self.digest
            }

            pub fn digest_hex(&self) -> String {
                hex::encode(self.digest)
            }

            /// `v<version>:<hex digest>`: one text value that compares equal only for the same
            /// identifier under the same key version.
            pub fn to_stored(&self) -> String {
                format!("v{}:{}", self.version.0, self.digest_hex())
            }

            pub fn parse_stored(stored: &str) -> Result<Self, KeyError> {
                let (version, digest) = stored
                    .strip_prefix('v')
                    .and_then(|rest| rest.split_once(':'))
                    .ok_or(KeyError::Digest)?;
                let version = version.parse().map_err(|_| KeyError::Version)?;
                Self::from_hex(KeyVersion::new(version)?, digest)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // A prefix is enough to tell keys apart in a test failure.
                write!(f, "{}(v{}:{}…)", stringify!($name), self.version.0, &self.digest_hex()[..8])
            }
        }
    };
}

pseudonym!(
    /// Pseudonym of a youth: from a BSN or, in its own namespace, an alternative id.
    SubjectKey
);
pseudonym!(
    /// Pseudonym of a BRP parent. Two youths sharing one are one family (DOMAIN.md section 5).
    FamilyKey
);

/// Turns identifiers into pseudonyms. Implementations must use distinct domain-separated labels
/// for subjects, alternative subjects and parents, so a key of one kind never equals another.
pub trait Pseudonymiser: Send + Sync + 'static {
    fn key_version(&self) -> KeyVersion;
    fn subject_key(&self, youth: &Bsn) -> SubjectKey;
    fn alt_subject_key(&self, youth: &AltYouthId) -> SubjectKey;
    fn family_key(&self, parent: &Bsn) -> FamilyKey;
    /// A keyed hash of a caller's idempotency key. Callers choose request ids freely, and one
    /// could hold a BSN; the node stores only this.
    fn request_key(&self, organisation: &OrganisationId, request: &RequestId) -> [u8; 32];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips_and_carries_the_version() {
        let key = SubjectKey::new(KeyVersion::new(3).unwrap(), [0xab; 32]);
        let stored = key.to_stored();
        assert!(stored.starts_with("v3:abab"));
        assert_eq!(SubjectKey::parse_stored(&stored), Ok(key));
        assert!(SubjectKey::parse_stored("v0:ab").is_err());
        assert!(SubjectKey::parse_stored("abab").is_err());
    }
}
