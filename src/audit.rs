//! The audit log of `/nc` calls and connector events: one JSON log line per record (written by the
//! caller) and a row in the bounded audit table, written by ONE task in batches so a burst of calls
//! costs one transaction per batch instead of one blocking task each. The queue is bounded; when it
//! is full a row is dropped (the log line already exists) and counted.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::store::{AuditRecord, Store};

/// Rows waiting for the writer.
const QUEUE: usize = 10_000;
/// Rows per transaction at most.
const BATCH: usize = 512;

/// The sending side, cloned into whoever audits (the `/nc` route, key provisioning).
#[derive(Debug, Clone)]
pub(crate) struct AuditLog {
    tx: mpsc::Sender<AuditRecord>,
    metrics: Arc<Metrics>,
}

/// The receiving side, consumed by [`run`].
#[derive(Debug)]
pub(crate) struct AuditWriter {
    rx: mpsc::Receiver<AuditRecord>,
    store: Store,
}

/// A connected log and writer; dropped rows are counted in `metrics` (`audit_rows_dropped`).
pub(crate) fn channel(store: Store, metrics: Arc<Metrics>) -> (AuditLog, AuditWriter) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (AuditLog { tx, metrics }, AuditWriter { rx, store })
}

impl AuditLog {
    /// Queues a row; when the queue is full (or the writer stopped) the row is dropped and counted
    /// (the caller has already written the log line).
    pub(crate) fn record(&self, row: AuditRecord) {
        if self.tx.try_send(row).is_err() {
            self.metrics.incr("audit_rows_dropped");
        }
    }

    /// Records a connector event (bootstrap, rotation) in the log and the audit table.
    pub(crate) fn connector_event(&self, method: &str, target: &str) {
        let record = AuditRecord {
            at_ms: crate::clock::now_ms(),
            request_id: String::new(),
            user: String::new(),
            method: method.to_owned(),
            target: target.to_owned(),
            status: 200,
            bytes_in: 0,
            bytes_out: 0,
            duration_ms: 0,
        };
        tracing::info!(target: "waggle::audit", method, target_path = target, "connector event");
        self.record(record);
    }
}

/// Writes queued rows until shutdown, then drains what is queued and returns.
pub(crate) async fn run(mut writer: AuditWriter, shutdown: tokio_util::sync::CancellationToken) {
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
