//! Pseudonyms: the keyed hashes that stand for a youth (subject key) or a BRP parent (family
//! key) everywhere outside the node's memory. Making them sits behind [`Pseudonymiser`]: a
//! shared HMAC key on one machine, or the pseudonym service's oblivious PRF (RFC 9497), which no
//! region can evaluate alone.
//!
//! Keys rotate: while more than one key version is live, every identifier has a key under each,
//! and whoever looks a youth up looks under all of them ([`LiveKeys`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

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
    #[error("an identifier needs a key under at least one version")]
    NoKey,
    #[error("key version {0} is given twice")]
    TwiceVersion(u32),
    #[error("at most {LIVE_VERSIONS_MAX} key versions may be live at once")]
    TooMany,
}

/// Key versions live at once: the current one and those still being retired. Bounded so a
/// lookup is one statement with a fixed number of keys.
pub const LIVE_VERSIONS_MAX: usize = 3;

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

        impl Versioned for $name {
            fn key_version(&self) -> KeyVersion {
                self.version
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

/// A pseudonym that carries its key version.
pub trait Versioned: Copy {
    fn key_version(&self) -> KeyVersion;
}

pseudonym!(
    /// Pseudonym of a youth: from a BSN or, in its own namespace, an alternative id.
    SubjectKey
);
pseudonym!(
    /// Pseudonym of a BRP parent. Two youths sharing one are one family (DOMAIN.md section 5).
    FamilyKey
);

/// One identifier's keys under every live key version, the current one first: new records are
/// stored under [`LiveKeys::current`], and lookups try [`LiveKeys::all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveKeys<K> {
    keys: Vec<K>,
}

impl<K: Versioned> LiveKeys<K> {
    pub fn new(keys: Vec<K>) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::NoKey);
        }
        if keys.len() > LIVE_VERSIONS_MAX {
            return Err(KeyError::TooMany);
        }
        for (index, key) in keys.iter().enumerate() {
            if keys[..index]
                .iter()
                .any(|known| known.key_version() == key.key_version())
            {
                return Err(KeyError::TwiceVersion(key.key_version().get()));
            }
        }
        Ok(Self { keys })
    }

    pub fn current(&self) -> K {
        self.keys[0]
    }

    pub fn all(&self) -> &[K] {
        &self.keys
    }

    /// Exactly [`LIVE_VERSIONS_MAX`] keys, the current one repeated in the free places: for a
    /// statement `IN (?, ?, ?)` that is the same text however many versions are live.
    pub fn padded(&self) -> [K; LIVE_VERSIONS_MAX] {
        std::array::from_fn(|index| *self.keys.get(index).unwrap_or(&self.keys[0]))
    }

    /// A youth's single key, when only one version is live (tests, tools).
    pub fn one(key: K) -> Self {
        Self { keys: vec![key] }
    }
}

/// The youth a request names.
#[derive(Debug, Clone, Copy)]
pub enum YouthRef<'a> {
    Bsn(&'a Bsn),
    Alt(&'a AltYouthId),
}

/// A youth's keys and their parents' (in the order given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pseudonyms {
    pub subject: LiveKeys<SubjectKey>,
    pub families: Vec<LiveKeys<FamilyKey>>,
}

impl Pseudonyms {
    /// Each identifier's keys under the older live versions, paired with its current key.
    pub fn rekeys(&self) -> Rekeys {
        fn pairs<K: Versioned>(keys: &LiveKeys<K>) -> impl Iterator<Item = (K, K)> + '_ {
            keys.all()[1..]
                .iter()
                .map(move |old| (*old, keys.current()))
        }
        Rekeys {
            subject: pairs(&self.subject).collect(),
            family: self.families.iter().flat_map(pairs).collect(),
        }
    }
}

/// While a key rotation is under way: identifiers' keys under older live versions, each with
/// the current key that replaces it. A node re-keys what it stored under the old ones (it has
/// the identifier now, which it never stores), and finds with them what others stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rekeys {
    pub subject: Vec<(SubjectKey, SubjectKey)>,
    pub family: Vec<(FamilyKey, FamilyKey)>,
}

impl Rekeys {
    pub fn is_empty(&self) -> bool {
        self.subject.is_empty() && self.family.is_empty()
    }

    /// The old keys alone: what a signal finds with besides its own keys.
    pub fn previous_keys(&self) -> super::matching::PreviousKeys {
        super::matching::PreviousKeys {
            subject: self.subject.iter().map(|(old, _)| *old).collect(),
            family: self.family.iter().map(|(old, _)| *old).collect(),
        }
    }
}

/// Why no pseudonym could be made. Nothing is stored without one: the caller retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PseudonymError {
    #[error("the pseudonym service cannot be used now: {0}")]
    Unavailable(String),
    #[error("the pseudonym service's rate limit for this region is used up: {0}")]
    RateLimited(String),
}

pub type PseudonymFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Pseudonyms, PseudonymError>> + Send + 'a>>;

/// Turns identifiers into pseudonyms. Implementations must use distinct domain-separated labels
/// for subjects, alternative subjects and parents, so a key of one kind never equals another.
pub trait Pseudonymiser: Send + Sync + 'static {
    /// The keys of `youth` and of each of `parents` under every live version: one round trip
    /// at most, however many identifiers.
    fn pseudonymise<'a>(&'a self, youth: YouthRef<'a>, parents: &'a [Bsn]) -> PseudonymFuture<'a>;
    /// A keyed hash of a caller's idempotency key, made on the node alone. Callers choose
    /// request ids freely, and one could hold a BSN; the node stores only this.
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

    #[test]
    fn live_keys_have_one_current_and_distinct_versions() {
        let v = |n| KeyVersion::new(n).unwrap();
        let keys = LiveKeys::new(vec![
            SubjectKey::new(v(2), [2; 32]),
            SubjectKey::new(v(1), [1; 32]),
        ])
        .unwrap();
        assert_eq!(keys.current().key_version(), v(2));
        assert_eq!(keys.all().len(), 2);
        assert_eq!(LiveKeys::<SubjectKey>::new(vec![]), Err(KeyError::NoKey));
        assert_eq!(
            LiveKeys::new(vec![
                SubjectKey::new(v(1), [2; 32]),
                SubjectKey::new(v(1), [1; 32]),
            ]),
            Err(KeyError::TwiceVersion(1))
        );
    }
}
