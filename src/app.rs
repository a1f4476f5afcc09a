//! `App::build` binds the listener (TCP, or HaRP's unix socket), builds the state and router;
//! `App::run_until_stopped` serves until the shutdown future resolves, then drains with a grace period.

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::{TcpListener, UnixListener};

use crate::config::{ListenOn, Settings};
use crate::state::{AppState, Workers};

enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// A bound, ready-to-serve Waggle.
pub struct App {
    bound: Bound,
    state: AppState,
    workers: Workers,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("local_addr", &self.local_addr()).finish_non_exhaustive()
    }
}

impl App {
    /// Prepares storage, builds clients and binds. Nothing is served until `run_until_stopped`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::lifecycle::prepare_storage(&settings.app.storage_dir).with_context(|| {
            format!(
                "APP_PERSISTENT_STORAGE {} is not a writable directory",
                settings.app.storage_dir.display()
            )
        })?;
        let bound = match &settings.server.listen {
            ListenOn::Tcp(addr) => {
                Bound::Tcp(TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?)
            }
            ListenOn::Unix(path) => Bound::Unix(bind_unix(path)?, path.clone()),
        };
        let (state, tasks) = AppState::build(Arc::new(settings))?;
        let runtime = tokio::runtime::Handle::current();
        let (scheduler, workers) = (runtime.runtime_flavor(), runtime.metrics().num_workers());
        match &bound {
            Bound::Tcp(l) => {
                tracing::info!(addr = %l.local_addr()?, ?scheduler, workers, "listening on TCP");
            }
            Bound::Unix(_, p) => {
                tracing::info!(path = %p.display(), ?scheduler, workers, "listening on the HaRP unix socket");
            }
        }
        Ok(Self { bound, state, workers: tasks })
    }

    /// The bound TCP address (None in unix-socket mode).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.bound {
            Bound::Tcp(l) => l.local_addr().ok(),
            Bound::Unix(..) => None,
        }
    }

    /// The shared state (tests use it to look inside: metrics, keys, outbox, lifecycle).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves (or the shared token is cancelled), then stops accepting,
    /// lets in-flight requests and background tasks finish within the grace period, and returns.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let background = state.background().clone();
        let token = background.token();
        let router = crate::routes::router(state.clone());
        // Background workers live under the shared token and tracker.
        self.workers.spawn(&background);
        let drain = token.clone().cancelled_owned();
        let (server, socket) = match self.bound {
            Bound::Tcp(l) => {
                (tokio::spawn(axum::serve(l, router).with_graceful_shutdown(drain).into_future()), None)
            }
            Bound::Unix(l, p) => {
                (tokio::spawn(axum::serve(l, router).with_graceful_shutdown(drain).into_future()), Some(p))
            }
        };
        let mut server = server;
        let early = tokio::select! {
            () = shutdown => None,
            () = token.cancelled() => None,
            r = &mut server => Some(r),
        };
        background.shut_down();
        let result = match early {
            Some(r) => r.context("server task failed")?.context("server stopped"),
            None => {
                let grace = state.settings().server.shutdown_grace;
                let drained = tokio::time::timeout(grace, async {
                    let served = server.await;
                    background.drained().await;
                    served
                })
                .await;
                match drained {
                    Ok(served) => served.context("server task failed")?.context("server stopped"),
                    Err(_) => {
                        tracing::warn!(
                            grace_secs = grace.as_secs(),
                            "grace period over; exiting with work in flight"
                        );
                        Ok(())
                    }
                }
            }
        };
        if let Some(path) = socket {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!("stopped");
        result
    }
}

/// Binds HaRP's socket: remove a stale one first, and let frpc (same container) connect.
fn bind_unix(path: &std::path::Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        anyhow::ensure!(meta.file_type().is_socket(), "{} exists and is not a socket", path.display());
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}
