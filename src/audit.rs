//! The audit log of `/nc` calls and connector events: one JSON log line per record (written by the
//! caller) and a row in the bounded audit table, written by ONE task in batches so a burst of calls
//! costs one transaction per batch instead of one blocking task each. The queue is bounded; when it
//! is full a row is dropped (the log line already exists) and counted.

use tokio::sync::mpsc;

use crate::store::{AuditRecord, Store};

/// Rows waiting for the writer.
const QUEUE: usize = 10_000;
/// Rows per transaction at most.
const BATCH: usize = 512;

/// The sending side, kept in state.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<AuditRecord>,
}

/// The receiving side, consumed by [`run`].
#[derive(Debug)]
pub struct AuditWriter {
    rx: mpsc::Receiver<AuditRecord>,
    store: Store,
}

/// A connected log and writer.
pub fn channel(store: Store) -> (AuditLog, AuditWriter) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (AuditLog { tx }, AuditWriter { rx, store })
}

impl AuditLog {
    /// Queues a row; false when the queue is full (or the writer stopped) and the row was dropped.
    pub fn record(&self, row: AuditRecord) -> bool {
        self.tx.try_send(row).is_ok()
    }
}

/// Writes queued rows until shutdown, then drains what is queued and returns.
pub async fn run(mut writer: AuditWriter, shutdown: tokio_util::sync::CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let received = tokio::select! {
            n = writer.rx.recv_many(&mut batch, BATCH) => n,
            () = shutdown.cancelled() => {
                while let Ok(row) = writer.rx.try_recv() {
                    batch.push(row);
                }
                0
            }
        };
        if !batch.is_empty() {
            let rows = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if let Err(e) = writer.store.audit_append(rows).await {
                tracing::error!(error = %format!("{e:#}"), "cannot write audit rows");
            }
        }
        if received == 0 {
            break;
        }
    }
}
