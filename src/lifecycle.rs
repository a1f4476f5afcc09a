//! The AppAPI lifecycle: `GET /heartbeat`, `POST /init` (answers at once, works and reports progress
//! in the background), `PUT /enabled?enabled=1|0` (runs the enable/disable hooks).
//!
//! AppAPI calls `/heartbeat` and `/enabled` on us while our own `progress: 100` report is still open,
//! so the report runs in a task and never blocks serving.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::Instrument as _;

use crate::auth::AppApiCaller;
use crate::nextcloud::NcError;
use crate::state::AppState;
use crate::store::facts;

/// Where init stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "error", rename_all = "snake_case")]
pub enum InitState {
    /// `/init` was not called since start.
    NotStarted,
    /// Init work is running.
    Running,
    /// Init finished and progress 100 was reported.
    Done,
    /// Init failed; the message was reported to Nextcloud.
    Failed(String),
}

/// Init and enable state, shared through `AppState`.
#[derive(Debug)]
pub struct Lifecycle {
    init: Mutex<InitState>,
    enabled: AtomicBool,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Lifecycle {
    /// A lifecycle that starts with the enabled state Nextcloud last told us (kept in the store:
    /// Nextcloud does not call `/enabled` again when Waggle restarts).
    pub fn new(enabled: bool) -> Self {
        Self { init: Mutex::new(InitState::NotStarted), enabled: AtomicBool::new(enabled) }
    }

    /// Current init state.
    pub fn init_state(&self) -> InitState {
        self.init.lock().expect("init lock").clone()
    }

    /// Whether Nextcloud last told us we are enabled.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    /// Moves to `Running` unless a run is in progress; returns whether the caller should start one.
    fn try_begin(&self) -> bool {
        let mut state = self.init.lock().expect("init lock");
        if *state == InitState::Running {
            return false;
        }
        *state = InitState::Running;
        true
    }

    fn finish(&self, outcome: InitState) {
        *self.init.lock().expect("init lock") = outcome;
    }
}

/// `GET /heartbeat`: cheap, unauthenticated, discloses nothing.
pub async fn heartbeat() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `POST /init`: starts the init work (single-flight) and answers at once.
pub async fn init(State(state): State<AppState>, _caller: AppApiCaller) -> Json<Value> {
    start_init(&state);
    Json(json!({}))
}

/// Starts init in the background unless it is already running. Steps are idempotent.
pub fn start_init(state: &AppState) {
    if !state.lifecycle.try_begin() {
        tracing::info!("init already running; joining it");
        return;
    }
    let task_state = state.clone();
    let span = tracing::info_span!("init");
    state.tasks.spawn(
        async move {
            let outcome = tokio::select! {
                r = run_init(&task_state) => r,
                () = task_state.shutdown.cancelled() => Err("shutting down during init".to_owned()),
            };
            match outcome {
                Ok(()) => {
                    task_state.lifecycle.finish(InitState::Done);
                    tracing::info!("init finished");
                    // The first reconciliation (the initial full export) runs right after init.
                    if let Err(e) = crate::events::reconcile::reconcile(&task_state).await {
                        tracing::error!(error = %e, "reconciliation after init failed");
                    }
                }
                Err(message) => {
                    tracing::error!(error = %message, "init failed");
                    task_state.lifecycle.finish(InitState::Failed(message.clone()));
                    if let Err(e) = task_state.nc.report_init_error(&message).await {
                        tracing::error!(error = %e, "could not report the init failure to Nextcloud");
                    }
                }
            }
        }
        .instrument(span),
    );
}

/// The init steps, each idempotent, with progress reported between them.
async fn run_init(state: &AppState) -> Result<(), String> {
    let nc = &state.nc;
    report(nc, 10).await?;
    prepare_storage(&state.settings.app.storage_dir)
        .map_err(|e| format!("persistent storage is not usable: {e}"))?;
    report(nc, 30).await?;
    // The instance id names this Nextcloud on every signed request to the SaaS; resolved here once
    // and stored, so `/api` never waits on Nextcloud for it.
    resolve_instance_id(state).await?;
    report(nc, 50).await?;
    // The tenant key: environment, stored, or bootstrapped now (may wait for an approval below 100).
    crate::keys::bootstrap::ensure_key(state).await?;
    report(nc, 90).await?;
    // Later steps (tenant key, UI registration, first reconcile) are added here, before 100.
    report(nc, 100).await
}

/// Looks up Nextcloud's instance id and keeps it (see `nextcloud::instance`).
pub async fn resolve_instance_id(state: &AppState) -> Result<String, String> {
    crate::nextcloud::instance::resolve(&state.nc, &state.store).await
}

/// At start: an install that has no stored instance id (it predates storing it) gets one in the
/// background, and a stored "enabled" is checked against AppAPI (the app may have been disabled while
/// Waggle was down, when Nextcloud could not tell it). Retries with backoff until Nextcloud answers;
/// never delays serving. An app Nextcloud never enabled makes no authenticated call (AppAPI counts
/// calls from unknown apps as brute-force attempts).
pub async fn on_start(state: AppState) {
    let mut wait = std::time::Duration::from_secs(1);
    let mut need_id = state.nc.instance().get().is_none();
    let mut need_state = state.lifecycle.is_enabled();
    while need_id || need_state {
        if need_id {
            match resolve_instance_id(&state).await {
                Ok(id) => {
                    tracing::info!(instance = %id, "resolved Nextcloud's instance id");
                    need_id = false;
                }
                Err(e) => tracing::warn!(error = %e, "instance id not resolved yet; retrying"),
            }
        }
        if need_state {
            match state.nc.enabled_state().await {
                Ok(enabled) => {
                    if !enabled {
                        tracing::info!("AppAPI has this app disabled; sync stays off until enabled");
                        set_enabled(&state, false).await;
                    }
                    need_state = false;
                }
                Err(e @ (NcError::Transport(_) | NcError::Timeout)) => {
                    tracing::debug!(error = %e, "cannot ask AppAPI for the enabled state yet");
                }
                // Nextcloud answered, but not with a state (e.g. the app was unregistered): keep ours.
                Err(e) => {
                    tracing::warn!(error = %e, "AppAPI did not tell the enabled state");
                    need_state = false;
                }
            }
        }
        if !(need_id || need_state) {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = state.shutdown.cancelled() => return,
        }
        wait = (wait * 2).min(std::time::Duration::from_secs(60));
    }
}

/// Records the enabled state in memory and in the store.
async fn set_enabled(state: &AppState, enabled: bool) {
    state.lifecycle.enabled.store(enabled, Ordering::SeqCst);
    let value = if enabled { "1" } else { "0" };
    if let Err(e) = state.store.set_fact(facts::ENABLED, Some(value.to_owned())).await {
        tracing::error!(error = %format!("{e:#}"), "cannot store the enabled state");
    }
}

async fn report(nc: &crate::nextcloud::NcClient, progress: u8) -> Result<(), String> {
    nc.report_init_progress(progress)
        .await
        .map_err(|e| format!("cannot report init progress to Nextcloud: {e}"))
}

/// Creates the storage directory and proves it is writable.
pub fn prepare_storage(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".waggle-write-probe");
    std::fs::write(&probe, b"ok")?;
    std::fs::remove_file(probe)
}

/// `enabled` query parameter.
#[derive(Debug, Deserialize)]
pub struct EnabledQuery {
    enabled: Option<String>,
}

/// `PUT /enabled?enabled=1|0`: runs the hooks; a non-empty `error` keeps the app disabled.
pub async fn enabled(
    State(state): State<AppState>,
    _caller: AppApiCaller,
    Query(q): Query<EnabledQuery>,
) -> (StatusCode, Json<Value>) {
    let enable = match q.enabled.as_deref() {
        Some("1") => true,
        Some("0") => false,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "query parameter `enabled` must be 1 or 0" })),
            );
        }
    };
    let result = if enable { on_enable(&state).await } else { on_disable(&state).await };
    match result {
        Ok(()) => {
            set_enabled(&state, enable).await;
            tracing::info!(enabled = enable, "enabled state changed");
            (StatusCode::OK, Json(json!({ "error": "" })))
        }
        Err(message) => {
            tracing::error!(enabled = enable, error = %message, "enable hook failed");
            (StatusCode::OK, Json(json!({ "error": message })))
        }
    }
}

/// Enable hooks. Later issues register UI entries and webhooks here.
async fn on_enable(state: &AppState) -> Result<(), String> {
    prepare_storage(&state.settings.app.storage_dir)
        .map_err(|e| format!("persistent storage is not usable: {e}"))?;
    // A key missing at enable (e.g. init ran before the service URL was set) is provisioned in the
    // background; it shares the single flight with /init and the admin trigger.
    // The webhook fast path, where this Nextcloud accepts user/group events (a latency hint only).
    let s = state.clone();
    state.tasks.spawn(async move {
        match crate::events::ingest::register(&s).await {
            Ok(classes) => tracing::info!(?classes, "webhook listeners in place"),
            Err(e) => {
                tracing::warn!(error = %e, "webhook listeners not registered; reconciliation covers it")
            }
        }
    });
    if state.keys.signing_key().is_none()
        && state.keys.error().is_none()
        && state.settings.saas.service_url.is_some()
    {
        let s = state.clone();
        state.tasks.spawn(async move {
            if let Err(e) = crate::keys::bootstrap::ensure_key(&s).await {
                tracing::error!(error = %e, "tenant key bootstrap after enable failed");
            }
        });
    }
    Ok(())
}

/// Disable hooks: called before the container stops, so Nextcloud is still reachable. Failures are
/// logged, not returned: Nextcloud disables the app anyway (and deletes an app's listeners itself on
/// unregister).
async fn on_disable(state: &AppState) -> Result<(), String> {
    if let Err(e) = crate::events::ingest::unregister(state).await {
        tracing::warn!(error = %e, "could not remove the webhook listeners");
    }
    Ok(())
}
