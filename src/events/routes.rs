//! ADMIN routes for event delivery: status, dead letters, replay, resume after a 410, and a
//! reconciliation on demand.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::queue::Outbox;
use super::queue::PAUSED;
use super::reconcile::Reconciler;
use crate::auth::AppApiCaller;
use crate::clock::now_ms;
use crate::config::Settings;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// `GET /admin/events`: queue depth, oldest pending age, dead letters, pause state, counters.
pub(crate) async fn status(
    State(outbox): State<Outbox>,
    State(metrics): State<Arc<Metrics>>,
    State(reconciler): State<Arc<Reconciler>>,
    State(settings): State<Arc<Settings>>,
    _admin: AppApiCaller,
) -> Result<Json<Value>, ApiError> {
    let stats = outbox.stats(now_ms()).await?;
    let paused = outbox.flag(PAUSED).await?;
    let counters: serde_json::Map<String, Value> = metrics
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.starts_with("events_"))
        .map(|(k, v)| (k, v.into()))
        .collect();
    Ok(Json(json!({
        "url_configured": settings.events.url.is_some(),
        "last_reconcile": reconciler.last_report(),
        "queue": stats,
        "paused": paused,
        "deliveries": counters,
    })))
}

/// `GET /admin/events/dead-letters`: the newest 100.
pub(crate) async fn dead_letters(
    State(outbox): State<Outbox>,
    _admin: AppApiCaller,
) -> Result<Json<Value>, ApiError> {
    let list = outbox.dead_letters(100).await?;
    Ok(Json(json!({ "dead_letters": list })))
}

/// `POST /admin/events/dead-letters/{id}/replay`: back into the queue, same id.
pub(crate) async fn replay(
    State(outbox): State<Outbox>,
    _admin: AppApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !outbox.replay(&id, now_ms()).await? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(event.id = %id, "dead letter replayed by an admin");
    outbox.wake();
    Ok(Json(json!({ "replayed": id })))
}

/// `POST /admin/events/resume`: lifts the pause a 410 set.
pub(crate) async fn resume(
    State(outbox): State<Outbox>,
    _admin: AppApiCaller,
) -> Result<Json<Value>, ApiError> {
    outbox.set_flag(PAUSED, None).await?;
    tracing::info!("event delivery resumed by an admin");
    outbox.wake();
    Ok(Json(json!({ "paused": null })))
}

/// `POST /admin/sync`: runs a reconciliation now and answers with its report.
pub(crate) async fn sync_now(
    State(reconciler): State<Arc<Reconciler>>,
    _admin: AppApiCaller,
) -> Result<Json<Value>, ApiError> {
    let report = reconciler.reconcile().await?;
    Ok(Json(json!({ "reconcile": report })))
}
