//! Reconciliation, the source of truth for user and group events: read Nextcloud's directory page by
//! page (`events::directory`), diff each page against the snapshot and commit its events with the
//! snapshot update (`events::snapshot`, over the pure `events::diff`), so memory stays bounded and a
//! crash neither loses nor duplicates a change. The schedule that runs it is `events::schedule`.
//!
//! Order of a run: groups (so `group.created` precedes memberships), then users page by page
//! (created, updated, disabled, enabled, memberships added and removed), then what was not seen
//! (memberships removed, then `user.deleted`, then `group.deleted`). The first run after install
//! marks its events `"source":"initial"`; later ones `"reconcile"`; the webhook fast path
//! `"webhook"`. One run at a time.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use super::directory::{Directory, DirectoryError, PAGE};
use super::queue::Outbox;
use super::snapshot::{Snapshot, Stamp};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::nextcloud::InstanceId;
use crate::nextcloud::admins::AdminError;
use crate::nextcloud::instance::InstanceError;
use crate::store::StoreError;

/// What one run did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct ReconcileReport {
    /// Unix ms when it finished.
    pub(crate) finished_ms: i64,
    /// Milliseconds it took.
    pub(crate) duration_ms: u64,
    /// Users seen.
    pub(crate) users: u64,
    /// Groups seen.
    pub(crate) groups: u64,
    /// Events committed to the outbox.
    pub(crate) events: u64,
    /// Whether this was the initial full export.
    pub(crate) initial: bool,
}

/// Why a reconciliation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReconcileError {
    /// Reading Nextcloud's directory failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// Nextcloud's instance id could not be resolved.
    #[error(transparent)]
    Instance(#[from] InstanceError),
    /// The snapshot or the outbox could not be written.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

impl From<ReconcileError> for ApiError {
    /// Nextcloud's failures are 502 (also when it offers no administrator to read as), the
    /// store's 503.
    fn from(e: ReconcileError) -> Self {
        match e {
            ReconcileError::Store(e) => e.into(),
            ReconcileError::Instance(e) => e.into(),
            ReconcileError::Directory(DirectoryError::Admin(AdminError::Nextcloud(e))) => e.into(),
            // Nextcloud offers no administrator to read as: the admin needs the reason (it names
            // `WAGGLE_SYNC__ADMIN_UID`), and it carries no secret.
            ReconcileError::Directory(DirectoryError::Admin(e)) => ApiError::Upstream {
                code: "sync_admin_missing",
                message: e.to_string().into(),
                source: Box::new(e),
            },
            ReconcileError::Directory(e) => ApiError::Upstream {
                code: "nextcloud_unavailable",
                message: "Nextcloud could not be reached or refused the call".into(),
                source: Box::new(e),
            },
        }
    }
}

/// Reads pages from `offset` 0 with `fetch` until a short page, applying each with `apply` while
/// the next one is fetched. Returns the items seen and the events the pages produced.
async fn paged<T, F, A>(
    fetch: impl Fn(usize) -> F,
    apply: impl Fn(Vec<T>) -> A,
) -> Result<(u64, u64), ReconcileError>
where
    F: Future<Output = Result<Vec<T>, DirectoryError>>,
    A: Future<Output = Result<u64, StoreError>>,
{
    let (mut seen, mut events) = (0u64, 0u64);
    let mut page = fetch(0).await?;
    let mut offset = 0;
    loop {
        let n = page.len();
        seen += n as u64;
        if n < PAGE {
            events += apply(page).await?;
            return Ok((seen, events));
        }
        offset += n;
        let (applied, next) = tokio::join!(apply(page), fetch(offset));
        events += applied?;
        page = next?;
    }
}

/// Reconciliation's parts, built once.
#[derive(Debug)]
pub(crate) struct Reconciler {
    directory: Directory,
    snapshot: Snapshot,
    outbox: Outbox,
    instance: InstanceId,
    metrics: Arc<Metrics>,
    /// One run at a time.
    lock: tokio::sync::Mutex<()>,
    last: Mutex<Option<ReconcileReport>>,
}

impl Reconciler {
    /// Reconciliation over these parts.
    pub(crate) fn new(
        directory: Directory,
        snapshot: Snapshot,
        outbox: Outbox,
        instance: InstanceId,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            directory,
            snapshot,
            outbox,
            instance,
            metrics,
            lock: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
        }
    }

    /// The last run's report.
    pub(crate) fn last_report(&self) -> Option<ReconcileReport> {
        self.last.lock().expect("reconcile report lock").clone()
    }

    async fn stamp(&self, source: &'static str) -> Result<Stamp, ReconcileError> {
        let instance = self.instance.known_or_resolve().await?;
        Ok(Stamp { instance, source, at: u64::try_from(now_ms() / 1000).unwrap_or(0) })
    }

    /// Runs one reconciliation (serialised with any other run).
    pub(crate) async fn reconcile(&self) -> Result<ReconcileReport, ReconcileError> {
        let _one = self.lock.lock().await;
        let started = Instant::now();
        let instance = self.instance.known_or_resolve().await?;
        let admin = self.directory.admin().await?;
        let (run, initial) = self.snapshot.begin_run().await?;
        let stamp = Stamp {
            instance,
            source: if initial { "initial" } else { "reconcile" },
            at: u64::try_from(now_ms() / 1000).unwrap_or(0),
        };
        // 1. Groups (so `group.created` precedes memberships), then 2. users, page by page; the next
        // page is read from Nextcloud while the current one is applied (at most two pages in memory).
        let (groups_seen, group_events) = paged(
            |offset| self.directory.groups(&admin, offset),
            |page| self.snapshot.apply_groups(run, stamp.clone(), page),
        )
        .await?;
        let (users_seen, user_events) = paged(
            |offset| self.directory.users(&admin, offset),
            |page| self.snapshot.apply_users(run, stamp.clone(), page),
        )
        .await?;
        // 3. What was not seen: memberships, users, then groups.
        let events = group_events + user_events + self.snapshot.remove_unseen(run, stamp).await?;

        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let finished_ms = now_ms();
        self.snapshot.finish_run(run, finished_ms, events, users_seen, groups_seen).await?;
        self.metrics.incr("reconcile_runs");
        if events > 0 {
            self.outbox.wake();
        }
        let report = ReconcileReport {
            finished_ms,
            duration_ms,
            users: users_seen,
            groups: groups_seen,
            events,
            initial,
        };
        tracing::info!(
            users = users_seen,
            groups = groups_seen,
            events,
            duration_ms,
            initial,
            "reconciliation finished"
        );
        *self.last.lock().expect("reconcile report lock") = Some(report.clone());
        Ok(report)
    }

    /// Reconciles one user (the webhook fast path). Falls back to a full run when the user is gone
    /// (a deletion needs the full pass) or when no full run has happened yet (the initial export).
    pub(crate) async fn reconcile_user(&self, uid: &str) -> Result<(), ReconcileError> {
        let Some(run) = self.snapshot.last_finished_run().await? else {
            return self.reconcile().await.map(drop);
        };
        let admin = self.directory.admin().await?;
        let Some(page) = self.directory.user(&admin, uid).await? else {
            return self.reconcile().await.map(drop);
        };
        let _one = self.lock.lock().await;
        let stamp = self.stamp("webhook").await?;
        let events = self.snapshot.apply_users(run, stamp, page).await?;
        if events > 0 {
            self.outbox.wake();
        }
        tracing::info!(nc.user = uid, events, "targeted reconcile finished");
        Ok(())
    }
}
