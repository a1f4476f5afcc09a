//! The init flow behind `POST /init`: single flight, in the background, each step idempotent, with
//! progress reported to Nextcloud between the steps. On success the first reconciliation (the initial
//! full export) follows; a failure is reported to Nextcloud as the init error.

use std::path::PathBuf;
use std::sync::Arc;

use tracing::Instrument as _;

use crate::events::reconcile::Reconciler;
use crate::lifecycle_state::{InitState, Status};
use crate::nextcloud::instance::InstanceError;
use crate::nextcloud::{InstanceId, NcClient, NcError};
use crate::shutdown::Background;
use crate::tenant::{ProvisionError, Provisioner};

/// Why init failed; the text is what Nextcloud shows the admin.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InitError {
    /// A progress report was refused or did not arrive.
    #[error("cannot report init progress to Nextcloud: {0}")]
    Progress(#[source] NcError),
    /// The storage directory is not usable.
    #[error("persistent storage is not usable: {0}")]
    Storage(#[source] std::io::Error),
    /// Nextcloud's instance id could not be resolved.
    #[error(transparent)]
    Instance(#[from] InstanceError),
    /// The tenant key could not be provisioned.
    #[error(transparent)]
    Key(#[from] ProvisionError),
    /// Shutdown began.
    #[error("shutting down during init")]
    ShuttingDown,
}

/// The init flow's parts, built once.
#[derive(Debug)]
pub(crate) struct Init {
    status: Arc<Status>,
    nc: NcClient,
    instance: InstanceId,
    provisioner: Arc<Provisioner>,
    reconciler: Arc<Reconciler>,
    storage: PathBuf,
    background: Background,
}

impl Init {
    /// The flow over these parts.
    pub(crate) fn new(
        status: Arc<Status>,
        nc: NcClient,
        instance: InstanceId,
        provisioner: Arc<Provisioner>,
        reconciler: Arc<Reconciler>,
        storage: PathBuf,
        background: Background,
    ) -> Self {
        Self { status, nc, instance, provisioner, reconciler, storage, background }
    }

    /// Starts init in the background unless it is already running.
    pub(crate) fn start(self: &Arc<Self>) {
        if !self.status.try_begin() {
            tracing::info!("init already running; joining it");
            return;
        }
        let this = self.clone();
        let span = tracing::info_span!("init");
        self.background.spawn(
            async move {
                let outcome = tokio::select! {
                    r = this.run() => r,
                    () = this.background.cancelled() => Err(InitError::ShuttingDown),
                };
                match outcome {
                    Ok(()) => {
                        this.status.finish(InitState::Done);
                        tracing::info!("init finished");
                        // The first reconciliation (the initial full export) runs right after init.
                        if let Err(e) = this.reconciler.reconcile().await {
                            tracing::error!(error = %e, "reconciliation after init failed");
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        tracing::error!(error = %message, "init failed");
                        this.status.finish(InitState::Failed(message.clone()));
                        if let Err(e) = this.nc.report_init_error(&message).await {
                            tracing::error!(error = %e, "could not report the init failure to Nextcloud");
                        }
                    }
                }
            }
            .instrument(span),
        );
    }

    /// The init steps, each idempotent, with progress reported between them.
    async fn run(&self) -> Result<(), InitError> {
        self.report(10).await?;
        super::prepare_storage(&self.storage).map_err(InitError::Storage)?;
        self.report(30).await?;
        // The instance id names this Nextcloud on every signed request to the SaaS; resolved here
        // once and stored, so `/api` never waits on Nextcloud for it.
        self.instance.resolve().await?;
        self.report(50).await?;
        // The tenant key: environment, stored, or bootstrapped now (may wait for an approval below 100).
        self.provisioner.ensure_key().await?;
        self.report(90).await?;
        // Later steps (UI registration) are added here, before 100.
        self.report(100).await
    }

    async fn report(&self, progress: u8) -> Result<(), InitError> {
        self.nc.report_init_progress(progress).await.map_err(InitError::Progress)
    }
}
