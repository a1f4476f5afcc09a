//! Standard Webhooks v1.0.0, symmetric scheme (`v1,` = HMAC-SHA256): secrets, signing with key
//! rotation, and a fail-closed verifier. Pure: no I/O, no clock, no logging; callers pass `now`.
//!
//! Wire format (standard-webhooks/standard-webhooks `spec/standard-webhooks.md`): headers
//! `webhook-id`, `webhook-timestamp` (unix seconds of the attempt) and `webhook-signature`, a
//! space-separated list of `v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{payload}")>`. During a
//! key rotation Waggle signs with every active secret, newest first, and a receiver accepts any
//! `v1` entry that matches any of its secrets. Used for connector → SaaS events (flow C), so the SaaS
//! can verify with a stock Standard Webhooks library.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac as _};
use http::header::InvalidHeaderValue;
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq as _};

type HmacSha256 = Hmac<Sha256>;

// Header names are spelled in `headers.rs`; re-exported here for callers of this module.
pub use crate::headers::{WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};

/// Prefix of a serialised symmetric secret (`whsec_<base64>`).
pub const WHSEC_PREFIX: &str = "whsec_";
/// Version identifier of the symmetric (HMAC-SHA256) signature scheme.
pub const V1: &str = "v1";
/// Default accepted distance between `webhook-timestamp` and `now`, past and future, in seconds
/// (the reference libraries' tolerance).
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;
/// Minimum decoded length of a `whsec_` secret accepted by [`WebhookSecret::from_whsec`] (spec:
/// "at least 24 bytes").
pub const MIN_WHSEC_LEN: usize = 24;
/// Maximum length of a `webhook-id` accepted by the verifier.
pub const MAX_ID_LEN: usize = 256;
/// Maximum length of a `webhook-signature` value accepted by the verifier.
pub const MAX_SIGNATURE_HEADER_LEN: usize = 4096;

/// Length of an HMAC-SHA256 tag.
const MAC_LEN: usize = 32;
/// Longest decimal `u64` (`18446744073709551615`).
const MAX_TIMESTAMP_DIGITS: usize = 20;

/// Standard base64 that accepts a `whsec_` body with or without `=` padding (some producers strip it).
const WHSEC_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A symmetric Standard Webhooks secret: the raw HMAC key bytes. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl WebhookSecret {
    /// A secret from its raw key bytes (no length check).
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    /// A secret from the provisioned tenant key string: its UTF-8 bytes, no derivation.
    pub fn from_tenant_key(tenant_key: &str) -> Self {
        Self::new(tenant_key.as_bytes())
    }

    /// Parses the serialised form `whsec_<base64>` (standard alphabet, padding optional). The
    /// prefix is required and the key must decode to at least [`MIN_WHSEC_LEN`] bytes.
    pub fn from_whsec(serialised: &str) -> Result<Self, SecretError> {
        let body = serialised.strip_prefix(WHSEC_PREFIX).ok_or(SecretError::MissingPrefix)?;
        let key = WHSEC_B64.decode(body).map_err(|_| SecretError::InvalidBase64)?;
        if key.len() < MIN_WHSEC_LEN {
            return Err(SecretError::TooShort);
        }
        Ok(Self { key })
    }

    /// The serialised form `whsec_<padded standard base64>`, for handing to a receiver.
    pub fn to_whsec(&self) -> String {
        format!("{WHSEC_PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// The raw HMAC key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.key
    }

    /// HMAC-SHA256 over `"{msg_id}.{timestamp}.{payload}"`.
    fn mac(&self, msg_id: &str, timestamp: &str, payload: &[u8]) -> [u8; MAC_LEN] {
        // HMAC accepts keys of any length; new_from_slice cannot fail for Hmac.
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.key) else {
            unreachable!("HMAC takes keys of any length")
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSecret").field("key", &"<redacted>").finish()
    }
}

/// Why a `whsec_` string was refused by [`WebhookSecret::from_whsec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The string does not start with `whsec_`.
    #[error("webhook secret lacks the whsec_ prefix")]
    MissingPrefix,
    /// The part after the prefix is not standard base64.
    #[error("webhook secret is not base64")]
    InvalidBase64,
    /// The decoded key is shorter than [`MIN_WHSEC_LEN`] bytes.
    #[error("webhook secret too short")]
    TooShort,
}

impl SecretError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingPrefix => "whsec_missing_prefix",
            Self::InvalidBase64 => "whsec_bad_base64",
            Self::TooShort => "whsec_too_short",
        }
    }
}

/// True when `msg_id` is a `webhook-id` the verifier accepts: 1 to [`MAX_ID_LEN`] visible ASCII
/// characters and no `.` (the spec forbids `.` so the id cannot shift into the timestamp or
/// payload of the signed content). Producers should check ids with this when they mint them.
pub fn is_valid_msg_id(msg_id: &str) -> bool {
    !msg_id.is_empty()
        && msg_id.len() <= MAX_ID_LEN
        && msg_id.bytes().all(|b| b.is_ascii_graphic() && b != b'.')
}

/// One signature entry, `v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{payload}">`.
///
/// Total function: `msg_id` is signed as given; pass ids that satisfy [`is_valid_msg_id`], or the
/// receiver's verifier refuses the delivery.
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp: u64, payload: &[u8]) -> String {
    let tag = secret.mac(msg_id, &timestamp.to_string(), payload);
    format!("{V1},{}", STANDARD.encode(tag))
}

/// The `webhook-signature` value: one `v1,` entry per secret, space-separated, in the order given.
/// Pass the newest secret first; during a rotation overlap pass old and new so receivers holding
/// either verify. An empty slice gives an empty string (which every verifier refuses).
pub fn signature_header(secrets: &[WebhookSecret], msg_id: &str, timestamp: u64, payload: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let entries: Vec<String> = secrets
        .iter()
        .map(|secret| format!("{V1},{}", STANDARD.encode(secret.mac(msg_id, &timestamp, payload))))
        .collect();
    entries.join(" ")
}

/// The three header values of a signed delivery, as produced by [`headers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookHeaders {
    /// `webhook-id` value.
    pub id: String,
    /// `webhook-timestamp` value (decimal unix seconds).
    pub timestamp: String,
    /// `webhook-signature` value (space-separated `v1,` entries).
    pub signature: String,
}

impl WebhookHeaders {
    /// `(name, value)` pairs in the order `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    pub fn pairs(&self) -> [(HeaderName, &str); 3] {
        [
            (WEBHOOK_ID, self.id.as_str()),
            (WEBHOOK_TIMESTAMP, self.timestamp.as_str()),
            (WEBHOOK_SIGNATURE, self.signature.as_str()),
        ]
    }

    /// Sets the three headers on `map`, replacing any present. Fails only if the id is not a valid
    /// header value; nothing is inserted then.
    pub fn apply(&self, map: &mut HeaderMap) -> Result<(), InvalidHeaderValue> {
        let values = [
            HeaderValue::from_str(&self.id)?,
            HeaderValue::from_str(&self.timestamp)?,
            HeaderValue::from_str(&self.signature)?,
        ];
        for ((name, _), value) in self.pairs().into_iter().zip(values) {
            map.insert(name, value);
        }
        Ok(())
    }

    /// The same values borrowed as a receiver sees them, for [`verify`].
    pub fn as_received(&self) -> ReceivedHeaders<'_> {
        ReceivedHeaders { id: &self.id, timestamp: &self.timestamp, signature: &self.signature }
    }
}

/// Signs a delivery: `webhook-id` = `msg_id`, `webhook-timestamp` = `timestamp`, and
/// `webhook-signature` = [`signature_header`] over `secrets` (newest first).
pub fn headers(secrets: &[WebhookSecret], msg_id: &str, timestamp: u64, payload: &[u8]) -> WebhookHeaders {
    WebhookHeaders {
        id: msg_id.to_owned(),
        timestamp: timestamp.to_string(),
        signature: signature_header(secrets, msg_id, timestamp, payload),
    }
}

/// The three header values of a received delivery, unparsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedHeaders<'a> {
    /// `webhook-id` value.
    pub id: &'a str,
    /// `webhook-timestamp` value.
    pub timestamp: &'a str,
    /// `webhook-signature` value.
    pub signature: &'a str,
}

impl<'a> ReceivedHeaders<'a> {
    /// Reads the three headers from `map`: each must occur exactly once and be visible ASCII.
    pub fn from_map(map: &'a HeaderMap) -> Result<Self, WebhookError> {
        Ok(Self {
            id: single(map, &WEBHOOK_ID)?,
            timestamp: single(map, &WEBHOOK_TIMESTAMP)?,
            signature: single(map, &WEBHOOK_SIGNATURE)?,
        })
    }
}

fn single<'a>(map: &'a HeaderMap, name: &HeaderName) -> Result<&'a str, WebhookError> {
    let mut values = map.get_all(name).iter();
    let value = values.next().ok_or(WebhookError::MissingHeader)?;
    if values.next().is_some() {
        return Err(WebhookError::DuplicateHeader);
    }
    value.to_str().map_err(|_| WebhookError::MalformedHeader)
}

/// Why a delivery was refused by [`verify`] or [`ReceivedHeaders::from_map`]. Codes are stable;
/// messages never contain a secret or an expected MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// One of the three headers is absent.
    #[error("webhook header missing")]
    MissingHeader,
    /// One of the three headers occurs on more than one field line.
    #[error("webhook header repeated")]
    DuplicateHeader,
    /// A header value is not visible ASCII.
    #[error("webhook header not ascii")]
    MalformedHeader,
    /// `webhook-id` is empty, too long, not visible ASCII, or contains `.`.
    #[error("webhook-id malformed")]
    MalformedId,
    /// `webhook-timestamp` is not a canonical non-negative decimal integer.
    #[error("webhook-timestamp malformed")]
    MalformedTimestamp,
    /// `webhook-timestamp` is more than the tolerance before `now`.
    #[error("webhook timestamp too old")]
    TooOld,
    /// `webhook-timestamp` is more than the tolerance after `now`.
    #[error("webhook timestamp in the future")]
    InFuture,
    /// `webhook-signature` is longer than [`MAX_SIGNATURE_HEADER_LEN`].
    #[error("webhook-signature too long")]
    SignatureTooLong,
    /// An entry of `webhook-signature` is not `<version>,<value>`, or a `v1` value is not the
    /// canonical base64 of 32 bytes.
    #[error("webhook-signature malformed")]
    MalformedSignature,
    /// `webhook-signature` has no `v1` entry (only other versions).
    #[error("no v1 signature")]
    NoV1Signature,
    /// The verifier was given no secret.
    #[error("no webhook secret configured")]
    NoSecret,
    /// No `v1` entry matches any secret.
    #[error("webhook signature mismatch")]
    Mismatch,
}

impl WebhookError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader => "wh_missing_header",
            Self::DuplicateHeader => "wh_duplicate_header",
            Self::MalformedHeader => "wh_bad_header",
            Self::MalformedId => "wh_bad_id",
            Self::MalformedTimestamp => "wh_bad_timestamp",
            Self::TooOld => "wh_too_old",
            Self::InFuture => "wh_in_future",
            Self::SignatureTooLong => "wh_sig_too_long",
            Self::MalformedSignature => "wh_sig_malformed",
            Self::NoV1Signature => "wh_no_v1",
            Self::NoSecret => "wh_no_secret",
            Self::Mismatch => "wh_mismatch",
        }
    }
}

/// Parses a canonical decimal timestamp: 1–20 ASCII digits, no sign, no leading zero (except `0`),
/// fitting a `u64`. Canonical form means the signed text equals the header text.
fn parse_timestamp(value: &str) -> Result<u64, WebhookError> {
    let canonical = !value.is_empty()
        && value.len() <= MAX_TIMESTAMP_DIGITS
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'));
    if !canonical {
        return Err(WebhookError::MalformedTimestamp);
    }
    value.parse().map_err(|_| WebhookError::MalformedTimestamp)
}

/// Decodes a `v1` value: canonical padded standard base64 of exactly 32 bytes.
fn decode_v1(value: &str) -> Result<[u8; MAC_LEN], WebhookError> {
    // 32 bytes encode to 44 characters; checking first bounds the decode buffer.
    if value.len() != 44 {
        return Err(WebhookError::MalformedSignature);
    }
    let bytes = STANDARD.decode(value).map_err(|_| WebhookError::MalformedSignature)?;
    bytes.try_into().map_err(|_| WebhookError::MalformedSignature)
}

/// True for a version identifier: 1–16 lowercase ASCII letters or digits (`v1`, `v1a`, …).
fn is_version(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= 16
        && version.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Verifies a delivery against the raw body bytes, before anything parses them.
///
/// Checks, in order: `webhook-id` shape ([`is_valid_msg_id`]), canonical `webhook-timestamp`,
/// `|now - timestamp| <= tolerance_secs` (both directions; [`DEFAULT_TOLERANCE_SECS`] is the
/// usual value), the shape of every `webhook-signature` entry, then the MACs: passes when any `v1`
/// entry equals HMAC-SHA256 under any of `secrets` (constant-time comparison). Entries of other
/// versions (`v1a,…`, `v2,…`) are ignored; a malformed entry refuses the whole header (fail closed;
/// a conforming sender never emits one). Deduplication on `webhook-id` is the caller's job.
pub fn verify(
    secrets: &[WebhookSecret],
    received: &ReceivedHeaders<'_>,
    payload: &[u8],
    now: u64,
    tolerance_secs: u64,
) -> Result<(), WebhookError> {
    if !is_valid_msg_id(received.id) {
        return Err(WebhookError::MalformedId);
    }
    let timestamp = parse_timestamp(received.timestamp)?;
    if now.saturating_sub(timestamp) > tolerance_secs {
        return Err(WebhookError::TooOld);
    }
    if timestamp.saturating_sub(now) > tolerance_secs {
        return Err(WebhookError::InFuture);
    }
    if received.signature.len() > MAX_SIGNATURE_HEADER_LEN {
        return Err(WebhookError::SignatureTooLong);
    }
    let mut candidates = Vec::new();
    for entry in received.signature.split(' ') {
        let Some((version, value)) = entry.split_once(',') else {
            return Err(WebhookError::MalformedSignature);
        };
        if !is_version(version) || value.is_empty() {
            return Err(WebhookError::MalformedSignature);
        }
        if version == V1 {
            candidates.push(decode_v1(value)?);
        }
    }
    if candidates.is_empty() {
        return Err(WebhookError::NoV1Signature);
    }
    if secrets.is_empty() {
        return Err(WebhookError::NoSecret);
    }
    let mut matched = Choice::from(0);
    for secret in secrets {
        let expected = secret.mac(received.id, received.timestamp, payload);
        for candidate in &candidates {
            matched |= expected.ct_eq(candidate);
        }
    }
    if bool::from(matched) { Ok(()) } else { Err(WebhookError::Mismatch) }
}

#[cfg(test)]
mod tests;
