//! The embedded browser UI (rust-embed over `web/static`): the shell at `/` for logged-in users, and
//! static assets under `/js`, `/css`, `/img`, `/assets`.
//!
//! Every response carries an explicit `Cache-Control`, because Nextcloud's PHP proxy adds a one-hour
//! cache to non-HTML responses that have none. The shell uses hash routing, so there is no catch-all
//! and unknown paths stay 404.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error::ApiError;

#[derive(RustEmbed)]
#[folder = "web/static/"]
struct Assets;

/// `GET /` and `GET /index.html`: the UI shell, never cached.
pub async fn shell() -> Result<Response, ApiError> {
    serve("index.html", "no-store")
}

/// `GET /{js,css,img,assets}/{*path}`: static files. Hashed files under `assets/` are immutable.
pub async fn asset(Path(path): Path<String>, uri: axum::http::Uri) -> Result<Response, ApiError> {
    let dir = uri.path().trim_start_matches('/').split('/').next().unwrap_or("");
    let cache = if dir == "assets" { "public, max-age=31536000, immutable" } else { "no-cache" };
    serve(&format!("{dir}/{path}"), cache)
}

fn serve(path: &str, cache: &'static str) -> Result<Response, ApiError> {
    if path.split('/').any(|s| s == ".." || s.is_empty()) {
        return Err(ApiError::NotFound);
    }
    let file = Assets::get(path).ok_or(ApiError::NotFound)?;
    let mime = file.metadata.mimetype();
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..12]));
    let mut response = (StatusCode::OK, file.data).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Ok(response)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
