//! Waggle's RFC 9421 (HTTP Message Signatures) profile with `hmac-sha256`: component values,
//! signature bases, signing, and a fail-closed verifier. Pure: no I/O, no clock, no logging.
//!
//! The wire contract is `docs/PROTOCOL.md`. In short: one signature labelled `sig1`, parameters
//! `created`, `expires`, `nonce`, `keyid`, `alg="hmac-sha256"`, `tag`, and the HMAC key is the tenant
//! key's UTF-8 bytes. Purposes are separated by the signed `tag`, which the verifier checks.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac as _};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use sfv::{BareItem, Dictionary, FieldType as _, InnerList, Item, ListEntry, Parser, Version};
use sha2::Sha256;

use super::digest::{EMPTY_BODY_DIGEST, parse_content_digest};
use crate::headers;

type HmacSha256 = Hmac<Sha256>;

/// The only signature label Waggle emits and accepts.
pub const LABEL: &str = "sig1";
/// The only algorithm Waggle emits and accepts.
pub const ALG: &str = "hmac-sha256";
/// Validity of a signature Waggle creates: `expires = created + VALIDITY_SECS`.
pub const VALIDITY_SECS: u64 = 300;
/// Default maximum age of `created` accepted by the verifier, in seconds.
pub const DEFAULT_MAX_AGE_SECS: u64 = 300;
/// Default maximum amount `created` may lie in the future, in seconds.
pub const DEFAULT_MAX_FUTURE_SECS: u64 = 60;
/// Upper bound on the length of a `Signature-Input` or `Signature` value.
pub const MAX_SIGNATURE_HEADER_LEN: usize = 4096;
/// Minimum nonce length accepted by the verifier (22 base64url chars = 128 bits).
pub const MIN_NONCE_LEN: usize = 16;
/// Maximum nonce and key id length accepted by the verifier.
pub const MAX_PARAM_LEN: usize = 128;

/// A tenant key: the key id named in `keyid` and the HMAC secret (the tenant key string's UTF-8
/// bytes, used as is). `Debug` never prints the secret.
#[derive(Clone)]
pub struct SigningKey {
    id: String,
    secret: Vec<u8>,
}

impl SigningKey {
    /// A key from its id and raw secret bytes.
    pub fn new(id: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        Self { id: id.into(), secret: secret.into() }
    }

    /// A key from the provisioned tenant key string (its UTF-8 bytes, no derivation).
    pub fn from_tenant_key(id: impl Into<String>, tenant_key: &str) -> Self {
        Self::new(id, tenant_key.as_bytes())
    }

    /// The key id (`keyid` parameter).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The HMAC secret.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("id", &self.id).field("secret", &"<redacted>").finish()
    }
}

/// What a signature is for; carried in the signed `tag` parameter so one purpose never verifies as
/// another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Waggle → SaaS (`/api`, `/auth` proxy traffic, WebSocket handshakes, Waggle's own calls).
    Api,
    /// SaaS → Waggle `/nc/*` callbacks.
    Callback,
    /// SaaS → Waggle key-rotation announcements (`/saas/keys/announce`).
    KeyAnnounce,
}

impl Purpose {
    /// The `tag` value of this purpose.
    pub const fn tag(self) -> &'static str {
        match self {
            Self::Api => "waggle-api",
            Self::Callback => "waggle-nc",
            Self::KeyAnnounce => "waggle-key",
        }
    }
}

/// A covered component of Waggle's profile. Only these derived components are supported;
/// component parameters (`;sf`, `;key`, `;bs`, `;req`, `;tr`) are not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Component {
    /// `@method`: the method as sent, uppercase.
    Method,
    /// `@authority`: lowercase `host[:port]`, default port omitted.
    Authority,
    /// `@path`: the request path as sent (`/` if empty).
    Path,
    /// `@query`: `?` followed by the query as sent (`?` alone when absent).
    Query,
    /// A header field by (lowercase) name.
    Field(HeaderName),
}

impl Component {
    /// The component name as it appears (quoted) in the covered list.
    pub fn name(&self) -> &str {
        match self {
            Self::Method => "@method",
            Self::Authority => "@authority",
            Self::Path => "@path",
            Self::Query => "@query",
            Self::Field(name) => name.as_str(),
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "@method" => Some(Self::Method),
            "@authority" => Some(Self::Authority),
            "@path" => Some(Self::Path),
            "@query" => Some(Self::Query),
            _ if name.starts_with('@') => None,
            // HeaderName::from_bytes lowercases; require the name to be lowercase already.
            _ => HeaderName::from_bytes(name.as_bytes()).ok().filter(|h| h.as_str() == name).map(Self::Field),
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.name())
    }
}

/// Covered components of a Waggle → SaaS request, in order.
pub fn api_components() -> Vec<Component> {
    vec![
        Component::Method,
        Component::Authority,
        Component::Path,
        Component::Query,
        Component::Field(headers::CONTENT_DIGEST),
        Component::Field(headers::X_WAGGLE_USER),
        Component::Field(headers::X_WAGGLE_INSTANCE),
    ]
}

/// Covered components of a SaaS → Waggle `/nc` callback, in order: `@method`,
/// `x-http-method-override` (only when tunnelling), `x-waggle-target`, `x-waggle-user`,
/// `content-digest`, `content-type` (only with a non-empty body).
pub fn callback_components(method_override: bool, has_body: bool) -> Vec<Component> {
    let mut out = vec![Component::Method];
    if method_override {
        out.push(Component::Field(headers::X_HTTP_METHOD_OVERRIDE));
    }
    out.push(Component::Field(headers::X_WAGGLE_TARGET));
    out.push(Component::Field(headers::X_WAGGLE_USER));
    out.push(Component::Field(headers::CONTENT_DIGEST));
    if has_body {
        out.push(Component::Field(http::header::CONTENT_TYPE));
    }
    out
}

/// The components a received callback must cover, derived from the request itself:
/// the override whenever `X-HTTP-Method-Override` is present, `content-type` whenever the request
/// announces a body (`Content-Digest` other than the empty-body digest, a non-zero
/// `Content-Length`, or any `Transfer-Encoding`). The caller still checks the body against
/// `Content-Digest` while reading it.
pub fn callback_required(headers: &HeaderMap) -> Vec<Component> {
    let has_override = headers.contains_key(headers::X_HTTP_METHOD_OVERRIDE);
    let digest_says_body = headers
        .get(headers::CONTENT_DIGEST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != EMPTY_BODY_DIGEST);
    let length_says_body = headers.get(http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0");
    let chunked = headers.contains_key(http::header::TRANSFER_ENCODING);
    callback_components(has_override, digest_says_body || length_says_body || chunked)
}

/// Header fields that must occur at most once when covered (Waggle's own and the digest).
fn single_valued(name: &HeaderName) -> bool {
    name == headers::CONTENT_DIGEST
        || name == http::header::CONTENT_TYPE
        || name == headers::X_HTTP_METHOD_OVERRIDE
        || name.as_str().starts_with("x-waggle-")
}

/// A view of the request parts a signature may cover.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The method on the wire (for a tunnelled callback: `POST`, the override carries the verb).
    pub method: &'a Method,
    /// `http`, `https`, `ws` or `wss`; used only to omit the default port from `@authority`.
    pub scheme: &'a str,
    /// `host[:port]` as sent (empty when unknown; then `@authority` cannot be covered).
    pub authority: &'a str,
    /// The path as sent, not decoded or normalised.
    pub path: &'a str,
    /// The query as sent, without `?`; `None` when the target has no `?`.
    pub query: Option<&'a str>,
    /// All request header fields.
    pub headers: &'a HeaderMap,
}

impl<'a> Message<'a> {
    /// A view of a request to `uri` (absolute for `@authority`; origin-form is enough otherwise).
    pub fn from_uri(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap) -> Self {
        Self {
            method,
            scheme: uri.scheme_str().unwrap_or(""),
            authority: uri.authority().map_or("", |a| a.as_str()),
            path: uri.path(),
            query: uri.query(),
            headers,
        }
    }

    /// The value of `component` in this message, per RFC 9421 §2.1–2.2.
    pub fn component_value(&self, component: &Component) -> Result<String, ComponentError> {
        let mut value = String::new();
        self.write_component_value(component, &mut value)?;
        Ok(value)
    }

    /// Appends the value of `component` to `out` (the signature base is built in one buffer).
    /// On error `out` is left as it was.
    fn write_component_value(&self, component: &Component, out: &mut String) -> Result<(), ComponentError> {
        let start = out.len();
        match component {
            Component::Method => out.push_str(self.method.as_str()),
            Component::Authority => {
                let kept = authority_without_default_port(self.scheme, self.authority)
                    .ok_or_else(|| ComponentError::Absent(component.clone()))?;
                out.extend(kept.chars().map(|c| c.to_ascii_lowercase()));
            }
            Component::Path => out.push_str(if self.path.is_empty() { "/" } else { self.path }),
            Component::Query => {
                out.push('?');
                out.push_str(self.query.unwrap_or(""));
            }
            Component::Field(name) => {
                let mut lines = self.headers.get_all(name).iter();
                let Some(first) = lines.next() else {
                    return Err(ComponentError::Absent(component.clone()));
                };
                out.push_str(field_line(first, component)?);
                for line in lines {
                    let line = field_line(line, component);
                    if single_valued(name) || line.is_err() {
                        out.truncate(start);
                        return Err(line
                            .err()
                            .unwrap_or_else(|| ComponentError::Duplicate(component.clone())));
                    }
                    out.push_str(", ");
                    out.push_str(line?);
                }
            }
        }
        // Field lines passed `HeaderValue::to_str`, which admits exactly these bytes already.
        let checked = matches!(component, Component::Field(_));
        if checked || out.as_bytes()[start..].iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)) {
            Ok(())
        } else {
            out.truncate(start);
            Err(ComponentError::InvalidValue(component.clone()))
        }
    }

    /// Appends the signature-base line `"<name>": <value>\n` of `component`; returns the value's
    /// byte range in `base`.
    fn write_base_line(
        &self,
        component: &Component,
        base: &mut String,
    ) -> Result<std::ops::Range<usize>, ComponentError> {
        let line_start = base.len();
        base.push('"');
        base.push_str(component.name());
        base.push_str("\": ");
        let start = base.len();
        if let Err(e) = self.write_component_value(component, base) {
            base.truncate(line_start);
            return Err(e);
        }
        let end = base.len();
        base.push('\n');
        Ok(start..end)
    }
}

fn field_line<'v>(value: &'v HeaderValue, component: &Component) -> Result<&'v str, ComponentError> {
    value
        .to_str()
        .map(|s| s.trim_matches([' ', '\t']))
        .map_err(|_| ComponentError::InvalidValue(component.clone()))
}

/// `@authority` per RFC 9421 §2.2.3: lowercase host, default port for `scheme` omitted.
/// `None` when `authority` is empty or carries userinfo.
pub fn normalize_authority(scheme: &str, authority: &str) -> Option<String> {
    authority_without_default_port(scheme, authority).map(str::to_ascii_lowercase)
}

/// `authority` without a default port for `scheme` (not yet lowercased); `None` when empty or
/// carrying userinfo.
fn authority_without_default_port<'a>(scheme: &str, authority: &'a str) -> Option<&'a str> {
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let default_port = if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        Some("80")
    } else if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        Some("443")
    } else {
        None
    };
    // The port follows the last ':' unless that ':' is inside an IPv6 literal.
    if let (Some(port), Some(idx)) = (default_port, authority.rfind(':'))
        && !authority[idx..].contains(']')
        && authority[idx + 1..].trim_start_matches('0') == port
    {
        return Some(&authority[..idx]);
    }
    Some(authority)
}

/// A component could not be resolved from the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComponentError {
    /// The component is not present in the message.
    #[error("component {0} is absent")]
    Absent(Component),
    /// A single-valued header field occurs more than once.
    #[error("component {0} occurs more than once")]
    Duplicate(Component),
    /// The value is not visible ASCII (plus SP/HTAB) and cannot enter a signature base.
    #[error("component {0} has a value that cannot be signed")]
    InvalidValue(Component),
}

/// The signature parameters (RFC 9421 §2.3) of Waggle's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureParams {
    /// Covered components, in order.
    pub covered: Vec<Component>,
    /// `created`, unix seconds.
    pub created: u64,
    /// `expires`, unix seconds.
    pub expires: u64,
    /// `nonce`.
    pub nonce: String,
    /// `keyid`.
    pub keyid: String,
    /// `tag`.
    pub tag: String,
}

impl SignatureParams {
    /// The inner list serialised per RFC 8941: the `@signature-params` value and the
    /// `Signature-Input` member value. Parameter order: created, expires, nonce, keyid, alg, tag.
    pub fn serialize(&self) -> Result<String, SignError> {
        let mut out = String::with_capacity(256);
        write_params(
            &mut out,
            &self.covered,
            self.created,
            self.expires,
            &self.nonce,
            &self.keyid,
            &self.tag,
        )?;
        Ok(out)
    }
}

/// Appends the serialised inner list of signature parameters to `out` (see
/// [`SignatureParams::serialize`]); borrowed inputs, so signing needs no `SignatureParams`.
///
/// Written directly rather than through `sfv`'s serializer, which pushes strings one `char` at a
/// time and was the largest single cost of signing a request. Only sf-strings and non-negative
/// sf-integers occur; the output equals `sfv`'s (asserted in `tests.rs` for ordinary and escaped
/// values, and by the `signature_base` fuzz target).
fn write_params(
    out: &mut String,
    covered: &[Component],
    created: u64,
    expires: u64,
    nonce: &str,
    keyid: &str,
    tag: &str,
) -> Result<(), SignError> {
    use std::fmt::Write as _;
    out.push('(');
    for (i, component) in covered.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        push_sf_string(out, component.name())?;
    }
    out.push(')');
    for (name, value) in [("created", created), ("expires", expires)] {
        // RFC 8941 §3.3.1: at most 15 digits.
        if value > 999_999_999_999_999 {
            return Err(SignError::InvalidParameter);
        }
        let _ = write!(out, ";{name}={value}");
    }
    for (name, value) in [("nonce", nonce), ("keyid", keyid), ("alg", ALG), ("tag", tag)] {
        out.push(';');
        out.push_str(name);
        out.push('=');
        push_sf_string(out, value)?;
    }
    Ok(())
}

/// Appends `value` as an RFC 8941 §4.1.6 sf-string: printable ASCII only, `"` and `\` escaped.
fn push_sf_string(out: &mut String, value: &str) -> Result<(), SignError> {
    let mut escapes = false;
    for &b in value.as_bytes() {
        if !(b' '..=b'~').contains(&b) {
            return Err(SignError::InvalidParameter);
        }
        escapes |= b == b'"' || b == b'\\';
    }
    out.push('"');
    if escapes {
        for c in value.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    } else {
        out.push_str(value);
    }
    out.push('"');
    Ok(())
}

/// The RFC 9421 §2.5 signature base: one `"<name>": <value>` line per covered component, then
/// `"@signature-params": <params>`, joined by `\n`, with no trailing newline. An empty field
/// value yields a line ending in `": "` (colon, space).
pub fn signature_base(message: &Message<'_>, params: &SignatureParams) -> Result<String, SignError> {
    let mut base = String::with_capacity(512);
    for component in &params.covered {
        message.write_base_line(component, &mut base).map_err(SignError::Component)?;
    }
    base.push_str(SIGNATURE_PARAMS_PREFIX);
    base.push_str(&params.serialize()?);
    Ok(base)
}

/// The start of the last signature-base line.
const SIGNATURE_PARAMS_PREFIX: &str = "\"@signature-params\": ";

/// Signing failed (a local bug or bad input, never a peer's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// A covered component could not be resolved.
    #[error(transparent)]
    Component(ComponentError),
    /// A parameter (nonce, key id, tag, timestamp) cannot be serialised as a structured field,
    /// or a component is listed twice.
    #[error("signature parameter cannot be serialised")]
    InvalidParameter,
}

/// The two header values produced by signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// `Signature-Input` value, e.g. `sig1=("@method" …);created=…;…;tag="waggle-api"`.
    pub signature_input: String,
    /// `Signature` value, `sig1=:<base64>:`.
    pub signature: String,
    /// The signature base that was MACed (for tests and documentation vectors; never log it with the MAC).
    pub base: String,
}

impl SignatureHeaders {
    /// Replaces any `Signature-Input`/`Signature` fields in `headers` with these values.
    pub fn apply(&self, headers: &mut HeaderMap) -> Result<(), SignError> {
        let input = HeaderValue::from_str(&self.signature_input).map_err(|_| SignError::InvalidParameter)?;
        let sig = HeaderValue::from_str(&self.signature).map_err(|_| SignError::InvalidParameter)?;
        headers.insert(headers::SIGNATURE_INPUT, input);
        headers.insert(headers::SIGNATURE, sig);
        Ok(())
    }
}

/// Signs `message` for `purpose`, covering `covered` in order, with `expires = created + 300`.
///
/// Deterministic: the caller supplies the clock (`created`, unix seconds) and the nonce
/// (see [`random_nonce`]; 16–128 characters, no `"` or `\\`). Every covered header must already be set on the message
/// (including `Content-Digest`).
pub fn sign_request(
    key: &SigningKey,
    purpose: Purpose,
    message: &Message<'_>,
    covered: &[Component],
    created: u64,
    nonce: &str,
) -> Result<SignatureHeaders, SignError> {
    let nonce_ok = (MIN_NONCE_LEN..=MAX_PARAM_LEN).contains(&nonce.len()) && !nonce.contains(['"', '\\']);
    // Never emit what Waggle's own verifier would refuse.
    let keyid_ok = !key.id().is_empty() && key.id().len() <= MAX_PARAM_LEN;
    if has_duplicates(covered) || !nonce_ok || !keyid_ok {
        return Err(SignError::InvalidParameter);
    }
    let expires = created.checked_add(VALIDITY_SECS).ok_or(SignError::InvalidParameter)?;
    // One buffer: the component lines, then the parameters, serialised once and reused for
    // `Signature-Input`.
    let mut base = String::with_capacity(512);
    for component in covered {
        message.write_base_line(component, &mut base).map_err(SignError::Component)?;
    }
    base.push_str(SIGNATURE_PARAMS_PREFIX);
    let params_start = base.len();
    write_params(&mut base, covered, created, expires, nonce, key.id(), purpose.tag())?;
    let mac = mac(key.secret(), &base).finalize().into_bytes();
    let params = &base[params_start..];
    let mut signature_input = String::with_capacity(LABEL.len() + 1 + params.len());
    signature_input.push_str(LABEL);
    signature_input.push('=');
    signature_input.push_str(params);
    let mut signature = String::with_capacity(LABEL.len() + 48);
    signature.push_str(LABEL);
    signature.push_str("=:");
    STANDARD.encode_string(mac, &mut signature);
    signature.push(':');
    Ok(SignatureHeaders { signature_input, signature, base })
}

/// A fresh 128-bit nonce, base64url without padding (22 characters).
pub fn random_nonce<R: rand::Rng + ?Sized>(rng: &mut R) -> String {
    let bytes: [u8; 16] = rng.random();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn mac(secret: &[u8], base: &str) -> HmacSha256 {
    // HMAC accepts keys of any length; new_from_slice cannot fail for Hmac.
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(base.as_bytes());
    mac
}

fn has_duplicates(components: &[Component]) -> bool {
    components.iter().enumerate().any(|(i, c)| components[..i].contains(c))
}

/// What the verifier demands beyond a valid MAC.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    /// The purpose the route serves; the signed `tag` must equal its tag.
    pub purpose: Purpose,
    /// Current time, unix seconds.
    pub now: u64,
    /// Maximum age of `created` (`now - created`), seconds.
    pub max_age: u64,
    /// Maximum amount `created` may lie ahead of `now`, seconds.
    pub max_future: u64,
    /// Components the signature must cover (it may cover more).
    pub required: Vec<Component>,
}

impl VerifyPolicy {
    /// Policy for a Waggle → SaaS request (used by the SaaS side and by our tests).
    pub fn api(now: u64) -> Self {
        Self {
            purpose: Purpose::Api,
            now,
            max_age: DEFAULT_MAX_AGE_SECS,
            max_future: DEFAULT_MAX_FUTURE_SECS,
            required: api_components(),
        }
    }

    /// Policy for a received `/nc` callback; the required list is derived from its headers
    /// (see [`callback_required`]).
    pub fn callback(now: u64, headers: &HeaderMap) -> Self {
        Self {
            purpose: Purpose::Callback,
            now,
            max_age: DEFAULT_MAX_AGE_SECS,
            max_future: DEFAULT_MAX_FUTURE_SECS,
            required: callback_required(headers),
        }
    }
}

/// A signature that passed every check. Replay protection is the caller's next step: insert
/// `(keyid, nonce)` into the nonce cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key that verified the MAC.
    pub keyid: String,
    /// The signed nonce.
    pub nonce: String,
    /// `created`, unix seconds.
    pub created: u64,
    /// `expires`, unix seconds.
    pub expires: u64,
    /// The covered components, in signed order.
    pub covered: Vec<Component>,
}

/// Why a signature was refused, in the order the verifier checks. Every variant answers 401;
/// [`VerifyError::code`] gives a stable reason for metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// `Signature-Input` or `Signature` is absent.
    #[error("signature headers missing")]
    Missing,
    /// `Signature-Input` or `Signature` occurs on more than one field line.
    #[error("signature header repeated")]
    DuplicateHeader,
    /// A signature header is longer than [`MAX_SIGNATURE_HEADER_LEN`] or not visible ASCII.
    #[error("signature header too long")]
    TooLong,
    /// `Signature-Input` is not a canonical RFC 8941 dictionary of inner lists of strings.
    #[error("signature-input malformed")]
    MalformedInput,
    /// `Signature` is not a canonical RFC 8941 dictionary of byte sequences.
    #[error("signature malformed")]
    MalformedSignature,
    /// Not exactly one label in each header.
    #[error("not exactly one signature")]
    LabelCount,
    /// The label is not `sig1`, or the two headers name different labels.
    #[error("unexpected signature label")]
    WrongLabel,
    /// `created`/`expires` is not a non-negative integer, or `expires < created`.
    #[error("invalid timestamp parameter")]
    InvalidTimestamp,
    /// One of `created`, `expires`, `nonce`, `keyid`, `alg`, `tag` is missing, has the wrong type,
    /// or (nonce, key id) has an unacceptable length.
    #[error("signature parameter missing or invalid")]
    MissingParameter,
    /// A signature parameter outside the profile.
    #[error("unknown signature parameter")]
    UnknownParameter,
    /// `alg` is not `hmac-sha256`.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// A covered component outside the profile, with parameters, not lowercase, or listed twice.
    #[error("unsupported covered component")]
    UnsupportedComponent,
    /// The MAC is not exactly 32 bytes.
    #[error("signature has the wrong length")]
    BadMacLength,
    /// `keyid` names no live key.
    #[error("unknown key id")]
    UnknownKey,
    /// `tag` is not the route's purpose.
    #[error("tag mismatch")]
    TagMismatch,
    /// `created` lies more than `max_future` ahead.
    #[error("signature created in the future")]
    CreatedInFuture,
    /// `created` is older than `max_age`.
    #[error("signature too old")]
    TooOld,
    /// `expires` lies in the past.
    #[error("signature expired")]
    Expired,
    /// A required component is not covered.
    #[error("required component not covered")]
    NotCovered,
    /// A covered component is absent from the request.
    #[error("covered component absent")]
    ComponentAbsent,
    /// A covered single-valued field occurs more than once.
    #[error("covered field repeated")]
    DuplicateField,
    /// A covered value cannot enter a signature base, or a covered `Content-Digest` is malformed.
    #[error("covered component value invalid")]
    InvalidComponentValue,
    /// The MAC does not match.
    #[error("signature mismatch")]
    Mismatch,
}

impl VerifyError {
    /// Stable reason code for metrics and debug logs (never shown to the peer).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "sig_missing",
            Self::DuplicateHeader => "sig_duplicate_header",
            Self::TooLong => "sig_too_long",
            Self::MalformedInput => "sig_input_malformed",
            Self::MalformedSignature => "sig_malformed",
            Self::LabelCount => "sig_label_count",
            Self::WrongLabel => "sig_wrong_label",
            Self::InvalidTimestamp => "sig_bad_timestamp",
            Self::MissingParameter => "sig_missing_param",
            Self::UnknownParameter => "sig_unknown_param",
            Self::UnsupportedAlgorithm => "sig_bad_alg",
            Self::UnsupportedComponent => "sig_bad_component",
            Self::BadMacLength => "sig_bad_mac_length",
            Self::UnknownKey => "sig_unknown_key",
            Self::TagMismatch => "sig_tag_mismatch",
            Self::CreatedInFuture => "sig_created_in_future",
            Self::TooOld => "sig_too_old",
            Self::Expired => "sig_expired",
            Self::NotCovered => "sig_not_covered",
            Self::ComponentAbsent => "sig_component_absent",
            Self::DuplicateField => "sig_duplicate_field",
            Self::InvalidComponentValue => "sig_bad_component_value",
            Self::Mismatch => "sig_mismatch",
        }
    }
}

/// The parsed, shape-checked signature (before any key, time or MAC check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    /// Parameters and covered components.
    pub params: SignatureParams,
    /// The 32-byte MAC.
    pub mac: [u8; 32],
    /// The `Signature-Input` member value exactly as received (canonical, so it is also the
    /// `@signature-params` value, with the sender's parameter order).
    pub raw_params: String,
}

fn single_header<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<&'h str, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(VerifyError::Missing)?;
    if values.next().is_some() {
        return Err(VerifyError::DuplicateHeader);
    }
    if value.len() > MAX_SIGNATURE_HEADER_LEN {
        return Err(VerifyError::TooLong);
    }
    value.to_str().map_err(|_| VerifyError::TooLong)
}

/// Parses one canonical dictionary with exactly one member named [`LABEL`].
fn single_member(value: &str, malformed: VerifyError) -> Result<ListEntry, VerifyError> {
    let dict: Dictionary =
        Parser::new(value).with_version(Version::Rfc8941).parse().map_err(|_| malformed.clone())?;
    if dict.is_empty() {
        return Err(VerifyError::LabelCount);
    }
    // Canonical form only: rejects repeated labels (RFC 8941 keeps the last silently), leading
    // zeros, signs and stray whitespace, so every verifier sees the same parameters.
    if dict.serialize().as_deref() != Some(value) {
        return Err(malformed);
    }
    if dict.len() != 1 {
        return Err(VerifyError::LabelCount);
    }
    let Some((label, entry)) = dict.into_iter().next() else {
        return Err(VerifyError::LabelCount);
    };
    if label.as_str() != LABEL {
        return Err(VerifyError::WrongLabel);
    }
    Ok(entry)
}

/// Shape checks: header counts and lengths, one `sig1` label in both headers, parameters present
/// and typed, `alg`, supported components, a 32-byte MAC.
pub fn parse_signature(headers: &HeaderMap) -> Result<ParsedSignature, VerifyError> {
    let input = single_header(headers, &headers::SIGNATURE_INPUT)?;
    let signature = single_header(headers, &headers::SIGNATURE)?;
    let ListEntry::InnerList(list) = single_member(input, VerifyError::MalformedInput)? else {
        return Err(VerifyError::MalformedInput);
    };
    let ListEntry::Item(sig_item) = single_member(signature, VerifyError::MalformedSignature)? else {
        return Err(VerifyError::MalformedSignature);
    };
    let params = parse_params(&list)?;
    let BareItem::ByteSequence(bytes) = sig_item.bare_item else {
        return Err(VerifyError::MalformedSignature);
    };
    if !sig_item.params.is_empty() {
        return Err(VerifyError::MalformedSignature);
    }
    let mac = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| VerifyError::BadMacLength)?;
    let raw_params = input[LABEL.len() + 1..].to_owned();
    Ok(ParsedSignature { params, mac, raw_params })
}

fn parse_params(list: &InnerList) -> Result<SignatureParams, VerifyError> {
    let mut covered = Vec::with_capacity(list.items.len());
    for item in &list.items {
        covered.push(parse_component(item)?);
    }
    let mut created = None;
    let mut expires = None;
    let mut nonce = None;
    let mut keyid = None;
    let mut alg = None;
    let mut tag = None;
    for (key, value) in &list.params {
        match key.as_str() {
            "created" => created = Some(timestamp(value)?),
            "expires" => expires = Some(timestamp(value)?),
            "nonce" => nonce = Some(string_param(value)?),
            "keyid" => keyid = Some(string_param(value)?),
            "alg" => alg = Some(string_param(value)?),
            "tag" => tag = Some(string_param(value)?),
            _ => return Err(VerifyError::UnknownParameter),
        }
    }
    let (Some(created), Some(expires), Some(nonce), Some(keyid), Some(alg), Some(tag)) =
        (created, expires, nonce, keyid, alg, tag)
    else {
        return Err(VerifyError::MissingParameter);
    };
    if expires < created {
        return Err(VerifyError::InvalidTimestamp);
    }
    if !(MIN_NONCE_LEN..=MAX_PARAM_LEN).contains(&nonce.len())
        || keyid.is_empty()
        || keyid.len() > MAX_PARAM_LEN
    {
        return Err(VerifyError::MissingParameter);
    }
    if alg != ALG {
        return Err(VerifyError::UnsupportedAlgorithm);
    }
    if has_duplicates(&covered) {
        return Err(VerifyError::UnsupportedComponent);
    }
    Ok(SignatureParams { covered, created, expires, nonce, keyid, tag })
}

fn parse_component(item: &Item) -> Result<Component, VerifyError> {
    let BareItem::String(name) = &item.bare_item else {
        return Err(VerifyError::MalformedInput);
    };
    if !item.params.is_empty() {
        return Err(VerifyError::UnsupportedComponent);
    }
    Component::parse(name.as_str()).ok_or(VerifyError::UnsupportedComponent)
}

fn timestamp(value: &BareItem) -> Result<u64, VerifyError> {
    match value {
        BareItem::Integer(i) => u64::try_from(i64::from(*i)).map_err(|_| VerifyError::InvalidTimestamp),
        _ => Err(VerifyError::InvalidTimestamp),
    }
}

fn string_param(value: &BareItem) -> Result<String, VerifyError> {
    match value {
        BareItem::String(s) => Ok(s.as_str().to_owned()),
        _ => Err(VerifyError::MissingParameter),
    }
}

/// Verifies the signature on `message` under `policy`.
///
/// `lookup` maps a key id to its secret (return `None` for unknown or retired ids; two keys can be
/// live during rotation). Checks run in this order and stop at the first failure: shape →
/// unknown key → tag → time window → required components covered and present → MAC (constant
/// time). Nonce replay and the body digest are the caller's next steps.
pub fn verify_request<F, K>(
    message: &Message<'_>,
    lookup: F,
    policy: &VerifyPolicy,
) -> Result<Verified, VerifyError>
where
    F: FnOnce(&str) -> Option<K>,
    K: AsRef<[u8]>,
{
    let ParsedSignature { params, mac: presented, raw_params } = parse_signature(message.headers)?;
    let secret = lookup(&params.keyid).ok_or(VerifyError::UnknownKey)?;
    if params.tag != policy.purpose.tag() {
        return Err(VerifyError::TagMismatch);
    }
    if params.created > policy.now.saturating_add(policy.max_future) {
        return Err(VerifyError::CreatedInFuture);
    }
    if policy.now.saturating_sub(params.created) > policy.max_age {
        return Err(VerifyError::TooOld);
    }
    if params.expires < policy.now {
        return Err(VerifyError::Expired);
    }
    if policy.required.iter().any(|c| !params.covered.contains(c)) {
        return Err(VerifyError::NotCovered);
    }
    let mut base = String::with_capacity(512);
    for component in &params.covered {
        let value = message.write_base_line(component, &mut base).map_err(|e| match e {
            ComponentError::Absent(_) => VerifyError::ComponentAbsent,
            ComponentError::Duplicate(_) => VerifyError::DuplicateField,
            ComponentError::InvalidValue(_) => VerifyError::InvalidComponentValue,
        })?;
        if matches!(component, Component::Field(name) if name == headers::CONTENT_DIGEST)
            && parse_content_digest(&base[value]).is_err()
        {
            return Err(VerifyError::InvalidComponentValue);
        }
    }
    base.push_str(SIGNATURE_PARAMS_PREFIX);
    base.push_str(&raw_params);
    mac(secret.as_ref(), &base).verify_slice(&presented).map_err(|_| VerifyError::Mismatch)?;
    Ok(Verified {
        keyid: params.keyid,
        nonce: params.nonce,
        created: params.created,
        expires: params.expires,
        covered: params.covered,
    })
}

#[cfg(test)]
mod tests;
