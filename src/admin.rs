//! Connector-owned ADMIN routes under `/admin`: diagnostics that must never appear on `/heartbeat`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::AppApiCaller;
use crate::clock::now_ms;
use crate::config::{ListenOn, Settings};
use crate::events::queue::{Outbox, QueueStats};
use crate::events::reconcile::Reconciler;
use crate::keys::Keyring;
use crate::lifecycle_state::Status;
use crate::metrics::Metrics;

/// The queue figures, or why they cannot be read (an unreadable store is reported, not hidden).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum QueueView {
    Stats(QueueStats),
    Unavailable { error: String },
}

/// `GET /admin/status`: what an admin needs to see why something does not work. Never key material.
pub(crate) async fn status(
    State(settings): State<Arc<Settings>>,
    State(lifecycle): State<Arc<Status>>,
    State(metrics): State<Arc<Metrics>>,
    State(outbox): State<Outbox>,
    State(reconciler): State<Arc<Reconciler>>,
    State(keys): State<Arc<Keyring>>,
    _admin: AppApiCaller,
) -> Json<Value> {
    let s = &settings;
    let queue = match outbox.stats(now_ms()).await {
        Ok(q) => QueueView::Stats(q),
        Err(e) => QueueView::Unavailable { error: e.to_string() },
    };
    Json(json!({
        "app": { "id": s.app.id, "version": s.app.version, "build": env!("CARGO_PKG_VERSION") },
        "listen": match &s.server.listen { ListenOn::Tcp(_) => "tcp", ListenOn::Unix(_) => "harp_socket" },
        "init": lifecycle.init_state(),
        "enabled": lifecycle.is_enabled(),
        "metrics": metrics.snapshot(),
        "events": { "queue": queue, "last_reconcile": reconciler.last_report() },
        "saas": {
            "service_url_configured": s.saas.service_url.is_some(),
            "tenant_key": keys.status(),
        },
    }))
}
