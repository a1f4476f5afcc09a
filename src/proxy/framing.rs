//! Response framing for AppAPI's PHP proxy.
//!
//! AppAPI 5.0.2 (Nextcloud 31) reads an ExApp's whole answer, de-chunks it, and still copies the
//! ExApp's `Transfer-Encoding: chunked` onto the plain body, so every chunked answer reaches the
//! client corrupt (fixed upstream in nextcloud/app_api#621, after 5.0.2). Answers with a
//! `Content-Length` pass intact. So for requests that came through the PHP proxy, an answer without
//! a length is read whole first (in memory up to `WAGGLE_PROXY__MEMORY_BODY_BYTES`, spooled to disk
//! beyond, refused past `WAGGLE_PROXY__PHP_PROXY_RESPONSE_CAP_BYTES`) and sent with its length. This
//! costs the client nothing: the PHP proxy buffers the whole answer before sending anything anyway.
//!
//! Telling the hops apart: the PHP proxy sets `X-Origin-IP` (the client's address) on every request
//! it forwards, after removing a client-supplied one. Nothing else on the path sets it: AppAPI's own
//! calls (`/init`, `/enabled`, webhook deliveries) do not, and HaRP neither sets it nor needs it
//! (under HaRP `/exapps/` answers stream). A client behind HaRP that sends `X-Origin-IP` itself only
//! makes Waggle buffer its own answer, within the cap. HaRP and direct requests keep streaming.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use http::header::{CONTENT_LENGTH, HeaderValue, TRANSFER_ENCODING};
use http::{Method, StatusCode};

use super::ProxyError;
use super::body::{BodyLimits, spool};
use crate::error::ApiError;
use crate::headers;

/// What the framing step needs: where to spool and how much.
#[derive(Debug, Clone)]
pub(crate) struct Framing {
    /// In-memory threshold and cap.
    pub(crate) limits: BodyLimits,
    /// Spool directory (under the storage directory).
    pub(crate) dir: PathBuf,
}

/// Whether a request came through AppAPI's PHP proxy (see the module docs).
pub(crate) fn via_php_proxy(headers: &http::HeaderMap) -> bool {
    headers.contains_key(headers::X_ORIGIN_IP)
}

/// Middleware: gives answers to PHP-proxy requests a `Content-Length`; everything else untouched.
pub(crate) async fn php_proxy_framing(
    State(framing): State<Framing>,
    request: Request,
    next: Next,
) -> Response {
    let buffer = via_php_proxy(request.headers()) && request.method() != Method::HEAD;
    let response = next.run(request).await;
    if !buffer || !needs_length(&response) {
        return response;
    }
    match frame(response, &framing).await {
        Ok(framed) => framed,
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// An answer that has a body but no length (chunked or close-delimited).
fn needs_length(response: &Response) -> bool {
    let status = response.status();
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || response.headers().contains_key(CONTENT_LENGTH))
}

/// Reads the body whole (bounded) and answers it with its length.
async fn frame(response: Response, framing: &Framing) -> Result<Response, ProxyError> {
    let (mut parts, body) = response.into_parts();
    let spooled = spool(body, None, framing.limits, &framing.dir).await.map_err(|e| match e {
        ProxyError::TooLarge { cap } => ProxyError::ResponseTooLarge { cap },
        ProxyError::ClientBody(e) => ProxyError::UpstreamBody(e),
        other => other,
    })?;
    parts.headers.remove(TRANSFER_ENCODING);
    parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(spooled.len()));
    Ok(Response::from_parts(parts, Body::new(spooled.into_upstream().await?)))
}
