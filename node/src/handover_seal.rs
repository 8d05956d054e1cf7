//! Sealing a leaving region's handover records for its successor region.
//!
//! A region node that leaves the federation hands each of its signals to a successor region
//! through the national hub. The records hold node-only personal data (a birth date, the
//! informing record) that the hub must never read, so the leaving region seals each record to
//! the successor's public key and the hub relays opaque bytes.
//!
//! The seal is HPKE (RFC 9180) in base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
//! ChaCha20-Poly1305. Base mode does not authenticate the sender; the hub's mutual TLS says
//! which region handed the record over, and the context below binds the record to that
//! handover so the hub cannot replay it for another signal, revision or pair of regions.
//!
//! Sealed format: `[1] || enc (32 bytes) || ciphertext (plaintext + 16-byte tag)`.

use std::fmt;
use std::path::Path;

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::rand_core::{CryptoRng, RngCore};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::{OsRng, TryRngCore};
use zeroize::Zeroizing;

type Kem = X25519HkdfSha256;
type Kdf = HkdfSha256;
type Aead = ChaCha20Poly1305;
type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type PublicKey = <Kem as hpke::Kem>::PublicKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

/// The first byte of every sealed record, so a later suite can be told apart from this one.
pub const SEAL_VERSION: u8 = 1;
/// HPKE `info`: keys derived for handover records can never be those of another vix use of HPKE.
const INFO: &[u8] = b"vix/handover/v1";
/// Nsk, Npk and Nenc of DHKEM(X25519, HKDF-SHA256) (RFC 9180 §7.1).
const KEY_LEN: usize = 32;
const KEY_HEX_LEN: usize = 2 * KEY_LEN;
/// Nt of ChaCha20-Poly1305: even an empty record carries its tag.
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_LEN;
/// The smallest sealed record: version, encapsulated key and the tag of an empty plaintext.
pub const SEALED_LEN_MIN: usize = HEADER_LEN + TAG_LEN;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the handover secret must be {KEY_HEX_LEN} hexadecimal characters (32 bytes)")]
    SecretFormat,
    #[error("a handover public key must be {KEY_HEX_LEN} hexadecimal characters (32 bytes)")]
    PublicKeyFormat,
    #[error(
        "the handover public key is a low-order X25519 point, with which no secret can be agreed"
    )]
    WeakPublicKey,
    #[error("handover secret: {0}")]
    File(#[from] crate::secret_file::SecretFileError),
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    #[error("sealing the handover record failed")]
    Seal,
    #[error("a sealed handover record has at least {SEALED_LEN_MIN} bytes; this one has {len}")]
    TooShort { len: usize },
    #[error("the sealed handover record has format version {0}; this node reads version 1 only")]
    UnknownVersion(u8),
    #[error(
        "the sealed handover record does not open: it was sealed to another successor key or \
         for another signal, revision or pair of regions, or it was altered"
    )]
    Open,
}

/// The successor's secret: 32 bytes, zeroized on drop, never printed (Debug shows "HandoverSecret(..)").
pub struct HandoverSecret {
    /// The serialized X25519 private key (RFC 9180 `SerializePrivateKey`); held as bytes rather
    /// than as hpke's key type so that its zeroization does not hang on a feature of a
    /// transitive dependency.
    bytes: Zeroizing<[u8; KEY_LEN]>,
    /// Kept beside the secret so that `public_key` needs no fallible conversion.
    public: HandoverPublicKey,
}

/// The successor's public key, shared with the leaving region's operator as 64 hex characters.
#[derive(Clone, PartialEq, Eq)]
pub struct HandoverPublicKey {
    key: PublicKey,
}

/// What a sealed record is bound to (HPKE aad): it opens only for this signal at this revision,
/// handed from this region to that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealContext<'a> {
    pub from_region: &'a str,
    pub to_region: &'a str,
    pub signal_id: &'a str,
    pub revision: u64,
}

impl SealContext<'_> {
    /// Each id is length-prefixed, so no choice of ids (whatever characters they may hold) can
    /// produce the encoding of another context.
    fn aad(&self) -> Vec<u8> {
        let ids = [self.from_region, self.to_region, self.signal_id];
        let mut aad = Vec::with_capacity(ids.iter().map(|id| 8 + id.len()).sum::<usize>() + 8);
        for id in ids {
            aad.extend_from_slice(&(id.len() as u64).to_be_bytes());
            aad.extend_from_slice(id.as_bytes());
        }
        aad.extend_from_slice(&self.revision.to_be_bytes());
        aad
    }
}

impl HandoverSecret {
    /// A new secret from the operating system's random source; its failure is an error.
    pub fn generate() -> Result<Self, SealError> {
        let ikm = os_ikm()?;
        Ok(Self::derive(&ikm))
    }

    /// RFC 9180 `DeriveKeyPair`, as hpke's own key generation does from its random bytes.
    fn derive(ikm: &[u8; KEY_LEN]) -> Self {
        let (private, public) = Kem::derive_keypair(&ikm[..]);
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        private.write_exact(&mut bytes[..]);
        Self {
            bytes,
            public: HandoverPublicKey { key: public },
        }
    }

    fn from_secret_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Result<Self, SealError> {
        let private = PrivateKey::from_bytes(&bytes[..]).map_err(|_| SealError::SecretFormat)?;
        let public = HandoverPublicKey {
            key: Kem::sk_to_pk(&private),
        };
        Ok(Self { bytes, public })
    }

    fn private_key(&self) -> Result<PrivateKey, SealError> {
        // Any 32 bytes are an X25519 private key (hpke clamps them), so only a length mismatch
        // could fail here, and the array rules that out.
        PrivateKey::from_bytes(&self.bytes[..]).map_err(|_| SealError::SecretFormat)
    }

    pub fn public_key(&self) -> HandoverPublicKey {
        self.public.clone()
    }

    /// The text of the key file: 64 lowercase hex characters and a newline.
    pub fn to_file_text(&self) -> String {
        let mut text = hex::encode(&self.bytes[..]);
        text.push('\n');
        text
    }

    /// Reads the key file's text; whitespace around the 64 hex characters is ignored. The error
    /// never quotes the text, as it may be a secret with one character wrong.
    pub fn from_file_text(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        if text.len() != KEY_HEX_LEN {
            return Err(SealError::SecretFormat);
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(text, &mut bytes[..]).map_err(|_| SealError::SecretFormat)?;
        Self::from_secret_bytes(bytes)
    }

    /// Reads the key file. On unix a file that group or others may read is refused: the secret
    /// opens every record handed to this region, so a loose mode is a mistake to fix, not to
    /// work around.
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let text = crate::secret_file::read(path).map_err(|error| match error {
            crate::secret_file::SecretFileError::TooLong { .. } => SealError::SecretFormat,
            error => SealError::File(error),
        })?;
        Self::from_file_text(&text)
    }

    /// Generates a secret and writes it to a new file readable by its owner only (mode 0600 on
    /// unix), synced to disk with its directory entry: the public key is handed out next, and a
    /// secret lost in a crash would leave records sealed to a key nobody holds. An existing file
    /// is never overwritten, as it may hold the secret that opens records already sealed.
    pub fn write_new(path: &Path) -> Result<Self, SealError> {
        let secret = Self::generate()?;
        let text = Zeroizing::new(secret.to_file_text());
        crate::secret_file::write_new(path, &text)?;
        Ok(secret)
    }

    /// Opens a record sealed to this secret's public key for exactly this context.
    pub fn open(&self, sealed: &[u8], context: &SealContext<'_>) -> Result<Vec<u8>, SealError> {
        // The version is checked before the length, so a record of a later format says so
        // whatever its size.
        match sealed.first() {
            None => return Err(SealError::TooShort { len: 0 }),
            Some(&SEAL_VERSION) => {}
            Some(&other) => return Err(SealError::UnknownVersion(other)),
        }
        if sealed.len() < SEALED_LEN_MIN {
            return Err(SealError::TooShort { len: sealed.len() });
        }
        let (enc, ciphertext) = sealed[1..].split_at(KEY_LEN);
        let enc = EncappedKey::from_bytes(enc).map_err(|_| SealError::Open)?;
        let private = self.private_key()?;
        hpke::single_shot_open::<Aead, Kdf, Kem>(
            &OpModeR::Base,
            &private,
            &enc,
            INFO,
            ciphertext,
            &context.aad(),
        )
        .map_err(|_| SealError::Open)
    }
}

impl fmt::Debug for HandoverSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandoverSecret(..)")
    }
}

impl HandoverPublicKey {
    /// Reads the 64 hex characters the successor's operator handed over (whitespace around them
    /// is ignored, as they are often pasted). A low-order point is refused here, at the edge,
    /// rather than at the first seal.
    pub fn parse(hex: &str) -> Result<Self, SealError> {
        let hex = hex.trim();
        if hex.len() != KEY_HEX_LEN {
            return Err(SealError::PublicKeyFormat);
        }
        let mut bytes = [0u8; KEY_LEN];
        hex::decode_to_slice(hex, &mut bytes).map_err(|_| SealError::PublicKeyFormat)?;
        let key = PublicKey::from_bytes(&bytes).map_err(|_| SealError::PublicKeyFormat)?;
        // Every clamped scalar times a low-order point is the all-zero value, which HPKE refuses
        // (RFC 9180 §7.1.4), so one trial encapsulation with any fixed ephemeral key finds all
        // such points. Its output is thrown away.
        seal_with_ikm(&key, b"", b"", b"", &[0x5a; KEY_LEN])
            .map_err(|_| SealError::WeakPublicKey)?;
        Ok(Self { key })
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    /// Seals a record to this key for exactly this context, with a fresh ephemeral key.
    pub fn seal(&self, plaintext: &[u8], context: &SealContext<'_>) -> Result<Vec<u8>, SealError> {
        let ikm = os_ikm()?;
        let (enc, ciphertext) = seal_with_ikm(&self.key, INFO, &context.aad(), plaintext, &ikm)?;
        let mut sealed = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        sealed.push(SEAL_VERSION);
        sealed.extend_from_slice(&enc);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }
}

impl fmt::Debug for HandoverPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HandoverPublicKey({})", self.to_hex())
    }
}

/// Draws the ephemeral key's input keying material from the OS, reporting a failure instead of
/// panicking inside hpke.
fn os_ikm() -> Result<Zeroizing<[u8; KEY_LEN]>, SealError> {
    let mut ikm = Zeroizing::new([0u8; KEY_LEN]);
    OsRng
        .try_fill_bytes(&mut ikm[..])
        .map_err(|error| SealError::Random(error.to_string()))?;
    Ok(ikm)
}

/// HPKE base-mode single-shot seal with the ephemeral key derived from `ikm`
/// (RFC 9180 `DeriveKeyPair(ikmE)`). Production passes fresh OS randomness; the known-answer
/// test passes the RFC's `ikmE`, so it checks this very path.
fn seal_with_ikm(
    key: &PublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    ikm: &[u8; KEY_LEN],
) -> Result<([u8; KEY_LEN], Vec<u8>), SealError> {
    let mut rng = OneShotIkm::new(ikm);
    let (enc, ciphertext) = hpke::single_shot_seal::<Aead, Kdf, Kem, _>(
        &OpModeS::Base,
        key,
        info,
        plaintext,
        aad,
        &mut rng,
    )
    .map_err(|_| SealError::Seal)?;
    // hpke draws exactly Nsk bytes for the ephemeral key; if a later version drew more, the
    // rest would be zeros and the ephemeral key guessable, so such a seal must not leave here.
    if !rng.drawn_exactly() {
        return Err(SealError::Seal);
    }
    let mut enc_bytes = [0u8; KEY_LEN];
    enc.write_exact(&mut enc_bytes);
    Ok((enc_bytes, ciphertext))
}

/// A "random" source that hands out the given 32 bytes once, for hpke's ephemeral key.
struct OneShotIkm<'a> {
    ikm: &'a [u8; KEY_LEN],
    drawn: usize,
    overdrawn: bool,
}

impl<'a> OneShotIkm<'a> {
    fn new(ikm: &'a [u8; KEY_LEN]) -> Self {
        Self {
            ikm,
            drawn: 0,
            overdrawn: false,
        }
    }

    fn drawn_exactly(&self) -> bool {
        self.drawn == KEY_LEN && !self.overdrawn
    }
}

impl RngCore for OneShotIkm<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        self.fill_bytes(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill_bytes(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        let rest = &self.ikm[self.drawn..];
        let n = rest.len().min(dst.len());
        dst[..n].copy_from_slice(&rest[..n]);
        self.drawn += n;
        if n < dst.len() {
            dst[n..].fill(0);
            self.overdrawn = true;
        }
    }
}

// Sound only because each instance serves fresh OS randomness (or a test vector) once.
impl CryptoRng for OneShotIkm<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: SealContext<'static> = SealContext {
        from_region: "north",
        to_region: "south",
        signal_id: "sig-0001",
        revision: 7,
    };
    const RECORD: &[u8] = b"{\"birth_date\":\"2010-04-01\",\"informed_on\":\"2026-11-20\"}";

    #[test]
    fn round_trip() {
        let secret = HandoverSecret::generate().unwrap();
        let sealed = secret.public_key().seal(RECORD, &CONTEXT).unwrap();
        assert_eq!(sealed[0], SEAL_VERSION);
        assert_eq!(sealed.len(), SEALED_LEN_MIN + RECORD.len());
        assert_eq!(secret.open(&sealed, &CONTEXT).unwrap(), RECORD);
    }

    #[test]
    fn empty_record_round_trip() {
        let secret = HandoverSecret::generate().unwrap();
        let sealed = secret.public_key().seal(b"", &CONTEXT).unwrap();
        assert_eq!(sealed.len(), SEALED_LEN_MIN);
        assert_eq!(secret.open(&sealed, &CONTEXT).unwrap(), b"");
    }

    #[test]
    fn each_seal_uses_a_fresh_ephemeral_key() {
        let key = HandoverSecret::generate().unwrap().public_key();
        let a = key.seal(RECORD, &CONTEXT).unwrap();
        let b = key.seal(RECORD, &CONTEXT).unwrap();
        assert_ne!(a[1..HEADER_LEN], b[1..HEADER_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn another_secret_cannot_open() {
        let sealed = HandoverSecret::generate()
            .unwrap()
            .public_key()
            .seal(RECORD, &CONTEXT)
            .unwrap();
        let other = HandoverSecret::generate().unwrap();
        assert!(matches!(
            other.open(&sealed, &CONTEXT),
            Err(SealError::Open)
        ));
    }

    #[test]
    fn each_context_field_changed_fails_to_open() {
        let secret = HandoverSecret::generate().unwrap();
        let sealed = secret.public_key().seal(RECORD, &CONTEXT).unwrap();
        let changed = [
            SealContext {
                from_region: "west",
                ..CONTEXT
            },
            SealContext {
                to_region: "east",
                ..CONTEXT
            },
            SealContext {
                signal_id: "sig-0002",
                ..CONTEXT
            },
            SealContext {
                revision: 8,
                ..CONTEXT
            },
            // Moving characters between adjacent ids must not give the same aad.
            SealContext {
                from_region: "northsouth",
                to_region: "",
                ..CONTEXT
            },
            SealContext {
                from_region: "south",
                to_region: "north",
                ..CONTEXT
            },
        ];
        for context in changed {
            assert!(
                matches!(secret.open(&sealed, &context), Err(SealError::Open)),
                "opened with {context:?}"
            );
        }
    }

    #[test]
    fn aad_is_length_prefixed() {
        let a = SealContext {
            from_region: "ab",
            to_region: "c",
            ..CONTEXT
        };
        let b = SealContext {
            from_region: "a",
            to_region: "bc",
            ..CONTEXT
        };
        assert_ne!(a.aad(), b.aad());
    }

    #[test]
    fn any_flipped_byte_fails_to_open() {
        let secret = HandoverSecret::generate().unwrap();
        let sealed = secret.public_key().seal(RECORD, &CONTEXT).unwrap();
        // Every byte after the version: the encapsulated key, the ciphertext and the tag.
        for i in 1..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 0x01;
            assert!(
                matches!(secret.open(&altered, &CONTEXT), Err(SealError::Open)),
                "byte {i} flipped still opened"
            );
        }
    }

    #[test]
    fn truncated_record_fails_to_open() {
        let secret = HandoverSecret::generate().unwrap();
        let sealed = secret.public_key().seal(RECORD, &CONTEXT).unwrap();
        assert!(matches!(
            secret.open(&sealed[..sealed.len() - 1], &CONTEXT),
            Err(SealError::Open)
        ));
    }

    #[test]
    fn unknown_version_and_short_input_are_refused() {
        let secret = HandoverSecret::generate().unwrap();
        let mut sealed = secret.public_key().seal(RECORD, &CONTEXT).unwrap();
        sealed[0] = 2;
        assert!(matches!(
            secret.open(&sealed, &CONTEXT),
            Err(SealError::UnknownVersion(2))
        ));
        assert!(matches!(
            secret.open(&[], &CONTEXT),
            Err(SealError::TooShort { len: 0 })
        ));
        let short = [SEAL_VERSION; SEALED_LEN_MIN - 1];
        assert!(matches!(
            secret.open(&short, &CONTEXT),
            Err(SealError::TooShort { len }) if len == SEALED_LEN_MIN - 1
        ));
    }

    #[test]
    fn file_text_round_trip() {
        let secret = HandoverSecret::generate().unwrap();
        let text = secret.to_file_text();
        assert_eq!(text.len(), KEY_HEX_LEN + 1);
        assert!(text.ends_with('\n'));
        let again = HandoverSecret::from_file_text(&format!("  {}\r\n", text.trim())).unwrap();
        assert_eq!(again.public_key(), secret.public_key());
        let sealed = secret.public_key().seal(RECORD, &CONTEXT).unwrap();
        assert_eq!(again.open(&sealed, &CONTEXT).unwrap(), RECORD);
    }

    #[test]
    fn bad_secret_text_is_refused_without_quoting_it() {
        let text = HandoverSecret::generate().unwrap().to_file_text();
        let body = text.trim();
        for bad in [
            String::new(),
            body[..KEY_HEX_LEN - 2].to_owned(),
            format!("{body}00"),
            format!("{}zz", &body[..KEY_HEX_LEN - 2]),
        ] {
            let error = HandoverSecret::from_file_text(&bad).unwrap_err();
            assert!(matches!(error, SealError::SecretFormat));
            assert!(!error.to_string().contains(&body[..8]));
        }
    }

    #[test]
    fn public_key_hex_round_trip() {
        let key = HandoverSecret::generate().unwrap().public_key();
        let hex = key.to_hex();
        assert_eq!(hex.len(), KEY_HEX_LEN);
        assert_eq!(HandoverPublicKey::parse(&hex).unwrap(), key);
        assert_eq!(
            HandoverPublicKey::parse(&format!(" {}\n", hex.to_uppercase())).unwrap(),
            key
        );
    }

    #[test]
    fn public_key_that_is_not_64_hex_characters_is_refused() {
        let hex = HandoverSecret::generate().unwrap().public_key().to_hex();
        for bad in [
            String::new(),
            hex[..62].to_owned(),
            format!("{hex}ab"),
            format!("{}g0", &hex[..62]),
            format!("{} {}", &hex[..32], &hex[32..]),
        ] {
            assert!(
                matches!(
                    HandoverPublicKey::parse(&bad),
                    Err(SealError::PublicKeyFormat)
                ),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn low_order_public_key_is_refused() {
        // The zero point, u = 1 (order 1) and a point of order 8, from libsodium's blocklist.
        for bad in [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        ] {
            assert!(
                matches!(HandoverPublicKey::parse(bad), Err(SealError::WeakPublicKey)),
                "accepted {bad}"
            );
        }
    }

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn write_new_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handover.key");
        let written = HandoverSecret::write_new(&path).unwrap();
        #[cfg(unix)]
        assert_eq!(mode_of(&path), 0o600);
        let loaded = HandoverSecret::load(&path).unwrap();
        assert_eq!(loaded.public_key(), written.public_key());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            written.to_file_text()
        );
    }

    #[test]
    fn write_new_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handover.key");
        let first = HandoverSecret::write_new(&path).unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        assert!(matches!(
            HandoverSecret::write_new(&path),
            Err(SealError::File(
                crate::secret_file::SecretFileError::Exists { .. }
            ))
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        assert_eq!(
            HandoverSecret::load(&path).unwrap().public_key(),
            first.public_key()
        );
    }

    #[cfg(unix)]
    #[test]
    fn load_refuses_a_file_others_may_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handover.key");
        let secret = HandoverSecret::generate().unwrap();
        std::fs::write(&path, secret.to_file_text()).unwrap();
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = HandoverSecret::load(&path).unwrap_err();
            assert!(
                matches!(error, SealError::File(crate::secret_file::SecretFileError::Permissions { mode: m, .. }) if m == mode),
                "{error}"
            );
            let message = error.to_string();
            assert!(message.contains("chmod 600"), "{message}");
            assert!(!message.contains(secret.to_file_text().trim()));
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            HandoverSecret::load(&path).unwrap().public_key(),
            secret.public_key()
        );
    }

    #[test]
    fn load_reports_a_missing_file_and_refuses_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            HandoverSecret::load(&dir.path().join("absent.key")),
            Err(SealError::File(
                crate::secret_file::SecretFileError::Read { .. }
            ))
        ));
        assert!(matches!(
            HandoverSecret::load(dir.path()),
            Err(SealError::File(
                crate::secret_file::SecretFileError::NotAFile { .. }
            ))
        ));
    }

    #[test]
    fn debug_shows_no_key_bytes() {
        let secret = HandoverSecret::generate().unwrap();
        let shown = format!("{secret:?} {secret:#?}");
        assert_eq!(format!("{secret:?}"), "HandoverSecret(..)");
        let hex = secret.to_file_text();
        let hex = hex.trim();
        for window in hex.as_bytes().chunks(8) {
            assert!(!shown.contains(std::str::from_utf8(window).unwrap()));
        }
    }

    fn unhex<const N: usize>(hex: &str) -> [u8; N] {
        let mut bytes = [0u8; N];
        hex::decode_to_slice(hex, &mut bytes).unwrap();
        bytes
    }

    /// RFC 9180 Appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305,
    /// base mode, sequence number 0. hpke's own key generation is `DeriveKeyPair` over Nsk random
    /// bytes, so handing it the RFC's `ikmE` reproduces the RFC's ephemeral key exactly.
    #[test]
    fn rfc9180_a_2_1_known_answer() {
        let ikm_r: [u8; 32] =
            unhex("1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df");
        let ikm_e: [u8; 32] =
            unhex("909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b");
        let sk_rm = "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb";
        let pk_rm = "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a";
        let enc = "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a";
        let info = hex::decode("4f6465206f6e2061204772656369616e2055726e").unwrap();
        let aad = hex::decode("436f756e742d30").unwrap();
        let pt = hex::decode("4265617574792069732074727574682c20747275746820626561757479").unwrap();
        let ct = "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db\
                  21993c62ce81883d2dd1b51a28";

        let recipient = HandoverSecret::derive(&ikm_r);
        assert_eq!(recipient.to_file_text().trim(), sk_rm);
        let from_text = HandoverSecret::from_file_text(sk_rm).unwrap();
        assert_eq!(from_text.public_key().to_hex(), pk_rm);
        let key = HandoverPublicKey::parse(pk_rm).unwrap();
        assert_eq!(recipient.public_key(), key);

        let (enc_out, ct_out) = seal_with_ikm(&key.key, &info, &aad, &pt, &ikm_e).unwrap();
        assert_eq!(hex::encode(enc_out), enc);
        assert_eq!(hex::encode(&ct_out), ct);

        let opened = hpke::single_shot_open::<Aead, Kdf, Kem>(
            &OpModeR::Base,
            &recipient.private_key().unwrap(),
            &EncappedKey::from_bytes(&enc_out).unwrap(),
            &info,
            &ct_out,
            &aad,
        )
        .unwrap();
        assert_eq!(opened, pt);
    }

    #[test]
    fn one_shot_ikm_reports_overdrawing() {
        let ikm = [7u8; KEY_LEN];
        let mut rng = OneShotIkm::new(&ikm);
        let mut first = [0u8; KEY_LEN];
        rng.fill_bytes(&mut first);
        assert_eq!(first, ikm);
        assert!(rng.drawn_exactly());
        rng.next_u32();
        assert!(!rng.drawn_exactly());
    }
}
