//! Inbound signed requests (the SaaS calling Waggle): ONE verification policy, parameterised by the
//! route's purpose ([`SignedRoute`]): `/nc` callbacks (`tag="waggle-nc"`) and key announcements
//! (`tag="waggle-key"`). Applied per route group as a `route_layer` ([`SignatureAuth`], inside the
//! AppAPI check), it puts a [`VerifiedCall`] into the request; handlers only see verified calls.
//!
//! Checks, failing closed in this order, one reason code each:
//! - callbacks: our headers' shape and sizes → known key id (any live key within the rotation
//!   overlap) → time window → MAC (constant time) → observed path vs signed target → signature
//!   never spent → (later, while the body is read by the forwarder) `Content-Digest`;
//! - key announcements: key id (only the CURRENT key may announce its successor) → time window →
//!   MAC → body (at most 4 KiB) vs `Content-Digest` → signature never spent.
//!
//! Both spend signatures in the one [`ReplayStore`], which records them durably before anything is
//! forwarded, so neither a restart nor a crash reopens a replay window. Every refusal
//! answers the same 401 `invalid_signature`; the reason goes to the log and the metrics only. For
//! callbacks, failures are rate-limited with a token bucket that is consulted only after a
//! verification failed, so a flood of forgeries never blocks a valid signature (429), and a full
//! (or unwritable) replay store answers 503 rather than skip the check. The wire format itself is the configured
//! [`WireProfile`] (RFC 9421 today).

use std::future::{Ready, ready};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::response::{IntoResponse as _, Response};
use futures_util::future::Either;
use http::request::Parts;
use http::{HeaderMap, Method, Request};
use tower_http::auth::AsyncAuthorizeRequest;

use crate::clock::unix_now;
use crate::config::CallbackSettings;
use crate::error::ApiError;
use crate::headers;
use crate::keys::Keyring;
use crate::metrics::Metrics;
use crate::nextcloud::target::{self, Target};
use crate::replay::{ReplayError, ReplayKey, ReplayStore, Validity};
use crate::signing::{self, Component, Message, Purpose, VerifyPolicy, WireProfile};

/// Verbs the SaaS may use on `/nc` (directly under HaRP, or tunnelled as POST + override).
pub const CALLBACK_VERBS: [&str; 15] = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "REPORT",
    "SEARCH",
    "MKCOL",
    "MOVE",
    "COPY",
    "LOCK",
    "UNLOCK",
];

/// Longest accepted user id.
const MAX_USER_LEN: usize = 64;
/// Largest key announcement body (`{"instance_id","key_id"}`).
const ANNOUNCE_BODY_CAP: usize = 4096;
/// `Retry-After` once the failure budget is spent.
const RETRY_AFTER_SECS: u64 = 5;

/// What a signed route is for: selects the tag, the covered components, the keys that may verify,
/// and how refusals are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignedRoute {
    /// `/nc/*`: the SaaS calling Nextcloud through Waggle.
    Callback,
    /// `/saas/keys/announce`: the SaaS announcing the next tenant key.
    KeyAnnounce,
}

impl SignedRoute {
    /// Metric name prefix for refusals.
    fn metric_prefix(self) -> &'static str {
        match self {
            Self::Callback => "nc_signature_failed_",
            Self::KeyAnnounce => "key_announce_refused_",
        }
    }
}

/// Why a signed request was refused (all answer 401 `invalid_signature`, except `ReplayFull` → 503
/// and a spent failure budget → 429).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Our own headers are missing, repeated, too long or malformed.
    #[error("signed request headers malformed: {0}")]
    Shape(&'static str),
    /// The signature verification failed.
    #[error("signature refused: {0}")]
    Signature(signing::VerifyError),
    /// Could have been used before an unclean host restart whose record of spent signatures may
    /// be incomplete (see `replay`).
    #[error("signature may have been used before an unclean restart")]
    BeforeRestart,
    /// The path Waggle observed is not the signed target.
    #[error("observed path does not match the signed target")]
    PathMismatch,
    /// The nonce was seen before.
    #[error("nonce replayed")]
    Replayed,
    /// The replay store is full of live entries (503).
    #[error("replay store full")]
    ReplayFull,
    /// The replay store cannot record the signature (503).
    #[error("replay store cannot write")]
    ReplayStorage,
    /// The body does not match `Content-Digest`.
    #[error("body does not match Content-Digest")]
    DigestMismatch,
    /// The body is larger than the route accepts.
    #[error("body too large")]
    BodyTooLarge,
}

impl Rejection {
    /// Stable reason code for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Shape(r) => r,
            Self::Signature(e) => e.code(),
            Self::BeforeRestart => "sig_before_restart",
            Self::PathMismatch => "path_mismatch",
            Self::Replayed => "nonce_replayed",
            Self::ReplayFull => "replay_cache_full",
            Self::ReplayStorage => "replay_store_unavailable",
            Self::DigestMismatch => "digest_mismatch",
            Self::BodyTooLarge => "body_too_large",
        }
    }
}

impl From<ReplayError> for Rejection {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::Replayed => Self::Replayed,
            ReplayError::BeforeRestart => Self::BeforeRestart,
            ReplayError::Full => Self::ReplayFull,
            ReplayError::Storage => Self::ReplayStorage,
        }
    }
}

/// A signed request that passed verification (for callbacks, all but the body digest, which the
/// forwarder checks while it reads the body: [`VerifiedCall::refuse`] answers a mismatch).
#[derive(Debug, Clone)]
pub(crate) struct VerifiedCall {
    /// The route it was verified for.
    pub route: SignedRoute,
    /// The Nextcloud user to act as (empty = system call; always empty for announcements).
    pub user: String,
    /// The canonical target (callbacks; not yet checked against the allow-list).
    pub target: Option<Target>,
    /// The verb asked for (the override on a tunnelled callback, else the wire method).
    pub method: Method,
    /// The signed body digest.
    pub digest: [u8; 32],
    verifier: Arc<SignatureVerifier>,
}

impl VerifiedCall {
    /// Refuses this call after all (a body that does not match its digest), counted like any other
    /// refusal.
    pub(crate) fn refuse(&self, rejection: &Rejection) -> ApiError {
        self.verifier.refuse(self.route, rejection)
    }
}

/// A token bucket for failed verifications.
#[derive(Debug)]
pub(crate) struct FailureLimiter {
    state: Mutex<(f64, Instant)>,
    burst: f64,
    per_sec: f64,
}

impl FailureLimiter {
    /// `burst` failures at once, `per_sec` sustained.
    pub(crate) fn new(burst: u32, per_sec: u32) -> Self {
        Self {
            state: Mutex::new((f64::from(burst), Instant::now())),
            burst: f64::from(burst),
            per_sec: f64::from(per_sec),
        }
    }

    /// Takes a token for one failure; false when the budget is spent (answer 429).
    pub(crate) fn allow_failure(&self) -> bool {
        let mut state = self.state.lock().expect("limiter lock");
        let now = Instant::now();
        let refill = now.duration_since(state.1).as_secs_f64() * self.per_sec;
        state.0 = (state.0 + refill).min(self.burst);
        state.1 = now;
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The verifier every signed route shares, built once: keys, wire profile, replay store, clock
/// window and failure budget.
#[derive(Debug)]
pub(crate) struct SignatureVerifier {
    keys: Arc<Keyring>,
    profile: Arc<dyn WireProfile>,
    replay: Arc<ReplayStore>,
    limiter: FailureLimiter,
    metrics: Arc<Metrics>,
    max_age: u64,
    max_future: u64,
}

fn one<'a>(
    headers: &'a HeaderMap,
    name: &http::HeaderName,
    reason: &'static str,
) -> Result<&'a str, Rejection> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(Rejection::Shape(reason))?;
    if values.next().is_some() || value.len() > target::MAX_TARGET_LEN {
        return Err(Rejection::Shape(reason));
    }
    value.to_str().map_err(|_| Rejection::Shape(reason))
}

/// A Nextcloud user id as Waggle accepts it: no control characters, no `:` (it would corrupt
/// `base64(uid:secret)`), no surrounding whitespace, at most 64 bytes.
pub fn valid_user(user: &str) -> bool {
    user.len() <= MAX_USER_LEN
        && !user.contains(':')
        && user.trim() == user
        && !user.chars().any(char::is_control)
}

/// The verb a callback asks for: `X-HTTP-Method-Override` on a POST, else the wire method.
pub fn callback_method(wire: &Method, headers: &HeaderMap) -> Result<Method, Rejection> {
    let mut overrides = headers.get_all(headers::X_HTTP_METHOD_OVERRIDE).iter();
    let method = match overrides.next() {
        None => wire.clone(),
        Some(value) => {
            if overrides.next().is_some() || wire != Method::POST {
                return Err(Rejection::Shape("bad_override"));
            }
            // Exact spelling: the signature covers the header value, so `propfind` is refused rather
            // than silently upper-cased.
            Method::from_bytes(value.as_bytes()).map_err(|_| Rejection::Shape("bad_override"))?
        }
    };
    if CALLBACK_VERBS.contains(&method.as_str()) { Ok(method) } else { Err(Rejection::Shape("bad_method")) }
}

impl SignatureVerifier {
    /// A verifier with the configured window and failure budget, spending signatures in `replay`.
    pub(crate) fn new(
        settings: &CallbackSettings,
        replay: Arc<ReplayStore>,
        keys: Arc<Keyring>,
        profile: Arc<dyn WireProfile>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            keys,
            profile,
            replay,
            limiter: FailureLimiter::new(settings.failure_burst, settings.failure_per_sec),
            metrics,
            max_age: settings.max_age_secs,
            max_future: settings.max_future_secs,
        }
    }

    /// Key id, window and MAC under `policy`; `current_only` admits only the key that signs now.
    fn verify_signature(
        &self,
        parts: &Parts,
        policy: &VerifyPolicy,
        current_only: bool,
    ) -> Result<signing::Verified, Rejection> {
        let message = Message::from_uri(&parts.method, &parts.uri, &parts.headers);
        let current = current_only.then(|| self.keys.current_id()).flatten();
        let lookup = |id: &str| {
            if current_only && current.as_deref() != Some(id) {
                return None;
            }
            self.keys.verification_key(id).map(|k| k.secret().to_vec())
        };
        self.profile.verify(&message, &lookup, policy).map_err(Rejection::Signature)
    }

    /// Spends a verified signature: `(keyid, nonce)` of Waggle's RFC 9421 profile, valid from its
    /// `created` minus the allowed lead until the earlier of `expires` and `created` plus the
    /// allowed age. Recorded durably before this returns.
    fn spend(&self, verified: &signing::Verified, now: u64) -> Result<(), Rejection> {
        let key = ReplayKey::new("rfc9421", &[verified.keyid.as_bytes(), verified.nonce.as_bytes()]);
        let validity = Validity {
            from: verified.created.saturating_sub(self.max_future),
            until: verified.expires.min(verified.created.saturating_add(self.max_age)),
        };
        Ok(self.replay.spend(&key, validity, now)?)
    }

    /// Verifies a `/nc` callback, everything but the body digest. `observed` is the request path
    /// after `/nc`.
    pub(crate) fn verify_callback(
        self: &Arc<Self>,
        parts: &Parts,
        observed: &str,
        now: u64,
    ) -> Result<VerifiedCall, Rejection> {
        let headers = &parts.headers;
        // 1. Shape of our own headers.
        let raw_target = one(headers, &headers::X_WAGGLE_TARGET, "bad_target_header")?;
        let user = one(headers, &headers::X_WAGGLE_USER, "bad_user_header")?;
        if !valid_user(user) {
            return Err(Rejection::Shape("bad_user_header"));
        }
        let digest_value = one(headers, &headers::CONTENT_DIGEST, "bad_content_digest")?;
        let digest = signing::parse_content_digest(digest_value)
            .map_err(|_| Rejection::Shape("bad_content_digest"))?;
        let method = callback_method(&parts.method, headers)?;
        let target = target::parse(raw_target).map_err(|_| Rejection::Shape("bad_target"))?;

        // 2–4. Key id, time window, MAC (and the signature headers' own shape).
        let mut policy = VerifyPolicy::callback(now, headers);
        policy.max_age = self.max_age;
        policy.max_future = self.max_future;
        if headers.contains_key(headers::DESTINATION) {
            // A MOVE/COPY destination changes what the call does, so it must be signed too.
            policy.required.push(Component::Field(headers::DESTINATION));
        }
        let verified = self.verify_signature(parts, &policy, false)?;
        // The proxies strip the public prefix and may decode once; anything else is tampering.
        if !target::observed_matches(observed, &target) {
            return Err(Rejection::PathMismatch);
        }
        // 5. Replay: only a request whose MAC is valid spends its signature, durably, before
        //    anything is forwarded.
        self.spend(&verified, now)?;
        Ok(VerifiedCall {
            route: SignedRoute::Callback,
            user: user.to_owned(),
            target: Some(target),
            method,
            digest,
            verifier: self.clone(),
        })
    }

    /// Verifies a key announcement with its whole body: signature by the current key, then the
    /// body against the signed digest, and only then the nonce (a tampered body spends nothing).
    pub(crate) fn verify_announcement(
        self: &Arc<Self>,
        parts: &Parts,
        body: &[u8],
        now: u64,
    ) -> Result<VerifiedCall, Rejection> {
        let policy = VerifyPolicy {
            purpose: Purpose::KeyAnnounce,
            now,
            max_age: self.max_age,
            max_future: self.max_future,
            required: vec![
                Component::Method,
                Component::Field(headers::CONTENT_DIGEST),
                Component::Field(http::header::CONTENT_TYPE),
            ],
        };
        let verified = self.verify_signature(parts, &policy, true)?;
        let digest_value = one(&parts.headers, &headers::CONTENT_DIGEST, "bad_content_digest")
            .map_err(|_| Rejection::DigestMismatch)?;
        let digest = signing::parse_content_digest(digest_value).map_err(|_| Rejection::DigestMismatch)?;
        if signing::verify_content_digest(digest_value, body).is_err() {
            return Err(Rejection::DigestMismatch);
        }
        self.spend(&verified, now)?;
        Ok(VerifiedCall {
            route: SignedRoute::KeyAnnounce,
            user: String::new(),
            target: None,
            method: parts.method.clone(),
            digest,
            verifier: self.clone(),
        })
    }

    /// Counts and logs a refusal and decides the answer: 401 `invalid_signature`; 503 when the
    /// replay store is full or cannot write; for callbacks 429 once the failure budget is spent. The
    /// reason is never returned.
    pub(crate) fn refuse(&self, route: SignedRoute, rejection: &Rejection) -> ApiError {
        let reason = rejection.reason();
        self.metrics.incr(&format!("{}{reason}", route.metric_prefix()));
        match rejection {
            Rejection::ReplayFull => {
                tracing::error!(reason, "replay store full; refusing signed requests until entries expire");
                return ApiError::Unavailable { code: "replay_cache_full", source: None };
            }
            Rejection::ReplayStorage => {
                return ApiError::Unavailable { code: "replay_store_unavailable", source: None };
            }
            _ => {}
        }
        match route {
            SignedRoute::Callback if !self.limiter.allow_failure() => {
                tracing::debug!(reason, "callback signature refused (failure budget spent)");
                ApiError::RateLimited { code: "rate_limited", retry_after: Some(RETRY_AFTER_SECS) }
            }
            SignedRoute::Callback => {
                tracing::warn!(reason, "callback signature refused");
                ApiError::InvalidSignature { reason }
            }
            SignedRoute::KeyAnnounce => {
                tracing::warn!(reason, "key announcement refused");
                ApiError::InvalidSignature { reason }
            }
        }
    }

    /// Live entries in the replay store.
    #[cfg(test)]
    pub(crate) fn replay_entries(&self) -> usize {
        self.replay.len()
    }
}

/// The signature policy as a `route_layer`: verifies for `route` and inserts the [`VerifiedCall`].
#[derive(Debug, Clone)]
pub(crate) struct SignatureAuth {
    verifier: Arc<SignatureVerifier>,
    route: SignedRoute,
}

impl SignatureAuth {
    /// The policy for `route`.
    pub(crate) fn new(verifier: Arc<SignatureVerifier>, route: SignedRoute) -> Self {
        Self { verifier, route }
    }
}

type AuthResult = Result<Request<Body>, Response>;

impl AsyncAuthorizeRequest<Body> for SignatureAuth {
    type RequestBody = Body;
    type ResponseBody = Body;
    /// Ready at once for callbacks (their body streams on); announcements read their small body.
    type Future = Either<Ready<AuthResult>, Pin<Box<dyn Future<Output = AuthResult> + Send>>>;

    fn authorize(&mut self, request: Request<Body>) -> Self::Future {
        let now = unix_now();
        let verifier = self.verifier.clone();
        match self.route {
            SignedRoute::Callback => {
                let (parts, body) = request.into_parts();
                let observed = parts.uri.path().strip_prefix("/nc").unwrap_or("");
                let outcome = match verifier.verify_callback(&parts, observed, now) {
                    Ok(call) => {
                        let mut request = Request::from_parts(parts, body);
                        request.extensions_mut().insert(call);
                        Ok(request)
                    }
                    Err(rejection) => Err(verifier.refuse(SignedRoute::Callback, &rejection).into_response()),
                };
                Either::Left(ready(outcome))
            }
            SignedRoute::KeyAnnounce => Either::Right(Box::pin(async move {
                let (parts, body) = request.into_parts();
                let refuse = |r: Rejection| verifier.refuse(SignedRoute::KeyAnnounce, &r).into_response();
                let bytes = axum::body::to_bytes(body, ANNOUNCE_BODY_CAP)
                    .await
                    .map_err(|_| refuse(Rejection::BodyTooLarge))?;
                let call = verifier.verify_announcement(&parts, &bytes, now).map_err(refuse)?;
                let mut request = Request::from_parts(parts, Body::from(bytes));
                request.extensions_mut().insert(call);
                Ok(request)
            })),
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for VerifiedCall {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Present only behind `SignatureAuth`; a handler that asks for it elsewhere is a wiring bug.
        parts.extensions.get::<Self>().cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("VerifiedCall requested on a route without SignatureAuth"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_with_separators_or_control_characters_are_refused() {
        assert!(valid_user("alice"));
        assert!(valid_user(""));
        assert!(valid_user("a.b-c_d@e f"));
        for bad in ["al:ice", "al\rice", "al\nice", "al\0ice", " alice", "alice ", &"x".repeat(65)] {
            assert!(!valid_user(bad), "{bad:?}");
        }
    }

    #[test]
    fn overrides_are_exact_and_only_on_post() {
        let mut h = HeaderMap::new();
        assert_eq!(callback_method(&Method::GET, &h).unwrap(), Method::GET);
        h.insert(headers::X_HTTP_METHOD_OVERRIDE, http::HeaderValue::from_static("PROPFIND"));
        assert_eq!(callback_method(&Method::POST, &h).unwrap().as_str(), "PROPFIND");
        assert!(callback_method(&Method::GET, &h).is_err());
        h.insert(headers::X_HTTP_METHOD_OVERRIDE, http::HeaderValue::from_static("propfind"));
        assert!(callback_method(&Method::POST, &h).is_err());
        h.insert(headers::X_HTTP_METHOD_OVERRIDE, http::HeaderValue::from_static("TRACE"));
        assert!(callback_method(&Method::POST, &h).is_err());
    }

    fn settings() -> crate::config::CallbackSettings {
        crate::config::CallbackSettings {
            max_age_secs: 300,
            max_future_secs: 60,
            body_cap_bytes: 1 << 20,
            replay_capacity: 100,
            failure_burst: 10,
            failure_per_sec: 1,
            read_only: false,
            apps: vec![],
            extra_allow: vec![],
            deny: vec![],
            service_paths: vec![],
            destructive_per_minute: 10,
            destructive_warn_per_minute: 5,
        }
    }

    fn verifier(replay: Arc<ReplayStore>) -> Arc<SignatureVerifier> {
        let profile: Arc<dyn WireProfile> = Arc::new(signing::Rfc9421);
        Arc::new(SignatureVerifier::new(&settings(), replay, Arc::new(keyring()), profile, Arc::default()))
    }

    /// A replay store in a fresh directory (kept alive by the returned guard).
    fn store(boot: &crate::replay::Boot, used: bool, now: u64) -> (Arc<ReplayStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (Arc::new(ReplayStore::open(dir.path(), 100, boot, used, now).unwrap()), dir)
    }

    fn this_boot() -> crate::replay::Boot {
        crate::replay::Boot { id: Some("boot-a".into()), booted_at: Some(T - 3600) }
    }

    fn keyring() -> Keyring {
        let dir = tempfile::tempdir().unwrap();
        let vars: std::collections::HashMap<String, String> = [
            ("APP_SECRET", "s"),
            ("NEXTCLOUD_URL", "http://nc.local/"),
            ("APP_PERSISTENT_STORAGE", dir.path().to_str().unwrap()),
            ("WAGGLE_TENANT_KEY", "tenant-key"),
            ("WAGGLE_TENANT_KEY_ID", "k1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Keyring::load(&crate::config::Settings::load_from(&vars).unwrap())
    }

    /// A signed GET of `/ocs/v2.php/cloud/user` created at `created`, as request parts.
    fn parts(created: u64, nonce: &str) -> Parts {
        let key = signing::SigningKey::from_tenant_key("k1", "tenant-key");
        let req = signing::CallbackRequest {
            method: &Method::GET,
            tunnel: true,
            target: "/ocs/v2.php/cloud/user",
            user: "alice",
            body: b"",
            content_type: None,
            destination: None,
        };
        let (wire, headers) = signing::sign_callback(&key, &req, created, nonce).unwrap();
        let mut builder = http::Request::builder().method(wire).uri("/nc/ocs/v2.php/cloud/user");
        *builder.headers_mut().unwrap() = headers;
        builder.body(()).unwrap().into_parts().0
    }

    const T: u64 = 1_800_000_000;

    #[test]
    fn the_time_window_edges_are_exact() {
        let (replay, _dir) = store(&this_boot(), false, T);
        let v = verifier(replay);
        let observed = "/ocs/v2.php/cloud/user";
        let nonce = |i: u32| format!("nonce-window-edge-{i:04}");
        // created 300 s ago: accepted; 301 s ago: refused.
        assert!(v.verify_callback(&parts(T - 300, &nonce(1)), observed, T).is_ok());
        assert!(matches!(
            v.verify_callback(&parts(T - 301, &nonce(2)), observed, T),
            Err(Rejection::Signature(signing::VerifyError::TooOld | signing::VerifyError::Expired))
        ));
        // created 60 s ahead: accepted; 61 s ahead: refused.
        assert!(v.verify_callback(&parts(T + 60, &nonce(3)), observed, T).is_ok());
        assert_eq!(
            v.verify_callback(&parts(T + 61, &nonce(4)), observed, T).unwrap_err(),
            Rejection::Signature(signing::VerifyError::CreatedInFuture)
        );
    }

    #[test]
    fn a_signature_spent_before_a_restart_stays_spent() {
        let dir = tempfile::tempdir().unwrap();
        let observed = "/ocs/v2.php/cloud/user";
        // Signed 55 s ahead (inside the 60 s allowance), used once.
        let ahead = parts(T + 55, "nonce-restart-ahead-0001");
        let now = parts(T, "nonce-restart-now-00001");
        {
            let replay = Arc::new(ReplayStore::open(dir.path(), 100, &this_boot(), false, T).unwrap());
            let v = verifier(replay);
            assert!(v.verify_callback(&ahead, observed, T).is_ok());
            assert!(v.verify_callback(&now, observed, T).is_ok());
        }
        // A restart within the same second, on the same kernel.
        let replay = Arc::new(ReplayStore::open(dir.path(), 100, &this_boot(), true, T).unwrap());
        let v = verifier(replay);
        assert_eq!(v.verify_callback(&ahead, observed, T).unwrap_err(), Rejection::Replayed);
        assert_eq!(v.verify_callback(&now, observed, T).unwrap_err(), Rejection::Replayed);
        // A signature made before the restart but never used still passes.
        assert!(v.verify_callback(&parts(T - 5, "nonce-restart-unused-01"), observed, T).is_ok());
    }

    #[test]
    fn after_an_unclean_reboot_signatures_that_could_predate_it_are_refused() {
        let booted = crate::replay::Boot { id: Some("boot-b".into()), booted_at: Some(T - 30) };
        let dir = tempfile::tempdir().unwrap();
        drop(ReplayStore::open(dir.path(), 100, &this_boot(), false, T - 40).unwrap());
        let v = verifier(Arc::new(ReplayStore::open(dir.path(), 100, &booted, true, T).unwrap()));
        let observed = "/ocs/v2.php/cloud/user";
        // created − 60 ≤ boot + 1: an earlier process could have accepted it.
        let err = v.verify_callback(&parts(T + 31, "nonce-reboot-early-0001"), observed, T).unwrap_err();
        assert_eq!(err, Rejection::BeforeRestart);
        assert!(v.verify_callback(&parts(T + 32, "nonce-reboot-late-00001"), observed, T).is_ok());
    }

    #[test]
    fn a_nonce_is_spent_only_by_a_valid_request_and_only_once() {
        let (replay, _dir) = store(&this_boot(), false, T);
        let v = verifier(replay);
        let mut forged = parts(T, "nonce-spent-once-0001");
        forged.headers.insert(headers::X_WAGGLE_USER, http::HeaderValue::from_static("bob"));
        assert!(v.verify_callback(&forged, "/ocs/v2.php/cloud/user", T).is_err());
        assert_eq!(v.replay_entries(), 0, "a forgery spends no nonce");
        let good = parts(T, "nonce-spent-once-0001");
        assert!(v.verify_callback(&good, "/ocs/v2.php/cloud/user", T).is_ok());
        assert_eq!(
            v.verify_callback(&good, "/ocs/v2.php/cloud/user", T + 1).unwrap_err(),
            Rejection::Replayed
        );
    }

    #[test]
    fn the_failure_bucket_drains_and_refills() {
        let l = FailureLimiter::new(2, 1000);
        assert!(l.allow_failure());
        assert!(l.allow_failure());
        let l = FailureLimiter::new(1, 0);
        assert!(l.allow_failure());
        assert!(!l.allow_failure());
    }
}
