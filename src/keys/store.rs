//! The tenant key at rest: `tenant-key.enc` under `APP_PERSISTENT_STORAGE`, encrypted with
//! XChaCha20-Poly1305 under a key derived by HKDF-SHA256 from `APP_SECRET` and the app id, so the
//! volume alone is not enough to sign. Written atomically (temporary file, fsync, rename) with mode
//! 0600.
//!
//! File layout: `WGLK1` magic (5 bytes), a 24-byte random nonce, then the AEAD ciphertext of a JSON
//! document; the magic and the app id are the associated data. Parsing is pure and fuzzed
//! (`fuzz/fuzz_targets/key_file.rs`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// File name under the storage directory.
pub const FILE_NAME: &str = "tenant-key.enc";
const MAGIC: &[u8; 5] = b"WGLK1";
const NONCE_LEN: usize = 24;
/// Largest file accepted (a few keys of JSON).
const MAX_FILE_LEN: usize = 64 * 1024;

/// One key as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// Key id.
    pub id: String,
    /// Key material (the HMAC key is its UTF-8 bytes).
    pub key: String,
    /// Unix seconds when Waggle received it.
    pub created_at: u64,
    /// Unix seconds after which the SaaS will no longer accept it, if it said so.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// Unix seconds when it stopped signing (set on previous keys, which are verify-only).
    #[serde(default)]
    pub retired_at: Option<u64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// The stored document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    /// Format version (1).
    pub version: u32,
    /// The signing key.
    pub current: StoredKey,
    /// Previous keys, verify-only until their overlap ends.
    #[serde(default)]
    pub previous: Vec<StoredKey>,
    /// Organisation name the SaaS reported.
    #[serde(default)]
    pub organization: Option<String>,
}

/// Why the stored key cannot be used. Never a reason to bootstrap a new identity.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("tenant key file I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// Too short, too long, or not our format.
    #[error("tenant key file is truncated or not a Waggle key file")]
    Format,
    /// Authentication failed: a wrong `APP_SECRET`/`APP_ID`, or a corrupt file.
    #[error("tenant key file cannot be decrypted (wrong APP_SECRET, or the file is corrupt)")]
    Decrypt,
    /// Decrypted but not a valid document.
    #[error("tenant key file content is invalid")]
    Content,
}

/// The file's encryption key: HKDF-SHA256(ikm = APP_SECRET, salt = fixed label, info = app id).
pub fn file_key(app_secret: &[u8], app_id: &str) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(b"waggle/tenant-key-file/v1"), app_secret);
    let mut out = [0u8; 32];
    hk.expand(app_id.as_bytes(), &mut out).expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

fn aad(app_id: &str) -> Vec<u8> {
    let mut a = MAGIC.to_vec();
    a.extend_from_slice(app_id.as_bytes());
    a
}

/// Encrypts `doc` into the file format.
pub fn seal(doc: &KeyFile, key: &[u8; 32], app_id: &str) -> Vec<u8> {
    let plain = serde_json::to_vec(doc).expect("key file serialises");
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let cipher = XChaCha20Poly1305::new(key.into());
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad(app_id) })
        .expect("encryption does not fail for in-memory buffers");
    let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Decrypts and parses the file format. Pure.
pub fn open(bytes: &[u8], key: &[u8; 32], app_id: &str) -> Result<KeyFile, KeyFileError> {
    if bytes.len() > MAX_FILE_LEN
        || bytes.len() < MAGIC.len() + NONCE_LEN + 16
        || &bytes[..MAGIC.len()] != MAGIC
    {
        return Err(KeyFileError::Format);
    }
    let (nonce, sealed) = bytes[MAGIC.len()..].split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(key.into());
    let plain = cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &aad(app_id) })
        .map_err(|_| KeyFileError::Decrypt)?;
    let doc: KeyFile = serde_json::from_slice(&plain).map_err(|_| KeyFileError::Content)?;
    if doc.version != 1 || doc.current.id.is_empty() || doc.current.key.is_empty() {
        return Err(KeyFileError::Content);
    }
    Ok(doc)
}

/// Where the file lives.
pub fn path(storage: &Path) -> PathBuf {
    storage.join(FILE_NAME)
}

/// Reads the file; `Ok(None)` when there is none.
pub fn load(storage: &Path, key: &[u8; 32], app_id: &str) -> Result<Option<KeyFile>, KeyFileError> {
    match std::fs::read(path(storage)) {
        Ok(bytes) => open(&bytes, key, app_id).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes the file atomically with mode 0600: temporary file, fsync, rename, fsync the directory.
pub fn save(storage: &Path, doc: &KeyFile, key: &[u8; 32], app_id: &str) -> Result<(), KeyFileError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let bytes = seal(doc, key, app_id);
    let final_path = path(storage);
    let tmp = storage.join(format!(".{FILE_NAME}.tmp-{}", std::process::id()));
    {
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &final_path)?;
    std::fs::File::open(storage)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> KeyFile {
        KeyFile {
            version: 1,
            current: StoredKey {
                id: "k1".into(),
                key: "secret-key".into(),
                created_at: 10,
                expires_at: None,
                retired_at: None,
            },
            previous: vec![],
            organization: Some("Acme".into()),
        }
    }

    #[test]
    fn sealed_files_open_with_the_same_secret_only() {
        let key = file_key(b"app-secret", "waggle");
        let bytes = seal(&doc(), &key, "waggle");
        assert_eq!(open(&bytes, &key, "waggle").unwrap(), doc());
        assert!(!bytes.windows(10).any(|w| w == b"secret-key"), "the key is not stored in clear");
        assert!(matches!(open(&bytes, &file_key(b"other", "waggle"), "waggle"), Err(KeyFileError::Decrypt)));
        assert!(matches!(open(&bytes, &key, "other_app"), Err(KeyFileError::Decrypt)));
    }

    #[test]
    fn truncated_or_corrupt_files_are_refused() {
        let key = file_key(b"app-secret", "waggle");
        let bytes = seal(&doc(), &key, "waggle");
        assert!(matches!(open(&bytes[..20], &key, "waggle"), Err(KeyFileError::Format)));
        assert!(matches!(open(&bytes[..bytes.len() - 1], &key, "waggle"), Err(KeyFileError::Decrypt)));
        let mut flipped = bytes;
        let i = flipped.len() / 2;
        flipped[i] ^= 1;
        assert!(matches!(open(&flipped, &key, "waggle"), Err(KeyFileError::Decrypt)));
        assert!(matches!(
            open(b"not a key file at all, definitely not", &key, "waggle"),
            Err(KeyFileError::Format)
        ));
    }

    #[test]
    fn save_is_atomic_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = file_key(b"s", "waggle");
        save(dir.path(), &doc(), &key, "waggle").unwrap();
        let mode = std::fs::metadata(path(dir.path())).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(dir.path(), &key, "waggle").unwrap(), Some(doc()));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(load(empty.path(), &key, "waggle").unwrap(), None);
    }
}
