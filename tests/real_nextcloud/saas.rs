//! The fake SaaS on loopback: it provisions the tenant key (a pending bootstrap, approved on the first
//! poll), verifies the RFC 9421 signature of every `/api` and `/auth` request and the Standard Webhooks
//! signature of every event, and records what arrived. Anything that fails verification, or that
//! carries a Nextcloud secret, is recorded as a violation; the suite fails on any violation.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};
use tokio::sync::Notify;
use waggle::signing::{Message, VerifyPolicy, content_digest_value, verify_request};

/// One `/api` or `/auth` request that verified.
#[derive(Debug, Clone)]
pub(crate) struct ApiCall {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) user: String,
    pub(crate) body: Bytes,
}

/// One delivered event that verified.
#[derive(Debug, Clone)]
pub(crate) struct Delivered {
    pub(crate) at: Instant,
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) data: Value,
}

#[derive(Default)]
struct Log {
    bootstraps: Vec<Value>,
    polls: usize,
    api: Vec<ApiCall>,
    events: Vec<Delivered>,
    violations: Vec<String>,
}

struct Shared {
    key_id: String,
    key: String,
    instance_id: String,
    /// Strings that must never reach the SaaS (APP_SECRET, passwords, session cookies…).
    secrets: Mutex<Vec<String>>,
    log: Mutex<Log>,
    changed: Notify,
    addr: Mutex<String>,
}

/// Handle on the running fake.
#[derive(Clone)]
pub(crate) struct Saas {
    shared: Arc<Shared>,
    /// `http://127.0.0.1:<port>/`.
    pub(crate) url: String,
}

impl Saas {
    /// Starts the fake; `instance_id` is what every signed request must carry.
    pub(crate) async fn start(instance_id: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            key_id: format!("k-real-{}", &nonce()[..8]),
            key: format!("tenant-{}", nonce()),
            instance_id: instance_id.to_owned(),
            secrets: Mutex::new(vec![]),
            log: Mutex::new(Log::default()),
            changed: Notify::new(),
            addr: Mutex::new(addr.to_string()),
        });
        let app = Router::new()
            .route("/waggle/v1/bootstrap", post(bootstrap))
            .route("/waggle/v1/bootstrap/poll/{token}", get(poll))
            .route("/waggle/v1/events", post(events))
            .route("/api/{*path}", any(api))
            .route("/auth/{*path}", any(api))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { shared, url: format!("http://{addr}/") })
    }

    /// The key the fake issued (id, secret).
    pub(crate) fn key(&self) -> (String, String) {
        (self.shared.key_id.clone(), self.shared.key.clone())
    }

    /// Adds strings that must never appear in what Waggle sends.
    pub(crate) fn forbid(&self, secret: &str) {
        if !secret.is_empty() {
            self.shared.secrets.lock().unwrap().push(secret.to_owned());
        }
    }

    pub(crate) fn bootstraps(&self) -> Vec<Value> {
        self.shared.log.lock().unwrap().bootstraps.clone()
    }

    pub(crate) fn api_calls(&self) -> Vec<ApiCall> {
        self.shared.log.lock().unwrap().api.clone()
    }

    pub(crate) fn events(&self) -> Vec<Delivered> {
        self.shared.log.lock().unwrap().events.clone()
    }

    pub(crate) fn violations(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().violations.clone()
    }

    /// Waits until `pred` holds over the recorded events, or fails after `timeout`.
    pub(crate) async fn wait_for_event(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Delivered) -> bool,
    ) -> anyhow::Result<Delivered> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return Ok(e);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let seen: Vec<String> =
                    self.events().iter().map(|e| format!("{} {}", e.kind, e.data)).collect();
                anyhow::bail!("no {what} within {timeout:?}; events so far: {seen:#?}");
            }
        }
    }

    /// How often the pending bootstrap was polled.
    pub(crate) fn polls(&self) -> usize {
        self.shared.log.lock().unwrap().polls
    }
}

fn nonce() -> String {
    waggle::signing::random_nonce(&mut rand::rng()).replace(['-', '_'], "x")
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn violation(shared: &Shared, what: String) -> Response {
    eprintln!("fake SaaS: violation: {what}");
    shared.log.lock().unwrap().violations.push(what);
    shared.changed.notify_waiters();
    (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "refused by the fake SaaS"}))).into_response()
}

/// Headers that must never leave Nextcloud's side, and any header value holding a known secret.
fn leaks(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Option<String> {
    for name in [
        "cookie",
        "authorization",
        "authorization-app-api",
        "ex-app-id",
        "ex-app-version",
        "aa-version",
        "aa-request-id",
        "x-origin-ip",
        "harp-shared-key",
        "origin",
        "referer",
    ] {
        if headers.contains_key(name) {
            return Some(format!("header {name} reached the SaaS"));
        }
    }
    let secrets = shared.secrets.lock().unwrap().clone();
    for (name, value) in headers {
        let v = String::from_utf8_lossy(value.as_bytes());
        if let Some(s) = secrets.iter().find(|s| v.contains(s.as_str())) {
            return Some(format!("header {name} carries a secret ({} chars)", s.len()));
        }
    }
    let b = String::from_utf8_lossy(body);
    secrets
        .iter()
        .find(|s| b.contains(s.as_str()))
        .map(|s| format!("the body carries a secret ({} chars)", s.len()))
}

async fn bootstrap(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.log.lock().unwrap().bootstraps.push(v);
    shared.changed.notify_waiters();
    let addr = shared.addr.lock().unwrap().clone();
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "poll_url": format!("http://{addr}/waggle/v1/bootstrap/poll/{}", nonce()),
            "retry_after": 1,
            "message": "waiting for the vendor's approval"
        })),
    )
        .into_response()
}

async fn poll(State(shared): State<Arc<Shared>>) -> Response {
    shared.log.lock().unwrap().polls += 1;
    axum::Json(json!({ "key_id": shared.key_id, "tenant_key": shared.key, "organization": "org-real" }))
        .into_response()
}

async fn events(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let hook = standardwebhooks::Webhook::from_bytes(shared.key.as_bytes().to_vec()).unwrap();
    if let Err(e) = hook.verify(&body, &headers) {
        return violation(&shared, format!("event signature did not verify: {e:?}"));
    }
    if let Some(leak) = leaks(&shared, &headers, &body) {
        return violation(&shared, format!("event: {leak}"));
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    shared.log.lock().unwrap().events.push(Delivered {
        at: Instant::now(),
        id,
        kind: v["type"].as_str().unwrap_or("").to_owned(),
        data: v["data"].clone(),
    });
    shared.changed.notify_waiters();
    StatusCode::NO_CONTENT.into_response()
}

async fn api(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return violation(&shared, "the request body did not arrive whole".to_owned());
    };
    let authority = shared.addr.lock().unwrap().clone();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let message = Message {
        method: &parts.method,
        scheme: "http",
        authority: &authority,
        path: &path,
        query: query.as_deref(),
        headers: &parts.headers,
    };
    let key_id = shared.key_id.clone();
    let key = shared.key.clone();
    if let Err(e) =
        verify_request(&message, |id| (id == key_id).then_some(key.as_bytes()), &VerifyPolicy::api(now()))
    {
        return violation(&shared, format!("{} {path}: signature did not verify: {e:?}", parts.method));
    }
    let header = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if header("content-digest") != content_digest_value(&body) {
        return violation(
            &shared,
            format!("{} {path}: Content-Digest does not match the body", parts.method),
        );
    }
    if header("x-waggle-instance") != shared.instance_id {
        return violation(
            &shared,
            format!("{path}: X-Waggle-Instance is {:?}, not the instance id", header("x-waggle-instance")),
        );
    }
    if let Some(leak) = leaks(&shared, &parts.headers, &body) {
        return violation(&shared, format!("{} {path}: {leak}", parts.method));
    }
    let call = ApiCall {
        method: parts.method.to_string(),
        path: path.clone(),
        user: header("x-waggle-user"),
        body: body.clone(),
    };
    shared.log.lock().unwrap().api.push(call);
    shared.changed.notify_waiters();
    answer(&path, &parts.method, &header("x-waggle-user"), query.as_deref(), body.len())
}

/// The fake's answers. Streams are sent chunked (no `Content-Length`), as a SaaS would.
fn answer(path: &str, method: &axum::http::Method, user: &str, query: Option<&str>, len: usize) -> Response {
    let chunked = |chunks: Vec<Bytes>, content_type: &'static str| {
        let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        let mut r = Response::new(Body::from_stream(stream));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    match path {
        // Three chunks of JSON lines.
        "/api/chunked" => chunked(
            (1..=3).map(|i| Bytes::from(format!("{{\"part\":{i},\"user\":\"{user}\"}}\n"))).collect(),
            "application/x-ndjson",
        ),
        // 3 MiB in 48 chunks: above Waggle's in-memory threshold, so it is spooled.
        "/api/large" => chunked(
            (0..48u8).map(|i| Bytes::from(vec![b'a' + (i % 26); 64 * 1024])).collect(),
            "application/octet-stream",
        ),
        // Server-Sent Events that end.
        "/api/sse" => chunked(
            (1..=3).map(|i| Bytes::from(format!("id: {i}\ndata: tick {i}\n\n"))).collect(),
            "text/event-stream",
        ),
        "/api/cookies" => {
            let mut r = axum::Json(json!({"cookies": 2})).into_response();
            r.headers_mut()
                .append(header::SET_COOKIE, HeaderValue::from_static("saas_a=1; Path=/; HttpOnly"));
            r.headers_mut()
                .append(header::SET_COOKIE, HeaderValue::from_static("saas_b=2; Path=/; HttpOnly"));
            r
        }
        _ => axum::Json(json!({
            "method": method.as_str(), "path": path, "query": query, "user": user, "len": len
        }))
        .into_response(),
    }
}
