//! ADMIN routes for event delivery: status, dead letters, replay, resume after a 410.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::dispatch::{PAUSED, now_ms};
use crate::auth::AppApiCaller;
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /admin/events`: queue depth, oldest pending age, dead letters, pause state, counters.
pub async fn status(State(state): State<AppState>, _admin: AppApiCaller) -> Result<Response, ApiError> {
    let stats = state.outbox.stats(now_ms()).await.map_err(ApiError::Internal)?;
    let paused = state.outbox.flag(PAUSED).await.map_err(ApiError::Internal)?;
    let counters: serde_json::Map<String, serde_json::Value> = state
        .metrics
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.starts_with("events_"))
        .map(|(k, v)| (k, v.into()))
        .collect();
    let last = state.last_reconcile.lock().expect("reconcile report lock").clone();
    Ok(Json(json!({
        "url_configured": state.settings.events.url.is_some(),
        "last_reconcile": last,
        "queue": stats,
        "paused": paused,
        "deliveries": counters,
    }))
    .into_response())
}

/// `GET /admin/events/dead-letters`: the newest 100.
pub async fn dead_letters(State(state): State<AppState>, _admin: AppApiCaller) -> Result<Response, ApiError> {
    let list = state.outbox.dead_letters(100).await.map_err(ApiError::Internal)?;
    Ok(Json(json!({ "dead_letters": list })).into_response())
}

/// `POST /admin/events/dead-letters/{id}/replay`: back into the queue, same id.
pub async fn replay(
    State(state): State<AppState>,
    _admin: AppApiCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !state.outbox.replay(&id, now_ms()).await.map_err(ApiError::Internal)? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(event.id = %id, "dead letter replayed by an admin");
    state.events_wakeup.wake();
    Ok((StatusCode::OK, Json(json!({ "replayed": id }))).into_response())
}

/// `POST /admin/events/resume`: lifts the pause a 410 set.
pub async fn resume(State(state): State<AppState>, _admin: AppApiCaller) -> Result<Response, ApiError> {
    state.outbox.set_flag(PAUSED, None).await.map_err(ApiError::Internal)?;
    tracing::info!("event delivery resumed by an admin");
    state.events_wakeup.wake();
    Ok(Json(json!({ "paused": null })).into_response())
}

/// `POST /admin/sync`: runs a reconciliation now and answers with its report.
pub async fn sync_now(State(state): State<AppState>, _admin: AppApiCaller) -> Response {
    match super::reconcile::reconcile(&state).await {
        Ok(report) => Json(json!({ "reconcile": report })).into_response(),
        Err(message) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "error": { "code": "reconcile_failed", "message": message } })),
        )
            .into_response(),
    }
}
