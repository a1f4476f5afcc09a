//! `/api/*` and `/auth/*`: thin handlers over `SaasProxy` (HTTP) and the WebSocket bridge.

use axum::extract::{Request, State};
use axum::response::Response;

use crate::auth::AppApiCaller;
use crate::error::ApiError;
use crate::state::AppState;

/// Any method on `/api/*` or `/auth/*`: forwarded to the SaaS, signed, streamed.
pub async fn forward(
    State(state): State<AppState>,
    caller: AppApiCaller,
    request: Request,
) -> Result<Response, ApiError> {
    state.saas.forward(&state.keys, &state.nc, &caller, request).await
}
