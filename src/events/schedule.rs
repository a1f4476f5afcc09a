//! The reconciliation schedule: a run every `interval` (init triggers the first one), only while
//! Nextcloud has the app enabled (a disabled app's calls are refused and logged as errors by
//! Nextcloud; it resumes at the first interval after `PUT /enabled?enabled=1`), and skipped while
//! there is no tenant key (nothing could be delivered yet; the snapshot waits for the first real
//! run). Stops at shutdown.

use std::sync::Arc;
use std::time::Duration;

use super::reconcile::Reconciler;
use crate::keys::Keyring;
use crate::lifecycle_state::Status;
use crate::metrics::Metrics;
use crate::shutdown::Background;

/// Runs the schedule until shutdown.
pub(crate) async fn run(
    reconciler: Arc<Reconciler>,
    status: Arc<Status>,
    keys: Arc<Keyring>,
    metrics: Arc<Metrics>,
    interval: Duration,
    background: Background,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = background.cancelled() => break,
        }
        if !status.is_enabled() {
            // Counted, so an admin (and a test) can see the schedule is alive but held back.
            metrics.incr("reconcile_skipped_disabled");
            continue;
        }
        if keys.signing_key().is_none() {
            continue;
        }
        if let Err(e) = reconciler.reconcile().await {
            metrics.incr("reconcile_failed");
            tracing::error!(error = %e, "reconciliation failed");
        }
    }
}
