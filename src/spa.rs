//! The embedded browser UI (rust-embed over `web/dist`, built from `web/`): the page, its assets,
//! and the serving rules both ways in (AppAPI's PHP proxy, HaRP) need.
//!
//! - `/index.html`: the SPA document, `no-store`. The PHP proxy adds its CSP nonce to `<script`
//!   only in documents whose path ends in `.html`, and Nextcloud's CSP trusts nothing else, so this
//!   is the one document that loads code.
//! - `/` and the client routes (`/me`, `/status`, …): a script-free page that moves the browser to
//!   `index.html#/<route>` (a meta refresh, which no CSP blocks). An HTTP redirect would not do: the
//!   PHP proxy follows redirects itself, server-side.
//! - `/assets/*`: content-hashed, `immutable` for a year. `/js/*`, `/css/*`, `/img/*`: the stable
//!   names registered with AppAPI, `no-cache` (revalidated by ETag).
//! - Every file has a strong ETag per representation and answers `If-None-Match` with 304;
//!   precompressed `.br`/`.gz` siblings are chosen by `Accept-Encoding`.
//! - Nothing falls back to the SPA except the listed client routes: `/api`, `/auth`, `/nc`, a
//!   missing asset or any other path stays a 404.
//! - HTML carries a CSP (`frame-ancestors` limited to Nextcloud's origin) that HaRP passes through;
//!   the PHP proxy replaces it with Nextcloud's own.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;
use url::Url;

use crate::error::ApiError;

#[derive(RustEmbed)]
#[folder = "web/dist/"]
struct Bundle;

/// The SPA's client routes (web/src/router.ts): deep links that land on the page.
pub const CLIENT_ROUTES: &[&str] = &["me", "status", "settings"];

/// Asset directories and how long a browser may keep their files.
const ASSET_DIRS: &[(&str, &str)] = &[
    ("assets", "public, max-age=31536000, immutable"),
    ("js", "no-cache"),
    ("css", "no-cache"),
    ("img", "no-cache"),
];

/// Serving configuration, built once.
#[derive(Debug)]
pub struct Spa {
    /// `Content-Security-Policy` of our HTML documents.
    csp: HeaderValue,
}

impl Spa {
    /// For a Nextcloud reachable by browsers at `public_url` (the only origin that may frame us).
    pub fn new(public_url: &Url) -> Self {
        let origin = public_url.origin().ascii_serialization();
        // Styles: Nextcloud's theme sheets come from its origin; Vue sets inline styles.
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline' {origin}; \
             img-src 'self' data: {origin}; font-src 'self' data: {origin}; connect-src 'self'; \
             base-uri 'none'; form-action 'self'; object-src 'none'; frame-ancestors 'self' {origin}"
        );
        let csp = HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("frame-ancestors 'self'"));
        Self { csp }
    }
}

/// Routes for the assets (PUBLIC in the manifest; registered scripts, styles and the icon load
/// through the PHP proxy without a user when the page is prerendered).
pub fn asset_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new();
    for (dir, _) in ASSET_DIRS {
        router = router.route(&format!("/{dir}/{{*path}}"), get(asset));
    }
    router
}

/// Routes for the documents (USER in the manifest): the page and the client routes.
pub fn page_routes<S: Clone + Send + Sync + 'static>(spa: Arc<Spa>) -> Router<S> {
    let mut router = Router::new().route("/index.html", get(document)).route("/", get(landing));
    for route in CLIENT_ROUTES {
        router = router
            .route(&format!("/{route}"), get(landing))
            .route(&format!("/{route}/{{*rest}}"), get(landing));
    }
    router.with_state(spa)
}

/// `GET /{assets,js,css,img}/…`.
async fn asset(request: Request) -> Result<Response, ApiError> {
    let path = request.uri().path().trim_start_matches('/');
    let dir = path.split('/').next().unwrap_or("");
    let cache = ASSET_DIRS.iter().find(|(d, _)| *d == dir).map(|(_, c)| *c).ok_or(ApiError::NotFound)?;
    serve(path, cache, request.headers(), request.method())
}

/// `GET /index.html`.
async fn document(State(spa): State<Arc<Spa>>, request: Request) -> Result<Response, ApiError> {
    let mut response = serve("index.html", "no-store", request.headers(), request.method())?;
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, spa.csp.clone());
    Ok(response)
}

/// `GET /` and the client routes: a page that moves the browser to `index.html#/<route>`, relative
/// to where it is, so it works under any proxy prefix.
async fn landing(State(spa): State<Arc<Spa>>, request: Request) -> Response {
    let path = request.uri().path().trim_start_matches('/');
    let html = landing_page(path);
    let mut response = (StatusCode::OK, html).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_SECURITY_POLICY, spa.csp.clone());
    response
}

/// The landing page for `path` (without its leading `/`): `../` once per directory level, then
/// `index.html#/<path>`. The path only contains route names we listed (the router matched it), but
/// it is escaped anyway.
pub fn landing_page(path: &str) -> String {
    let depth = path.matches('/').count();
    let route = path.trim_end_matches('/');
    let target = format!("{}index.html#/{}", "../".repeat(depth), route);
    let target = escape_html(&target);
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Waggle</title>\
         <meta http-equiv=\"refresh\" content=\"0; url={target}\"></head>\
         <body><a href=\"{target}\">Open Waggle</a></body></html>"
    )
}

fn escape_html(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// A content coding we ship precompressed files for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `br` (`<file>.br`).
    Brotli,
    /// `gzip` (`<file>.gz`).
    Gzip,
    /// No coding.
    Identity,
}

impl Coding {
    fn suffix(self) -> &'static str {
        match self {
            Self::Brotli => ".br",
            Self::Gzip => ".gz",
            Self::Identity => "",
        }
    }

    fn header(self) -> Option<HeaderValue> {
        match self {
            Self::Brotli => Some(HeaderValue::from_static("br")),
            Self::Gzip => Some(HeaderValue::from_static("gzip")),
            Self::Identity => None,
        }
    }
}

/// The codings `Accept-Encoding` allows, best first among those we have (RFC 9110 §12.5.3):
/// q-values decide, `br` wins a tie, `*` stands for any coding not named, and `q=0` refuses.
pub fn preferred_codings(accept: Option<&str>) -> Vec<Coding> {
    let Some(accept) = accept else { return vec![Coding::Identity] };
    let mut named: Vec<(String, u16)> = Vec::new();
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        let mut q = 1000;
        for p in parts {
            let p = p.trim();
            if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                q = parse_qvalue(v.trim()).unwrap_or(0);
            }
        }
        named.push((name, q));
    }
    let q_of = |coding: &str| -> Option<u16> {
        named.iter().find(|(n, _)| n == coding).map(|(_, q)| *q).or_else(|| {
            // `*` covers codings not listed; identity is acceptable unless refused explicitly.
            named.iter().find(|(n, _)| n == "*").map(|(_, q)| *q)
        })
    };
    let mut out: Vec<(Coding, u16)> = [(Coding::Brotli, "br"), (Coding::Gzip, "gzip")]
        .into_iter()
        .filter_map(|(c, name)| q_of(name).filter(|q| *q > 0).map(|q| (c, q)))
        .collect();
    out.sort_by_key(|(_, q)| std::cmp::Reverse(*q));
    let identity_refused = named.iter().any(|(n, q)| n == "identity" && *q == 0)
        || (!named.iter().any(|(n, _)| n == "identity") && named.iter().any(|(n, q)| n == "*" && *q == 0));
    let mut codings: Vec<Coding> = out.into_iter().map(|(c, _)| c).collect();
    if !identity_refused {
        codings.push(Coding::Identity);
    }
    codings
}

/// A qvalue (`0`, `0.5`, `1.000`) in thousandths; `None` when malformed.
fn parse_qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Whether `If-None-Match` matches `etag` (weak comparison, RFC 9110 §13.1.2): `*`, or any listed
/// entity tag with the same opaque value.
pub fn none_match(if_none_match: &str, etag: &str) -> bool {
    let want = etag.trim_start_matches("W/");
    if_none_match.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == want)
}

fn serve(
    path: &str,
    cache: &'static str,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Response, ApiError> {
    if path.split('/').any(|s| s == ".." || s == "." || s.is_empty())
        || path.ends_with(".br")
        || path.ends_with(".gz")
    {
        return Err(ApiError::NotFound);
    }
    // The identity file decides whether the path exists; a variant never exists alone.
    let identity = Bundle::get(path).ok_or(ApiError::NotFound)?;
    let accept = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok());
    let (coding, file) = preferred_codings(accept)
        .into_iter()
        .find_map(|c| match c {
            Coding::Identity => Some((c, identity.clone())),
            _ => Bundle::get(&format!("{path}{}", c.suffix())).map(|f| (c, f)),
        })
        // Nothing acceptable: RFC 9110 §12.5.3 says to send the unencoded representation.
        .unwrap_or((Coding::Identity, identity.clone()));
    let has_variants =
        Bundle::get(&format!("{path}.br")).is_some() || Bundle::get(&format!("{path}.gz")).is_some();
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));

    let mut builder = Response::builder().header(header::CACHE_CONTROL, cache).header(header::ETAG, &etag);
    if has_variants {
        builder = builder.header(header::VARY, "Accept-Encoding");
    }
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| none_match(v, &etag));
    if matches && (method == Method::GET || method == Method::HEAD) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(|e| ApiError::Internal(e.into()));
    }
    builder = builder.header(header::CONTENT_TYPE, content_type(identity.metadata.mimetype()));
    if let Some(v) = coding.header() {
        builder = builder.header(header::CONTENT_ENCODING, v);
    }
    builder.status(StatusCode::OK).body(Body::from(file.data)).map_err(|e| ApiError::Internal(e.into()))
}

/// Text types get their charset (the bundle is UTF-8).
fn content_type(mime: &str) -> String {
    if mime.starts_with("text/") || mime == "application/javascript" {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_prefers_brotli_then_gzip_by_quality() {
        use Coding::{Brotli as B, Gzip as G, Identity as I};
        let cases: &[(Option<&str>, &[Coding])] = &[
            (None, &[I]),
            (Some(""), &[I]),
            (Some("gzip, deflate, br, zstd"), &[B, G, I]),
            (Some("gzip"), &[G, I]),
            (Some("br;q=0.5, gzip"), &[G, B, I]),
            (Some("br;q=0, gzip;q=0"), &[I]),
            (Some("*"), &[B, G, I]),
            (Some("*;q=0"), &[]),
            (Some("identity;q=0, gzip"), &[G]),
            (Some("identity;q=0"), &[]),
            (Some("*;q=0, identity"), &[I]),
            (Some("GZIP;Q=1.000"), &[G, I]),
            (Some("br;q=2, gzip;q=0.x"), &[I]),
            (Some(" , ;q=1, br"), &[B, I]),
        ];
        for (accept, want) in cases {
            assert_eq!(preferred_codings(*accept), *want, "Accept-Encoding: {accept:?}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly_and_understands_lists_and_star() {
        assert!(none_match("\"abc\"", "\"abc\""));
        assert!(none_match("W/\"abc\"", "\"abc\""));
        assert!(none_match("\"x\", \"abc\"", "\"abc\""));
        assert!(none_match("*", "\"abc\""));
        assert!(!none_match("\"abcd\"", "\"abc\""));
        assert!(!none_match("", "\"abc\""));
    }

    #[test]
    fn landing_pages_point_at_the_document_relative_to_where_they_are() {
        assert!(landing_page("").contains("url=index.html#/\""));
        assert!(landing_page("status").contains("url=index.html#/status\""));
        assert!(landing_page("status/").contains("url=../index.html#/status\""));
        assert!(landing_page("settings/policy").contains("url=../index.html#/settings/policy\""));
        assert!(landing_page("me/\"><script>").contains("&quot;&gt;&lt;script&gt;"));
        assert!(!landing_page("me/\"><script>").contains("<script"));
    }
}
