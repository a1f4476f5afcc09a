//! The fake SaaS over HTTP: an echo service for `/api` and `/auth`, the key service (bootstrap,
//! pending polls, rotation) and the event webhook, which checks every delivery with the
//! `standardwebhooks` crate (the reference implementation, independent of ours).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use waggle::signing::{Message, VerifyPolicy, verify_request};

use super::{Fake, Recorded};
use crate::harness::{TENANT_KEY, now};

/// Where events are delivered (the default `<service>/waggle/v1/events`).
pub(crate) const EVENTS: &str = "/waggle/v1/events";
/// The bootstrap endpoint.
pub(crate) const BOOTSTRAP: &str = "/waggle/v1/bootstrap";
/// The rotation endpoint.
pub(crate) const ROTATE: &str = "/waggle/v1/keys/rotate";

/// A fake SaaS that echoes what it got: method, path, query, body length.
pub(crate) async fn echo() -> Fake {
    let saas = Fake::start().await;
    for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        for path in ["/api/echo", "/auth/echo", "/api/v1/files"] {
            saas.on_async(method.clone(), path, None, |r: Recorded| async move {
                let body = json!({
                    "method": r.method.as_str(),
                    "uri": r.uri,
                    "len": r.body.len(),
                });
                (StatusCode::OK, axum::Json(body)).into_response()
            });
        }
    }
    saas
}

/// The key service's answer carrying a key.
pub(crate) fn key_answer(id: &str, key: &str) -> Value {
    json!({ "status": "active", "key_id": id, "tenant_key": key, "organization": "Acme" })
}

/// Verifies a recorded request's API-profile signature against `key_id`/`key`.
pub(crate) fn verify_api(r: &Recorded, authority: &str, key_id: &str, key: &str) -> Result<(), String> {
    let (path, query) = r.uri.split_once('?').map_or((r.uri.as_str(), None), |(p, q)| (p, Some(q)));
    let m = Message { method: &r.method, scheme: "http", authority, path, query, headers: &r.headers };
    verify_request(&m, |id| (id == key_id).then_some(key.as_bytes()), &VerifyPolicy::api(now()))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A fake key service whose bootstrap answers with `key_id`/`key`, `delay` late (a slow SaaS), and
/// that serves `GET /api/echo`.
pub(crate) async fn key_service(key_id: &'static str, key: &'static str, delay: Duration) -> Fake {
    let saas = Fake::start().await;
    saas.on_async(Method::POST, BOOTSTRAP, None, move |_| async move {
        tokio::time::sleep(delay).await;
        (StatusCode::OK, axum::Json(key_answer(key_id, key))).into_response()
    });
    saas.on(Method::GET, "/api/echo", StatusCode::OK, json!({"ok": true}));
    saas
}

/// A fake key service that answers the bootstrap "pending" (202, `message`, a poll URL), keeps the
/// first `pending_polls` polls pending, then approves with `key_id`/`key`.
pub(crate) async fn key_service_pending(
    key_id: &'static str,
    key: &'static str,
    message: &str,
    pending_polls: usize,
) -> Fake {
    let saas = Fake::start().await;
    let poll = format!("{}waggle/v1/bootstrap/pending/p1", saas.url());
    let pending = json!({"status": "pending", "poll_url": poll, "retry_after": 0, "message": message});
    saas.on(Method::POST, BOOTSTRAP, StatusCode::ACCEPTED, pending.clone());
    saas.on(Method::GET, "/waggle/v1/bootstrap/pending/p1", StatusCode::OK, key_answer(key_id, key));
    // The newest rule wins while it has uses.
    saas.on_async(Method::GET, "/waggle/v1/bootstrap/pending/p1", Some(pending_polls), move |_| {
        let p = pending.clone();
        async move { (StatusCode::ACCEPTED, axum::Json(p)).into_response() }
    });
    saas
}

/// A fake key service that refuses the bootstrap with `status` and an error body.
pub(crate) async fn key_service_refusing(status: StatusCode, code: &str, message: &str) -> Fake {
    let saas = Fake::start().await;
    saas.on(Method::POST, BOOTSTRAP, status, json!({"error": {"code": code, "message": message}}));
    saas
}

/// Adds a rotation endpoint that checks the request is signed with `current` and answers `next`.
pub(crate) fn serve_rotation(
    saas: &Fake,
    current: (&'static str, &'static str),
    next: (&'static str, &'static str),
) {
    let authority = saas.addr.to_string();
    saas.on_async(Method::POST, ROTATE, None, move |r: Recorded| {
        let ok = verify_api(&r, &authority, current.0, current.1).is_ok();
        async move {
            if ok {
                (StatusCode::OK, axum::Json(key_answer(next.0, next.1))).into_response()
            } else {
                (StatusCode::UNAUTHORIZED, "bad signature").into_response()
            }
        }
    });
}

/// Whether a delivery verifies with the reference library and the test tenant key.
pub(crate) fn verified(r: &Recorded) -> bool {
    let hook = standardwebhooks::Webhook::from_bytes(TENANT_KEY.as_bytes().to_vec()).unwrap();
    hook.verify(&r.body, &r.headers).is_ok()
}

/// A fake SaaS answering deliveries with the statuses in `script` (then 200 forever); a delivery
/// whose signature does not verify is answered 401.
pub(crate) async fn events(script: Vec<u16>) -> Fake {
    let saas = Fake::start().await;
    let script = Arc::new(Mutex::new(script.into_iter()));
    saas.on_async(Method::POST, EVENTS, None, move |r: Recorded| {
        let next = script.lock().unwrap().next().unwrap_or(200);
        let ok = verified(&r);
        async move {
            if !ok {
                return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
            }
            StatusCode::from_u16(next).unwrap().into_response()
        }
    });
    saas
}

/// A fake SaaS that accepts every delivery with 204.
pub(crate) async fn events_sink() -> Fake {
    let saas = Fake::start().await;
    saas.on(Method::POST, EVENTS, StatusCode::NO_CONTENT, Value::Null);
    saas
}

/// [`events_sink`] on a given port (a SaaS that comes back up where it was).
pub(crate) async fn events_sink_on(port: u16) -> Fake {
    let saas = Fake::start_on(port).await;
    saas.on(Method::POST, EVENTS, StatusCode::NO_CONTENT, Value::Null);
    saas
}

/// A webhook where a delivery whose body mentions `held` waits (up to 5 s) until another delivery
/// has arrived: both finish promptly only when they are delivered in parallel.
pub(crate) async fn events_held_until_another(held: &'static str) -> Fake {
    events_held_until_others(held, 1).await
}

/// A webhook where a delivery whose body mentions `held` waits (up to 5 s) until `others` other
/// deliveries have arrived.
pub(crate) async fn events_held_until_others(held: &'static str, others: u32) -> Fake {
    let saas = Fake::start().await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    saas.on_async(Method::POST, EVENTS, None, move |r: Recorded| {
        let gate = gate.clone();
        async move {
            if String::from_utf8_lossy(&r.body).contains(held) {
                let _ = tokio::time::timeout(Duration::from_secs(5), gate.acquire_many(others)).await;
            } else {
                gate.add_permits(1);
            }
            StatusCode::OK.into_response()
        }
    });
    saas
}
