//! Shared proxy plumbing for every upstream (the SaaS for `/api` and `/auth`, Nextcloud for `/nc`):
//! hop-by-hop stripping (RFC 9110 §7.6.1), the internal-header deny-list that runs before any
//! per-route policy, and the proxy's error type. The routes differ only in policy: what they strip,
//! how they sign, where they send.

pub(crate) mod body;
pub(crate) mod framing;
pub(crate) mod http;
pub(crate) mod ws;

use ::http::header::{self, HeaderMap, HeaderName};

use crate::error::ApiError;
use crate::headers;

/// Why forwarding failed. Each maps to a status and a stable code in `error.rs`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// The upstream could not be reached (refused, DNS, TLS, reset before headers).
    #[error("upstream unreachable")]
    Unreachable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The upstream sent no response headers within the header timeout.
    #[error("upstream did not answer in time")]
    Timeout,
    /// The request body is larger than the cap; reading stopped there.
    #[error("request body over the {cap}-byte cap")]
    TooLarge {
        /// The cap in bytes.
        cap: u64,
    },
    /// The upstream's answer is larger than Waggle may buffer for AppAPI's PHP proxy.
    #[error("upstream answer over the {cap}-byte buffer cap")]
    ResponseTooLarge {
        /// The cap in bytes.
        cap: u64,
    },
    /// The upstream's answer broke off (or stalled) while Waggle buffered it.
    #[error("the upstream answer broke off")]
    UpstreamBody(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The client's body failed or stalled while we read it.
    #[error("reading the request body failed")]
    ClientBody(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Local I/O (the spool file) failed.
    #[error("spooling the request body failed")]
    Spool(#[source] std::io::Error),
    /// The request could not be built (bad URL or header).
    #[error("cannot build the upstream request: {0}")]
    Build(String),
}

impl From<ProxyError> for ApiError {
    fn from(e: ProxyError) -> Self {
        match e {
            ProxyError::Unreachable(source) => ApiError::Upstream {
                code: "upstream_unreachable",
                message: "the service could not be reached".into(),
                source,
            },
            ProxyError::Timeout => ApiError::UpstreamTimeout { code: "upstream_timeout" },
            ProxyError::TooLarge { cap } => ApiError::PayloadTooLarge { cap },
            e @ ProxyError::ResponseTooLarge { cap } => ApiError::Upstream {
                code: "upstream_response_too_large",
                message: format!(
                    "the answer is larger than the {cap} bytes Waggle buffers for Nextcloud's PHP proxy; use HaRP or ranges"
                )
                .into(),
                source: Box::new(e),
            },
            ProxyError::UpstreamBody(source) => ApiError::Upstream {
                code: "upstream_body_error",
                message: "the service's answer broke off".into(),
                source,
            },
            ProxyError::ClientBody(_) => ApiError::Invalid {
                code: "request_body_error",
                message: "the request body could not be read".to_owned(),
            },
            e @ (ProxyError::Spool(_) | ProxyError::Build(_)) => ApiError::Internal(e.into()),
        }
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection and must not be forwarded.
/// `Upgrade` is among them; WebSocket upgrades are bridged by `proxy::ws`, never passed through.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    headers::KEEP_ALIVE,
    headers::PROXY_CONNECTION,
];

/// Headers that carry a Nextcloud secret or identity, or that only a trusted hop may set.
static INTERNAL: [HeaderName; 24] = [
    headers::AUTHORIZATION_APP_API,
    headers::EX_APP_ID,
    headers::EX_APP_VERSION,
    headers::AA_VERSION,
    headers::AA_REQUEST_ID,
    headers::HARP_SHARED_KEY,
    headers::EX_APP_HOST,
    headers::EX_APP_PORT,
    headers::X_ORIGIN_IP,
    headers::X_REQUEST_ID,
    headers::SIGNATURE,
    headers::SIGNATURE_INPUT,
    headers::CONTENT_DIGEST,
    headers::X_HTTP_METHOD_OVERRIDE,
    headers::X_WAGGLE_USER,
    headers::X_WAGGLE_INSTANCE,
    headers::X_WAGGLE_TARGET,
    headers::OCS_APIREQUEST,
    header::AUTHORIZATION,
    header::COOKIE,
    header::ORIGIN,
    header::REFERER,
    header::HOST,
    header::FORWARDED,
];

/// Whether `name` is hop-by-hop (RFC 9110 §7.6.1), not counting names listed in `Connection`.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Whether `name` is internal: listed in [`INTERNAL`], or of a family AppAPI, HaRP, a previous
/// proxy or Waggle itself uses (`aa-*`, `ex-app-*`, `harp-*`, `x-forwarded-*`, `x-waggle-*`,
/// `signature*`).
pub(crate) fn is_internal(name: &HeaderName) -> bool {
    let n = name.as_str();
    INTERNAL.contains(name)
        || n.starts_with("aa-")
        || n.starts_with("ex-app-")
        || n.starts_with("harp-")
        || n.starts_with("x-forwarded-")
        || n.starts_with("x-waggle-")
        || n.starts_with("signature")
}

/// The header names listed in `Connection` (they are hop-by-hop for this message).
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

/// Removes hop-by-hop headers and those named in `Connection`. Scans the names present rather
/// than removing every hop-by-hop name blindly (a removal hashes its name; a response usually
/// carries one such header, `Connection`, or none).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut doomed: Vec<HeaderName> = headers.keys().filter(|n| is_hop_by_hop(n)).cloned().collect();
    if doomed.is_empty() {
        return;
    }
    doomed.extend(connection_listed(headers));
    for name in doomed {
        headers.remove(name);
    }
}

/// Removes every internal header (see [`is_internal`]). Runs on every forwarded request before
/// any per-route policy adds its own headers.
pub(crate) fn strip_internal(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers.keys().filter(|n| is_internal(n)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
}

/// The inbound request headers that may go upstream, copied in one pass: everything except
/// hop-by-hop headers, names listed in `Connection`, and internal headers. Equivalent to a clone
/// followed by [`strip_internal`] and [`strip_hop_by_hop`], without the removals; `extra` is room
/// for the headers the caller adds.
pub(crate) fn forwardable_headers(inbound: &HeaderMap, extra: usize) -> HeaderMap {
    let listed = connection_listed(inbound);
    let mut out = HeaderMap::with_capacity(inbound.keys_len() + extra);
    let mut current: Option<&HeaderName> = None;
    let mut keep = false;
    // `iter` yields every value; a name's values are adjacent, so decide once per name.
    for (name, value) in inbound {
        if current != Some(name) {
            current = Some(name);
            keep = !is_hop_by_hop(name) && !is_internal(name) && !listed.contains(name);
        }
        if keep {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Whether a response is a Server-Sent Events stream.
pub(crate) fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::http::HeaderValue;

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_removed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-connection", "keep-alive"),
            ("content-type", "text/plain"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
    }

    #[test]
    fn internal_headers_are_removed_in_any_case_and_family() {
        let mut h = HeaderMap::new();
        for k in [
            "authorization-app-api",
            "EX-APP-ID",
            "ex-app-version",
            "aa-version",
            "aa-request-id",
            "aa-anything",
            "harp-shared-key",
            "authorization",
            "cookie",
            "origin",
            "referer",
            "x-origin-ip",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "forwarded",
            "x-waggle-user",
            "signature",
            "signature-input",
            "content-digest",
            "host",
        ] {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_static("v"));
        }
        h.insert("accept", HeaderValue::from_static("application/json"));
        strip_internal(&mut h);
        assert_eq!(h.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["accept"]);
    }

    #[test]
    fn forwardable_headers_equal_clone_then_strip_and_keep_repeated_values() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("authorization-app-api", "secret"),
            ("cookie", "nc_token=t"),
            ("aa-anything", "v"),
            ("x-forwarded-for", "1.2.3.4"),
            ("transfer-encoding", "chunked"),
            ("accept", "application/json"),
            ("x-custom", "a"),
            ("x-custom", "b"),
            ("content-type", "text/plain"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let mut expected = h.clone();
        strip_internal(&mut expected);
        strip_hop_by_hop(&mut expected);
        let copied = forwardable_headers(&h, 4);
        assert_eq!(copied, expected);
        assert_eq!(copied.len(), 4);
        let custom: Vec<_> = copied.get_all("x-custom").iter().collect();
        assert_eq!(custom, ["a", "b"]);
    }

    #[test]
    fn event_streams_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("Text/Event-Stream; charset=utf-8"));
        assert!(is_event_stream(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert!(!is_event_stream(&h));
    }
}
