//! Shutdown: the signal (the first SIGTERM or SIGINT), and [`Background`], the one cancellation token
//! and task tracker every background task lives under (workers, the init run, WebSocket pumps,
//! targeted reconciles), so shutdown can cancel them all and wait for them with a grace period.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// The shared cancellation token and task tracker (cheap to clone).
#[derive(Debug, Clone, Default)]
pub(crate) struct Background {
    token: CancellationToken,
    tasks: TaskTracker,
}

impl Background {
    /// Spawns `task` on the tracker; it should select on [`Self::cancelled`] if it can run long.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Resolves once shutdown has begun.
    pub(crate) async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// Whether shutdown has begun.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The token itself, for futures that must own it.
    pub(crate) fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Counts as a tracked task until dropped (for work spawned elsewhere, e.g. a WebSocket pump).
    pub(crate) fn track(&self) -> TaskTrackerToken {
        self.tasks.token()
    }

    /// Begins shutdown: cancels the token and closes the tracker.
    pub(crate) fn shut_down(&self) {
        self.token.cancel();
        self.tasks.close();
    }

    /// Waits for every tracked task (after [`Self::shut_down`]).
    pub(crate) async fn drained(&self) {
        self.tasks.wait().await;
    }
}

/// Installs the SIGTERM and SIGINT handlers now, and returns a future that resolves on the first of
/// them. Called before the listener is bound: a signal that arrives while Waggle starts (the port
/// already accepts, the server task is not polled yet) must start the drain, not kill the process
/// with the default action.
pub(crate) fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(int) => tracing::info!("SIGINT received; shutting down"),
                () = wait(term) => tracing::info!("SIGTERM received; shutting down"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("SIGINT received; shutting down");
        } else {
            std::future::pending::<()>().await;
        }
    }
}
