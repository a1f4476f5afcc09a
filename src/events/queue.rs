//! The durable outbox in the embedded SQLite store (WAL): enqueue (committed before anything is
//! acknowledged), the due head of each subject, ack after a 2xx, reschedule, dead-letter and replay.
//!
//! Ordering: only the oldest pending event of a subject is ever due, so one subject's events are
//! delivered in order while different subjects go in parallel. Ids are unique: enqueuing an id that
//! is pending, dead-lettered or was delivered within the dedupe horizon is a no-op.

use rusqlite::{OptionalExtension as _, params};
use serde::Serialize;

use super::Event;
use crate::store::Store;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    type TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_subject ON outbox (subject, seq);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_at, seq);
CREATE TABLE IF NOT EXISTS dead_letter (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    type TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    dead_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS delivered (
    id TEXT PRIMARY KEY,
    delivered_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS delivered_at ON delivered (delivered_at);
CREATE TABLE IF NOT EXISTS delivery_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// How long delivered ids are remembered for dedupe (7 days, in ms).
const DELIVERED_HORIZON_MS: i64 = 7 * 24 * 3600 * 1000;

/// A pending event as leased for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Event id.
    pub id: String,
    /// Ordering key.
    pub subject: String,
    /// Type name.
    pub kind: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Unix ms when enqueued.
    pub created_at: i64,
    /// Attempts so far.
    pub attempts: u32,
}

/// A dead-lettered event, for the admin list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeadLetter {
    /// Event id.
    pub id: String,
    /// Ordering key.
    pub subject: String,
    /// Type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// Attempts made.
    pub attempts: u32,
    /// Last HTTP status, if any.
    pub last_status: Option<u16>,
    /// Last error text.
    pub last_error: Option<String>,
    /// Unix ms when it was given up.
    pub dead_at: i64,
}

/// Queue figures for status and metrics.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct QueueStats {
    /// Pending events.
    pub depth: u64,
    /// Age of the oldest pending event, ms (0 when empty).
    pub oldest_age_ms: i64,
    /// Dead-lettered events.
    pub dead_letters: u64,
}

/// The outbox (cheap to clone).
#[derive(Debug, Clone)]
pub struct Outbox {
    store: Store,
}

impl Outbox {
    /// Opens the outbox in `store`, creating its tables.
    pub fn new(store: Store) -> anyhow::Result<Self> {
        store.migrate(SCHEMA)?;
        Ok(Self { store })
    }

    /// Commits `events` in one transaction; returns how many were new. `now_ms` schedules them.
    pub async fn enqueue(&self, events: Vec<Event>, now_ms: i64) -> anyhow::Result<usize> {
        self.store
            .with(move |c| {
                let tx = c.transaction()?;
                let mut inserted = 0;
                for e in &events {
                    let known: bool = tx.query_row(
                        "SELECT EXISTS(SELECT 1 FROM dead_letter WHERE id = ?1)
                             OR EXISTS(SELECT 1 FROM delivered WHERE id = ?1 AND delivered_at > ?2)",
                        params![e.id, now_ms - DELIVERED_HORIZON_MS],
                        |r| r.get(0),
                    )?;
                    if known {
                        continue;
                    }
                    inserted += tx.execute(
                        "INSERT OR IGNORE INTO outbox (id, subject, type, payload, created_at, next_attempt_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                        params![e.id, e.subject, e.kind.as_str(), e.payload, now_ms],
                    )?;
                }
                tx.commit()?;
                Ok(inserted)
            })
            .await
    }

    /// The due heads: for each subject its oldest pending event, if its time has come.
    pub async fn due(&self, now_ms: i64, limit: u32) -> anyhow::Result<Vec<Pending>> {
        self.store
            .with(move |c| {
                // Walk due rows in time order (index `outbox_due`) and keep the heads of their subjects
                // (index `outbox_subject`); stops after `limit`, instead of scanning the whole queue.
                let mut stmt = c.prepare_cached(
                    "SELECT o.id, o.subject, o.type, o.payload, o.created_at, o.attempts FROM outbox o
                     WHERE o.next_attempt_at <= ?1
                       AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.subject = o.subject AND p.seq < o.seq)
                     ORDER BY o.next_attempt_at, o.seq LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![now_ms, limit], |r| {
                    Ok(Pending {
                        id: r.get(0)?,
                        subject: r.get(1)?,
                        kind: r.get(2)?,
                        payload: r.get(3)?,
                        created_at: r.get(4)?,
                        attempts: r.get(5)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }

    /// When the next event becomes due (unix ms), if any is pending.
    pub async fn next_due_at(&self) -> anyhow::Result<Option<i64>> {
        self.store
            .with(|c| {
                c.query_row(
                    "SELECT MIN(o.next_attempt_at) FROM outbox o
                     WHERE o.seq = (SELECT MIN(seq) FROM outbox WHERE subject = o.subject)",
                    [],
                    |r| r.get(0),
                )
            })
            .await
    }

    /// Records a successful delivery (after a 2xx only).
    pub async fn ack(&self, id: &str, now_ms: i64) -> anyhow::Result<()> {
        let id = id.to_owned();
        self.store
            .with(move |c| {
                let tx = c.transaction()?;
                tx.execute("DELETE FROM outbox WHERE id = ?1", params![id])?;
                tx.execute(
                    "INSERT OR REPLACE INTO delivered (id, delivered_at) VALUES (?1, ?2)",
                    params![id, now_ms],
                )?;
                tx.execute(
                    "DELETE FROM delivered WHERE delivered_at <= ?1",
                    params![now_ms - DELIVERED_HORIZON_MS],
                )?;
                tx.commit()
            })
            .await
    }

    /// Schedules another attempt.
    pub async fn reschedule(
        &self,
        id: &str,
        attempts: u32,
        next_ms: i64,
        status: Option<u16>,
        error: &str,
    ) -> anyhow::Result<()> {
        let (id, error) = (id.to_owned(), error.to_owned());
        self.store
            .with(move |c| {
                c.execute(
                    "UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, last_status = ?4, last_error = ?5 WHERE id = ?1",
                    params![id, attempts, next_ms, status, error],
                )
                .map(drop)
            })
            .await
    }

    /// Moves an event that exhausted its schedule to the dead-letter table.
    pub async fn dead_letter(
        &self,
        id: &str,
        attempts: u32,
        status: Option<u16>,
        error: &str,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let (id, error) = (id.to_owned(), error.to_owned());
        self.store
            .with(move |c| {
                let tx = c.transaction()?;
                tx.execute(
                    "INSERT OR REPLACE INTO dead_letter (id, subject, type, payload, created_at, attempts, last_status, last_error, dead_at)
                     SELECT id, subject, type, payload, created_at, ?2, ?3, ?4, ?5 FROM outbox WHERE id = ?1",
                    params![id, attempts, status, error, now_ms],
                )?;
                tx.execute("DELETE FROM outbox WHERE id = ?1", params![id])?;
                tx.commit()
            })
            .await
    }

    /// Dead letters, newest first.
    pub async fn dead_letters(&self, limit: u32) -> anyhow::Result<Vec<DeadLetter>> {
        self.store
            .with(move |c| {
                let mut stmt = c.prepare(
                    "SELECT id, subject, type, attempts, last_status, last_error, dead_at FROM dead_letter
                     ORDER BY dead_at DESC LIMIT ?1",
                )?;
                let rows = stmt.query_map(params![limit], |r| {
                    Ok(DeadLetter {
                        id: r.get(0)?,
                        subject: r.get(1)?,
                        kind: r.get(2)?,
                        attempts: r.get(3)?,
                        last_status: r.get(4)?,
                        last_error: r.get(5)?,
                        dead_at: r.get(6)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }

    /// Puts a dead letter back in the queue (same id, fresh schedule, end of its subject's order).
    /// Returns false when there is no such dead letter.
    pub async fn replay(&self, id: &str, now_ms: i64) -> anyhow::Result<bool> {
        let id = id.to_owned();
        self.store
            .with(move |c| {
                let tx = c.transaction()?;
                let moved = tx.execute(
                    "INSERT OR IGNORE INTO outbox (id, subject, type, payload, created_at, next_attempt_at)
                     SELECT id, subject, type, payload, created_at, ?2 FROM dead_letter WHERE id = ?1",
                    params![id, now_ms],
                )?;
                tx.execute("DELETE FROM dead_letter WHERE id = ?1", params![id])?;
                tx.commit()?;
                Ok(moved == 1)
            })
            .await
    }

    /// Depth, oldest age and dead-letter count.
    pub async fn stats(&self, now_ms: i64) -> anyhow::Result<QueueStats> {
        self.store
            .with(move |c| {
                let (depth, oldest): (i64, Option<i64>) =
                    c.query_row("SELECT COUNT(*), MIN(created_at) FROM outbox", [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                let dead: i64 = c.query_row("SELECT COUNT(*) FROM dead_letter", [], |r| r.get(0))?;
                Ok(QueueStats {
                    depth: u64::try_from(depth).unwrap_or(0),
                    oldest_age_ms: oldest.map_or(0, |o| now_ms - o),
                    dead_letters: u64::try_from(dead).unwrap_or(0),
                })
            })
            .await
    }

    /// A persisted delivery flag (e.g. `paused` after a 410).
    pub async fn flag(&self, key: &str) -> anyhow::Result<Option<String>> {
        let key = key.to_owned();
        self.store
            .with(move |c| {
                c.query_row("SELECT value FROM delivery_state WHERE key = ?1", params![key], |r| r.get(0))
                    .optional()
            })
            .await
    }

    /// Sets (Some) or clears (None) a persisted delivery flag.
    pub async fn set_flag(&self, key: &str, value: Option<&str>) -> anyhow::Result<()> {
        let (key, value) = (key.to_owned(), value.map(str::to_owned));
        self.store
            .with(move |c| {
                match value {
                    Some(v) => c.execute(
                        "INSERT OR REPLACE INTO delivery_state (key, value) VALUES (?1, ?2)",
                        params![key, v],
                    )?,
                    None => c.execute("DELETE FROM delivery_state WHERE key = ?1", params![key])?,
                };
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventType, event};
    use serde_json::json;

    fn ev(subject: &str, n: u32) -> Event {
        event("oc", EventType::UserUpdated, subject, &n.to_string(), &json!({"n": n}), 1)
    }

    async fn outbox() -> (tempfile::TempDir, Outbox) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, Outbox::new(store).unwrap())
    }

    #[tokio::test]
    async fn only_the_head_of_each_subject_is_due_and_ids_dedupe() {
        let (_d, q) = outbox().await;
        let n = q
            .enqueue(vec![ev("user:a", 1), ev("user:a", 2), ev("user:b", 1), ev("user:a", 1)], 1000)
            .await
            .unwrap();
        assert_eq!(n, 3, "the repeated id is ignored");
        let due = q.due(1000, 10).await.unwrap();
        assert_eq!(due.iter().map(|p| p.subject.as_str()).collect::<Vec<_>>(), ["user:a", "user:b"]);
        assert_eq!(due[0].id, ev("user:a", 1).id);
        q.ack(&due[0].id, 1001).await.unwrap();
        let due = q.due(1001, 10).await.unwrap();
        assert!(
            due.iter().any(|p| p.id == ev("user:a", 2).id),
            "the next event of the subject is due after the ack"
        );
        // A delivered id is not queued again.
        assert_eq!(q.enqueue(vec![ev("user:a", 1)], 2000).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn rescheduled_heads_block_their_subject_until_due() {
        let (_d, q) = outbox().await;
        q.enqueue(vec![ev("user:a", 1), ev("user:a", 2)], 1000).await.unwrap();
        let head = ev("user:a", 1).id;
        q.reschedule(&head, 1, 5000, Some(503), "busy").await.unwrap();
        assert!(q.due(4999, 10).await.unwrap().is_empty(), "the second event waits behind the first");
        assert_eq!(q.next_due_at().await.unwrap(), Some(5000));
        assert_eq!(q.due(5000, 10).await.unwrap()[0].attempts, 1);
    }

    #[tokio::test]
    async fn dead_letters_can_be_listed_and_replayed() {
        let (_d, q) = outbox().await;
        q.enqueue(vec![ev("user:a", 1)], 1000).await.unwrap();
        let id = ev("user:a", 1).id;
        q.dead_letter(&id, 8, Some(500), "server error", 9000).await.unwrap();
        let stats = q.stats(9000).await.unwrap();
        assert_eq!((stats.depth, stats.dead_letters), (0, 1));
        let dl = q.dead_letters(10).await.unwrap();
        assert_eq!((dl[0].id.as_str(), dl[0].attempts, dl[0].last_status), (id.as_str(), 8, Some(500)));
        assert_eq!(
            q.enqueue(vec![ev("user:a", 1)], 9500).await.unwrap(),
            0,
            "a dead letter is not re-queued by a re-diff"
        );
        assert!(q.replay(&id, 10_000).await.unwrap());
        assert!(!q.replay(&id, 10_000).await.unwrap());
        let due = q.due(10_000, 10).await.unwrap();
        assert_eq!((due[0].id.as_str(), due[0].attempts), (id.as_str(), 0));
    }

    #[tokio::test]
    async fn the_queue_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = Outbox::new(Store::open(dir.path()).unwrap()).unwrap();
            q.enqueue(vec![ev("user:a", 1), ev("group:g", 1)], 1000).await.unwrap();
            q.set_flag("paused", Some("410")).await.unwrap();
        }
        let q = Outbox::new(Store::open(dir.path()).unwrap()).unwrap();
        assert_eq!(
            q.stats(2000).await.unwrap(),
            QueueStats { depth: 2, oldest_age_ms: 1000, dead_letters: 0 }
        );
        assert_eq!(q.flag("paused").await.unwrap().as_deref(), Some("410"));
    }
}
