//! `/api/*` and `/auth/*`: thin handlers over `SaasProxy` (HTTP) and the WebSocket bridge.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Request, State};
use axum::response::Response;

use crate::auth::AppApiCaller;
use crate::error::ApiError;
use crate::proxy;
use crate::state::AppState;

/// Any method on `/api/*` or `/auth/*`: forwarded to the SaaS, signed, streamed. A WebSocket upgrade
/// is bridged to a signed WebSocket on the SaaS instead (`proxy::ws`).
pub async fn forward(
    State(state): State<AppState>,
    caller: AppApiCaller,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    match upgrade {
        Ok(upgrade) => {
            let (parts, _) = request.into_parts();
            let forwarded = state.saas.forwarded_headers(&parts.headers);
            // Boxed: the bridge's handshake future is ~10 KiB, and inline it would make every
            // request's handler future that large (axum boxes and moves it per request).
            Box::pin(proxy::ws::bridge(&state, &caller, upgrade, &parts, forwarded)).await
        }
        Err(rejection) if asks_for_websocket(&request) => {
            Err(ApiError::BadRequest(format!("invalid WebSocket upgrade: {}", rejection.body_text())))
        }
        // Boxed for the same reason (about 2 KiB).
        Err(_) => Box::pin(state.saas.forward(&state.keys, &state.nc, &caller, request)).await,
    }
}

fn asks_for_websocket(request: &Request) -> bool {
    request
        .headers()
        .get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}
