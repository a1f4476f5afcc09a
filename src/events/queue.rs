//! The durable outbox in the embedded SQLite store (WAL): enqueue (committed before anything is
//! acknowledged), the due head of each subject, ack after a 2xx, reschedule, dead-letter and replay.
//! The outbox owns enqueueing: [`Outbox::enqueue_in`] is the one insert, inside the caller's
//! transaction (reconciliation commits events with its snapshot), with the one de-duplication rule;
//! [`Outbox::enqueue`] wraps it in a transaction of its own. Every commit wakes the delivery worker.
//!
//! Ordering: only the oldest pending event of a subject is ever due, so one subject's events are
//! delivered in order while different subjects go in parallel. Ids are unique: enqueuing an id that
//! is pending, dead-lettered or was delivered within the dedupe horizon is a no-op.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension as _, Transaction, params};
use serde::Serialize;
use tokio::sync::Notify;

use super::Event;
use crate::store::{Store, StoreError};

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

/// The persisted flag a 410 sets (delivery paused until an admin resumes it).
pub(crate) const PAUSED: &str = "paused";

/// How long delivered ids are remembered for dedupe (7 days, in ms).
const DELIVERED_HORIZON_MS: i64 = 7 * 24 * 3600 * 1000;

/// A pending event as leased for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    /// Event id.
    pub(crate) id: String,
    /// Ordering key.
    pub(crate) subject: String,
    /// Type name.
    pub(crate) kind: String,
    /// Payload bytes.
    pub(crate) payload: Vec<u8>,
    /// Unix ms when enqueued.
    pub(crate) created_at: i64,
    /// Attempts so far.
    pub(crate) attempts: u32,
}

/// What became of one delivery attempt, as the outbox records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settle {
    /// 2xx: the event leaves the outbox; its id is remembered for dedupe.
    Delivered,
    /// Another attempt at `next_ms`.
    Retry {
        /// Attempts so far.
        attempts: u32,
        /// Unix ms of the next attempt.
        next_ms: i64,
        /// Last HTTP status, if any.
        status: Option<u16>,
        /// Last error text.
        error: String,
    },
    /// The schedule is exhausted: moved to the dead letters.
    Dead {
        /// Attempts made.
        attempts: u32,
        /// Last HTTP status, if any.
        status: Option<u16>,
        /// Last error text.
        error: String,
    },
    /// 410: the event stays due (attempts unchanged) and delivery is paused.
    Pause {
        /// Attempts so far (not counting the 410).
        attempts: u32,
        /// The status (410).
        status: Option<u16>,
        /// Last error text.
        error: String,
    },
}

/// The outcome of one event's attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settlement {
    /// Event id.
    pub(crate) id: String,
    /// What to record.
    pub(crate) outcome: Settle,
}

/// A dead-lettered event, for the admin list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct DeadLetter {
    /// Event id.
    pub(crate) id: String,
    /// Ordering key.
    pub(crate) subject: String,
    /// Type name.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// Attempts made.
    pub(crate) attempts: u32,
    /// Last HTTP status, if any.
    pub(crate) last_status: Option<u16>,
    /// Last error text.
    pub(crate) last_error: Option<String>,
    /// Unix ms when it was given up.
    pub(crate) dead_at: i64,
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

/// The outbox (cheap to clone; clones share the store and the wake-up).
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    store: Store,
    wakeup: Arc<Notify>,
}

impl Outbox {
    /// Opens the outbox in `store`, creating its tables.
    pub(crate) fn new(store: Store) -> Result<Self, StoreError> {
        store.migrate(SCHEMA)?;
        Ok(Self { store, wakeup: Arc::default() })
    }

    /// Inserts `events` inside the caller's transaction; returns how many were new. The one
    /// de-duplication rule: an id that is pending, dead-lettered, or was delivered within the
    /// dedupe horizon is skipped. `now_ms` schedules them. The caller commits, then calls
    /// [`Self::wake`].
    pub(crate) fn enqueue_in(tx: &Transaction<'_>, events: &[Event], now_ms: i64) -> rusqlite::Result<usize> {
        let mut known = tx.prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM dead_letter WHERE id = ?1)
                 OR EXISTS(SELECT 1 FROM delivered WHERE id = ?1 AND delivered_at > ?2)",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO outbox (id, subject, type, payload, created_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )?;
        let mut inserted = 0;
        for e in events {
            if known.query_row(params![e.id, now_ms - DELIVERED_HORIZON_MS], |r| r.get(0))? {
                continue;
            }
            inserted += insert.execute(params![e.id, e.subject, e.kind.as_str(), e.payload, now_ms])?;
        }
        Ok(inserted)
    }

    /// Commits `events` in one transaction and wakes the worker; returns how many were new.
    pub(crate) async fn enqueue(&self, events: Vec<Event>, now_ms: i64) -> Result<usize, StoreError> {
        let inserted = self
            .store
            .with(move |c| {
                let tx = c.transaction()?;
                let inserted = Self::enqueue_in(&tx, &events, now_ms)?;
                tx.commit()?;
                Ok(inserted)
            })
            .await?;
        if inserted > 0 {
            self.wake();
        }
        Ok(inserted)
    }

    /// Wakes the delivery worker (after a commit, a replay or a resume).
    pub(crate) fn wake(&self) {
        self.wakeup.notify_one();
    }

    /// Resolves at the next [`Self::wake`] (or at once if one is pending).
    pub(crate) async fn woken(&self) {
        self.wakeup.notified().await;
    }

    /// The due heads: for each subject its oldest pending event, if its time has come.
    #[cfg(test)]
    pub(crate) async fn due(&self, now_ms: i64, limit: u32) -> Result<Vec<Pending>, StoreError> {
        self.store.with(move |c| due_heads(c, now_ms, limit)).await
    }

    /// When the next event becomes due (unix ms), if any is pending: the earliest head, found by
    /// walking the due index (`outbox_due`) from its start.
    pub(crate) async fn next_due_at(&self) -> Result<Option<i64>, StoreError> {
        self.store
            .with(|c| {
                c.prepare_cached(
                    "SELECT o.next_attempt_at FROM outbox o
                     WHERE NOT EXISTS (SELECT 1 FROM outbox p WHERE p.subject = o.subject AND p.seq < o.seq)
                     ORDER BY o.next_attempt_at, o.seq LIMIT 1",
                )?
                .query_row([], |r| r.get(0))
                .optional()
            })
            .await
    }

    /// The due heads, unless delivery is paused (then `None`): one store call for the worker's
    /// refill.
    pub(crate) async fn lease(&self, now_ms: i64, limit: u32) -> Result<Option<Vec<Pending>>, StoreError> {
        self.store
            .with(move |c| {
                let paused = c
                    .prepare_cached("SELECT 1 FROM delivery_state WHERE key = ?1")?
                    .exists(params![PAUSED])?;
                if paused {
                    return Ok(None);
                }
                due_heads(c, now_ms, limit).map(Some)
            })
            .await
    }

    /// Records the outcomes of finished deliveries in ONE transaction (a group commit): acks
    /// (the event leaves the outbox, its id is remembered for dedupe), retries, dead letters and a
    /// pause. Delivered ids older than the dedupe horizon are pruned in the same transaction (an
    /// index range on `delivered_at`). Returns once it is committed.
    pub(crate) async fn settle(&self, settled: Vec<Settlement>, now_ms: i64) -> Result<(), StoreError> {
        if settled.is_empty() {
            return Ok(());
        }
        self.store
            .with(move |c| {
                let tx = c.transaction()?;
                for s in &settled {
                    settle_one(&tx, s, now_ms)?;
                }
                tx.prepare_cached("DELETE FROM delivered WHERE delivered_at <= ?1")?
                    .execute(params![now_ms - DELIVERED_HORIZON_MS])?;
                tx.commit()
            })
            .await
    }

    /// Dead letters, newest first.
    pub(crate) async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
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
    pub(crate) async fn replay(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
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
    pub(crate) async fn stats(&self, now_ms: i64) -> Result<QueueStats, StoreError> {
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
    pub(crate) async fn flag(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.store
            .with(move |c| {
                c.query_row("SELECT value FROM delivery_state WHERE key = ?1", params![key], |r| r.get(0))
                    .optional()
            })
            .await
    }

    /// Sets (Some) or clears (None) a persisted delivery flag.
    pub(crate) async fn set_flag(&self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
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

/// The due heads, oldest first: walks due rows in time order (index `outbox_due`) and keeps the
/// heads of their subjects (index `outbox_subject`); stops after `limit` instead of scanning the
/// whole queue.
fn due_heads(c: &Connection, now_ms: i64, limit: u32) -> rusqlite::Result<Vec<Pending>> {
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
}

/// Records one outcome inside the settling transaction.
fn settle_one(tx: &Transaction<'_>, s: &Settlement, now_ms: i64) -> rusqlite::Result<()> {
    let reschedule = |attempts: u32, next_ms: i64, status: Option<u16>, error: &str| {
        tx.prepare_cached(
            "UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, last_status = ?4, last_error = ?5 WHERE id = ?1",
        )?
        .execute(params![s.id, attempts, next_ms, status, error])
    };
    match &s.outcome {
        Settle::Delivered => {
            tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?.execute(params![s.id])?;
            tx.prepare_cached("INSERT OR REPLACE INTO delivered (id, delivered_at) VALUES (?1, ?2)")?
                .execute(params![s.id, now_ms])?;
        }
        Settle::Retry { attempts, next_ms, status, error } => {
            reschedule(*attempts, *next_ms, *status, error)?;
        }
        Settle::Dead { attempts, status, error } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO dead_letter (id, subject, type, payload, created_at, attempts, last_status, last_error, dead_at)
                 SELECT id, subject, type, payload, created_at, ?2, ?3, ?4, ?5 FROM outbox WHERE id = ?1",
            )?
            .execute(params![s.id, attempts, status, error, now_ms])?;
            tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?.execute(params![s.id])?;
        }
        Settle::Pause { attempts, status, error } => {
            reschedule(*attempts, now_ms, *status, error)?;
            tx.prepare_cached("INSERT OR REPLACE INTO delivery_state (key, value) VALUES (?1, ?2)")?
                .execute(params![PAUSED, "the events URL answered 410 Gone"])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventType, event};
    use serde_json::json;

    fn ev(subject: &str, n: u32) -> Event {
        event("oc", EventType::UserUpdated, subject, &n.to_string(), &json!({"n": n}), 1)
    }

    fn settled(id: &str, outcome: Settle) -> Settlement {
        Settlement { id: id.to_owned(), outcome }
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
        q.settle(vec![settled(&due[0].id, Settle::Delivered)], 1001).await.unwrap();
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
        let retry = Settle::Retry { attempts: 1, next_ms: 5000, status: Some(503), error: "busy".into() };
        q.settle(vec![settled(&head, retry)], 1000).await.unwrap();
        assert!(q.due(4999, 10).await.unwrap().is_empty(), "the second event waits behind the first");
        assert_eq!(q.next_due_at().await.unwrap(), Some(5000));
        assert_eq!(q.due(5000, 10).await.unwrap()[0].attempts, 1);
    }

    #[tokio::test]
    async fn dead_letters_can_be_listed_and_replayed() {
        let (_d, q) = outbox().await;
        q.enqueue(vec![ev("user:a", 1)], 1000).await.unwrap();
        let id = ev("user:a", 1).id;
        let dead = Settle::Dead { attempts: 8, status: Some(500), error: "server error".into() };
        q.settle(vec![settled(&id, dead)], 9000).await.unwrap();
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
    async fn one_settlement_records_many_outcomes_and_a_pause_stops_leasing() {
        let (_d, q) = outbox().await;
        q.enqueue(vec![ev("user:a", 1), ev("user:a", 2), ev("user:b", 1), ev("user:c", 1)], 1000)
            .await
            .unwrap();
        let heads = q.lease(1000, 10).await.unwrap().unwrap();
        assert_eq!(heads.len(), 3, "one head per subject");
        let (a, b, c) = (ev("user:a", 1).id, ev("user:b", 1).id, ev("user:c", 1).id);
        let pause = Settle::Pause { attempts: 0, status: Some(410), error: "HTTP 410".into() };
        q.settle(vec![settled(&a, Settle::Delivered), settled(&b, pause)], 1001).await.unwrap();
        assert_eq!(q.lease(1001, 10).await.unwrap(), None, "paused");
        q.set_flag(PAUSED, None).await.unwrap();
        let heads = q.lease(1001, 10).await.unwrap().unwrap();
        let ids: Vec<_> = heads.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, [ev("user:a", 2).id.as_str(), c.as_str(), b.as_str()], "in due order");
        // Delivered ids are pruned once past the dedupe horizon.
        q.settle(vec![settled(&c, Settle::Delivered)], 1002 + DELIVERED_HORIZON_MS).await.unwrap();
        assert_eq!(q.enqueue(vec![ev("user:a", 1)], 1003 + DELIVERED_HORIZON_MS).await.unwrap(), 1);
        assert_eq!(q.enqueue(vec![ev("user:c", 1)], 1003 + DELIVERED_HORIZON_MS).await.unwrap(), 0);
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
