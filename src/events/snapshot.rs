//! The snapshot of users, groups and memberships reconciliation diffs against, in the embedded store,
//! and the runs that updated it. Each page is applied in ONE transaction: rows read, diffed
//! (`events::diff`, pure), rows written, and the resulting events enqueued into the outbox
//! (`Outbox::enqueue_in`) — so a crash neither loses nor duplicates a change.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension as _, Transaction, params};

use super::Event;
use super::diff::{self, Change, Gone, KnownUser};
use super::directory::UserRecord;
use super::queue::Outbox;
use crate::clock::now_ms;
use crate::store::{Store, StoreError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sync_users (
    uid TEXT PRIMARY KEY, display_name TEXT NOT NULL, email TEXT, enabled INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL DEFAULT 0, seen_run INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sync_groups (
    gid TEXT PRIMARY KEY, deleted INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL DEFAULT 0,
    seen_run INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sync_members (gid TEXT NOT NULL, uid TEXT NOT NULL, PRIMARY KEY (gid, uid));
CREATE TABLE IF NOT EXISTS sync_runs (run INTEGER PRIMARY KEY AUTOINCREMENT, started_ms INTEGER NOT NULL,
    finished_ms INTEGER, events INTEGER, users INTEGER, groups INTEGER);
";

/// How the events of one pass are stamped: the Nextcloud instance, the run's source (`initial`,
/// `reconcile`, `webhook`) and the observation time (unix seconds).
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    /// Nextcloud's instance id.
    pub(crate) instance: String,
    /// `data.source`.
    pub(crate) source: &'static str,
    /// Unix seconds.
    pub(crate) at: u64,
}

impl Stamp {
    fn events(&self, changes: Vec<Change>) -> Vec<Event> {
        changes.into_iter().map(|c| c.into_event(&self.instance, self.source, self.at)).collect()
    }
}

/// The snapshot (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    store: Store,
}

impl Snapshot {
    /// Opens the snapshot in `store`, creating its tables.
    pub(crate) fn new(store: Store) -> Result<Self, StoreError> {
        store.migrate(SCHEMA)?;
        Ok(Self { store })
    }

    /// Starts a run; returns its number and whether it is the first to finish (the initial export).
    pub(crate) async fn begin_run(&self) -> Result<(i64, bool), StoreError> {
        self.store
            .with(|c| {
                let initial: bool = c.query_row(
                    "SELECT NOT EXISTS(SELECT 1 FROM sync_runs WHERE finished_ms IS NOT NULL)",
                    [],
                    |r| r.get(0),
                )?;
                c.execute("INSERT INTO sync_runs (started_ms) VALUES (?1)", params![now_ms()])?;
                Ok((c.last_insert_rowid(), initial))
            })
            .await
    }

    /// Records a run's figures.
    pub(crate) async fn finish_run(
        &self,
        run: i64,
        finished_ms: i64,
        events: u64,
        users: u64,
        groups: u64,
    ) -> Result<(), StoreError> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let (ev, us, gs) = (n(events), n(users), n(groups));
        self.store
            .with(move |c| {
                c.execute(
                    "UPDATE sync_runs SET finished_ms = ?2, events = ?3, users = ?4, groups = ?5 WHERE run = ?1",
                    params![run, finished_ms, ev, us, gs],
                )
                .map(drop)
            })
            .await
    }

    /// The last finished run, if any.
    pub(crate) async fn last_finished_run(&self) -> Result<Option<i64>, StoreError> {
        self.store
            .with(|c| {
                c.query_row("SELECT MAX(run) FROM sync_runs WHERE finished_ms IS NOT NULL", [], |r| r.get(0))
            })
            .await
    }

    /// Applies one page of groups seen in `run`; returns the events enqueued.
    pub(crate) async fn apply_groups(
        &self,
        run: i64,
        stamp: Stamp,
        page: Vec<String>,
    ) -> Result<u64, StoreError> {
        self.store
            .with(move |c| {
                let tx = c.transaction()?;
                let mut changes = vec![];
                for gid in &page {
                    let known: Option<(bool, i64)> = tx
                        .prepare_cached("SELECT deleted, version FROM sync_groups WHERE gid = ?1")?
                        .query_row(params![gid], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    match diff::group(known, gid) {
                        None => {
                            tx.prepare_cached("UPDATE sync_groups SET seen_run = ?2 WHERE gid = ?1")?
                                .execute(params![gid, run])?;
                        }
                        Some((created, version)) => {
                            tx.prepare_cached(
                                "INSERT INTO sync_groups (gid, deleted, version, seen_run) VALUES (?1, 0, ?2, ?3)
                                 ON CONFLICT (gid) DO UPDATE SET deleted = 0, version = ?2, seen_run = ?3",
                            )?
                            .execute(params![gid, version, run])?;
                            changes.push(created);
                        }
                    }
                }
                commit(tx, &stamp.events(changes))
            })
            .await
    }

    /// Applies one page of users seen in `run`; returns the events enqueued.
    pub(crate) async fn apply_users(
        &self,
        run: i64,
        stamp: Stamp,
        page: Vec<UserRecord>,
    ) -> Result<u64, StoreError> {
        self.store.with(move |c| apply_users(c, run, &stamp, &page)).await
    }

    /// Tombstones what `run` did not see: users, then groups, each with its memberships first.
    pub(crate) async fn remove_unseen(&self, run: i64, stamp: Stamp) -> Result<u64, StoreError> {
        self.store
            .with(move |c| {
                let tx = c.transaction()?;
                let gone = |sql: &str| -> rusqlite::Result<Vec<(String, i64)>> {
                    let mut stmt = tx.prepare(sql)?;
                    stmt.query_map(params![run], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
                };
                let users = gone("SELECT uid, version FROM sync_users WHERE deleted = 0 AND seen_run < ?1")?;
                let groups =
                    gone("SELECT gid, version FROM sync_groups WHERE deleted = 0 AND seen_run < ?1")?;
                let mut changes = vec![];
                for (uid, version) in &users {
                    changes.extend(tombstone(&tx, Gone::User, uid, *version)?);
                }
                for (gid, version) in &groups {
                    changes.extend(tombstone(&tx, Gone::Group, gid, *version)?);
                }
                commit(tx, &stamp.events(changes))
            })
            .await
    }
}

/// Enqueues `events` in `tx` and commits both; returns how many events there were.
fn commit(tx: Transaction<'_>, events: &[Event]) -> rusqlite::Result<u64> {
    Outbox::enqueue_in(&tx, events, now_ms())?;
    tx.commit()?;
    Ok(events.len() as u64)
}

fn apply_users(c: &mut Connection, run: i64, stamp: &Stamp, page: &[UserRecord]) -> rusqlite::Result<u64> {
    let tx = c.transaction()?;
    let mut changes = vec![];
    for u in page {
        let known: Option<KnownUser> = tx
            .prepare_cached(
                "SELECT display_name, email, enabled, deleted, version FROM sync_users WHERE uid = ?1",
            )?
            .query_row(params![u.uid], |r| {
                Ok(KnownUser {
                    display_name: r.get(0)?,
                    email: r.get(1)?,
                    enabled: r.get(2)?,
                    deleted: r.get(3)?,
                    version: r.get(4)?,
                })
            })
            .optional()?;
        let groups_before: BTreeSet<String> = {
            let mut stmt = tx.prepare_cached("SELECT gid FROM sync_members WHERE uid = ?1")?;
            stmt.query_map(params![u.uid], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        let d = diff::user(known.as_ref(), u, &groups_before);
        let unchanged = d.changes.is_empty() && known.as_ref().is_some_and(|k| !k.deleted);
        if unchanged {
            // The common case of a later run: only the mark that the user was seen.
            tx.prepare_cached("UPDATE sync_users SET seen_run = ?2 WHERE uid = ?1")?
                .execute(params![u.uid, run])?;
            continue;
        }
        tx.prepare_cached(
            "INSERT INTO sync_users (uid, display_name, email, enabled, deleted, version, seen_run) VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6)
             ON CONFLICT (uid) DO UPDATE SET display_name = ?2, email = ?3, enabled = ?4, deleted = 0, version = ?5, seen_run = ?6",
        )?
        .execute(params![u.uid, u.display_name, u.email, u.enabled, d.version, run])?;
        for gid in &d.joined {
            tx.prepare_cached("INSERT OR IGNORE INTO sync_members (gid, uid) VALUES (?1, ?2)")?
                .execute(params![gid, u.uid])?;
        }
        for gid in &d.left {
            tx.prepare_cached("DELETE FROM sync_members WHERE gid = ?1 AND uid = ?2")?
                .execute(params![gid, u.uid])?;
        }
        changes.extend(d.changes);
    }
    commit(tx, &stamp.events(changes))
}

/// Tombstones one vanished user or group in `tx`; returns its changes.
fn tombstone(tx: &Transaction<'_>, gone: Gone, key: &str, version: i64) -> rusqlite::Result<Vec<Change>> {
    let (members_sql, delete_sql, update_sql) = match gone {
        Gone::User => (
            "SELECT gid, uid FROM sync_members WHERE uid = ?1",
            "DELETE FROM sync_members WHERE uid = ?1",
            "UPDATE sync_users SET deleted = 1, version = ?2 WHERE uid = ?1",
        ),
        Gone::Group => (
            "SELECT gid, uid FROM sync_members WHERE gid = ?1",
            "DELETE FROM sync_members WHERE gid = ?1",
            "UPDATE sync_groups SET deleted = 1, version = ?2 WHERE gid = ?1",
        ),
    };
    let members: Vec<(String, String)> = {
        let mut stmt = tx.prepare(members_sql)?;
        stmt.query_map(params![key], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?
    };
    let (changes, version) = diff::tombstone(gone, key, version, &members);
    tx.execute(delete_sql, params![key])?;
    tx.execute(update_sql, params![key, version])?;
    Ok(changes)
}
