//! The SaaS half of the WebSocket bridge for `/api/*` and `/auth/*`: the policy, before the shared
//! plumbing in `proxy::ws` connects and pumps.
//!
//! Order per upgrade: Origin check (cross-site WebSocket hijacking) → tenant key and service URL →
//! instance id → handshake headers (internal and hop-by-hop stripped, `Sec-WebSocket-Protocol`
//! kept, `X-Forwarded-*` and the empty-body `Content-Digest` set) → the SaaS client's signed-headers
//! step over the `http(s)` form of the upstream URI → `proxy::ws::bridge`. A refusal by the SaaS is
//! cleaned like any proxied response.

use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use http::Method;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;

use super::proxy::{SaasProxy, clean_response, csrf_check};
use crate::auth::AppApiCaller;
use crate::error::ApiError;
use crate::headers;
use crate::proxy::ws::{self, Handshake};
use crate::proxy::{strip_hop_by_hop, strip_internal};
use crate::signing::EMPTY_BODY_DIGEST;

/// Answers a WebSocket upgrade on `/api/*` or `/auth/*` with a bridge to a signed WebSocket on the
/// SaaS.
pub(crate) async fn bridge(
    proxy: &SaasProxy,
    caller: &AppApiCaller,
    upgrade: WebSocketUpgrade,
    parts: &Parts,
) -> Result<Response, ApiError> {
    // A handshake is a GET, but browsers send it cross-site with cookies and no CORS check, and it
    // opens a channel that can change state: check it like a write (cross-site WebSocket hijacking).
    csrf_check(&Method::POST, &parts.headers, &proxy.public_url)?;
    let key = proxy.client.signing_key()?;
    let uri = proxy.upstream_uri(parts.uri.path(), parts.uri.query())?;
    let instance = proxy.client.instance()?;
    let request_id = parts.headers.get(headers::X_REQUEST_ID).cloned();

    let mut out = handshake_headers(&parts.headers, proxy.forwarded_headers(&parts.headers));
    if let Some(id) = &request_id {
        out.insert(headers::X_REQUEST_ID, id.clone());
    }
    proxy.client.sign(&key, &instance, &caller.user, &Method::GET, &uri, &mut out)?;

    let span = tracing::info_span!(
        parent: None,
        "websocket",
        request_id = request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""),
        nc.user = %caller.user,
        http.path = parts.uri.path(),
    );
    let handshake = Handshake { uri, headers: out };
    let connector = proxy.forwarder.connector();
    let mut response =
        ws::bridge(upgrade, handshake, connector, proxy.ws_limits, &proxy.background, span).await?;
    clean_response(response.headers_mut());
    Ok(response)
}

/// The handshake headers sent upstream, before the signed-headers step.
fn handshake_headers(inbound: &HeaderMap, forwarded: HeaderMap) -> HeaderMap {
    let mut out = inbound.clone();
    strip_internal(&mut out);
    strip_hop_by_hop(&mut out);
    // tungstenite writes its own key, version, `Upgrade` and `Connection`; extensions are not
    // bridged (neither side of the bridge negotiates compression); there is no body.
    for name in [
        header::SEC_WEBSOCKET_KEY,
        header::SEC_WEBSOCKET_VERSION,
        header::SEC_WEBSOCKET_EXTENSIONS,
        header::SEC_WEBSOCKET_ACCEPT,
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
    ] {
        out.remove(name);
    }
    out.insert(headers::CONTENT_DIGEST, HeaderValue::from_static(EMPTY_BODY_DIGEST));
    out.extend(forwarded);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_headers_keep_the_subprotocol_and_drop_secrets_and_handshake_fields() {
        let mut inbound = HeaderMap::new();
        for (k, v) in [
            ("authorization-app-api", "c2VjcmV0"),
            ("ex-app-id", "waggle"),
            ("cookie", "nc_session_id=1"),
            ("authorization", "Bearer x"),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("sec-websocket-extensions", "permessage-deflate"),
            ("sec-websocket-protocol", "chat, superchat"),
            ("host", "cloud.example.com"),
            ("x-waggle-user", "mallory"),
            ("accept-language", "de"),
        ] {
            inbound.append(http::HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        // What goes on the wire before the signature: the handshake headers, then the identity.
        let mut out = handshake_headers(&inbound, HeaderMap::new());
        crate::saas::set_identity(&mut out, "alice", &HeaderValue::from_static("ocabc")).unwrap();
        let mut names: Vec<&str> = out.keys().map(http::HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "accept-language",
                "content-digest",
                "sec-websocket-protocol",
                "x-waggle-instance",
                "x-waggle-user"
            ]
        );
        assert_eq!(out["x-waggle-user"], "alice");
        assert_eq!(out["content-digest"], EMPTY_BODY_DIGEST);
        assert_eq!(out["sec-websocket-protocol"], "chat, superchat");
    }
}
