//! The fake SaaS's WebSocket side: an axum server that verifies the signed handshake (refusing with
//! 401 when it does not verify) before upgrading, records handshakes and frames, and echoes; plus a
//! listener that accepts connections and never answers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use tokio::sync::Notify;
use waggle::signing::{self, VerifyPolicy};

use crate::harness::{TENANT_KEY, TENANT_KEY_ID, now};

/// How long a wait for frames may take.
const WAIT: Duration = Duration::from_secs(5);

/// What the fake SaaS saw on one socket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Seen {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

/// One handshake as it arrived, and whether its signature verified.
#[derive(Debug, Clone)]
pub(crate) struct Handshake {
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) verified: Result<(), String>,
}

impl Handshake {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Log {
    connections: AtomicUsize,
    handshakes: Mutex<Vec<Handshake>>,
    frames: Mutex<Vec<Seen>>,
    changed: Notify,
}

#[derive(Clone)]
pub(crate) struct FakeSaas {
    pub(crate) addr: SocketAddr,
    log: Arc<Log>,
}

impl FakeSaas {
    pub(crate) async fn start() -> Self {
        let log = Arc::new(Log::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counted = log.clone();
        let listener = listener.tap_io(move |_| {
            counted.connections.fetch_add(1, Ordering::SeqCst);
        });
        let app = Router::new()
            .route("/api/ws", get(handshake))
            .route("/auth/ws", get(handshake))
            .route("/api/forbidden", get(|| async { (StatusCode::FORBIDDEN, "no websockets for you") }))
            .with_state(log.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, log }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub(crate) fn connections(&self) -> usize {
        self.log.connections.load(Ordering::SeqCst)
    }

    pub(crate) fn handshakes(&self) -> Vec<Handshake> {
        self.log.handshakes.lock().unwrap().clone()
    }

    pub(crate) fn frames(&self) -> Vec<Seen> {
        self.log.frames.lock().unwrap().clone()
    }

    /// Waits until `pred` holds over the frames seen, or panics.
    pub(crate) async fn wait_for_frames(&self, pred: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.log.changed.notified();
            let frames = self.frames();
            if pred(&frames) {
                return frames;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("the fake SaaS did not see the expected frames; saw {:#?}", self.frames());
            }
        }
    }
}

/// Verifies the signed handshake (refusing with 401 when it does not verify), records it, then
/// upgrades (choosing `chat` when offered) and echoes.
async fn handshake(State(log): State<Arc<Log>>, upgrade: WebSocketUpgrade, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let verified = verify(&parts.method, &parts.uri, &parts.headers);
    let ok = verified.is_ok();
    log.handshakes.lock().unwrap().push(Handshake {
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        verified,
    });
    log.changed.notify_waiters();
    if !ok {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    upgrade.protocols(["chat"]).on_upgrade(move |socket| echo(socket, log))
}

fn verify(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), String> {
    let now = now();
    let authority = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let message =
        signing::Message { method, scheme: "http", authority, path: uri.path(), query: uri.query(), headers };
    signing::verify_request(
        &message,
        |id| (id == TENANT_KEY_ID).then_some(TENANT_KEY.as_bytes()),
        &VerifyPolicy::api(now),
    )
    .map_err(|e| e.to_string())?;
    let digest = headers.get("content-digest").and_then(|v| v.to_str().ok()).ok_or("no content-digest")?;
    signing::verify_content_digest(digest, b"").map_err(|e| e.to_string())
}

/// Echoes text and binary; `close-me` makes it close with 4001.
async fn echo(mut socket: WebSocket, log: Arc<Log>) {
    while let Some(Ok(msg)) = socket.recv().await {
        let seen = match &msg {
            ws::Message::Text(t) => Seen::Text(t.as_str().to_owned()),
            ws::Message::Binary(b) => Seen::Binary(b.to_vec()),
            ws::Message::Ping(p) => Seen::Ping(p.to_vec()),
            ws::Message::Pong(p) => Seen::Pong(p.to_vec()),
            ws::Message::Close(c) => Seen::Close(c.as_ref().map(|c| (c.code, c.reason.as_str().to_owned()))),
        };
        log.frames.lock().unwrap().push(seen);
        log.changed.notify_waiters();
        let reply = match msg {
            ws::Message::Text(t) if t.as_str() == "close-me" => {
                ws::Message::Close(Some(ws::CloseFrame { code: 4001, reason: "server bye".into() }))
            }
            m @ (ws::Message::Text(_) | ws::Message::Binary(_)) => m,
            // Pings are answered by axum; after a close, the next `recv` flushes the reply and ends.
            _ => continue,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}

/// A listener that accepts connections and never answers; dropped (and its sockets closed) with
/// the returned guard.
pub(crate) async fn silent() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, holder)
}
