//! `/nc/*`: the SaaS reaches Nextcloud OCS and WebDAV on a user's behalf. The route is PUBLIC in the
//! manifest (the SaaS has no Nextcloud session), so the signature is the only guard:
//! verify (auth::signature) → policy (allow-list, scope, read-only, destructive rate) → body spooled
//! and checked against the signed digest → forwarded as the user with AppAPI impersonation → response
//! streamed back → one audit line and row per call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use serde_json::json;

use crate::auth::signature::{CallbackRejection, VerifiedCallback};
use crate::headers;
use crate::nextcloud::policy::PolicyError;
use crate::nextcloud::target;
use crate::proxy::body::{BodyLimits, spool};
use crate::proxy::{ProxyError, strip_hop_by_hop};
use crate::signing;
use crate::state::AppState;
use crate::store::AuditRecord;

/// WebDAV and HTTP headers passed through to Nextcloud; everything else is dropped.
const PASS_THROUGH: [&str; 19] = [
    "accept",
    "accept-language",
    "content-type",
    "content-language",
    "depth",
    "overwrite",
    "if",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "range",
    "lock-token",
    "timeout",
    "brief",
    "prefer",
    "x-oc-mtime",
    "x-oc-ctime",
];

fn unix_now() -> (u64, i64) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_secs(), i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut r =
        (status, axum::Json(json!({ "error": { "code": code, "message": message } }))).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Any method on `/nc/*`.
pub async fn callback(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let (now, at_ms) = unix_now();
    let (parts, body) = request.into_parts();
    let request_id =
        parts.headers.get(headers::X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let observed = parts.uri.path().strip_prefix("/nc").unwrap_or("");

    let verified = match state.callback.verify(&state.keys, &parts, observed, now) {
        Ok(v) => v,
        Err(rejection) => return refuse(&state, &rejection),
    };
    tracing::Span::current().record(crate::telemetry::fields::NC_USER, verified.user.as_str());
    let audit = Audit {
        state: state.clone(),
        record: AuditRecord {
            at_ms,
            request_id,
            user: verified.user.clone(),
            method: verified.method.to_string(),
            target: verified.target.path_and_query(),
            status: 0,
            bytes_in: 0,
            bytes_out: 0,
            duration_ms: 0,
        },
        started,
    };

    if let Err(e) = state.callback_policy.check(&verified.method, &verified.target, &verified.user) {
        let status = match e {
            PolicyError::DestructiveRate => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::FORBIDDEN,
        };
        state.metrics.incr(&format!("nc_policy_refused_{}", e.code()));
        audit.finish(status.as_u16(), 0, 0);
        return error(status, e.code(), "the call is not allowed by Waggle's policy");
    }

    match forward(&state, &parts.headers, body, &verified).await {
        Ok((response, bytes_in)) => audit.stream(response, bytes_in),
        Err(Refusal::Signature(rejection)) => {
            audit.finish(StatusCode::UNAUTHORIZED.as_u16(), 0, 0);
            refuse(&state, &rejection)
        }
        Err(Refusal::Api(response)) => {
            audit.finish(response.status().as_u16(), 0, 0);
            *response
        }
    }
}

enum Refusal {
    Signature(CallbackRejection),
    Api(Box<Response>),
}

impl From<ProxyError> for Refusal {
    fn from(e: ProxyError) -> Self {
        Self::Api(Box::new(crate::error::ApiError::Proxy(e).into_response()))
    }
}

/// Reads the body against the signed digest, then forwards it to Nextcloud as the user.
async fn forward(
    state: &AppState,
    inbound: &HeaderMap,
    body: Body,
    call: &VerifiedCallback,
) -> Result<(Response, u64), Refusal> {
    let limits = BodyLimits {
        memory: state.settings.proxy.memory_body_bytes,
        cap: state.settings.callback.body_cap_bytes,
    };
    let declared =
        inbound.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let spooled = spool(body, declared, limits, &state.settings.app.storage_dir.join("spool")).await?;
    if !signing::digest_eq(spooled.sha256(), &call.digest) {
        return Err(Refusal::Signature(CallbackRejection::DigestMismatch));
    }
    let bytes_in = spooled.len();

    let mut out = state.nc.appapi_headers(&call.user);
    for name in PASS_THROUGH {
        for value in inbound.get_all(name) {
            out.append(HeaderName::from_static(name), value.clone());
        }
    }
    for (name, value) in inbound {
        if name.as_str().starts_with("oc-") {
            out.append(name.clone(), value.clone());
        }
    }
    if call.target.is_ocs() {
        out.insert(headers::OCS_APIREQUEST, HeaderValue::from_static("true"));
    }
    if let Some(destination) = inbound.get(headers::DESTINATION) {
        out.insert(headers::DESTINATION, rewrite_destination(state, destination, &call.user)?);
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes_in));

    let uri = nc_uri(state, &call.target.path_and_query())?;
    let mut upstream = http::Request::builder()
        .method(call.method.clone())
        .uri(uri)
        .body(spooled.into_upstream().await?)
        .map_err(|e| ProxyError::Build(e.to_string()))?;
    *upstream.headers_mut() = out;
    let mut response = state.forwarder.forward(upstream).await?;
    let h = response.headers_mut();
    strip_hop_by_hop(h);
    // Nextcloud's session cookies belong to the impersonated session; they never leave.
    h.remove(header::SET_COOKIE);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((response, bytes_in))
}

fn nc_uri(state: &AppState, path_and_query: &str) -> Result<http::Uri, ProxyError> {
    let base = state.settings.nextcloud.url.as_str();
    format!("{base}{}", path_and_query.trim_start_matches('/'))
        .parse()
        .map_err(|_| ProxyError::Build("target".into()))
}

/// `Destination` may be a path or an absolute URL; its path must pass the same canonical and scope
/// checks as the target, and it is rewritten onto the Nextcloud URL Waggle uses.
fn rewrite_destination(state: &AppState, value: &HeaderValue, user: &str) -> Result<HeaderValue, Refusal> {
    let refuse = |code: &str| {
        Refusal::Api(Box::new(error(StatusCode::FORBIDDEN, code, "the Destination header is not allowed")))
    };
    let raw = value.to_str().map_err(|_| refuse("destination_invalid"))?;
    let path = match raw.parse::<http::Uri>() {
        Ok(uri) if uri.scheme().is_some() => uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        _ => raw.to_owned(),
    };
    let parsed = target::parse(&path).map_err(|e| refuse(e.code()))?;
    state.callback_policy.check_target(&parsed, user).map_err(|e| refuse(e.code()))?;
    let rewritten = format!(
        "{}{}",
        state.settings.nextcloud.url.as_str(),
        parsed.path_and_query().trim_start_matches('/')
    );
    HeaderValue::from_str(&rewritten).map_err(|_| refuse("destination_invalid"))
}

/// The uniform refusal: 401 `invalid_signature` (429 once the failure budget is spent; 503 when the
/// replay cache is full). The reason is logged and counted, never returned.
fn refuse(state: &AppState, rejection: &CallbackRejection) -> Response {
    let reason = rejection.reason();
    state.metrics.incr(&format!("nc_signature_failed_{reason}"));
    if *rejection == CallbackRejection::ReplayFull {
        tracing::error!(reason, "replay cache full; refusing callbacks until entries expire");
        return error(StatusCode::SERVICE_UNAVAILABLE, "replay_cache_full", "try again shortly");
    }
    if !state.callback_limiter.allow_failure() {
        tracing::debug!(reason, "callback signature refused (failure budget spent)");
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many invalid signatures");
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    }
    tracing::warn!(reason, "callback signature refused");
    error(StatusCode::UNAUTHORIZED, "invalid_signature", "the request signature is not valid")
}

/// Writes the audit line and row once the response body has been streamed (or dropped).
struct Audit {
    state: AppState,
    record: AuditRecord,
    started: Instant,
}

impl Audit {
    fn finish(mut self, status: u16, bytes_in: u64, bytes_out: u64) {
        self.record.status = status;
        self.record.bytes_in = bytes_in;
        self.record.bytes_out = bytes_out;
        self.record.duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let r = self.record;
        tracing::info!(
            target: "waggle::audit",
            request_id = %r.request_id, nc.user = %r.user, method = %r.method, target_path = %r.target,
            status = r.status, bytes_in = r.bytes_in, bytes_out = r.bytes_out, duration_ms = r.duration_ms,
            "nc call"
        );
        if !self.state.audit.record(r) {
            self.state.metrics.incr("audit_rows_dropped");
        }
    }

    /// Counts the response bytes as they stream; the audit is written when the body ends or drops.
    fn stream(self, response: Response, bytes_in: u64) -> Response {
        let status = response.status().as_u16();
        let counted = Arc::new(AtomicU64::new(0));
        let guard = AuditGuard { audit: Some(self), counted: counted.clone(), status, bytes_in };
        response.map(move |body| {
            let mut guard = Some(guard);
            Body::new(body.map_frame(move |frame| {
                if let Some(data) = frame.data_ref() {
                    counted.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                // Keep the guard alive as long as the body.
                let _ = guard.as_mut();
                frame
            }))
        })
    }
}

struct AuditGuard {
    audit: Option<Audit>,
    counted: Arc<AtomicU64>,
    status: u16,
    bytes_in: u64,
}

impl Drop for AuditGuard {
    fn drop(&mut self) {
        if let Some(audit) = self.audit.take() {
            audit.finish(self.status, self.bytes_in, self.counted.load(Ordering::Relaxed));
        }
    }
}
