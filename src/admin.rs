//! Connector-owned ADMIN routes under `/admin`: diagnostics that must never appear on `/heartbeat`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::auth::AppApiCaller;
use crate::config::ListenOn;
use crate::state::AppState;

/// `GET /admin/status`: what an admin needs to see why something does not work. Never key material.
pub async fn status(State(state): State<AppState>, _admin: AppApiCaller) -> Json<Value> {
    let s = &state.settings;
    // Queue figures; an unreadable store is reported, not hidden.
    let queue = match state.outbox.stats(crate::events::dispatch::now_ms()).await {
        Ok(q) => json!(q),
        Err(e) => json!({ "error": format!("{e:#}") }),
    };
    let last_reconcile = state.last_reconcile.lock().expect("reconcile report lock").clone();
    Json(json!({
        "app": { "id": s.app.id, "version": s.app.version, "build": env!("CARGO_PKG_VERSION") },
        "listen": match &s.server.listen { ListenOn::Tcp(_) => "tcp", ListenOn::Unix(_) => "harp_socket" },
        "init": state.lifecycle.init_state(),
        "enabled": state.lifecycle.is_enabled(),
        "metrics": state.metrics.snapshot(),
        "events": { "queue": queue, "last_reconcile": last_reconcile },
        "saas": {
            "service_url_configured": s.saas.service_url.is_some(),
            "tenant_key": state.keys.status(),
        },
    }))
}
