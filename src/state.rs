//! Shared application state: settings, clients built once, the lifecycle state, and the one
//! cancellation token + task tracker that every background task lives under.

use std::sync::Arc;

use axum::extract::FromRef;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::audit::AuditLog;
use crate::auth::signature::{CallbackVerifier, FailureLimiter};
use crate::config::Settings;
use crate::events::dispatch::Wakeup;
use crate::events::queue::Outbox;
use crate::keys::Keyring;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::nextcloud::NcClient;
use crate::nextcloud::policy::CallbackPolicy;
use crate::proxy::http::Forwarder;
use crate::saas::SaasProxy;
use crate::store::Store;

/// Everything handlers and workers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The shared parts.
#[derive(Debug)]
pub struct Inner {
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// Nextcloud client.
    pub nc: NcClient,
    /// Tenant keys.
    pub keys: Keyring,
    /// The `/api` and `/auth` proxy policy.
    pub saas: SaasProxy,
    /// The shared streaming forwarder (one pooled client for every upstream).
    pub forwarder: Forwarder,
    /// `/nc` signature verification and replay cache.
    pub callback: CallbackVerifier,
    /// `/nc` failure budget.
    pub callback_limiter: FailureLimiter,
    /// `/nc` admin policy.
    pub callback_policy: CallbackPolicy,
    /// The embedded store.
    pub store: Store,
    /// Counters.
    pub metrics: Metrics,
    /// The audit log (rows written in batches by one task).
    pub audit: AuditLog,
    /// The event outbox.
    pub outbox: Outbox,
    /// Wakes the delivery worker.
    pub events_wakeup: Wakeup,
    /// One reconciliation at a time.
    pub reconcile_lock: tokio::sync::Mutex<()>,
    /// The last reconciliation's report.
    pub last_reconcile: std::sync::Mutex<Option<crate::events::reconcile::ReconcileReport>>,
    /// Init and enable state.
    pub lifecycle: Lifecycle,
    /// Cancelled once at shutdown; every background task selects on it.
    pub shutdown: CancellationToken,
    /// Background tasks, awaited (with a grace period) at shutdown.
    pub tasks: TaskTracker,
}

impl AppState {
    /// Builds the state and its clients.
    pub fn new(settings: Arc<Settings>) -> anyhow::Result<Self> {
        let nc = NcClient::new(&settings.app, &settings.nextcloud)?;
        let forwarder = Forwarder::new(&settings.proxy)?;
        let store = Store::open(&settings.app.storage_dir)?;
        crate::events::reconcile::migrate(&store)?;
        // Facts learned before a restart: no user request waits for Nextcloud to repeat them.
        if let Some(id) = store.fact_now(crate::store::facts::INSTANCE_ID)?
            && !nc.instance().set(&id)
        {
            tracing::warn!("the stored instance id is not usable; it is looked up again");
        }
        let enabled = store.fact_now(crate::store::facts::ENABLED)?.as_deref() == Some("1");
        let (audit, audit_writer) = crate::audit::channel(store.clone());
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        // The writer drains what is queued when the shutdown token fires; shutdown waits for it.
        tasks.spawn(crate::audit::run(audit_writer, shutdown.clone()));
        let started = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        Ok(Self(Arc::new(Inner {
            callback: CallbackVerifier::new(&settings.callback, started),
            callback_limiter: FailureLimiter::new(
                settings.callback.failure_burst,
                settings.callback.failure_per_sec,
            ),
            callback_policy: CallbackPolicy::new(&settings.callback),
            outbox: Outbox::new(store.clone())?,
            audit,
            events_wakeup: Wakeup::default(),
            reconcile_lock: tokio::sync::Mutex::new(()),
            last_reconcile: std::sync::Mutex::new(None),
            store,
            metrics: Metrics::default(),
            forwarder: forwarder.clone(),
            keys: Keyring::load(&settings),
            saas: SaasProxy::new(&settings, forwarder)?,
            settings,
            nc,
            lifecycle: Lifecycle::new(enabled),
            shutdown,
            tasks,
        })))
    }
}

impl AppState {
    /// Records a connector event (bootstrap, rotation) in the log and the audit table.
    pub fn audit_event(&self, method: &str, target: &str) {
        let record = crate::store::AuditRecord {
            at_ms: i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis(),
            )
            .unwrap_or(i64::MAX),
            request_id: String::new(),
            user: String::new(),
            method: method.to_owned(),
            target: target.to_owned(),
            status: 200,
            bytes_in: 0,
            bytes_out: 0,
            duration_ms: 0,
        };
        tracing::info!(target: "waggle::audit", method, target_path = target, "connector event");
        if !self.audit.record(record) {
            self.metrics.incr("audit_rows_dropped");
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl FromRef<AppState> for NcClient {
    fn from_ref(state: &AppState) -> Self {
        state.nc.clone()
    }
}

impl FromRef<AppState> for Arc<Settings> {
    fn from_ref(state: &AppState) -> Self {
        state.settings.clone()
    }
}
