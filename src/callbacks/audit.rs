//! The audit of one `/nc` call: a log line and a row in the audit table, written once the response
//! body has been streamed to the end (or dropped), with the bytes that went each way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use http_body_util::BodyExt as _;

use crate::audit::AuditLog;
use crate::store::AuditRecord;

/// An audit record being filled in; written by [`CallAudit::finish`] or when the streamed body ends.
#[derive(Debug)]
pub(crate) struct CallAudit {
    log: AuditLog,
    record: AuditRecord,
    started: Instant,
}

impl CallAudit {
    /// Begins the record of a call that arrived at `at_ms` (and at `started`).
    pub(crate) fn begin(log: AuditLog, record: AuditRecord, started: Instant) -> Self {
        Self { log, record, started }
    }

    /// Writes the line and the row now.
    pub(crate) fn finish(mut self, status: u16, bytes_in: u64, bytes_out: u64) {
        self.record.status = status;
        self.record.bytes_in = bytes_in;
        self.record.bytes_out = bytes_out;
        self.record.duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let r = self.record;
        tracing::info!(
            target: "waggle::audit",
            request_id = %r.request_id, nc.user = %r.user, method = %r.method, target_path = %r.target,
            status = r.status, bytes_in = r.bytes_in, bytes_out = r.bytes_out, duration_ms = r.duration_ms,
            "nc call"
        );
        self.log.record(r);
    }

    /// Counts the response bytes as they stream; the audit is written when the body ends or drops.
    pub(crate) fn stream(self, response: Response, bytes_in: u64) -> Response {
        let status = response.status().as_u16();
        let counted = Arc::new(AtomicU64::new(0));
        let guard = Guard { audit: Some(self), counted: counted.clone(), status, bytes_in };
        response.map(move |body| {
            let mut guard = Some(guard);
            Body::new(body.map_frame(move |frame| {
                if let Some(data) = frame.data_ref() {
                    counted.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                // Keep the guard alive as long as the body.
                let _ = guard.as_mut();
                frame
            }))
        })
    }
}

struct Guard {
    audit: Option<CallAudit>,
    counted: Arc<AtomicU64>,
    status: u16,
    bytes_in: u64,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(audit) = self.audit.take() {
            audit.finish(self.status, self.bytes_in, self.counted.load(Ordering::Relaxed));
        }
    }
}
