//! Where the AppAPI lifecycle stands: the init state and whether Nextcloud enabled the app. Shared
//! by the lifecycle handlers, the init flow, the sync schedule and the admin status. The enabled
//! state is kept in the store: Nextcloud does not call `/enabled` again when Waggle restarts.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::store::{Store, StoreError, facts};

/// Where init stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "error", rename_all = "snake_case")]
pub(crate) enum InitState {
    /// `/init` was not called since start.
    NotStarted,
    /// Init work is running.
    Running,
    /// Init finished and progress 100 was reported.
    Done,
    /// Init failed; the message was reported to Nextcloud.
    Failed(String),
}

/// Init and enable state.
#[derive(Debug)]
pub(crate) struct Status {
    init: Mutex<InitState>,
    enabled: AtomicBool,
    store: Store,
}

impl Status {
    /// The state at start: not initialised, enabled as Nextcloud last said (kept in `store`).
    pub(crate) fn load(store: Store) -> Result<Self, StoreError> {
        let enabled = store.fact_now(facts::ENABLED)?.as_deref() == Some("1");
        Ok(Self { init: Mutex::new(InitState::NotStarted), enabled: AtomicBool::new(enabled), store })
    }

    /// Current init state.
    pub(crate) fn init_state(&self) -> InitState {
        self.init.lock().expect("init lock").clone()
    }

    /// Whether Nextcloud last told us we are enabled.
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    /// Records the enabled state in memory and in the store.
    pub(crate) async fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::SeqCst);
        let value = if enabled { "1" } else { "0" };
        if let Err(e) = self.store.set_fact(facts::ENABLED, Some(value.to_owned())).await {
            tracing::error!(error = %e, "cannot store the enabled state");
        }
    }

    /// Moves to `Running` unless a run is in progress; returns whether the caller should start one.
    pub(crate) fn try_begin(&self) -> bool {
        let mut state = self.init.lock().expect("init lock");
        if *state == InitState::Running {
            return false;
        }
        *state = InitState::Running;
        true
    }

    /// Records how init ended.
    pub(crate) fn finish(&self, outcome: InitState) {
        *self.init.lock().expect("init lock") = outcome;
    }
}
