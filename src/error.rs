//! The boundary error: every failure a handler can return, mapped once to a status and a stable code.
//!
//! `into_response` has no side effects: it attaches an [`ErrorReport`] to the response extensions and
//! the error-logging middleware (see `routes.rs`) logs it inside the request span. Bodies are
//! `{"error":{"code":…,"message":…}}`; 5xx messages stay generic.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::AuthFailure;
use crate::proxy::ProxyError;

/// What went wrong, grouped by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The AppAPI credentials were missing or wrong (401).
    #[error("AppAPI authentication failed: {0}")]
    Unauthorized(AuthFailure),
    /// The caller is authenticated but may not do this (403).
    #[error("forbidden: {message}")]
    Forbidden {
        /// Stable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The request is malformed (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Nothing here (404).
    #[error("not found")]
    NotFound,
    /// A feature is not ready, e.g. no tenant key yet (503).
    #[error("not ready: {0}")]
    NotReady(&'static str),
    /// Nextcloud answered with an error or could not be reached (502).
    #[error("nextcloud call failed: {0}")]
    Nextcloud(#[source] crate::nextcloud::NcError),
    /// Forwarding to an upstream failed.
    #[error("proxy: {0}")]
    Proxy(#[from] crate::proxy::ProxyError),
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
    /// Status and stable code of each variant.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized(AuthFailure::UserRequired) => (StatusCode::UNAUTHORIZED, "user_required"),
            Self::Unauthorized(AuthFailure::NotAdmin) => (StatusCode::FORBIDDEN, "admin_required"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::NotReady(code) => (StatusCode::SERVICE_UNAVAILABLE, code),
            Self::Nextcloud(_) => (StatusCode::BAD_GATEWAY, "nextcloud_unavailable"),
            Self::Proxy(e) => match e {
                ProxyError::Unreachable(_) => (StatusCode::BAD_GATEWAY, "upstream_unreachable"),
                ProxyError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
                ProxyError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
                ProxyError::ClientBody(_) => (StatusCode::BAD_REQUEST, "request_body_error"),
                ProxyError::ResponseTooLarge { .. } => {
                    (StatusCode::BAD_GATEWAY, "upstream_response_too_large")
                }
                ProxyError::UpstreamBody(_) => (StatusCode::BAD_GATEWAY, "upstream_body_error"),
                ProxyError::Spool(_) | ProxyError::Build(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal")
                }
            },
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    fn public_message(&self) -> String {
        match self {
            Self::Unauthorized(AuthFailure::UserRequired) => {
                "a logged-in Nextcloud user is required".to_owned()
            }
            Self::Unauthorized(AuthFailure::NotAdmin) => "this needs a Nextcloud administrator".to_owned(),
            Self::Unauthorized(_) => "AppAPI authentication failed".to_owned(),
            Self::Forbidden { message, .. } => message.clone(),
            Self::BadRequest(m) => m.clone(),
            Self::NotFound => "not found".to_owned(),
            Self::NotReady(_) => "this feature is not ready yet; see the admin status".to_owned(),
            Self::Nextcloud(_) => "Nextcloud could not be reached or refused the call".to_owned(),
            Self::Proxy(ProxyError::Unreachable(_)) => "the service could not be reached".to_owned(),
            Self::Proxy(ProxyError::Timeout) => "the service did not answer in time".to_owned(),
            Self::Proxy(ProxyError::TooLarge { cap }) => {
                format!("the request body is larger than {cap} bytes")
            }
            Self::Proxy(ProxyError::ClientBody(_)) => "the request body could not be read".to_owned(),
            Self::Proxy(ProxyError::ResponseTooLarge { cap }) => format!(
                "the answer is larger than the {cap} bytes Waggle buffers for Nextcloud's PHP proxy; use HaRP or ranges"
            ),
            Self::Proxy(ProxyError::UpstreamBody(_)) => "the service's answer broke off".to_owned(),
            Self::Proxy(_) | Self::Internal(_) => "internal error".to_owned(),
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
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorReport { code, detail });
        response
    }
}

impl From<AuthFailure> for ApiError {
    fn from(f: AuthFailure) -> Self {
        Self::Unauthorized(f)
    }
}

impl From<crate::nextcloud::NcError> for ApiError {
    fn from(e: crate::nextcloud::NcError) -> Self {
        Self::Nextcloud(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_deliberate_status_and_code() {
        let table: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::Unauthorized(AuthFailure::MissingHeader), 401, "unauthorized"),
            (ApiError::Unauthorized(AuthFailure::WrongSecret), 401, "unauthorized"),
            (ApiError::Unauthorized(AuthFailure::UserRequired), 401, "user_required"),
            (ApiError::Unauthorized(AuthFailure::NotAdmin), 403, "admin_required"),
            (ApiError::Forbidden { code: "csrf", message: "x".into() }, 403, "csrf"),
            (ApiError::BadRequest("x".into()), 400, "bad_request"),
            (ApiError::NotFound, 404, "not_found"),
            (ApiError::NotReady("tenant_key_missing"), 503, "tenant_key_missing"),
            (ApiError::Nextcloud(crate::nextcloud::NcError::Timeout), 502, "nextcloud_unavailable"),
            (ApiError::Proxy(ProxyError::Timeout), 504, "upstream_timeout"),
            (ApiError::Proxy(ProxyError::Unreachable("x".into())), 502, "upstream_unreachable"),
            (ApiError::Proxy(ProxyError::TooLarge { cap: 1 }), 413, "payload_too_large"),
            (ApiError::Proxy(ProxyError::ClientBody("x".into())), 400, "request_body_error"),
            (ApiError::Proxy(ProxyError::ResponseTooLarge { cap: 1 }), 502, "upstream_response_too_large"),
            (ApiError::Proxy(ProxyError::UpstreamBody("x".into())), 502, "upstream_body_error"),
            (ApiError::Proxy(ProxyError::Spool(std::io::Error::other("disk"))), 500, "internal"),
            (ApiError::Internal(anyhow::anyhow!("boom")), 500, "internal"),
        ];
        for (err, status, code) in table {
            let (s, c) = err.status_and_code();
            assert_eq!((s.as_u16(), c), (status, code), "{err:?}");
            let response = err.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.extensions().get::<ErrorReport>().unwrap().code, code);
        }
    }

    #[test]
    fn internal_errors_keep_their_detail_out_of_the_body() {
        let response = ApiError::Internal(anyhow::anyhow!("database path /secret/x")).into_response();
        let report = response.extensions().get::<ErrorReport>().unwrap().clone();
        assert!(report.detail.contains("/secret/x"));
    }
}
