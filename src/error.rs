//! The boundary error: every failure that reaches a client, mapped once to a status and a stable code.
//!
//! This file is a leaf: it names no other module. Each module keeps its own `thiserror` enum and
//! converts it here with a deliberate `From` impl next to that enum (`AuthFailure`, `NcError`,
//! `ProxyError`, `StoreError`, `SaasError`, …); `error/tests.rs` pins every mapping in one table.
//! Variants are grouped by who is at fault: the client, the upstream (Nextcloud or the SaaS), or our
//! own state.
//!
//! `into_response` has no side effects: it attaches an [`ErrorReport`] to the response extensions and
//! the trace layer's response hook (see `routes.rs`) logs it once, inside the request span. Bodies are
//! `{"error":{"code":…,"message":…}}`; 5xx messages stay generic.

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A boxed error source (an upstream failure's cause, kept for the log).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong, grouped by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    // --- The client ------------------------------------------------------------------------------
    /// The request is malformed (400 `bad_request`).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request is malformed in a way with its own code (400).
    #[error("invalid request ({code}): {message}")]
    Invalid {
        /// Stable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The AppAPI credentials were missing or wrong (401 `unauthorized`); the reason is logged only.
    #[error("AppAPI authentication failed: {reason}")]
    Unauthorized {
        /// Why, for the log.
        reason: &'static str,
    },
    /// The route needs a logged-in Nextcloud user (401 `user_required`).
    #[error("route needs a user")]
    UserRequired,
    /// The route needs a Nextcloud administrator (403 `admin_required`).
    #[error("route needs an administrator")]
    AdminRequired,
    /// A signed request's signature did not verify (401 `invalid_signature`); the reason is logged
    /// and counted by the verifier, never returned.
    #[error("signature refused: {reason}")]
    InvalidSignature {
        /// Why, for the log.
        reason: &'static str,
    },
    /// A webhook delivery without the per-install secret (401 `invalid_hook_secret`).
    #[error("webhook delivery with a wrong or missing secret")]
    InvalidHookSecret,
    /// The caller is authenticated but may not do this (403).
    #[error("forbidden ({code}): {message}")]
    Forbidden {
        /// Stable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// Nothing here (404).
    #[error("not found")]
    NotFound,
    /// The request conflicts with the current state (409).
    #[error("conflict ({code}): {message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The request body is over a cap (413 `payload_too_large`).
    #[error("request body over the {cap}-byte cap")]
    PayloadTooLarge {
        /// The cap in bytes.
        cap: u64,
    },
    /// Too many requests (429), with `Retry-After` when known.
    #[error("rate limited ({code})")]
    RateLimited {
        /// Stable code.
        code: &'static str,
        /// Seconds to wait, sent as `Retry-After`.
        retry_after: Option<u64>,
    },

    // --- The upstream ----------------------------------------------------------------------------
    /// Nextcloud or the SaaS could not be reached, or answered with an error (502).
    #[error("upstream failed ({code})")]
    Upstream {
        /// Stable code.
        code: &'static str,
        /// The public message (generic: it names no internal detail).
        message: Cow<'static, str>,
        /// The cause, for the log.
        #[source]
        source: BoxError,
    },
    /// The upstream did not answer in time (504).
    #[error("upstream did not answer in time ({code})")]
    UpstreamTimeout {
        /// Stable code.
        code: &'static str,
    },

    // --- Our own state ---------------------------------------------------------------------------
    /// A feature is not ready, e.g. no tenant key yet (503).
    #[error("not ready: {0}")]
    NotReady(&'static str),
    /// A local resource is unavailable for now: the store, the replay store, shutdown (503).
    #[error("unavailable ({code})")]
    Unavailable {
        /// Stable code.
        code: &'static str,
        /// The cause, for the log, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// Anything else (500).
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The error's text and cause chain, attached to the response for the logging middleware.
#[derive(Debug, Clone)]
pub struct ErrorReport {
    /// Stable code.
    pub code: &'static str,
    /// Full description with causes (never contains secrets: sources are written not to).
    pub detail: String,
}

impl ApiError {
    /// A 503 for a local resource, with its cause.
    pub fn unavailable(code: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Unavailable { code, source: Some(source.into()) }
    }

    /// Status and stable code of each variant.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Invalid { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Unauthorized { .. } => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::UserRequired => (StatusCode::UNAUTHORIZED, "user_required"),
            Self::AdminRequired => (StatusCode::FORBIDDEN, "admin_required"),
            Self::InvalidSignature { .. } => (StatusCode::UNAUTHORIZED, "invalid_signature"),
            Self::InvalidHookSecret => (StatusCode::UNAUTHORIZED, "invalid_hook_secret"),
            Self::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::RateLimited { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            Self::Upstream { code, .. } => (StatusCode::BAD_GATEWAY, code),
            Self::UpstreamTimeout { code } => (StatusCode::GATEWAY_TIMEOUT, code),
            Self::NotReady(code) | Self::Unavailable { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    fn public_message(&self) -> String {
        match self {
            Self::BadRequest(m) | Self::Invalid { message: m, .. } | Self::Forbidden { message: m, .. } => {
                m.clone()
            }
            Self::Conflict { message, .. } => message.clone(),
            Self::Unauthorized { .. } => "AppAPI authentication failed".to_owned(),
            Self::UserRequired => "a logged-in Nextcloud user is required".to_owned(),
            Self::AdminRequired => "this needs a Nextcloud administrator".to_owned(),
            Self::InvalidSignature { .. } => "the request signature is not valid".to_owned(),
            Self::InvalidHookSecret => "unauthorized".to_owned(),
            Self::NotFound => "not found".to_owned(),
            Self::PayloadTooLarge { cap } => format!("the request body is larger than {cap} bytes"),
            Self::RateLimited { .. } => "too many requests; try again later".to_owned(),
            Self::Upstream { message, .. } => message.to_string(),
            Self::UpstreamTimeout { .. } => "the service did not answer in time".to_owned(),
            Self::NotReady(_) => "this feature is not ready yet; see the admin status".to_owned(),
            Self::Unavailable { .. } => "temporarily unavailable; try again shortly".to_owned(),
            Self::Internal(_) => "internal error".to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = json!({ "error": { "code": code, "message": self.public_message() } });
        let detail = match &self {
            Self::Internal(e) => format!("{e:#}"),
            other => {
                let mut s = other.to_string();
                let mut src = std::error::Error::source(other);
                while let Some(e) = src {
                    s.push_str(": ");
                    s.push_str(&e.to_string());
                    src = e.source();
                }
                s
            }
        };
        let retry_after = match &self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(ErrorReport { code, detail });
        response
    }
}

#[cfg(test)]
mod tests;
