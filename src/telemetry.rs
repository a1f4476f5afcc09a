//! Logging: a `tracing` subscriber (JSON by default, `pretty` for humans, `RUST_LOG` filter), the
//! request span, and the request id (Nextcloud's `AA-REQUEST-ID` when present, else a new one).

use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use base64::Engine as _;
use rand::Rng as _;
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing::{Level, Span};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::error::ErrorReport;
use crate::headers;

/// Span field names, spelled once.
pub(crate) mod fields {
    /// The acting Nextcloud user (filled by the AppAPI check and the `/nc` handler).
    pub(crate) const NC_USER: &str = "nc.user";
}

/// Installs the global subscriber. `RUST_LOG` filters (default `info`). Safe to call twice (tests):
/// the second call is a no-op.
pub(crate) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
        }
        LogFormat::Pretty => builder.try_init(),
    };
}

/// Request ids: reuse Nextcloud's `AA-REQUEST-ID` (20 chars, or `CLI`) when it is sane, otherwise
/// generate 20 random base64url characters (the length of Nextcloud's ids).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MakeWaggleRequestId;

impl MakeRequestId for MakeWaggleRequestId {
    fn make_request_id<B>(&mut self, request: &Request<B>) -> Option<RequestId> {
        let reuse = request
            .headers()
            .get(headers::AA_REQUEST_ID)
            .filter(|v| (1..=64).contains(&v.len()) && v.as_bytes().iter().all(|b| b.is_ascii_graphic()))
            .cloned();
        let value = reuse.unwrap_or_else(|| {
            // 15 random bytes, base64url: 20 characters, like Nextcloud's ids in length.
            let bytes: [u8; 15] = rand::rng().random();
            let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            http::HeaderValue::from_str(&id).expect("base64url is a valid header value")
        });
        Some(RequestId::new(value))
    }
}

/// One span per request. `/heartbeat` is polled every second by AppAPI, so it logs at debug.
pub(crate) fn make_span<B>(request: &Request<B>) -> Span {
    let route = request.extensions().get::<MatchedPath>().map_or("", MatchedPath::as_str);
    let request_id = request.headers().get(headers::X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
    let method = request.method().as_str();
    if request.uri().path() == "/heartbeat" {
        tracing::debug_span!(
            "request",
            http.method = method,
            http.route = route,
            request_id,
            nc.user = tracing::field::Empty
        )
    } else {
        tracing::info_span!(
            "request",
            http.method = method,
            http.route = route,
            request_id,
            nc.user = tracing::field::Empty
        )
    }
}

/// Logs the response at the span's own level, and the `ErrorReport` a handler attached (handlers
/// only attach it): 5xx at error, client mistakes at debug.
pub(crate) fn on_response<B>(response: &Response<B>, latency: Duration, span: &Span) {
    let status = response.status().as_u16();
    if let Some(report) = response.extensions().get::<ErrorReport>() {
        if response.status().is_server_error() {
            tracing::error!(code = report.code, error = %report.detail, "request failed");
        } else {
            tracing::debug!(code = report.code, error = %report.detail, "request refused");
        }
    }
    let latency_ms = latency.as_secs_f64() * 1000.0;
    match span.metadata().map(|m| *m.level()) {
        Some(Level::INFO) => tracing::info!(status, latency_ms, "response"),
        _ => tracing::debug!(status, latency_ms, "response"),
    }
}
