//! The enable and disable hooks behind `PUT /enabled`. Enable checks storage, registers the webhook
//! fast path in the background, and bootstraps a missing key in the background (sharing the single
//! flight with `/init` and the admin trigger). Disable removes the listeners; its failures are
//! logged, not returned (Nextcloud disables the app anyway, and deletes an app's listeners itself
//! on unregister).

use std::path::PathBuf;
use std::sync::Arc;

use crate::events::listeners::WebhookListeners;
use crate::lifecycle_state::Status;
use crate::shutdown::Background;
use crate::tenant::Provisioner;

/// Why enabling failed; the text is what Nextcloud shows the admin.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnableError {
    /// The storage directory is not usable.
    #[error("persistent storage is not usable: {0}")]
    Storage(#[source] std::io::Error),
}

/// The hooks' parts, built once.
#[derive(Debug)]
pub(crate) struct Hooks {
    status: Arc<Status>,
    listeners: Arc<WebhookListeners>,
    provisioner: Arc<Provisioner>,
    storage: PathBuf,
    background: Background,
}

impl Hooks {
    /// The hooks over these parts.
    pub(crate) fn new(
        status: Arc<Status>,
        listeners: Arc<WebhookListeners>,
        provisioner: Arc<Provisioner>,
        storage: PathBuf,
        background: Background,
    ) -> Self {
        Self { status, listeners, provisioner, storage, background }
    }

    /// Runs the hook for `enable` and records the new state when it succeeded.
    pub(crate) async fn set_enabled(&self, enable: bool) -> Result<(), EnableError> {
        if enable {
            self.on_enable()?;
        } else {
            self.on_disable().await;
        }
        self.status.set_enabled(enable).await;
        tracing::info!(enabled = enable, "enabled state changed");
        Ok(())
    }

    fn on_enable(&self) -> Result<(), EnableError> {
        super::prepare_storage(&self.storage).map_err(EnableError::Storage)?;
        // The webhook fast path, where this Nextcloud accepts user/group events (a latency hint only).
        let listeners = self.listeners.clone();
        self.background.spawn(async move {
            match listeners.register().await {
                Ok(classes) => tracing::info!(?classes, "webhook listeners in place"),
                Err(e) => {
                    tracing::warn!(error = %e, "webhook listeners not registered; reconciliation covers it")
                }
            }
        });
        // A key missing at enable (e.g. init ran before the service URL was set) is provisioned in
        // the background.
        if self.provisioner.should_bootstrap() {
            let provisioner = self.provisioner.clone();
            self.background.spawn(async move {
                if let Err(e) = provisioner.ensure_key().await {
                    tracing::error!(error = %e, "tenant key bootstrap after enable failed");
                }
            });
        }
        Ok(())
    }

    async fn on_disable(&self) {
        if let Err(e) = self.listeners.unregister().await {
            tracing::warn!(error = %e, "could not remove the webhook listeners");
        }
    }
}
