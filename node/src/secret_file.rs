//! Files that hold a secret (the handover secret, the pseudonym service's keys, the request
//! key): read only when their owner alone may read them, and written new, never over an
//! existing one, with mode 0600 and synced with their directory entry.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

/// No key file is longer: a longer file is not one, and is not read into memory whole.
const SECRET_FILE_LEN_MAX: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read the secret file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the secret file {path} is not a regular file")]
    NotAFile { path: String },
    #[error(
        "the secret file {path} may be read by group or others (mode {mode:04o}); \
         allow its owner only: chmod 600 {path}"
    )]
    Permissions { path: String, mode: u32 },
    #[error("the secret file {path} is longer than any key file")]
    TooLong { path: String },
    #[error("the secret file {path} already exists; refusing to overwrite it")]
    Exists { path: String },
    #[error("cannot write the secret file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Reads a secret file's text. On unix a file that group or others may read is refused: a
/// loose mode is a mistake to fix, not to work around.
pub fn read(path: &Path) -> Result<Zeroizing<String>, SecretFileError> {
    let shown = || path.display().to_string();
    let read_error = |source| SecretFileError::Read {
        path: shown(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    // The checks use the opened file, so a file swapped in after them cannot slip past.
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(SecretFileError::NotAFile { path: shown() });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SecretFileError::Permissions {
                path: shown(),
                mode,
            });
        }
    }
    let mut text = Zeroizing::new(String::with_capacity(SECRET_FILE_LEN_MAX + 1));
    file.take(SECRET_FILE_LEN_MAX as u64 + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() > SECRET_FILE_LEN_MAX {
        return Err(SecretFileError::TooLong { path: shown() });
    }
    Ok(text)
}

/// Writes `text` to a new file readable by its owner only (mode 0600 on unix), synced to disk
/// with its directory entry: a secret lost in a crash after it was put to use (a public key
/// handed out, a pseudonym stored) could never be made again. An existing file is never
/// overwritten, as it may hold a secret in use.
pub fn write_new(path: &Path, text: &str) -> Result<(), SecretFileError> {
    let shown = || path.display().to_string();
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            SecretFileError::Exists { path: shown() }
        } else {
            SecretFileError::Write {
                path: shown(),
                source,
            }
        }
    })?;
    if let Err(source) = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
    {
        drop(file);
        // A partial file would make every later `write_new` refuse and every `read` fail; the
        // secret in it was never put to use, so nothing is lost by removing it.
        let _ = std::fs::remove_file(path);
        return Err(SecretFileError::Write {
            path: shown(),
            source,
        });
    }
    drop(file);
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| SecretFileError::Write {
                path: dir.display().to_string(),
                source,
            })?;
    }
    Ok(())
}

/// Reads a secret file of exactly 32 bytes as 64 hexadecimal characters (whitespace around
/// them ignored). The error never quotes the text, as it may be a secret with one character
/// wrong.
pub fn read_key32(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let text = read(path)?;
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), &mut key[..]).map_err(|_| KeyFileError::Format {
        path: path.display().to_string(),
    })?;
    Ok(key)
}

/// Writes 32 random bytes to a new secret file as [`read_key32`] reads them.
pub fn write_new_key32(path: &Path) -> Result<(), KeyFileError> {
    let mut key = Zeroizing::new([0u8; 32]);
    rand_core::TryRngCore::try_fill_bytes(&mut rand_core::OsRng, &mut key[..])
        .map_err(|_| KeyFileError::Random)?;
    let mut text = Zeroizing::new(hex::encode(&key[..]));
    text.push('\n');
    Ok(write_new(path, &text)?)
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(transparent)]
    File(#[from] SecretFileError),
    #[error("the key file {path} must hold 64 hexadecimal characters (32 bytes)")]
    Format { path: String },
    #[error("the operating system's random number generator failed")]
    Random,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_key_file_is_private_read_back_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        write_new_key32(&path).unwrap();
        #[cfg(unix)]
        assert_eq!(mode_of(&path), 0o600);
        let key = read_key32(&path).unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        assert_eq!(before.trim(), hex::encode(&key[..]));
        assert!(matches!(
            write_new_key32(&path),
            Err(KeyFileError::File(SecretFileError::Exists { .. }))
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    }

    #[test]
    fn a_garbled_or_overlong_key_file_is_named_without_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        write_new(&path, "abcd1234 not a key").unwrap();
        let error = read_key32(&path).unwrap_err().to_string();
        assert!(error.contains("64 hexadecimal"), "{error}");
        assert!(!error.contains("abcd1234"), "{error}");
        let long = dir.path().join("long.key");
        write_new(&long, &"a".repeat(SECRET_FILE_LEN_MAX + 1)).unwrap();
        assert!(matches!(read(&long), Err(SecretFileError::TooLong { .. })));
    }
}
