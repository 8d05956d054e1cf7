//! HMAC-SHA256 pseudonyms with a federation key read from a file (ARCHITECTURE.md, Pseudonyms).
//!
//! `key = HMAC-SHA256(federation_key[v], label || 0x00 || identifier)`, with one label per kind
//! of identifier so that a subject key, an alternative subject key and a family key can never
//! collide. The key lives on region nodes only; the hub never holds it.

use std::path::Path;

use ring::hmac;

use crate::domain::{
    AltYouthId, Bsn, FamilyKey, KeyVersion, OrganisationId, Pseudonymiser, RequestId, SubjectKey,
};

const SUBJECT_LABEL: &[u8] = b"vix/subject/v1";
const ALT_SUBJECT_LABEL: &[u8] = b"vix/alt-subject/v1";
const FAMILY_LABEL: &[u8] = b"vix/family/v1";
const REQUEST_LABEL: &[u8] = b"vix/request/v1";
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
}

pub struct HmacPseudonymiser {
    key: hmac::Key,
    version: KeyVersion,
}

impl HmacPseudonymiser {
    pub fn new(secret: &[u8], version: KeyVersion) -> Result<Self, FederationKeyError> {
        if secret.len() < FEDERATION_KEY_LEN_MIN {
            return Err(FederationKeyError::Format);
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            version,
        })
    }

    /// Reads a key file of hexadecimal text (whitespace around it is ignored).
    pub fn from_file(path: &Path, version: KeyVersion) -> Result<Self, FederationKeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| FederationKeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let secret = hex::decode(text.trim()).map_err(|_| FederationKeyError::Format)?;
        Self::new(&secret, version)
    }

    fn digest(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(label);
        for part in parts {
            context.update(&[0]);
            context.update(part);
        }
        let tag = context.sign();
        let mut digest = [0u8; 32];
        digest.copy_from_slice(tag.as_ref());
        digest
    }
}

impl Pseudonymiser for HmacPseudonymiser {
    fn key_version(&self) -> KeyVersion {
        self.version
    }

    fn subject_key(&self, youth: &Bsn) -> SubjectKey {
        SubjectKey::new(
            self.version,
            self.digest(SUBJECT_LABEL, &[&youth.expose_digits()]),
        )
    }

    fn alt_subject_key(&self, youth: &AltYouthId) -> SubjectKey {
        let digest = self.digest(
            ALT_SUBJECT_LABEL,
            &[youth.issuer().as_bytes(), youth.number().as_bytes()],
        );
        SubjectKey::new(self.version, digest)
    }

    fn family_key(&self, parent: &Bsn) -> FamilyKey {
        FamilyKey::new(
            self.version,
            self.digest(FAMILY_LABEL, &[&parent.expose_digits()]),
        )
    }

    fn request_key(&self, organisation: &OrganisationId, request: &RequestId) -> [u8; 32] {
        self.digest(
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
            p.family_key(&bsn).digest_hex()
        );
    }

    #[test]
    fn alt_id_with_bsn_digits_never_matches_the_bsn_key() {
        let p = pseudonymiser(7);
        let bsn = Bsn::parse("999993653").unwrap();
        let alt = AltYouthId::parse("bsn", "999993653").unwrap();
        assert_ne!(p.subject_key(&bsn), p.alt_subject_key(&alt));
    }

    #[test]
    fn alt_id_parts_are_separated() {
        let p = pseudonymiser(7);
        let a = AltYouthId::parse("ab", "c1").unwrap();
        let b = AltYouthId::parse("a", "bc1").unwrap();
        assert_ne!(p.alt_subject_key(&a), p.alt_subject_key(&b));
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
