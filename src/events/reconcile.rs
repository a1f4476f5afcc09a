//! Reconciliation, the source of truth for user and group events: read Nextcloud's users (with
//! details, paged) and groups through OCS, diff them against the snapshot in the store, and commit
//! the resulting events to the outbox in the SAME transaction as the snapshot update, page by page,
//! so memory stays bounded and a crash neither loses nor duplicates a change.
//!
//! Order of a run: groups (so `group.created` precedes memberships), then users page by page (created,
//! updated, disabled, enabled, memberships added and removed), then what was not seen (memberships
//! removed, then `user.deleted`, then `group.deleted`). The first run after install marks its events
//! `"source":"initial"`; later ones `"reconcile"`. One run at a time.

use std::collections::BTreeSet;
use std::time::Instant;

use http::Method;
use rusqlite::{OptionalExtension as _, Transaction, params};
use serde::Serialize;
use serde_json::{Value, json};

use super::dispatch::now_ms;
use super::{Event, EventType, event};
use crate::nextcloud::NcError;
use crate::state::AppState;

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

/// Users or groups per OCS page.
pub const PAGE: usize = 500;

/// One user as Nextcloud reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    /// User id.
    pub uid: String,
    /// Display name.
    pub display_name: String,
    /// Email, if set.
    pub email: Option<String>,
    /// Whether the account is enabled.
    pub enabled: bool,
    /// Group ids.
    pub groups: BTreeSet<String>,
}

/// Parses the `data` of `GET /ocs/v*/cloud/users/details` (`{"users": {uid: {…}}}`; an empty page
/// may be `[]`). Entries that are not objects (Nextcloud leaves failed lookups as `[]`) are skipped.
/// Pure; fuzzed.
pub fn parse_user_details(data: &Value) -> Result<Vec<UserRecord>, String> {
    let users = match data.get("users") {
        Some(Value::Object(map)) => map,
        Some(Value::Array(a)) if a.is_empty() => return Ok(vec![]),
        _ => return Err("the users/details answer has no `users` object".to_owned()),
    };
    let mut out = Vec::with_capacity(users.len());
    for (key, u) in users {
        let Some(obj) = u.as_object() else { continue };
        let uid = obj.get("id").and_then(Value::as_str).unwrap_or(key).to_owned();
        if uid.is_empty() || uid.len() > 64 || uid.chars().any(char::is_control) {
            continue;
        }
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
        let enabled = match obj.get("enabled") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "1" || s == "true",
            Some(Value::Number(n)) => n.as_i64() == Some(1),
            _ => true,
        };
        let groups = obj
            .get("groups")
            .and_then(Value::as_array)
            .map(|g| g.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        out.push(UserRecord {
            display_name: text("displayname").or_else(|| text("display-name")).unwrap_or_else(|| uid.clone()),
            email: text("email").filter(|e| !e.is_empty()),
            uid,
            enabled,
            groups,
        });
    }
    Ok(out)
}

/// Parses the `data` of `GET /ocs/v*/cloud/groups` (`{"groups": [gid, …]}`). Pure; fuzzed.
pub fn parse_groups(data: &Value) -> Result<Vec<String>, String> {
    let groups =
        data.get("groups").and_then(Value::as_array).ok_or("the groups answer has no `groups` list")?;
    Ok(groups
        .iter()
        .filter_map(Value::as_str)
        .filter(|g| !g.is_empty() && g.len() <= 256)
        .map(str::to_owned)
        .collect())
}

/// What one run did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Unix ms when it finished.
    pub finished_ms: i64,
    /// Milliseconds it took.
    pub duration_ms: u64,
    /// Users seen.
    pub users: u64,
    /// Groups seen.
    pub groups: u64,
    /// Events committed to the outbox.
    pub events: u64,
    /// Whether this was the initial full export.
    pub initial: bool,
}

/// Creates the snapshot tables.
pub fn migrate(store: &crate::store::Store) -> anyhow::Result<()> {
    store.migrate(SCHEMA)
}

struct Emit<'a> {
    instance: &'a str,
    source: &'static str,
    at: u64,
    out: Vec<Event>,
}

impl Emit<'_> {
    fn push(&mut self, kind: EventType, subject: &str, version: i64, mut data: Value) {
        data["source"] = json!(self.source);
        let fingerprint = format!("{version}:{data}");
        self.out.push(event(self.instance, kind, subject, &fingerprint, &data, self.at));
    }
}

fn insert_events(tx: &Transaction<'_>, events: &[Event], now: i64) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO outbox (id, subject, type, payload, created_at, next_attempt_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?5 WHERE NOT EXISTS (SELECT 1 FROM dead_letter WHERE id = ?1)",
    )?;
    for e in events {
        stmt.execute(params![e.id, e.subject, e.kind.as_str(), e.payload, now])?;
    }
    Ok(())
}

/// Runs one reconciliation (serialised with any other run).
pub async fn reconcile(state: &AppState) -> Result<ReconcileReport, String> {
    let _one = state.reconcile_lock.lock().await;
    let started = Instant::now();
    let instance = instance_id(state).await?;
    let admin = admin_uid(state).await?;
    let store = state.store.clone();
    let (run, initial) = store
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
        .map_err(|e| format!("{e:#}"))?;
    let source = if initial { "initial" } else { "reconcile" };
    let at = u64::try_from(now_ms() / 1000).unwrap_or(0);
    let mut events = 0u64;

    // 1. Groups.
    let mut groups_seen = 0u64;
    let mut offset = 0;
    loop {
        let path = format!("/ocs/v1.php/cloud/groups?limit={PAGE}&offset={offset}");
        let data: Value = state.nc.ocs(Method::GET, &path, &admin, None).await.map_err(|e| describe(&e))?;
        let page = parse_groups(&data)?;
        let n = page.len();
        groups_seen += n as u64;
        let inst = instance.clone();
        events += store
            .with(move |c| {
                let tx = c.transaction()?;
                let mut emit = Emit { instance: &inst, source, at, out: vec![] };
                for gid in &page {
                    let row: Option<(i64, i64)> = tx
                        .query_row("SELECT deleted, version FROM sync_groups WHERE gid = ?1", params![gid], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    match row {
                        Some((0, _)) => {
                            tx.execute("UPDATE sync_groups SET seen_run = ?2 WHERE gid = ?1", params![gid, run])?;
                        }
                        other => {
                            let version = other.map_or(0, |(_, v)| v) + 1;
                            tx.execute(
                                "INSERT INTO sync_groups (gid, deleted, version, seen_run) VALUES (?1, 0, ?2, ?3)
                                 ON CONFLICT (gid) DO UPDATE SET deleted = 0, version = ?2, seen_run = ?3",
                                params![gid, version, run],
                            )?;
                            emit.push(EventType::GroupCreated, &format!("group:{gid}"), version, json!({ "gid": gid }));
                        }
                    }
                }
                insert_events(&tx, &emit.out, now_ms())?;
                tx.commit()?;
                Ok(emit.out.len() as u64)
            })
            .await
            .map_err(|e| format!("{e:#}"))?;
        if n < PAGE {
            break;
        }
        offset += n;
    }

    // 2. Users, page by page.
    let mut users_seen = 0u64;
    let mut offset = 0;
    loop {
        let path = format!("/ocs/v1.php/cloud/users/details?limit={PAGE}&offset={offset}");
        let data: Value = state.nc.ocs(Method::GET, &path, &admin, None).await.map_err(|e| describe(&e))?;
        let page = parse_user_details(&data)?;
        let n = page.len();
        users_seen += n as u64;
        let inst = instance.clone();
        events += store
            .with(move |c| diff_users(c, &inst, source, at, run, &page))
            .await
            .map_err(|e| format!("{e:#}"))?;
        if n < PAGE {
            break;
        }
        offset += n;
    }

    // 3. What was not seen: memberships, users, then groups.
    let inst = instance.clone();
    events +=
        store.with(move |c| remove_unseen(c, &inst, source, at, run)).await.map_err(|e| format!("{e:#}"))?;

    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let finished_ms = now_ms();
    let (ev, us, gs) = (i64::try_from(events).unwrap_or(i64::MAX), users_seen as i64, groups_seen as i64);
    store
        .with(move |c| {
            c.execute(
                "UPDATE sync_runs SET finished_ms = ?2, events = ?3, users = ?4, groups = ?5 WHERE run = ?1",
                params![run, finished_ms, ev, us, gs],
            )
            .map(drop)
        })
        .await
        .map_err(|e| format!("{e:#}"))?;
    state.metrics.incr("reconcile_runs");
    if events > 0 {
        state.events_wakeup.wake();
    }
    let report =
        ReconcileReport { finished_ms, duration_ms, users: users_seen, groups: groups_seen, events, initial };
    tracing::info!(
        users = users_seen,
        groups = groups_seen,
        events,
        duration_ms,
        initial,
        "reconciliation finished"
    );
    *state.last_reconcile.lock().expect("reconcile report lock") = Some(report.clone());
    Ok(report)
}

/// Reconciles one user (the webhook fast path). Falls back to a full run when the user is gone (a
/// deletion needs the full pass) or when no full run has happened yet (the initial export).
pub async fn reconcile_user(state: &AppState, uid: &str) -> Result<(), String> {
    let last_run: Option<i64> = state
        .store
        .with(|c| {
            c.query_row("SELECT MAX(run) FROM sync_runs WHERE finished_ms IS NOT NULL", [], |r| r.get(0))
        })
        .await
        .map_err(|e| format!("{e:#}"))?;
    let Some(run) = last_run else {
        return reconcile(state).await.map(drop);
    };
    let admin = admin_uid(state).await?;
    let path = format!("/ocs/v1.php/cloud/users/{}", crate::nextcloud::encode_segment(uid));
    let data: Value = match state.nc.ocs(Method::GET, &path, &admin, None).await {
        Ok(v) => v,
        Err(NcError::Ocs { statuscode: 404 | 998, .. } | NcError::Status { status: 404 }) => {
            return reconcile(state).await.map(drop);
        }
        Err(e) => return Err(describe(&e)),
    };
    let page = parse_user_details(&json!({ "users": { uid: data } }))?;
    let _one = state.reconcile_lock.lock().await;
    let instance = instance_id(state).await?;
    let at = u64::try_from(now_ms() / 1000).unwrap_or(0);
    let events = state
        .store
        .with(move |c| diff_users(c, &instance, "webhook", at, run, &page))
        .await
        .map_err(|e| format!("{e:#}"))?;
    if events > 0 {
        state.events_wakeup.wake();
    }
    tracing::info!(nc.user = uid, events, "targeted reconcile finished");
    Ok(())
}

fn describe(e: &NcError) -> String {
    format!("cannot read users and groups from Nextcloud: {e}")
}

fn diff_users(
    c: &mut rusqlite::Connection,
    instance: &str,
    source: &'static str,
    at: u64,
    run: i64,
    page: &[UserRecord],
) -> rusqlite::Result<u64> {
    let tx = c.transaction()?;
    let mut emit = Emit { instance, source, at, out: vec![] };
    for u in page {
        let subject = format!("user:{}", u.uid);
        let row: Option<(String, Option<String>, bool, bool, i64)> = tx
            .query_row(
                "SELECT display_name, email, enabled, deleted, version FROM sync_users WHERE uid = ?1",
                params![u.uid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let mut version = row.as_ref().map_or(0, |r| r.4);
        match &row {
            None | Some((_, _, _, true, _)) => {
                version += 1;
                emit.push(
                    EventType::UserCreated,
                    &subject,
                    version,
                    json!({ "uid": u.uid, "display_name": u.display_name, "email": u.email, "enabled": u.enabled }),
                );
            }
            Some((name, email, enabled, false, _)) => {
                let mut changed = vec![];
                if *name != u.display_name {
                    changed.push("display_name");
                }
                if *email != u.email {
                    changed.push("email");
                }
                if !changed.is_empty() {
                    version += 1;
                    emit.push(
                        EventType::UserUpdated,
                        &subject,
                        version,
                        json!({ "uid": u.uid, "changed": changed, "display_name": u.display_name, "email": u.email }),
                    );
                }
                if *enabled != u.enabled {
                    version += 1;
                    let kind = if u.enabled { EventType::UserEnabled } else { EventType::UserDisabled };
                    emit.push(kind, &subject, version, json!({ "uid": u.uid }));
                }
            }
        }
        tx.execute(
            "INSERT INTO sync_users (uid, display_name, email, enabled, deleted, version, seen_run) VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6)
             ON CONFLICT (uid) DO UPDATE SET display_name = ?2, email = ?3, enabled = ?4, deleted = 0, version = ?5, seen_run = ?6",
            params![u.uid, u.display_name, u.email, u.enabled, version, run],
        )?;
        // Memberships.
        let before: BTreeSet<String> = {
            let mut stmt = tx.prepare_cached("SELECT gid FROM sync_members WHERE uid = ?1")?;
            stmt.query_map(params![u.uid], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        for gid in u.groups.difference(&before) {
            tx.execute("INSERT OR IGNORE INTO sync_members (gid, uid) VALUES (?1, ?2)", params![gid, u.uid])?;
            emit.push(
                EventType::GroupMemberAdded,
                &format!("group:{gid}"),
                version,
                json!({ "gid": gid, "uid": u.uid }),
            );
        }
        for gid in before.difference(&u.groups) {
            tx.execute("DELETE FROM sync_members WHERE gid = ?1 AND uid = ?2", params![gid, u.uid])?;
            emit.push(
                EventType::GroupMemberRemoved,
                &format!("group:{gid}"),
                version,
                json!({ "gid": gid, "uid": u.uid }),
            );
        }
    }
    insert_events(&tx, &emit.out, now_ms())?;
    tx.commit()?;
    Ok(emit.out.len() as u64)
}

fn remove_unseen(
    c: &mut rusqlite::Connection,
    instance: &str,
    source: &'static str,
    at: u64,
    run: i64,
) -> rusqlite::Result<u64> {
    let tx = c.transaction()?;
    let mut emit = Emit { instance, source, at, out: vec![] };
    let gone_users: Vec<(String, i64)> = {
        let mut stmt =
            tx.prepare("SELECT uid, version FROM sync_users WHERE deleted = 0 AND seen_run < ?1")?;
        stmt.query_map(params![run], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?
    };
    let gone_groups: Vec<(String, i64)> = {
        let mut stmt =
            tx.prepare("SELECT gid, version FROM sync_groups WHERE deleted = 0 AND seen_run < ?1")?;
        stmt.query_map(params![run], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?
    };
    for (uid, version) in &gone_users {
        tombstone(&tx, &mut emit, Gone::User, uid, *version)?;
    }
    for (gid, version) in &gone_groups {
        tombstone(&tx, &mut emit, Gone::Group, gid, *version)?;
    }
    insert_events(&tx, &emit.out, now_ms())?;
    tx.commit()?;
    Ok(emit.out.len() as u64)
}

/// A user or a group that reconciliation no longer sees.
#[derive(Clone, Copy)]
enum Gone {
    User,
    Group,
}

/// Tombstones one vanished user or group at `version + 1`: each of its memberships is removed
/// (a `GroupMemberRemoved` event per membership), then its own deleted event, then its row is
/// marked deleted.
fn tombstone(
    tx: &Transaction<'_>,
    emit: &mut Emit<'_>,
    gone: Gone,
    key: &str,
    version: i64,
) -> rusqlite::Result<()> {
    let (members_sql, delete_sql, update_sql, deleted, subject, data) = match gone {
        Gone::User => (
            "SELECT gid, uid FROM sync_members WHERE uid = ?1",
            "DELETE FROM sync_members WHERE uid = ?1",
            "UPDATE sync_users SET deleted = 1, version = ?2 WHERE uid = ?1",
            EventType::UserDeleted,
            format!("user:{key}"),
            json!({ "uid": key }),
        ),
        Gone::Group => (
            "SELECT gid, uid FROM sync_members WHERE gid = ?1",
            "DELETE FROM sync_members WHERE gid = ?1",
            "UPDATE sync_groups SET deleted = 1, version = ?2 WHERE gid = ?1",
            EventType::GroupDeleted,
            format!("group:{key}"),
            json!({ "gid": key }),
        ),
    };
    let members: Vec<(String, String)> = {
        let mut stmt = tx.prepare(members_sql)?;
        stmt.query_map(params![key], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?
    };
    for (gid, uid) in members {
        emit.push(
            EventType::GroupMemberRemoved,
            &format!("group:{gid}"),
            version + 1,
            json!({ "gid": gid, "uid": uid }),
        );
    }
    tx.execute(delete_sql, params![key])?;
    emit.push(deleted, &subject, version + 1, data);
    tx.execute(update_sql, params![key, version + 1])?;
    Ok(())
}

/// The admin account reconciliation reads as: `WAGGLE_SYNC__ADMIN_UID`, else an administrator found
/// through AppAPI's user list (see `nextcloud::admins`; listing users with details needs one).
async fn admin_uid(state: &AppState) -> Result<String, String> {
    crate::nextcloud::admins::resolve(&state.nc, &state.store, state.settings.sync.admin_uid.as_deref())
        .await
        .map(|a| a.uid)
        .map_err(|e| e.to_string())
}

/// The instance id resolved at init (or now, if a run comes first: it talks to Nextcloud anyway).
async fn instance_id(state: &AppState) -> Result<String, String> {
    crate::nextcloud::instance::known_or_resolve(&state.nc, &state.store).await
}

/// The schedule: a run every `interval` (init triggers the first one), only while Nextcloud has the
/// app enabled (a disabled app's calls are refused and logged as errors by Nextcloud); stops on the
/// token.
pub async fn run_schedule(state: AppState) {
    let interval = state.settings.sync.interval;
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = state.shutdown.cancelled() => break,
        }
        if !state.lifecycle.is_enabled() {
            continue; // resumes at the first interval after `PUT /enabled?enabled=1`
        }
        if state.keys.signing_key().is_none() {
            continue; // nothing can be delivered yet; the snapshot waits for the first real run
        }
        if let Err(e) = reconcile(&state).await {
            state.metrics.incr("reconcile_failed");
            tracing::error!(error = %e, "reconciliation failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_details_are_parsed_leniently_but_safely() {
        let data = json!({"users": {
            "alice": {"id": "alice", "displayname": "Alice", "email": "a@x", "enabled": true, "groups": ["staff", "admin"]},
            "bob": {"id": "bob", "displayname": "Bob", "email": "", "enabled": "0", "groups": []},
            "ghost": [],
            "evil\n": {"id": "evil\n"}
        }});
        let users = parse_user_details(&data).unwrap();
        assert_eq!(users.len(), 2);
        let alice = users.iter().find(|u| u.uid == "alice").unwrap();
        assert_eq!(
            (alice.display_name.as_str(), alice.email.as_deref(), alice.enabled),
            ("Alice", Some("a@x"), true)
        );
        assert_eq!(alice.groups.iter().map(String::as_str).collect::<Vec<_>>(), ["admin", "staff"]);
        let bob = users.iter().find(|u| u.uid == "bob").unwrap();
        assert_eq!((bob.email.as_deref(), bob.enabled), (None, false));
        assert_eq!(parse_user_details(&json!({"users": []})).unwrap(), vec![]);
        assert!(parse_user_details(&json!({"nope": 1})).is_err());
        assert_eq!(parse_groups(&json!({"groups": ["a", "", 3, "b"]})).unwrap(), ["a", "b"]);
    }
}
