//! Inbound `/nc` verification: the SaaS's RFC 9421 signature (`tag="waggle-nc"`), failing closed in
//! this order, one reason code each: header shape and sizes → known key id → time window → MAC
//! (constant time) → observed path vs signed target → nonce never seen → (later, while the body is
//! read) Content-Digest. Every failure answers the same 401 `invalid_signature`; the reason goes to
//! the log and the metrics only. Failures are rate-limited with a token bucket that is consulted only
//! after a verification failed, so a flood of forgeries never blocks a valid signature.

use std::sync::Mutex;
use std::time::Instant;

use http::request::Parts;
use http::{HeaderMap, Method};

use crate::headers;
use crate::keys::Keyring;
use crate::nextcloud::target::{self, Target};
use crate::nonce::{ReplayCache, ReplayError};
use crate::signing::{self, Component, Message, VerifyPolicy};

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

/// Why a callback was refused (all answer 401 `invalid_signature`, except `ReplayFull` → 503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackRejection {
    /// Our own headers are missing, repeated, too long or malformed.
    #[error("callback headers malformed: {0}")]
    Shape(&'static str),
    /// The RFC 9421 verification failed.
    #[error("signature refused: {0}")]
    Signature(signing::VerifyError),
    /// Signed before this process started (a restart must not reopen a replay window).
    #[error("signature created before the process started")]
    BeforeStart,
    /// The path Waggle observed is not the signed target.
    #[error("observed path does not match the signed target")]
    PathMismatch,
    /// The nonce was seen before.
    #[error("nonce replayed")]
    Replayed,
    /// The replay cache is full of live entries (503).
    #[error("replay cache full")]
    ReplayFull,
    /// The body does not match `Content-Digest`.
    #[error("body does not match Content-Digest")]
    DigestMismatch,
}

impl CallbackRejection {
    /// Stable reason code for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Shape(r) => r,
            Self::Signature(e) => e.code(),
            Self::BeforeStart => "sig_before_start",
            Self::PathMismatch => "path_mismatch",
            Self::Replayed => "nonce_replayed",
            Self::ReplayFull => "replay_cache_full",
            Self::DigestMismatch => "digest_mismatch",
        }
    }
}

/// A callback whose signature passed; the body digest is checked while the body is read.
#[derive(Debug, Clone)]
pub struct VerifiedCallback {
    /// The Nextcloud user to act as (empty = system call).
    pub user: String,
    /// The canonical target (not yet checked against the allow-list).
    pub target: Target,
    /// The verb to send to Nextcloud.
    pub method: Method,
    /// The signed body digest.
    pub digest: [u8; 32],
    /// The key id that verified.
    pub keyid: String,
}

/// A token bucket for failed verifications.
#[derive(Debug)]
pub struct FailureLimiter {
    state: Mutex<(f64, Instant)>,
    burst: f64,
    per_sec: f64,
}

impl FailureLimiter {
    /// `burst` failures at once, `per_sec` sustained.
    pub fn new(burst: u32, per_sec: u32) -> Self {
        Self {
            state: Mutex::new((f64::from(burst), Instant::now())),
            burst: f64::from(burst),
            per_sec: f64::from(per_sec),
        }
    }

    /// Takes a token for one failure; false when the budget is spent (answer 429).
    pub fn allow_failure(&self) -> bool {
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

/// The verifier for `/nc`, built once.
#[derive(Debug)]
pub struct CallbackVerifier {
    replay: ReplayCache,
    /// Unix seconds at process start.
    started: u64,
    max_age: u64,
    max_future: u64,
}

fn one<'a>(
    headers: &'a HeaderMap,
    name: &http::HeaderName,
    reason: &'static str,
) -> Result<&'a str, CallbackRejection> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(CallbackRejection::Shape(reason))?;
    if values.next().is_some() || value.len() > target::MAX_TARGET_LEN {
        return Err(CallbackRejection::Shape(reason));
    }
    value.to_str().map_err(|_| CallbackRejection::Shape(reason))
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
pub fn callback_method(wire: &Method, headers: &HeaderMap) -> Result<Method, CallbackRejection> {
    let mut overrides = headers.get_all(headers::X_HTTP_METHOD_OVERRIDE).iter();
    let method = match overrides.next() {
        None => wire.clone(),
        Some(value) => {
            if overrides.next().is_some() || wire != Method::POST {
                return Err(CallbackRejection::Shape("bad_override"));
            }
            // Exact spelling: the signature covers the header value, so `propfind` is refused rather
            // than silently upper-cased.
            Method::from_bytes(value.as_bytes()).map_err(|_| CallbackRejection::Shape("bad_override"))?
        }
    };
    if CALLBACK_VERBS.contains(&method.as_str()) {
        Ok(method)
    } else {
        Err(CallbackRejection::Shape("bad_method"))
    }
}

impl CallbackVerifier {
    /// A verifier with the configured window and replay capacity.
    pub fn new(settings: &crate::config::CallbackSettings, started: u64) -> Self {
        // An entry must outlive every instant at which its signature could still pass the clock check.
        let ttl = settings.max_age_secs + settings.max_future_secs + 1;
        Self {
            replay: ReplayCache::new(settings.replay_capacity, ttl),
            started,
            max_age: settings.max_age_secs,
            max_future: settings.max_future_secs,
        }
    }

    /// Verifies everything but the body digest. `observed` is the request path after `/nc`.
    pub fn verify(
        &self,
        keys: &Keyring,
        parts: &Parts,
        observed: &str,
        now: u64,
    ) -> Result<VerifiedCallback, CallbackRejection> {
        let headers = &parts.headers;
        // 1. Shape of our own headers.
        let raw_target = one(headers, &headers::X_WAGGLE_TARGET, "bad_target_header")?;
        let user = one(headers, &headers::X_WAGGLE_USER, "bad_user_header")?;
        if !valid_user(user) {
            return Err(CallbackRejection::Shape("bad_user_header"));
        }
        let digest_value = one(headers, &headers::CONTENT_DIGEST, "bad_content_digest")?;
        let digest = signing::parse_content_digest(digest_value)
            .map_err(|_| CallbackRejection::Shape("bad_content_digest"))?;
        let method = callback_method(&parts.method, headers)?;
        let target = target::parse(raw_target).map_err(|_| CallbackRejection::Shape("bad_target"))?;

        // 2–4. Key id, time window, MAC (and the signature headers' own shape), in the signing module.
        let mut policy = VerifyPolicy::callback(now, headers);
        policy.max_age = self.max_age;
        policy.max_future = self.max_future;
        if headers.contains_key(headers::DESTINATION) {
            // A MOVE/COPY destination changes what the call does, so it must be signed too.
            policy.required.push(Component::Field(headers::DESTINATION));
        }
        let message = Message::from_uri(&parts.method, &parts.uri, headers);
        let verified = signing::verify_request(
            &message,
            |id| keys.verification_key(id).map(|k| k.secret().to_vec()),
            &policy,
        )
        .map_err(CallbackRejection::Signature)?;
        if verified.created < self.started {
            return Err(CallbackRejection::BeforeStart);
        }
        // The proxies strip the public prefix and may decode once; anything else is tampering.
        if !target::observed_matches(observed, &target) {
            return Err(CallbackRejection::PathMismatch);
        }
        // 5. Replay: the nonce is spent only by a request whose MAC is valid.
        self.replay.check_and_insert(&verified.keyid, &verified.nonce, now).map_err(|e| match e {
            ReplayError::Replayed => CallbackRejection::Replayed,
            ReplayError::Full => CallbackRejection::ReplayFull,
        })?;
        Ok(VerifiedCallback { user: user.to_owned(), target, method, digest, keyid: verified.keyid })
    }

    /// Spends a nonce for another signed route (key announcements) in the same replay cache.
    pub fn check_nonce(&self, keyid: &str, nonce: &str, now: u64) -> Result<(), ReplayError> {
        self.replay.check_and_insert(keyid, nonce, now)
    }

    /// Live entries in the replay cache.
    pub fn replay_entries(&self) -> usize {
        self.replay.len()
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
        let v = CallbackVerifier::new(&settings(), 0);
        let k = keyring();
        let observed = "/ocs/v2.php/cloud/user";
        let nonce = |i: u32| format!("nonce-window-edge-{i:04}");
        // created 300 s ago: accepted; 301 s ago: refused.
        assert!(v.verify(&k, &parts(T - 300, &nonce(1)), observed, T).is_ok());
        assert!(matches!(
            v.verify(&k, &parts(T - 301, &nonce(2)), observed, T),
            Err(CallbackRejection::Signature(signing::VerifyError::TooOld | signing::VerifyError::Expired))
        ));
        // created 60 s ahead: accepted; 61 s ahead: refused.
        assert!(v.verify(&k, &parts(T + 60, &nonce(3)), observed, T).is_ok());
        assert_eq!(
            v.verify(&k, &parts(T + 61, &nonce(4)), observed, T).unwrap_err(),
            CallbackRejection::Signature(signing::VerifyError::CreatedInFuture)
        );
    }

    #[test]
    fn signatures_from_before_the_process_start_are_refused() {
        let v = CallbackVerifier::new(&settings(), T);
        let k = keyring();
        let err =
            v.verify(&k, &parts(T - 1, "nonce-before-start-0001"), "/ocs/v2.php/cloud/user", T).unwrap_err();
        assert_eq!(err, CallbackRejection::BeforeStart);
        assert!(v.verify(&k, &parts(T, "nonce-before-start-0002"), "/ocs/v2.php/cloud/user", T).is_ok());
    }

    #[test]
    fn a_nonce_is_spent_only_by_a_valid_request_and_only_once() {
        let v = CallbackVerifier::new(&settings(), 0);
        let k = keyring();
        let mut forged = parts(T, "nonce-spent-once-0001");
        forged.headers.insert(headers::X_WAGGLE_USER, http::HeaderValue::from_static("bob"));
        assert!(v.verify(&k, &forged, "/ocs/v2.php/cloud/user", T).is_err());
        assert_eq!(v.replay_entries(), 0, "a forgery spends no nonce");
        let good = parts(T, "nonce-spent-once-0001");
        assert!(v.verify(&k, &good, "/ocs/v2.php/cloud/user", T).is_ok());
        assert_eq!(
            v.verify(&k, &good, "/ocs/v2.php/cloud/user", T + 1).unwrap_err(),
            CallbackRejection::Replayed
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
