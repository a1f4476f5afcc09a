//! RFC 9530 `Content-Digest` with `sha-256`: one-shot and streamed hashing, and a strict parser.
//!
//! Waggle always sends `Content-Digest: sha-256=:<base64>:`, also for an empty body, and requires a
//! `sha-256` member on everything it verifies. Other algorithms may appear beside it and are ignored;
//! a dictionary with a repeated member, a `sha-256` member that is not a byte sequence of exactly
//! 32 bytes, or a value that is not an RFC 8941 dictionary is rejected.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sfv::visitor::{DictionaryVisitor, EntryVisitor};
use sfv::{BareItem, Dictionary, KeyRef, ListEntry, Parser, Version};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Digest algorithm key Waggle uses in `Content-Digest` (RFC 9530 §5).
pub const SHA_256: &str = "sha-256";

/// `Content-Digest` value of an empty body: `sha-256` of zero bytes.
pub const EMPTY_BODY_DIGEST: &str = "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:";

/// Upper bound on a `Content-Digest` value we are willing to parse.
pub const MAX_CONTENT_DIGEST_LEN: usize = 1024;

/// Why a `Content-Digest` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Longer than [`MAX_CONTENT_DIGEST_LEN`].
    #[error("content-digest value too long")]
    TooLong,
    /// Not an RFC 8941 dictionary, or a member is repeated.
    #[error("content-digest is not a well-formed dictionary")]
    Malformed,
    /// No `sha-256` member.
    #[error("content-digest has no sha-256 member")]
    MissingSha256,
    /// The `sha-256` member is not a byte sequence of exactly 32 bytes (or carries parameters).
    #[error("content-digest sha-256 member is not a 32-byte byte sequence")]
    BadSha256,
    /// The body does not hash to the declared digest.
    #[error("content-digest does not match the body")]
    Mismatch,
}

impl DigestError {
    /// Stable reason code for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLong => "digest_too_long",
            Self::Malformed => "digest_malformed",
            Self::MissingSha256 => "digest_missing_sha256",
            Self::BadSha256 => "digest_bad_sha256",
            Self::Mismatch => "digest_mismatch",
        }
    }
}

/// `Content-Digest` header value (`sha-256=:<base64>:`) for a complete body.
pub fn content_digest_value(body: &[u8]) -> String {
    let mut hasher = ContentDigest::new();
    hasher.update(body);
    hasher.finish()
}

/// Incremental SHA-256 for streamed bodies; feed chunks in order, then [`ContentDigest::finish`].
#[derive(Clone, Default)]
pub struct ContentDigest {
    hasher: Sha256,
    len: u64,
}

impl std::fmt::Debug for ContentDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentDigest").field("len", &self.len).finish_non_exhaustive()
    }
}

impl ContentDigest {
    /// A hasher that has seen no bytes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk of the body.
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.len = self.len.saturating_add(chunk.len() as u64);
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no bytes have been hashed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The raw 32-byte SHA-256 of everything fed so far.
    pub fn finish_bytes(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }

    /// The `Content-Digest` header value of everything fed so far.
    pub fn finish(self) -> String {
        format_sha256(&self.finish_bytes())
    }
}

/// Formats a raw SHA-256 as a `Content-Digest` value.
pub fn format_sha256(digest: &[u8; 32]) -> String {
    format!("{SHA_256}=:{}:", STANDARD.encode(digest))
}

/// Parses a `Content-Digest` value and returns the `sha-256` digest it declares.
///
/// Strict: the value must be an RFC 8941 dictionary without repeated members, with a `sha-256`
/// member that is a parameterless byte sequence of exactly 32 bytes.
pub fn parse_content_digest(value: &str) -> Result<[u8; 32], DigestError> {
    if value.len() > MAX_CONTENT_DIGEST_LEN {
        return Err(DigestError::TooLong);
    }
    let dict = Parser::new(value)
        .with_version(Version::Rfc8941)
        .parse_dictionary_with_visitor(NoDuplicates::default())
        .map_err(|_| DigestError::Malformed)?;
    let Some(entry) = dict.get(SHA_256) else {
        return Err(DigestError::MissingSha256);
    };
    match entry {
        ListEntry::Item(item) if item.params.is_empty() => match &item.bare_item {
            BareItem::ByteSequence(bytes) => {
                <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| DigestError::BadSha256)
            }
            _ => Err(DigestError::BadSha256),
        },
        _ => Err(DigestError::BadSha256),
    }
}

/// Checks a complete body against a `Content-Digest` value, comparing in constant time.
pub fn verify_content_digest(value: &str, body: &[u8]) -> Result<(), DigestError> {
    let expected = parse_content_digest(value)?;
    let mut hasher = ContentDigest::new();
    hasher.update(body);
    if digest_eq(&expected, &hasher.finish_bytes()) { Ok(()) } else { Err(DigestError::Mismatch) }
}

/// Constant-time equality of two SHA-256 digests (for streamed checks after [`ContentDigest::finish_bytes`]).
pub fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// Dictionary visitor that refuses repeated keys (RFC 8941 would silently keep the last one).
#[derive(Default)]
pub(crate) struct NoDuplicates(Dictionary);

/// A dictionary key appeared twice.
#[derive(Debug)]
pub(crate) struct DuplicateKey;

impl std::fmt::Display for DuplicateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("duplicate dictionary key")
    }
}

impl std::error::Error for DuplicateKey {}

impl<'de> DictionaryVisitor<'de> for NoDuplicates {
    type Out = Dictionary;
    type Error = DuplicateKey;

    fn entry(&mut self, key: &'de KeyRef) -> Result<impl EntryVisitor<'de>, Self::Error> {
        if self.0.contains_key(key) {
            return Err(DuplicateKey);
        }
        match DictionaryVisitor::entry(&mut self.0, key) {
            Ok(visitor) => Ok(visitor),
            Err(never) => match never {},
        }
    }

    fn finish(self) -> Result<Self::Out, Self::Error> {
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests;
