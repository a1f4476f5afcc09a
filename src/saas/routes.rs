//! `/api/*` and `/auth/*`: thin handlers over `SaasProxy` (HTTP) and the SaaS half of the WebSocket
//! bridge (`saas::ws`).

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Request, State};
use axum::response::Response;

use super::proxy::SaasProxy;
use crate::auth::AppApiCaller;
use crate::error::ApiError;

/// Any method on `/api/*` or `/auth/*`: forwarded to the SaaS, signed, streamed. A WebSocket upgrade
/// is bridged to a signed WebSocket on the SaaS instead.
pub(crate) async fn forward(
    State(proxy): State<Arc<SaasProxy>>,
    caller: AppApiCaller,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    match upgrade {
        Ok(upgrade) => {
            let (parts, _) = request.into_parts();
            // Boxed: the bridge's handshake future is ~10 KiB, and inline it would make every
            // request's handler future that large (axum boxes and moves it per request).
            Box::pin(super::ws::bridge(&proxy, &caller, upgrade, &parts)).await
        }
        Err(rejection) if asks_for_websocket(&request) => {
            Err(ApiError::BadRequest(format!("invalid WebSocket upgrade: {}", rejection.body_text())))
        }
        // Boxed for the same reason (about 2 KiB).
        Err(_) => Box::pin(proxy.forward(&caller, request)).await,
    }
}

fn asks_for_websocket(request: &Request) -> bool {
    request
        .headers()
        .get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}
