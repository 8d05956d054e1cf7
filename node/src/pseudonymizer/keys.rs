//! The pseudonym service's keys: one OPRF key per live version, read from secret files.
//!
//! A key file holds a 32-byte seed (64 hexadecimal characters, `vix-node key-file` writes
//! one); the key is derived from it with RFC 9497 DeriveKeyPair. During a rotation two (at most
//! [`LIVE_VERSIONS_MAX`]) versions are live: every element is evaluated under each, so a region
//! finds signals stored under the old version while it stores new ones under the new.

use std::path::Path;

use crate::domain::KeyVersion;
use crate::oprf::{ELEMENT_LEN, OprfError, OprfKey};
use crate::secret_file::KeyFileError;

pub use crate::domain::LIVE_VERSIONS_MAX;
/// DeriveKeyPair's info for the service's keys: the scheme, not the key version.
const KEY_INFO: &[u8] = b"vix/pseudonym-service/v1";

/// `[[pseudonymizer.keys]]`: one live key version and the file with its seed.
pub use crate::config::KeyFileSetting as KeySetting;

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("pseudonymizer.keys: {0}")]
    File(#[from] KeyFileError),
    #[error("pseudonymizer.keys: version {0} is not a key version (at least 1)")]
    Version(u32),
    #[error("pseudonymizer.keys: version {0} is given twice")]
    Twice(u32),
    #[error(
        "pseudonymizer.current_key_version {0} is not among pseudonymizer.keys; give its file there"
    )]
    NoCurrent(u32),
    #[error("pseudonymizer.keys: at most {LIVE_VERSIONS_MAX} versions may be live at once")]
    TooMany,
    #[error("pseudonymizer.keys: {path}: {source}")]
    Key { path: String, source: OprfError },
}

/// One key version's evaluations of a batch, in the batch's order.
pub type Evaluations = (KeyVersion, Vec<[u8; ELEMENT_LEN]>);

/// The live keys, the current one first.
pub struct KeyRing {
    keys: Vec<(KeyVersion, OprfKey)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let versions: Vec<u32> = self.versions().collect();
        formatter
            .debug_struct("KeyRing")
            .field("versions", &versions)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Reads every key file and checks the versions.
    pub fn load(settings: &[KeySetting], current: u32) -> Result<Self, KeyRingError> {
        if settings.len() > LIVE_VERSIONS_MAX {
            return Err(KeyRingError::TooMany);
        }
        let mut keys = Vec::with_capacity(settings.len());
        for setting in settings {
            let version = KeyVersion::new(setting.version)
                .map_err(|_| KeyRingError::Version(setting.version))?;
            if keys.iter().any(|(known, _)| *known == version) {
                return Err(KeyRingError::Twice(setting.version));
            }
            keys.push((version, load_key(&setting.file)?));
        }
        let position = keys
            .iter()
            .position(|(version, _)| version.get() == current)
            .ok_or(KeyRingError::NoCurrent(current))?;
        let current = keys.remove(position);
        keys.insert(0, current);
        Ok(Self { keys })
    }

    /// A ring of keys given in memory, the first one current (tests, the benchmark).
    pub fn from_keys(keys: Vec<(KeyVersion, OprfKey)>) -> Result<Self, KeyRingError> {
        if keys.len() > LIVE_VERSIONS_MAX {
            return Err(KeyRingError::TooMany);
        }
        for (index, (version, _)) in keys.iter().enumerate() {
            if keys[..index].iter().any(|(known, _)| known == version) {
                return Err(KeyRingError::Twice(version.get()));
            }
        }
        if keys.is_empty() {
            return Err(KeyRingError::NoCurrent(0));
        }
        Ok(Self { keys })
    }

    /// The live versions, the current one first.
    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.iter().map(|(version, _)| version.get())
    }

    /// Evaluates `blinded` under every live key, the current one first. Blocking.
    pub fn evaluate<E: AsRef<[u8]> + Sync>(
        &self,
        blinded: &[E],
    ) -> Result<Vec<Evaluations>, OprfError> {
        self.keys
            .iter()
            .map(|(version, key)| Ok((*version, key.evaluate_batch(blinded)?)))
            .collect()
    }
}

/// A key from its seed file.
pub fn load_key(path: &Path) -> Result<OprfKey, KeyRingError> {
    let seed = crate::secret_file::read_key32(path)?;
    OprfKey::from_seed(&seed, KEY_INFO).map_err(|source| KeyRingError::Key {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(dir: &Path, version: u32) -> KeySetting {
        let file = dir.join(format!("v{version}.key"));
        if !file.exists() {
            crate::secret_file::write_new_key32(&file).unwrap();
        }
        KeySetting { version, file }
    }

    #[test]
    fn the_current_version_comes_first_and_bad_sets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (v1, v2) = (setting(dir.path(), 1), setting(dir.path(), 2));
        let ring = KeyRing::load(&[v1.clone(), v2.clone()], 2).unwrap();
        assert_eq!(ring.versions().collect::<Vec<_>>(), vec![2, 1]);
        // The same seed file gives the same key: evaluations agree across loads.
        let blinded = crate::oprf::Blinded::new(b"x").unwrap();
        let again = KeyRing::load(std::slice::from_ref(&v2), 2).unwrap();
        assert_eq!(
            ring.evaluate(&[blinded.element()]).unwrap()[0],
            again.evaluate(&[blinded.element()]).unwrap()[0]
        );
        assert_ne!(
            ring.evaluate(&[blinded.element()]).unwrap()[0].1,
            ring.evaluate(&[blinded.element()]).unwrap()[1].1
        );

        assert!(matches!(
            KeyRing::load(std::slice::from_ref(&v1), 2),
            Err(KeyRingError::NoCurrent(2))
        ));
        assert!(matches!(
            KeyRing::load(&[v1.clone(), v1.clone()], 1),
            Err(KeyRingError::Twice(1))
        ));
        let v0 = KeySetting {
            version: 0,
            file: v1.file.clone(),
        };
        assert!(matches!(
            KeyRing::load(&[v0], 1),
            Err(KeyRingError::Version(0))
        ));
        let four: Vec<_> = (1..=4).map(|v| setting(dir.path(), v)).collect();
        assert!(matches!(
            KeyRing::load(&four, 1),
            Err(KeyRingError::TooMany)
        ));
    }
}
