//! Loopback fakes: [`Fake`], an axum server on 127.0.0.1:0 that records every request (method, URI,
//! headers, body) and answers from scripted rules, and the fakes built on it: Nextcloud (with its
//! user directory and webhook_listeners), the SaaS (echo, key service, event webhook) and the SaaS's
//! WebSocket endpoint. Spec files build their fakes here, never by hand.

pub(crate) mod nextcloud;
pub(crate) mod saas;
pub(crate) mod saas_ws;

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// One request as it crossed the wire.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: Method,
    pub(crate) uri: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Recorded {
    pub(crate) fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The body as JSON (`Null` when it is empty or not JSON).
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

type Responder = Arc<dyn Fn(Recorded) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

struct Rule {
    method: Method,
    path: String,
    remaining: Option<usize>,
    respond: Responder,
}

/// Answers that come before any scripted rule (what the real server does regardless of routes).
pub(crate) type Guard = fn(&Recorded) -> Option<Response>;

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<Recorded>>,
    rules: Mutex<VecDeque<Rule>>,
    arrived: Notify,
    guard: Option<Guard>,
}

/// A scripted HTTP server on loopback.
#[derive(Clone)]
pub(crate) struct Fake {
    pub(crate) addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Fake {
    pub(crate) async fn start() -> Self {
        Self::serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), None)
    }

    /// A fake whose `guard` answers first, before any rule (the platform's own checks).
    pub(crate) async fn start_guarded(guard: Guard) -> Self {
        Self::serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), Some(guard))
    }

    /// A fake on a given port (a service that comes back up where it was).
    pub(crate) async fn start_on(port: u16) -> Self {
        Self::serve(tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap(), None)
    }

    fn serve(listener: tokio::net::TcpListener, guard: Option<Guard>) -> Self {
        let shared = Arc::new(Shared { guard, ..Shared::default() });
        let addr = listener.local_addr().unwrap();
        let s = shared.clone();
        let app = Router::new().fallback(move |req: Request| handle(s.clone(), req));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, shared }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Answers `method path` with the async `respond` (newest rule wins; `times` limits its uses).
    pub(crate) fn on_async<F, Fut>(&self, method: Method, path: &str, times: Option<usize>, respond: F)
    where
        F: Fn(Recorded) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        let respond: Responder = Arc::new(move |r| Box::pin(respond(r)));
        self.shared.rules.lock().unwrap().push_front(Rule {
            method,
            path: path.to_owned(),
            remaining: times,
            respond,
        });
    }

    /// Answers `method path` with a fixed status and JSON body.
    pub(crate) fn on(&self, method: Method, path: &str, status: StatusCode, body: Value) {
        self.on_async(method, path, None, move |_| {
            let body = body.clone();
            async move { (status, axum::Json(body)).into_response() }
        });
    }

    /// Everything received so far.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Requests to `path`.
    pub(crate) fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path() == path).collect()
    }

    /// Waits until `pred` holds over the log, or panics after `timeout`.
    pub(crate) async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&[Recorded]) -> bool,
    ) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            let log = self.requests();
            if pred(&log) {
                return log;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("condition not met within {timeout:?}; received: {:#?}", self.requests());
            }
        }
    }
}

async fn handle(shared: Arc<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.clone(),
        uri: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body,
    };
    shared.log.lock().unwrap().push(recorded.clone());
    shared.arrived.notify_waiters();
    if let Some(answer) = shared.guard.and_then(|guard| guard(&recorded)) {
        return answer;
    }
    let responder = {
        let mut rules = shared.rules.lock().unwrap();
        let found = rules.iter_mut().find(|r| r.method == recorded.method && r.path == recorded.path());
        match found {
            Some(rule) => {
                if let Some(n) = rule.remaining.as_mut() {
                    *n -= 1;
                }
                let respond = rule.respond.clone();
                rules.retain(|r| r.remaining != Some(0));
                Some(respond)
            }
            None => None,
        }
    };
    match responder {
        Some(respond) => respond(recorded).await,
        None => (StatusCode::NOT_FOUND, Body::from("no rule")).into_response(),
    }
}

/// An OCS failure envelope with `status` as both HTTP status and `statuscode`.
pub(crate) fn ocs_fail(status: u16, message: &str) -> Response {
    let body =
        json!({"ocs": {"meta": {"status": "failure", "statuscode": status, "message": message}, "data": []}});
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

/// An OCS success envelope.
pub(crate) fn ocs_ok(data: &Value) -> Value {
    json!({ "ocs": { "meta": { "status": "ok", "statuscode": 200, "message": "OK" }, "data": data } })
}

/// A gate a scripted answer waits at until the test opens it, so a test decides when a fake
/// answers instead of guessing with a delay. Starts closed; stays open once opened.
#[derive(Clone)]
pub(crate) struct Gate(Arc<tokio::sync::watch::Sender<bool>>);

impl Gate {
    pub(crate) fn closed() -> Self {
        Self(Arc::new(tokio::sync::watch::Sender::new(false)))
    }

    pub(crate) fn open(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once the gate is open.
    pub(crate) async fn pass(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}
