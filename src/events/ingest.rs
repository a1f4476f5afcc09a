//! The webhook fast path. Nextcloud 31 refuses user/group events as webhook_listeners events, so
//! reconciliation stays the source of truth; where a server accepts a class (probed one by one at
//! enable; a 400 means "not on this version"), its deliveries are a latency hint that triggers a
//! targeted reconcile of the affected user.
//!
//! Registered as the app (system context) with a relative uri, so AppAPI delivers to
//! `/hooks/nextcloud` directly (3 s timeout, no Content-Type). A per-install secret travels as
//! `authData` and is compared in constant time on arrival. Unregistered at disable.

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hkdf::Hkdf;
use http::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::auth::AppApiCaller;
use crate::state::AppState;

/// Where deliveries arrive (relative to the app).
pub const HOOK_URI: &str = "/hooks/nextcloud";
const API: &str = "/ocs/v2.php/apps/webhook_listeners/api/v1/webhooks";
const MAX_DELIVERY: usize = 512 * 1024;

/// Event classes probed at enable. User/group classes are refused on Nextcloud 31 (400), accepted
/// where a newer server makes them webhook-compatible.
pub const CANDIDATE_EVENTS: [&str; 8] = [
    "OCP\\User\\Events\\UserFirstTimeLoggedInEvent",
    "OCP\\User\\Events\\UserCreatedEvent",
    "OCP\\User\\Events\\UserChangedEvent",
    "OCP\\User\\Events\\UserDeletedEvent",
    "OCP\\Group\\Events\\UserAddedEvent",
    "OCP\\Group\\Events\\UserRemovedEvent",
    "OCP\\Group\\Events\\GroupCreatedEvent",
    "OCP\\Group\\Events\\GroupDeletedEvent",
];

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

/// Registers the accepted classes (idempotent: classes already registered for our uri are kept).
/// Returns the classes registered now or before.
pub async fn register(state: &AppState) -> Result<Vec<String>, String> {
    let nc = &state.nc;
    let existing: Value = match nc
        .ocs(Method::GET, &format!("{API}?uri={}", crate::nextcloud::encode_segment(HOOK_URI)), "", None)
        .await
    {
        Ok(v) => v,
        Err(e) if e.status() == Some(404) => {
            tracing::info!("webhook_listeners is not enabled; reconciliation alone keeps users in sync");
            return Ok(vec![]);
        }
        Err(e) => return Err(format!("cannot list webhook listeners: {e}")),
    };
    let known: Vec<String> = existing
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r["event"].as_str().map(|e| e.trim_start_matches('\\').to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let secret = hook_secret(state.settings.app.secret_bytes(), &state.settings.app.id);
    let mut registered = Vec::new();
    for class in CANDIDATE_EVENTS {
        if known.iter().any(|k| k == class) {
            registered.push(class.to_owned());
            continue;
        }
        let body = json!({
            "httpMethod": "POST",
            "uri": HOOK_URI,
            "event": class,
            "eventFilter": [],
            "userIdFilter": "",
            "headers": {},
            "authMethod": "header",
            "authData": { (crate::headers::X_WAGGLE_HOOK_SECRET.as_str()): secret },
        });
        match nc.ocs::<Value>(Method::POST, API, "", Some(&body)).await {
            Ok(row) => {
                tracing::info!(class, id = %row["id"], "webhook listener registered");
                registered.push(class.to_owned());
            }
            Err(e) if e.status() == Some(400) => {
                tracing::debug!(class, "not webhook-compatible on this Nextcloud")
            }
            Err(e) => return Err(format!("cannot register the webhook listener for {class}: {e}")),
        }
    }
    state.metrics.incr("webhook_listeners_registered");
    Ok(registered)
}

/// Deletes our listener rows; rows already gone are fine.
pub async fn unregister(state: &AppState) -> Result<(), String> {
    let nc = &state.nc;
    let rows: Value = match nc
        .ocs(Method::GET, &format!("{API}?uri={}", crate::nextcloud::encode_segment(HOOK_URI)), "", None)
        .await
    {
        Ok(v) => v,
        Err(e) if e.status() == Some(404) => return Ok(()),
        Err(e) => return Err(format!("cannot list webhook listeners: {e}")),
    };
    for id in rows.as_array().into_iter().flatten().filter_map(|r| r["id"].as_i64()) {
        match nc.ocs::<Value>(Method::DELETE, &format!("{API}/{id}"), "", None).await {
            Ok(_) => tracing::info!(id, "webhook listener removed"),
            Err(e) if matches!(e.status(), Some(404)) => {}
            Err(e) => return Err(format!("cannot remove webhook listener {id}: {e}")),
        }
    }
    Ok(())
}

/// `POST /hooks/nextcloud`: authenticate, acknowledge at once (AppAPI waits 3 s), reconcile the
/// affected user in the background. The delivery is only a hint: nothing is enqueued from it
/// directly, so a lost or forged hint cannot add or remove anything.
pub async fn deliver(State(state): State<AppState>, _appapi: AppApiCaller, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let expected = hook_secret(state.settings.app.secret_bytes(), &state.settings.app.id);
    let given = parts.headers.get(crate::headers::X_WAGGLE_HOOK_SECRET).map(|v| v.as_bytes()).unwrap_or(b"");
    if !bool::from(given.ct_eq(expected.as_bytes())) {
        state.metrics.incr("webhook_deliveries_refused");
        tracing::warn!("webhook delivery with a wrong or missing secret refused");
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": { "code": "invalid_hook_secret", "message": "unauthorized" } })),
        )
            .into_response();
    }
    // Deliveries carry no Content-Type: parse the bytes as JSON whatever the headers say.
    let Ok(bytes) = axum::body::to_bytes(Body::new(body), MAX_DELIVERY).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({ "error": { "code": "payload_too_large", "message": "too large" } })),
        )
            .into_response();
    };
    let payload: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    state.metrics.incr("webhook_deliveries");
    if let Some(uid) = affected_user(&payload) {
        let s = state.clone();
        state.tasks.spawn(async move {
            if let Err(e) = super::reconcile::reconcile_user(&s, &uid).await {
                tracing::warn!(error = %e, "targeted reconcile failed; the schedule will catch up");
            }
        });
    }
    (StatusCode::OK, Json(json!({ "accepted": true }))).into_response()
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
