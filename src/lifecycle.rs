//! The AppAPI lifecycle: `GET /heartbeat`, `POST /init` (answers at once; the flow in
//! `lifecycle::init` works and reports progress in the background), `PUT /enabled?enabled=1|0` (the
//! hooks in `lifecycle::enable`). `lifecycle_state` (a leaf, read by the sync schedule and the admin
//! status too) is where the lifecycle stands; `lifecycle::start` checks it, and the instance id, at
//! start.
//!
//! AppAPI calls `/heartbeat` and `/enabled` on us while our own `progress: 100` report is still open,
//! so the report runs in a task and never blocks serving.

pub(crate) mod enable;
pub(crate) mod init;
pub(crate) mod start;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::AppApiCaller;
pub(crate) use enable::Hooks;
pub(crate) use init::Init;

/// `GET /heartbeat`: cheap, unauthenticated, discloses nothing.
pub(crate) async fn heartbeat() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `POST /init`: starts the init work (single-flight) and answers at once.
pub(crate) async fn init(State(init): State<Arc<Init>>, _caller: AppApiCaller) -> Json<Value> {
    init.start();
    Json(json!({}))
}

/// Creates the storage directory and proves it is writable.
pub(crate) fn prepare_storage(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".waggle-write-probe");
    std::fs::write(&probe, b"ok")?;
    std::fs::remove_file(probe)
}

/// `enabled` query parameter.
#[derive(Debug, Deserialize)]
pub(crate) struct EnabledQuery {
    enabled: Option<String>,
}

/// AppAPI's answer shape for `/enabled`: an empty `error` means success; a non-empty one keeps the
/// app disabled and is shown to the admin. (AppAPI's contract, not Waggle's error dialect.)
#[derive(Debug, Serialize)]
pub(crate) struct EnabledAnswer {
    error: String,
}

/// `PUT /enabled?enabled=1|0`: runs the hooks.
pub(crate) async fn enabled(
    State(hooks): State<Arc<Hooks>>,
    _caller: AppApiCaller,
    Query(q): Query<EnabledQuery>,
) -> (StatusCode, Json<EnabledAnswer>) {
    let enable = match q.enabled.as_deref() {
        Some("1") => true,
        Some("0") => false,
        _ => {
            let error = "query parameter `enabled` must be 1 or 0".to_owned();
            return (StatusCode::BAD_REQUEST, Json(EnabledAnswer { error }));
        }
    };
    match hooks.set_enabled(enable).await {
        Ok(()) => (StatusCode::OK, Json(EnabledAnswer { error: String::new() })),
        Err(e) => {
            tracing::error!(enabled = enable, error = %e, "enable hook failed");
            (StatusCode::OK, Json(EnabledAnswer { error: e.to_string() }))
        }
    }
}
