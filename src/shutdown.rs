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

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub(crate) async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; shutting down"),
        () = term => tracing::info!("SIGTERM received; shutting down"),
    }
}
