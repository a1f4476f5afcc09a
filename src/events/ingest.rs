//! `POST /hooks/nextcloud`: webhook_listeners deliveries (registered by `events::listeners`).
//! Authenticated with the per-install secret (constant time), acknowledged at once (AppAPI waits
//! 3 s), then the affected user is reconciled in the background. A delivery is only a hint: nothing
//! is enqueued from it directly, so a lost or forged hint cannot add or remove anything.
//!
//! AppAPI delivers directly (not through its proxy), with its own headers for the triggering user
//! and no Content-Type.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use hkdf::Hkdf;
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use super::reconcile::Reconciler;
use crate::auth::AppApiCaller;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::shutdown::Background;

/// Where deliveries arrive (relative to the app).
pub(crate) const HOOK_URI: &str = "/hooks/nextcloud";
/// Largest delivery accepted.
pub(crate) const MAX_DELIVERY: usize = 512 * 1024;

/// The per-install hook secret: HKDF-SHA256 of `APP_SECRET` (one-way, so Nextcloud storing it
/// reveals nothing about `APP_SECRET`), stable across restarts and reinstalls.
pub fn hook_secret(app_secret: &[u8], app_id: &str) -> String {
    let hk = Hkdf::<Sha256>::new(Some(b"waggle/webhook-listener/v1"), app_secret);
    let mut out = [0u8; 32];
    hk.expand(app_id.as_bytes(), &mut out).expect("32 bytes is a valid HKDF output length");
    out.iter().map(|b| format!("{b:02x}")).collect()
}

/// The affected user of a delivery: `user.uid`, else `event.user.uid`, `event.user_id`,
/// `event.uid`. Pure; fuzzed.
pub fn affected_user(payload: &Value) -> Option<String> {
    let candidates = [
        payload.pointer("/user/uid"),
        payload.pointer("/event/user/uid"),
        payload.pointer("/event/user_id"),
        payload.pointer("/event/uid"),
    ];
    candidates
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|u| !u.is_empty() && u.len() <= 64 && !u.chars().any(char::is_control) && !u.contains(':'))
        .map(str::to_owned)
}

/// What the hook route uses, built once.
#[derive(Debug)]
pub(crate) struct HookIngest {
    /// The expected per-install secret.
    secret: String,
    reconciler: Arc<Reconciler>,
    metrics: Arc<Metrics>,
    background: Background,
}

impl HookIngest {
    /// The route's parts; `secret` is [`hook_secret`] of this install.
    pub(crate) fn new(
        secret: String,
        reconciler: Arc<Reconciler>,
        metrics: Arc<Metrics>,
        background: Background,
    ) -> Self {
        Self { secret, reconciler, metrics, background }
    }
}

/// `POST /hooks/nextcloud`: authenticate, acknowledge at once, reconcile the affected user in the
/// background. Bodies over [`MAX_DELIVERY`] are refused (413).
pub(crate) async fn deliver(
    State(hooks): State<Arc<HookIngest>>,
    _appapi: AppApiCaller,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = request.into_parts();
    let given = parts.headers.get(crate::headers::X_WAGGLE_HOOK_SECRET).map(|v| v.as_bytes()).unwrap_or(b"");
    if !bool::from(given.ct_eq(hooks.secret.as_bytes())) {
        hooks.metrics.incr("webhook_deliveries_refused");
        tracing::warn!("webhook delivery with a wrong or missing secret refused");
        return Err(ApiError::InvalidHookSecret);
    }
    let body = axum::body::to_bytes(body, MAX_DELIVERY)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { cap: MAX_DELIVERY as u64 })?;
    // Deliveries carry no Content-Type: parse the bytes as JSON whatever the headers say.
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    hooks.metrics.incr("webhook_deliveries");
    if let Some(uid) = affected_user(&payload) {
        let reconciler = hooks.reconciler.clone();
        hooks.background.spawn(async move {
            if let Err(e) = reconciler.reconcile_user(&uid).await {
                tracing::warn!(error = %e, "targeted reconcile failed; the schedule will catch up");
            }
        });
    }
    Ok(Json(json!({ "accepted": true })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_secret_is_stable_and_secret_dependent() {
        let a = hook_secret(b"s1", "waggle");
        assert_eq!(a, hook_secret(b"s1", "waggle"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, hook_secret(b"s2", "waggle"));
        assert!(!a.contains("s1"));
    }

    #[test]
    fn the_affected_user_is_found_in_every_payload_shape() {
        assert_eq!(affected_user(&json!({"user": {"uid": "alice"}, "event": {}})).as_deref(), Some("alice"));
        assert_eq!(
            affected_user(&json!({"user": null, "event": {"user_id": "bob"}})).as_deref(),
            Some("bob")
        );
        assert_eq!(affected_user(&json!({"event": {"user": {"uid": "carol"}}})).as_deref(), Some("carol"));
        assert_eq!(affected_user(&json!({"user": {"uid": "a:b"}})), None);
        assert_eq!(affected_user(&json!({"user": {"uid": ""}})), None);
        assert_eq!(affected_user(&json!("nope")), None);
    }
}
