//! `/nc/*`: the thin handler of the callback pipeline (see `callbacks.rs`). The signature was
//! verified by the route layer; here: audit begins → policy → forward → response streamed with the
//! audit written at its end.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse as _, Response};

use super::audit::CallAudit;
use super::forward::NcForwarder;
use super::policy::CallbackPolicy;
use crate::audit::AuditLog;
use crate::auth::signature::VerifiedCall;
use crate::error::ApiError;
use crate::headers;
use crate::metrics::Metrics;
use crate::store::AuditRecord;

/// What the `/nc` handler uses, built once.
#[derive(Debug)]
pub(crate) struct Callbacks {
    /// The admin's policy.
    pub(crate) policy: CallbackPolicy,
    /// Forwarding to Nextcloud.
    pub(crate) forward: NcForwarder,
    /// The audit log.
    pub(crate) audit: AuditLog,
    /// Counters.
    pub(crate) metrics: Arc<Metrics>,
}

/// Any method on `/nc/*`, after `SignatureAuth` verified it.
pub(crate) async fn callback(
    State(cb): State<Arc<Callbacks>>,
    call: VerifiedCall,
    request: Request,
) -> Response {
    let started = Instant::now();
    let at_ms = crate::clock::now_ms();
    let (parts, body) = request.into_parts();
    let Some(target) = call.target.clone() else {
        return ApiError::Internal(anyhow::anyhow!("a callback was verified without a target"))
            .into_response();
    };
    tracing::Span::current().record(crate::telemetry::fields::NC_USER, call.user.as_str());
    let request_id =
        parts.headers.get(headers::X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let audit = CallAudit::begin(
        cb.audit.clone(),
        AuditRecord {
            at_ms,
            request_id,
            user: call.user.clone(),
            method: call.method.to_string(),
            target: target.path_and_query(),
            status: 0,
            bytes_in: 0,
            bytes_out: 0,
            duration_ms: 0,
        },
        started,
    );

    if let Err(e) = cb.policy.check(&call.method, &target, &call.user) {
        cb.metrics.incr(&format!("nc_policy_refused_{}", e.code()));
        let refused = ApiError::from(e).into_response();
        audit.finish(refused.status().as_u16(), 0, 0);
        return refused;
    }

    match cb.forward.forward(&cb.policy, &call, &target, &parts.headers, body).await {
        Ok((response, bytes_in)) => audit.stream(response, bytes_in),
        Err(e) => {
            let refused = e.into_response();
            audit.finish(refused.status().as_u16(), 0, 0);
            refused
        }
    }
}
