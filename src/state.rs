//! Shared application state: settings, clients built once, the lifecycle state, and the one
//! cancellation token + task tracker that every background task lives under.

use std::sync::Arc;

use axum::extract::FromRef;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::keys::Keyring;
use crate::lifecycle::Lifecycle;
use crate::nextcloud::NcClient;
use crate::proxy::http::Forwarder;
use crate::saas::SaasProxy;

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
        Ok(Self(Arc::new(Inner {
            keys: Keyring::from_settings(&settings.saas),
            saas: SaasProxy::new(&settings, forwarder),
            settings,
            nc,
            lifecycle: Lifecycle::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })))
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
