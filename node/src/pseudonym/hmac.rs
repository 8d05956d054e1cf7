//! HMAC-SHA256 pseudonyms with federation keys read from files, for one machine or a
//! development federation (ARCHITECTURE.md, Pseudonyms).
//!
//! `key = HMAC-SHA256(federation_key[v], message)`, the message as [`super::message`] makes it,
//! with one label per kind of identifier so that a subject key, an alternative subject key and a
//! family key can never collide. The keys live on region nodes only; the hub never holds them.

use std::path::Path;

use ring::hmac;

use super::{ALT_SUBJECT_LABEL, FAMILY_LABEL, REQUEST_LABEL, SUBJECT_LABEL, message};
use crate::domain::{
    AltYouthId, Bsn, FamilyKey, KeyVersion, LiveKeys, OrganisationId, PseudonymFuture,
    Pseudonymiser, Pseudonyms, RequestId, SubjectKey, YouthRef,
};

/// A shorter key would weaken the pseudonyms below the 128-bit level.
const FEDERATION_KEY_LEN_MIN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum FederationKeyError {
    #[error("cannot read the federation key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the federation key file must hold at least {FEDERATION_KEY_LEN_MIN} bytes as hexadecimal"
    )]
    Format,
    #[error("federation key version {0} is given twice")]
    Twice(u32),
    #[error(
        "at most {} federation key versions may be live at once",
        crate::domain::LIVE_VERSIONS_MAX
    )]
    TooMany,
}

/// The live federation keys, the current one first.
pub struct HmacPseudonymiser {
    keys: Vec<(KeyVersion, hmac::Key)>,
}

impl HmacPseudonymiser {
    pub fn new(secret: &[u8], version: KeyVersion) -> Result<Self, FederationKeyError> {
        Ok(Self {
            keys: vec![(version, key(secret)?)],
        })
    }

    /// Reads a key file of hexadecimal text (whitespace around it is ignored).
    pub fn from_file(path: &Path, version: KeyVersion) -> Result<Self, FederationKeyError> {
        Ok(Self {
            keys: vec![(version, read_key(path)?)],
        })
    }

    /// Adds a key version still being retired: identifiers get a key under it too, after the
    /// current one, so that what was stored under it is still found.
    pub fn with_previous(
        self,
        secret: &[u8],
        version: KeyVersion,
    ) -> Result<Self, FederationKeyError> {
        self.with_live(version, key(secret)?)
    }

    /// [`Self::with_previous`] from a key file.
    pub fn with_previous_file(
        self,
        path: &Path,
        version: KeyVersion,
    ) -> Result<Self, FederationKeyError> {
        self.with_live(version, read_key(path)?)
    }

    /// Every version once, and no more live at once than a lookup takes: so that every
    /// identifier has exactly one key per live version.
    fn with_live(
        mut self,
        version: KeyVersion,
        key: hmac::Key,
    ) -> Result<Self, FederationKeyError> {
        if self.keys.iter().any(|(known, _)| *known == version) {
            return Err(FederationKeyError::Twice(version.get()));
        }
        if self.keys.len() >= crate::domain::LIVE_VERSIONS_MAX {
            return Err(FederationKeyError::TooMany);
        }
        self.keys.push((version, key));
        Ok(self)
    }

    fn digest(key: &hmac::Key, label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let tag = hmac::sign(key, &message(label, parts));
        let mut digest = [0u8; 32];
        digest.copy_from_slice(tag.as_ref());
        digest
    }

    fn live<K: crate::domain::Versioned>(
        &self,
        make: impl Fn(KeyVersion, [u8; 32]) -> K,
        label: &[u8],
        parts: &[&[u8]],
    ) -> LiveKeys<K> {
        let keys = self
            .keys
            .iter()
            .map(|(version, key)| make(*version, Self::digest(key, label, parts)))
            .collect();
        // One key per version, never none: checked when the keys were given.
        LiveKeys::new(keys).unwrap_or_else(|_| unreachable!("versions are distinct and present"))
    }

    /// A youth's subject key under the current version (tools and tests).
    pub fn subject_key(&self, youth: &Bsn) -> SubjectKey {
        self.subject_keys(youth).current()
    }

    pub fn subject_keys(&self, youth: &Bsn) -> LiveKeys<SubjectKey> {
        self.live(SubjectKey::new, SUBJECT_LABEL, &[&youth.expose_digits()])
    }

    pub fn alt_subject_keys(&self, youth: &AltYouthId) -> LiveKeys<SubjectKey> {
        self.live(
            SubjectKey::new,
            ALT_SUBJECT_LABEL,
            &[youth.issuer().as_bytes(), youth.number().as_bytes()],
        )
    }

    pub fn family_keys(&self, parent: &Bsn) -> LiveKeys<FamilyKey> {
        self.live(FamilyKey::new, FAMILY_LABEL, &[&parent.expose_digits()])
    }

    /// A youth's keys and their parents', at once.
    pub fn pseudonyms(&self, youth: YouthRef<'_>, parents: &[Bsn]) -> Pseudonyms {
        Pseudonyms {
            subject: match youth {
                YouthRef::Bsn(bsn) => self.subject_keys(bsn),
                YouthRef::Alt(id) => self.alt_subject_keys(id),
            },
            families: parents
                .iter()
                .map(|parent| self.family_keys(parent))
                .collect(),
        }
    }
}

fn key(secret: &[u8]) -> Result<hmac::Key, FederationKeyError> {
    if secret.len() < FEDERATION_KEY_LEN_MIN {
        return Err(FederationKeyError::Format);
    }
    Ok(hmac::Key::new(hmac::HMAC_SHA256, secret))
}

fn read_key(path: &Path) -> Result<hmac::Key, FederationKeyError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
        FederationKeyError::Read {
            path: path.display().to_string(),
            source,
        }
    })?);
    let secret =
        zeroize::Zeroizing::new(hex::decode(text.trim()).map_err(|_| FederationKeyError::Format)?);
    key(&secret)
}

impl Pseudonymiser for HmacPseudonymiser {
    fn pseudonymise<'a>(&'a self, youth: YouthRef<'a>, parents: &'a [Bsn]) -> PseudonymFuture<'a> {
        Box::pin(std::future::ready(Ok(self.pseudonyms(youth, parents))))
    }

    fn request_key(&self, organisation: &OrganisationId, request: &RequestId) -> [u8; 32] {
        // The current key: a replay across a rotation is answered "already registered" by the
        // store's check of the active signal, not as a replay; nothing is stored twice.
        Self::digest(
            &self.keys[0].1,
            REQUEST_LABEL,
            &[
                organisation.as_str().as_bytes(),
                request.as_str().as_bytes(),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudonymiser(byte: u8) -> HmacPseudonymiser {
        HmacPseudonymiser::new(&[byte; 32], KeyVersion::new(1).unwrap()).unwrap()
    }

    #[test]
    fn same_bsn_same_key_and_labels_keep_kinds_apart() {
        let p = pseudonymiser(7);
        let bsn = Bsn::parse("999993653").unwrap();
        assert_eq!(p.subject_key(&bsn), p.subject_key(&bsn));
        assert_ne!(
            p.subject_key(&bsn).digest_hex(),
            p.family_keys(&bsn).current().digest_hex()
        );
    }

    #[test]
    fn alt_id_with_bsn_digits_never_matches_the_bsn_key() {
        let p = pseudonymiser(7);
        let bsn = Bsn::parse("999993653").unwrap();
        let alt = AltYouthId::parse("bsn", "999993653").unwrap();
        assert_ne!(p.subject_key(&bsn), p.alt_subject_keys(&alt).current());
    }

    #[test]
    fn alt_id_parts_are_separated() {
        let p = pseudonymiser(7);
        let a = AltYouthId::parse("ab", "c1").unwrap();
        let b = AltYouthId::parse("a", "bc1").unwrap();
        assert_ne!(
            p.alt_subject_keys(&a).current(),
            p.alt_subject_keys(&b).current()
        );
    }

    #[test]
    fn another_federation_key_gives_other_pseudonyms() {
        let bsn = Bsn::parse("999993653").unwrap();
        assert_ne!(
            pseudonymiser(7).subject_key(&bsn),
            pseudonymiser(8).subject_key(&bsn)
        );
    }

    #[test]
    fn key_carries_no_bsn_digits() {
        let bsn = Bsn::parse("999993653").unwrap();
        assert!(
            !pseudonymiser(7)
                .subject_key(&bsn)
                .digest_hex()
                .contains("999993653")
        );
    }

    #[test]
    fn a_previous_version_gives_its_own_keys_after_the_current_ones() {
        let v = |n| KeyVersion::new(n).unwrap();
        let rotated = HmacPseudonymiser::new(&[8; 32], v(2))
            .unwrap()
            .with_previous(&[7; 32], v(1))
            .unwrap();
        let bsn = Bsn::parse("999993653").unwrap();
        let keys = rotated.subject_keys(&bsn);
        assert_eq!(keys.current(), pseudonymiser_v(8, 2).subject_key(&bsn));
        assert_eq!(keys.all()[1], pseudonymiser(7).subject_key(&bsn));
        assert!(matches!(
            HmacPseudonymiser::new(&[8; 32], v(2))
                .unwrap()
                .with_previous(&[7; 32], v(2)),
            Err(FederationKeyError::Twice(2))
        ));
        let four = HmacPseudonymiser::new(&[8; 32], v(4))
            .unwrap()
            .with_previous(&[7; 32], v(3))
            .unwrap()
            .with_previous(&[6; 32], v(2))
            .unwrap()
            .with_previous(&[5; 32], v(1));
        assert!(matches!(four, Err(FederationKeyError::TooMany)));
    }

    fn pseudonymiser_v(byte: u8, version: u32) -> HmacPseudonymiser {
        HmacPseudonymiser::new(&[byte; 32], KeyVersion::new(version).unwrap()).unwrap()
    }

    #[test]
    fn short_or_garbled_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = KeyVersion::new(1).unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, hex::encode([1u8; 16])).unwrap();
        assert!(matches!(
            HmacPseudonymiser::from_file(&short, v1),
            Err(FederationKeyError::Format)
        ));
        let garbled = dir.path().join("garbled");
        std::fs::write(&garbled, "not hex at all").unwrap();
        assert!(matches!(
            HmacPseudonymiser::from_file(&garbled, v1),
            Err(FederationKeyError::Format)
        ));
        let good = dir.path().join("good");
        std::fs::write(&good, format!("{}\n", hex::encode([1u8; 32]))).unwrap();
        assert!(HmacPseudonymiser::from_file(&good, v1).is_ok());
    }
}
