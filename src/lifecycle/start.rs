//! At start: an install that has no stored instance id (it predates storing it) gets one in the
//! background, and a stored "enabled" is checked against AppAPI (the app may have been disabled while
//! Waggle was down, when Nextcloud could not tell it). Retries with backoff until Nextcloud answers;
//! stops at shutdown.

use std::sync::Arc;
use std::time::Duration;

use crate::lifecycle_state::Status;
use crate::nextcloud::{InstanceId, NcClient, NcError};
use crate::shutdown::Background;

/// Runs the start-up checks until they are done or shutdown begins.
pub(crate) async fn run(instance: InstanceId, nc: NcClient, status: Arc<Status>, background: Background) {
    let mut wait = Duration::from_secs(1);
    let mut need_id = instance.get().is_none();
    let mut need_state = status.is_enabled();
    while need_id || need_state {
        if need_id {
            match instance.resolve().await {
                Ok(id) => {
                    tracing::info!(instance = %id, "resolved Nextcloud's instance id");
                    need_id = false;
                }
                Err(e) => tracing::warn!(error = %e, "instance id not resolved yet; retrying"),
            }
        }
        if need_state {
            match nc.enabled_state().await {
                Ok(enabled) => {
                    if !enabled {
                        tracing::info!("AppAPI has this app disabled; sync stays off until enabled");
                        status.set_enabled(false).await;
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
            () = background.cancelled() => return,
        }
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}
