//! Key routes: the ADMIN status and rotation trigger, and the SaaS's signed rotation announcement
//! (`/saas/keys/announce`, PUBLIC like `/nc`, but its own purpose tag and never through `/nc`).

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::AppApiCaller;
use crate::signing::{self, Component, Message, Purpose, VerifyPolicy};
use crate::state::AppState;

/// `GET /admin/tenant-key`: the key state, never key material.
pub async fn status(State(state): State<AppState>, _admin: AppApiCaller) -> Json<Value> {
    Json(json!({ "tenant_key": state.keys.status() }))
}

/// `POST /admin/tenant-key/rotate`: asks the SaaS for a new key.
pub async fn rotate(State(state): State<AppState>, admin: AppApiCaller) -> Response {
    tracing::info!(nc.user = %admin.user, "tenant key rotation requested by an admin");
    match crate::keys::bootstrap::rotate(&state, "admin", None).await {
        Ok(id) => (StatusCode::OK, Json(json!({ "rotated": true, "key_id": id }))).into_response(),
        Err(message) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": { "code": "rotation_failed", "message": message } })),
        )
            .into_response(),
    }
}

/// `POST /admin/tenant-key/bootstrap`: provisions a key now if there is none (shares the single
/// flight with `/init` and enable). Answers once the key exists, or with the error.
pub async fn bootstrap(State(state): State<AppState>, _admin: AppApiCaller) -> Response {
    match crate::keys::bootstrap::ensure_key(&state).await {
        Ok(()) => (StatusCode::OK, Json(json!({ "tenant_key": state.keys.status() }))).into_response(),
        Err(message) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": { "code": "bootstrap_failed", "message": message } })),
        )
            .into_response(),
    }
}

const ANNOUNCE_BODY_CAP: usize = 4096;

fn refused() -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({ "error": { "code": "invalid_signature", "message": "the request signature is not valid" } })))
        .into_response()
}

/// `POST /saas/keys/announce`: the SaaS says a new key is ready. Signed with the CURRENT key
/// (`tag="waggle-key"`, covering `@method`, `content-digest`, `content-type`); the body
/// `{"instance_id","key_id"}` carries no key material. Waggle then fetches the key itself from the
/// SaaS over its direct, signed channel.
pub async fn announce(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(Body::new(body), ANNOUNCE_BODY_CAP).await else {
        return refused();
    };
    let now = crate::keys::unix_now();
    let policy = VerifyPolicy {
        purpose: Purpose::KeyAnnounce,
        now,
        max_age: state.settings.callback.max_age_secs,
        max_future: state.settings.callback.max_future_secs,
        required: vec![
            Component::Method,
            Component::Field(crate::headers::CONTENT_DIGEST),
            Component::Field(http::header::CONTENT_TYPE),
        ],
    };
    let message = Message::from_uri(&parts.method, &parts.uri, &parts.headers);
    // Only the current key may announce its successor.
    let current = state.keys.current_id();
    let verified = signing::verify_request(
        &message,
        |id| {
            (current.as_deref() == Some(id))
                .then(|| state.keys.verification_key(id))
                .flatten()
                .map(|k| k.secret().to_vec())
        },
        &policy,
    );
    let digest_ok = parts
        .headers
        .get(crate::headers::CONTENT_DIGEST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| signing::verify_content_digest(v, &bytes).is_ok());
    let verified = match verified {
        Ok(v) if digest_ok => v,
        other => {
            let reason = other.err().map_or("digest_mismatch", |e| e.code());
            state.metrics.incr(&format!("key_announce_refused_{reason}"));
            tracing::warn!(reason, "key announcement refused");
            return refused();
        }
    };
    if state.callback.check_nonce(&verified.keyid, &verified.nonce, now).is_err() {
        state.metrics.incr("key_announce_refused_nonce_replayed");
        return refused();
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let instance = state.nc.instance().get();
    if body["instance_id"].as_str() != instance.as_deref() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": { "code": "instance_mismatch", "message": "not this instance" } })),
        )
            .into_response();
    }
    let Some(key_id) = body["key_id"].as_str().filter(|k| !k.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": { "code": "bad_request", "message": "key_id missing" } })),
        )
            .into_response();
    };
    match crate::keys::bootstrap::rotate(&state, "announced", Some(key_id)).await {
        Ok(id) => (StatusCode::OK, Json(json!({ "rotated": true, "key_id": id }))).into_response(),
        Err(message) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": { "code": "rotation_failed", "message": message } })),
        )
            .into_response(),
    }
}
