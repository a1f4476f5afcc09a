//! The embedded store: one SQLite database (WAL) under `APP_PERSISTENT_STORAGE`. It holds the bounded
//! audit log of `/nc` calls, the event outbox (with e-mail addresses), the sync snapshot and a few
//! facts Waggle learns once (Nextcloud's instance id, the enabled state). The database and its WAL and
//! SHM files are readable by the owner only (0600).
//!
//! rusqlite is synchronous: every call runs on the blocking pool behind one connection mutex. Failures
//! are [`StoreError`]s, which answer 503 `store_unavailable` at the boundary.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension as _, params};
use serde::Serialize;

use crate::error::ApiError;

/// The database file under the storage directory.
const FILE: &str = "waggle.sqlite3";

/// Facts kept in the store (keys of the `facts` table).
pub(crate) mod facts {
    /// Nextcloud's instance id, resolved during init.
    pub(crate) const INSTANCE_ID: &str = "nextcloud.instance_id";
    /// `1` or `0`: what Nextcloud last said through `PUT /enabled`.
    pub(crate) const ENABLED: &str = "lifecycle.enabled";
    /// The administrator reconciliation found last (a hint for the next run).
    pub(crate) const ADMIN_UID: &str = "sync.admin_uid";
}

/// Creates `path` with mode 0600 if it is missing, and sets 0600 on an existing file (earlier
/// versions created the database 0644).
fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused the statement or the transaction.
    #[error("store call failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The connection mutex was poisoned by a panic in another call.
    #[error("store lock poisoned")]
    Poisoned,
    /// The blocking task did not finish (panicked or was cancelled).
    #[error("store task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::unavailable("store_unavailable", e)
    }
}

/// Audit rows kept; older ones are deleted as new ones arrive.
pub(crate) const AUDIT_ROWS_KEPT: i64 = 100_000;

/// One `/nc` call as audited. Never a body, never a secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditRecord {
    /// Unix milliseconds when the call arrived.
    pub at_ms: i64,
    /// Request id.
    pub request_id: String,
    /// The Nextcloud user acted for (empty = system call).
    pub user: String,
    /// The verb sent to Nextcloud.
    pub method: String,
    /// Path and query sent to Nextcloud.
    pub target: String,
    /// Status answered (Nextcloud's, or Waggle's own refusal).
    pub status: u16,
    /// Request body bytes forwarded.
    pub bytes_in: u64,
    /// Response body bytes streamed back.
    pub bytes_out: u64,
    /// Milliseconds from arrival to the end of the response body.
    pub duration_ms: u64,
}

/// The store handle (cheap to clone).
#[derive(Clone)]
pub(crate) struct Store(Arc<Mutex<Connection>>);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Whether a Waggle database already exists in `dir` (an earlier run used this storage).
    pub(crate) fn exists(dir: &Path) -> bool {
        dir.join(FILE).exists()
    }

    /// Opens (or creates) `dir/waggle.sqlite3` in WAL mode and applies the schema. The files are
    /// made owner-only first: SQLite creates the WAL and SHM files with the database file's mode.
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(FILE);
        owner_only(&path).with_context(|| format!("cannot create {} with mode 0600", path.display()))?;
        let conn = Connection::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        for suffix in ["-wal", "-shm"] {
            let side = dir.join(format!("{FILE}{suffix}"));
            if side.exists() {
                owner_only(&side).with_context(|| format!("cannot restrict {}", side.display()))?;
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at_ms INTEGER NOT NULL,
                request_id TEXT NOT NULL,
                user TEXT NOT NULL,
                method TEXT NOT NULL,
                target TEXT NOT NULL,
                status INTEGER NOT NULL,
                bytes_in INTEGER NOT NULL,
                bytes_out INTEGER NOT NULL,
                duration_ms INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS audit_user ON audit (user, id);
            CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .context("cannot create the audit table")?;
        Ok(Self(Arc::new(Mutex::new(conn))))
    }

    /// Applies a schema fragment (idempotent `CREATE … IF NOT EXISTS`), at start-up.
    pub(crate) fn migrate(&self, sql: &str) -> Result<(), StoreError> {
        let conn = self.0.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(conn.execute_batch(sql)?)
    }

    /// Runs `f` on the connection on the blocking pool.
    pub(crate) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError::Poisoned)?;
            Ok(f(&mut guard)?)
        })
        .await?
    }

    /// A fact read at start-up, before serving (blocks on the connection).
    pub(crate) fn fact_now(&self, key: &str) -> Result<Option<String>, StoreError> {
        let conn = self.0.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(conn.query_row("SELECT value FROM facts WHERE key = ?1", params![key], |r| r.get(0)).optional()?)
    }

    /// A fact Waggle keeps across restarts.
    pub(crate) async fn fact(&self, key: &'static str) -> Result<Option<String>, StoreError> {
        self.with(move |c| {
            c.query_row("SELECT value FROM facts WHERE key = ?1", params![key], |r| r.get(0)).optional()
        })
        .await
    }

    /// Records (Some) or forgets (None) a fact.
    pub(crate) async fn set_fact(&self, key: &'static str, value: Option<String>) -> Result<(), StoreError> {
        self.with(move |c| {
            match value {
                Some(v) => c.execute(
                    "INSERT INTO facts (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = ?2",
                    params![key, v],
                )?,
                None => c.execute("DELETE FROM facts WHERE key = ?1", params![key])?,
            };
            Ok(())
        })
        .await
    }

    /// Appends audit rows in one transaction and trims the table to [`AUDIT_ROWS_KEPT`].
    pub(crate) async fn audit_append(&self, rows: Vec<AuditRecord>) -> Result<(), StoreError> {
        self.with(move |c| {
            let tx = c.transaction()?;
            let mut last = 0;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO audit (at_ms, request_id, user, method, target, status, bytes_in, bytes_out, duration_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                for r in rows {
                    stmt.execute(params![
                        r.at_ms,
                        r.request_id,
                        r.user,
                        r.method,
                        r.target,
                        r.status,
                        i64::try_from(r.bytes_in).unwrap_or(i64::MAX),
                        i64::try_from(r.bytes_out).unwrap_or(i64::MAX),
                        i64::try_from(r.duration_ms).unwrap_or(i64::MAX)
                    ])?;
                    last = tx.last_insert_rowid();
                }
            }
            tx.execute("DELETE FROM audit WHERE id <= ?1", params![last - AUDIT_ROWS_KEPT])?;
            tx.commit()
        })
        .await
    }

    /// The most recent audit rows, newest first, optionally for one user.
    pub(crate) async fn audit_recent(
        &self,
        user: Option<String>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.with(move |c| {
            let mut stmt = c.prepare(
                "SELECT at_ms, request_id, user, method, target, status, bytes_in, bytes_out, duration_ms
                 FROM audit WHERE (?1 IS NULL OR user = ?1) ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![user, limit], |row| {
                Ok(AuditRecord {
                    at_ms: row.get(0)?,
                    request_id: row.get(1)?,
                    user: row.get(2)?,
                    method: row.get(3)?,
                    target: row.get(4)?,
                    status: row.get(5)?,
                    bytes_in: u64::try_from(row.get::<_, i64>(6)?).unwrap_or(0),
                    bytes_out: u64::try_from(row.get::<_, i64>(7)?).unwrap_or(0),
                    duration_ms: u64::try_from(row.get::<_, i64>(8)?).unwrap_or(0),
                })
            })?;
            rows.collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: i64, user: &str) -> AuditRecord {
        AuditRecord {
            at_ms: i,
            request_id: format!("r{i}"),
            user: user.to_owned(),
            method: "GET".into(),
            target: "/ocs/v2.php/cloud/user".into(),
            status: 200,
            bytes_in: 0,
            bytes_out: 10,
            duration_ms: 1,
        }
    }

    #[tokio::test]
    async fn audit_rows_round_trip_newest_first_and_filter_by_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.audit_append(vec![record(1, "alice"), record(2, "bob")]).await.unwrap();
        store.audit_append(vec![record(3, "alice")]).await.unwrap();
        let all = store.audit_recent(None, 10).await.unwrap();
        assert_eq!(all.iter().map(|r| r.at_ms).collect::<Vec<_>>(), [3, 2, 1]);
        let alice = store.audit_recent(Some("alice".into()), 10).await.unwrap();
        assert_eq!(alice, vec![record(3, "alice"), record(1, "alice")]);
        drop(store);
        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(reopened.audit_recent(None, 10).await.unwrap().len(), 3, "durable across reopen");
    }

    #[tokio::test]
    async fn the_database_and_its_wal_and_shm_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mode =
            |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
        // An older install left a world-readable database.
        std::fs::write(dir.path().join(FILE), b"").unwrap();
        std::fs::set_permissions(dir.path().join(FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.audit_append(vec![record(1, "alice")]).await.unwrap();
        store.set_fact(facts::ENABLED, Some("1".into())).await.unwrap();
        for name in ["waggle.sqlite3", "waggle.sqlite3-wal", "waggle.sqlite3-shm"] {
            assert_eq!(mode(name), 0o600, "{name}");
        }
        assert_eq!(store.fact(facts::ENABLED).await.unwrap().as_deref(), Some("1"));
        store.set_fact(facts::ENABLED, None).await.unwrap();
        assert_eq!(store.fact_now(facts::ENABLED).unwrap(), None);
    }
}
