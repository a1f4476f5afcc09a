//! The `/api/*` and `/auth/*` policy on top of the shared forwarder in `proxy::http`: what to refuse,
//! strip, add and sign.
//!
//! Order per request: CSRF check → method override → key and URL → internal headers stripped →
//! body hashed (spooled when large) → `Content-Digest`, `X-Forwarded-*` set → the SaaS client's
//! signed-headers step (`X-Waggle-User`, `X-Waggle-Instance`, RFC 9421 `tag="waggle-api"`) →
//! forward → response cleaned (hop-by-hop, AppAPI headers, Nextcloud cookie names). Nothing leaves
//! unsigned.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Uri};
use url::Url;

use super::SaasClient;
use crate::auth::AppApiCaller;
use crate::config::Settings;
use crate::error::ApiError;
use crate::headers;
use crate::proxy::body::{BodyLimits, spool};
use crate::proxy::http::Forwarder;
use crate::proxy::ws::Limits;
use crate::proxy::{ProxyError, forwardable_headers};
use crate::shutdown::Background;
use crate::signing::EMPTY_BODY_DIGEST;

/// Verbs a POST may be tunnelled as (the PHP proxy forwards only GET, POST, PUT and DELETE).
const OVERRIDABLE: [Method; 3] = [Method::PATCH, Method::PUT, Method::DELETE];

/// Cookie names Nextcloud owns; a `Set-Cookie` for one of them from the SaaS would act on the
/// whole Nextcloud origin, so it never reaches the browser.
fn is_nextcloud_cookie(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("nc_")
        || lower.starts_with("oc_")
        || lower == "oc_sessionpassphrase"
        || (lower.len() >= 12
            && lower.starts_with("oc")
            && lower[2..].bytes().all(|b| b.is_ascii_alphanumeric()))
        || lower == "__host-nc_samesitecookielax"
        || lower == "__host-nc_samesitecookiestrict"
}

/// Everything the `/api` and `/auth` policy needs, built once (shared by the HTTP route and the
/// WebSocket bridge).
#[derive(Debug)]
pub(crate) struct SaasProxy {
    pub(super) client: SaasClient,
    pub(super) forwarder: Forwarder,
    pub(super) public_url: Url,
    spool_dir: PathBuf,
    limits: BodyLimits,
    /// `X-Forwarded-Proto`: the scheme of Nextcloud's public URL.
    forwarded_proto: HeaderValue,
    /// The public URL's host, the `X-Forwarded-Host` fallback when a request has no `Host`.
    public_host: Option<HeaderValue>,
    harp: bool,
    /// WebSocket size and connect limits.
    pub(super) ws_limits: Limits,
    /// Where WebSocket pumps live.
    pub(super) background: Background,
}

impl SaasProxy {
    /// Builds the policy from settings.
    pub(crate) fn new(
        settings: &Settings,
        client: SaasClient,
        forwarder: Forwarder,
        background: Background,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            client,
            forwarder,
            public_url: settings.nextcloud.public_url.clone(),
            spool_dir: settings.app.storage_dir.join("spool"),
            limits: BodyLimits {
                memory: settings.proxy.memory_body_bytes,
                cap: settings.proxy.api_body_cap_bytes,
            },
            forwarded_proto: HeaderValue::from_str(settings.nextcloud.public_url.scheme())?,
            public_host: settings.nextcloud.public_url.host_str().and_then(|s| HeaderValue::from_str(s).ok()),
            harp: settings.is_harp(),
            ws_limits: Limits {
                max_message: settings.proxy.ws_max_message_bytes,
                connect_timeout: settings.proxy.header_timeout,
            },
            background,
        })
    }

    /// The upstream URI for an inbound path and query, under the service URL. Paths with dot
    /// segments (in any spelling) are refused: URL joining would resolve them out of `/api`.
    pub(crate) fn upstream_uri(&self, path: &str, query: Option<&str>) -> Result<Uri, ApiError> {
        let base = self.client.service_url().ok_or(ApiError::NotReady("saas_not_configured"))?;
        if has_dot_segment(path) {
            return Err(ApiError::BadRequest("the path contains a dot segment".to_owned()));
        }
        let mut target = format!("{}{}", base.as_str(), path.trim_start_matches('/'));
        if let Some(q) = query {
            target.push('?');
            target.push_str(q);
        }
        target.parse().map_err(|_| ApiError::BadRequest("the path cannot be forwarded".to_owned()))
    }

    /// Forwards one `/api` or `/auth` request for `caller`.
    pub(crate) async fn forward(
        &self,
        caller: &AppApiCaller,
        request: Request,
    ) -> Result<Response, ApiError> {
        let (parts, body) = request.into_parts();
        let method = effective_method(&parts.method, &parts.headers)?;
        csrf_check(&method, &parts.headers, &self.public_url)?;
        let key = self.client.signing_key()?;
        let uri = self.upstream_uri(parts.uri.path(), parts.uri.query())?;
        let instance = self.client.instance()?;

        // Copy what may go upstream in one pass, then add Waggle's own headers (8 of them).
        let mut out = forwardable_headers(&parts.headers, 8);
        let declared = content_length(&parts.headers);
        let body = spool(body, declared, self.limits, &self.spool_dir).await?;
        out.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        let digest = match body.is_empty() {
            true => HeaderValue::from_static(EMPTY_BODY_DIGEST),
            false => value(&body.content_digest())?,
        };
        out.insert(headers::CONTENT_DIGEST, digest);
        self.insert_forwarded(&parts.headers, &mut out);
        if let Some(id) = parts.headers.get(headers::X_REQUEST_ID) {
            out.insert(headers::X_REQUEST_ID, id.clone());
        }
        self.client.sign(&key, &instance, &caller.user, &method, &uri, &mut out)?;

        let mut upstream = http::Request::builder()
            .method(method)
            .uri(uri)
            .body(body.into_upstream().await?)
            .map_err(|e| ProxyError::Build(e.to_string()))?;
        *upstream.headers_mut() = out;
        let mut response = self.forwarder.forward(upstream).await?;
        clean_response(response.headers_mut());
        Ok(response.map(Body::new))
    }

    /// `X-Forwarded-Proto/Host/For` as Waggle sees the client: the scheme of Nextcloud's public URL,
    /// the Host the browser used, and the client address AppAPI's PHP proxy reports (`X-Origin-IP`;
    /// AppAPI removes a client-supplied one, HaRP does not, so it is ignored under HaRP).
    pub(crate) fn forwarded_headers(&self, inbound: &HeaderMap) -> HeaderMap {
        let mut h = HeaderMap::new();
        self.insert_forwarded(inbound, &mut h);
        h
    }

    /// Inserts `X-Forwarded-Proto/Host/For` (see [`Self::forwarded_headers`]) into `out`.
    fn insert_forwarded(&self, inbound: &HeaderMap, out: &mut HeaderMap) {
        out.insert(headers::X_FORWARDED_PROTO, self.forwarded_proto.clone());
        if let Some(host) = inbound.get(header::HOST).or(self.public_host.as_ref()) {
            out.insert(headers::X_FORWARDED_HOST, host.clone());
        }
        if !self.harp
            && let Some(ip) = inbound.get(headers::X_ORIGIN_IP).and_then(|v| v.to_str().ok())
            && ip.parse::<std::net::IpAddr>().is_ok()
        {
            out.insert(headers::X_FORWARDED_FOR, value(ip).unwrap_or(HeaderValue::from_static("")));
        }
    }
}

/// The verb to send upstream: a POST may carry `X-HTTP-Method-Override` with PATCH, PUT or DELETE.
pub(crate) fn effective_method(method: &Method, headers: &HeaderMap) -> Result<Method, ApiError> {
    let mut overrides = headers.get_all(headers::X_HTTP_METHOD_OVERRIDE).iter();
    let Some(value) = overrides.next() else { return Ok(method.clone()) };
    if overrides.next().is_some() || method != Method::POST {
        return Err(ApiError::BadRequest("X-HTTP-Method-Override is only allowed once, on POST".to_owned()));
    }
    OVERRIDABLE
        .iter()
        .find(|m| value.as_bytes().eq_ignore_ascii_case(m.as_str().as_bytes()))
        .cloned()
        .ok_or_else(|| ApiError::BadRequest("X-HTTP-Method-Override must be PATCH, PUT or DELETE".to_owned()))
}

/// CSRF defence (the PHP proxy has none): a state-changing request marked cross-site by the browser,
/// or from an Origin other than Nextcloud's, is refused.
pub(crate) fn csrf_check(method: &Method, headers: &HeaderMap, public_url: &Url) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let site = headers.get(headers::SEC_FETCH_SITE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if site.eq_ignore_ascii_case("cross-site") {
        return Err(ApiError::Forbidden {
            code: "cross_site_request",
            message: "cross-site requests are refused".to_owned(),
        });
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = public_url.origin().ascii_serialization();
        if origin.as_bytes() != allowed.as_bytes() {
            return Err(ApiError::Forbidden {
                code: "origin_not_allowed",
                message: "requests from this origin are refused".to_owned(),
            });
        }
    }
    Ok(())
}

/// Removes what must not reach the browser: hop-by-hop headers (done by the forwarder), AppAPI
/// headers, and `Set-Cookie` for Nextcloud's cookie names.
pub(crate) fn clean_response(headers: &mut HeaderMap) {
    if headers.contains_key(header::SET_COOKIE) {
        let cookies: Vec<HeaderValue> = headers.get_all(header::SET_COOKIE).iter().cloned().collect();
        headers.remove(header::SET_COOKIE);
        for cookie in cookies {
            let name = cookie.to_str().ok().and_then(|c| c.split('=').next()).map(str::trim).unwrap_or("");
            if !name.is_empty() && !is_nextcloud_cookie(name) {
                headers.append(header::SET_COOKIE, cookie);
            } else {
                tracing::debug!(cookie = name, "dropped a Set-Cookie for a Nextcloud cookie name");
            }
        }
    }
    // Scan the names present; removing each forbidden name would hash it every time.
    let internal: Vec<_> = headers.keys().filter(|n| RESPONSE_INTERNAL.contains(n)).cloned().collect();
    for name in internal {
        headers.remove(name);
    }
}

/// AppAPI headers that must never reach the browser from the SaaS.
static RESPONSE_INTERNAL: [http::HeaderName; 4] =
    [headers::AUTHORIZATION_APP_API, headers::EX_APP_ID, headers::EX_APP_VERSION, headers::AA_VERSION];

/// Dot segments in any spelling: `.`/`..`, percent-encoded (`%2e`, also double-encoded `%252e`),
/// and with backslashes or encoded slashes (`%5c`, `%2f`, double-encoded too) as separators.
pub(crate) fn has_dot_segment(path: &str) -> bool {
    // Every spelling needs a `.` or a `%` (encoded dot); most paths have neither `%` nor a `.`
    // that starts a segment, and are answered without allocating.
    let bytes = path.as_bytes();
    let dot_after_slash = bytes.windows(2).any(|w| matches!(w[0], b'/' | b'\\') && w[1] == b'.');
    if !dot_after_slash && !path.contains('%') && !path.starts_with('.') {
        return false;
    }
    let lower = path
        .to_ascii_lowercase()
        .replace("%25", "%")
        .replace("%2e", ".")
        .replace('\\', "/")
        .replace("%5c", "/")
        .replace("%2f", "/");
    lower.split('/').any(|s| s == "." || s == "..")
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

fn value(s: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(s).map_err(|_| ApiError::BadRequest("a header value is not valid".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nextcloud_cookie_names_are_recognised() {
        for name in [
            "nc_session_id",
            "nc_token",
            "nc_username",
            "oc_sessionPassphrase",
            "ocabcdef123456",
            "nc_sameSiteCookielax",
        ] {
            assert!(is_nextcloud_cookie(name), "{name}");
        }
        for name in ["saas_session", "theme", "oc", "octopus-x"] {
            assert!(!is_nextcloud_cookie(name), "{name}");
        }
    }

    #[test]
    fn method_override_is_limited_to_post_and_known_verbs() {
        let mut h = HeaderMap::new();
        assert_eq!(effective_method(&Method::POST, &h).unwrap(), Method::POST);
        h.insert(headers::X_HTTP_METHOD_OVERRIDE, HeaderValue::from_static("patch"));
        assert_eq!(effective_method(&Method::POST, &h).unwrap(), Method::PATCH);
        assert!(effective_method(&Method::GET, &h).is_err());
        h.insert(headers::X_HTTP_METHOD_OVERRIDE, HeaderValue::from_static("PROPFIND"));
        assert!(effective_method(&Method::POST, &h).is_err());
    }

    #[test]
    fn dot_segments_are_found_in_every_spelling() {
        for p in [
            "/api/../x",
            "/api/%2e%2e/x",
            "/api/%2E%2E/x",
            "/api/%252e%252e/x",
            "/api\\..\\x",
            "/api/./x",
            "/api/..%5cx/..",
        ] {
            assert!(has_dot_segment(p), "{p}");
        }
        for p in ["/api/x", "/api/a..b", "/api/.well-known", "/api/x.json", "/api/a%2Fb"] {
            assert!(!has_dot_segment(p), "{p}");
        }
    }

    #[test]
    fn csrf_refuses_cross_site_and_foreign_origins_for_writes_only() {
        let url: Url = "https://cloud.example.com/".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(csrf_check(&Method::GET, &h, &url).is_ok());
        assert!(csrf_check(&Method::POST, &h, &url).is_err());
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(csrf_check(&Method::DELETE, &h, &url).is_err());
        h.insert(header::ORIGIN, HeaderValue::from_static("https://cloud.example.com"));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(csrf_check(&Method::PUT, &h, &url).is_ok());
    }
}
