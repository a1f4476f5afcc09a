//! The WebSocket bridge, shared plumbing for any upstream (WebSockets reach the app only through
//! HaRP). The caller prepares the upstream handshake (URI and headers, signed by its own policy, as
//! `saas::ws` does for `/api` and `/auth`); this module owns the rest.
//!
//! Order per upgrade: connect to the upstream within the connect timeout (TCP, TLS for `https`, then
//! the handshake on the `ws(s)` form of the URI with the prepared headers). Only when the upstream has
//! accepted is the client's upgrade answered, with the subprotocol the upstream chose; a refusal is
//! relayed as an ordinary HTTP response (hop-by-hop headers stripped) and nothing is upgraded.
//!
//! Then one task (tracked by the shared [`Background`]) pumps frames both ways: text, binary, ping,
//! pong and close (code and reason relayed), with the message and frame size capped on both sides. A
//! side that has not been sent anything for 15 s gets a ping (HaRP drops idle tunnels). When either
//! side closes or fails, the other is closed too; when shutdown begins both get `1001 going away`.

use std::time::Duration;

use super::http::Connector;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};
use http::Uri;
use http::header::{self, HeaderMap};
use http::uri::Scheme;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::client::Response as HandshakeResponse;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame as TsCloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message as TsMessage, Utf8Bytes as TsUtf8Bytes};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing::Instrument as _;

use super::{ProxyError, strip_hop_by_hop};
use crate::shutdown::Background;

/// A side that has been sent nothing for this long gets a ping (HaRP ≤ 0.4.3 cut idle tunnels
/// at 30 s; appapi.md §7.4 asks for 15–20 s).
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Payload of our own keepalive pings; the pongs answering them are not relayed.
const KEEPALIVE_PAYLOAD: &[u8] = b"waggle-keepalive";
/// How long the closing handshake may take once the bridge is ending.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// 1001: the endpoint is going away (shutdown, or the other side vanished).
const GOING_AWAY: u16 = 1001;
/// 1002: protocol error.
const PROTOCOL_ERROR: u16 = 1002;
/// 1007: a text message was not UTF-8.
const INVALID_PAYLOAD: u16 = 1007;
/// 1009: a message or frame over the size limit.
const TOO_BIG: u16 = 1009;
/// 1011: the upstream failed (1014 "bad gateway" is refused as invalid by some browsers).
const UPSTREAM_FAILED: u16 = 1011;

type UpstreamIo = TokioIo<hyper_rustls::MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>>;
type UpstreamSocket = WebSocketStream<UpstreamIo>;

/// The upstream handshake the caller prepared: the `http(s)` form of the URI (the `ws(s)` form has
/// the same `@authority`, `@path` and `@query`, so a signature over one holds for the other) and the
/// headers to send, already filtered and signed.
#[derive(Debug)]
pub(crate) struct Handshake {
    /// Upstream URI (`http` or `https`).
    pub(crate) uri: Uri,
    /// Headers added to the handshake request.
    pub(crate) headers: HeaderMap,
}

/// Limits for one bridge.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest message and frame, both directions.
    pub(crate) max_message: usize,
    /// How long connecting and the upstream handshake may take.
    pub(crate) connect_timeout: Duration,
}

/// Answers a WebSocket upgrade by first opening `handshake` upstream, then upgrading the client and
/// bridging the two in a task under `background`, in `span`. A refusal by the upstream comes back as
/// its HTTP response (the caller applies its response policy to it).
pub(crate) async fn bridge(
    upgrade: WebSocketUpgrade,
    handshake: Handshake,
    connector: Connector,
    limits: Limits,
    background: &Background,
    span: tracing::Span,
) -> Result<Response, ProxyError> {
    let connecting = connect(connector, &handshake.uri, handshake.headers, limits.max_message);
    let (upstream, accepted) = match tokio::time::timeout(limits.connect_timeout, connecting).await {
        Err(_) => return Err(ProxyError::Timeout),
        Ok(Err(Refusal::Status(response))) => return Ok(relay_refusal(*response)),
        Ok(Err(Refusal::Failed(e))) => return Err(ProxyError::Unreachable(e)),
        Ok(Ok(connected)) => connected,
    };

    let mut upgrade = upgrade.max_message_size(limits.max_message).max_frame_size(limits.max_message);
    if let Some(protocol) =
        accepted.headers().get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok())
    {
        upgrade = upgrade.protocols([protocol.to_owned()]);
    }
    let shutdown = background.token();
    // Counts as a task from now until the pump ends, so shutdown waits for the close frames.
    let tracked = background.track();
    let failed_span = span.clone();
    Ok(upgrade
        .on_failed_upgrade(move |e| {
            failed_span.in_scope(|| tracing::debug!(error = %e, "the client upgrade failed"));
        })
        .on_upgrade(move |client| {
            async move {
                tracing::debug!("websocket bridged");
                pump(client, upstream, shutdown).await;
                drop(tracked);
            }
            .instrument(span)
        }))
}

/// Why the upstream handshake did not succeed.
enum Refusal {
    /// The SaaS answered the handshake with a status other than 101.
    Status(Box<HandshakeResponse>),
    /// Connecting, TLS or the handshake itself failed.
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

/// Opens the upstream WebSocket: TCP (and TLS for `https`) to the `http(s)` URI, then the handshake
/// on its `ws(s)` form with `headers` added.
async fn connect(
    connector: Connector,
    uri: &Uri,
    headers: HeaderMap,
    max: usize,
) -> Result<(UpstreamSocket, HandshakeResponse), Refusal> {
    let mut request = ws_form(uri)?.into_client_request().map_err(|e| Refusal::Failed(Box::new(e)))?;
    request.headers_mut().extend(headers);
    let stream = connector.oneshot(uri.clone()).await.map_err(Refusal::Failed)?;
    let config = WebSocketConfig::default().max_message_size(Some(max)).max_frame_size(Some(max));
    match tokio_tungstenite::client_async_with_config(request, TokioIo::new(stream), Some(config)).await {
        Ok(connected) => Ok(connected),
        Err(tungstenite::Error::Http(response)) => Err(Refusal::Status(response)),
        Err(e) => Err(Refusal::Failed(Box::new(e))),
    }
}

/// `http` → `ws`, `https` → `wss`; authority, path and query unchanged.
fn ws_form(uri: &Uri) -> Result<Uri, Refusal> {
    let scheme = if uri.scheme() == Some(&Scheme::HTTPS) { "wss" } else { "ws" };
    let mut parts = uri.clone().into_parts();
    parts.scheme = Some(scheme.parse().map_err(|e: http::uri::InvalidUri| Refusal::Failed(Box::new(e)))?);
    Uri::from_parts(parts).map_err(|e| Refusal::Failed(Box::new(e)))
}

/// The upstream refused the handshake: its status (and body, when it arrived whole) goes to the
/// client, hop-by-hop headers stripped.
fn relay_refusal(response: HandshakeResponse) -> Response {
    let (mut parts, body) = response.into_parts();
    tracing::debug!(status = parts.status.as_u16(), "the upstream refused the WebSocket handshake");
    strip_hop_by_hop(&mut parts.headers);
    let body = body.unwrap_or_default();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // tungstenite keeps only what arrived with the headers; a partial body is dropped.
    let body = if declared == Some(body.len()) {
        body
    } else {
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::CONTENT_TYPE);
        Vec::new()
    };
    Response::from_parts(parts, axum::body::Body::from(body))
}

// --- The pump ---------------------------------------------------------------------------------------

/// A frame, whichever library carried it.
#[derive(Debug)]
enum Frame {
    /// Text (valid UTF-8).
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    Close(Option<Close>),
}

/// A close frame's payload.
#[derive(Debug, Clone)]
struct Close {
    code: u16,
    /// UTF-8.
    reason: Bytes,
}

impl Close {
    fn new(code: u16, reason: &'static str) -> Self {
        Self { code, reason: Bytes::from_static(reason.as_bytes()) }
    }
}

/// One side of the bridge: how its library spells frames and failures.
trait Side {
    type Msg;
    type Error;
    /// `None` for what is not relayed.
    fn frame(msg: Self::Msg) -> Option<Frame>;
    /// `None` when the text is not UTF-8 (cannot happen: it was validated on the way in).
    fn message(frame: Frame) -> Option<Self::Msg>;
    /// The close code to tell this side after reading from it failed; `None` when the transport
    /// itself is gone.
    fn failure(error: &Self::Error) -> Option<u16>;
}

/// The browser's side (axum).
struct Client;
/// The SaaS side (tungstenite).
struct Upstream;

impl Side for Client {
    type Msg = ws::Message;
    type Error = axum::Error;

    fn frame(msg: ws::Message) -> Option<Frame> {
        Some(match msg {
            ws::Message::Text(t) => Frame::Text(t.into()),
            ws::Message::Binary(b) => Frame::Binary(b),
            ws::Message::Ping(p) => Frame::Ping(p),
            ws::Message::Pong(p) => Frame::Pong(p),
            ws::Message::Close(c) => Frame::Close(c.map(|c| Close { code: c.code, reason: c.reason.into() })),
        })
    }

    fn message(frame: Frame) -> Option<ws::Message> {
        Some(match frame {
            Frame::Text(t) => ws::Message::Text(ws::Utf8Bytes::try_from(t).ok()?),
            Frame::Binary(b) => ws::Message::Binary(b),
            Frame::Ping(p) => ws::Message::Ping(p),
            Frame::Pong(p) => ws::Message::Pong(p),
            Frame::Close(None) => ws::Message::Close(None),
            Frame::Close(Some(c)) => ws::Message::Close(Some(ws::CloseFrame {
                code: c.code,
                reason: ws::Utf8Bytes::try_from(c.reason).ok()?,
            })),
        })
    }

    fn failure(error: &axum::Error) -> Option<u16> {
        std::error::Error::source(error)
            .and_then(|e| e.downcast_ref::<tungstenite::Error>())
            .and_then(failure_code)
    }
}

impl Side for Upstream {
    type Msg = TsMessage;
    type Error = tungstenite::Error;

    fn frame(msg: TsMessage) -> Option<Frame> {
        Some(match msg {
            TsMessage::Text(t) => Frame::Text(t.into()),
            TsMessage::Binary(b) => Frame::Binary(b),
            TsMessage::Ping(p) => Frame::Ping(p),
            TsMessage::Pong(p) => Frame::Pong(p),
            TsMessage::Close(c) => {
                Frame::Close(c.map(|c| Close { code: c.code.into(), reason: c.reason.into() }))
            }
            TsMessage::Frame(_) => return None,
        })
    }

    fn message(frame: Frame) -> Option<TsMessage> {
        Some(match frame {
            Frame::Text(t) => TsMessage::Text(TsUtf8Bytes::try_from(t).ok()?),
            Frame::Binary(b) => TsMessage::Binary(b),
            Frame::Ping(p) => TsMessage::Ping(p),
            Frame::Pong(p) => TsMessage::Pong(p),
            Frame::Close(None) => TsMessage::Close(None),
            Frame::Close(Some(c)) => TsMessage::Close(Some(TsCloseFrame {
                code: CloseCode::from(c.code),
                reason: TsUtf8Bytes::try_from(c.reason).ok()?,
            })),
        })
    }

    fn failure(error: &tungstenite::Error) -> Option<u16> {
        failure_code(error)
    }
}

/// The close code for a read failure, or `None` when the connection itself is gone.
fn failure_code(error: &tungstenite::Error) -> Option<u16> {
    match error {
        tungstenite::Error::Capacity(_) => Some(TOO_BIG),
        tungstenite::Error::Utf8(_) => Some(INVALID_PAYLOAD),
        tungstenite::Error::Protocol(_) | tungstenite::Error::AttackAttempt => Some(PROTOCOL_ERROR),
        _ => None,
    }
}

/// Why one direction stopped.
#[derive(Debug)]
enum Stop {
    /// The source sent a close frame.
    Closed(Option<Close>),
    /// Reading the source failed; `Some(code)` when it can still be told why.
    Failed(Option<u16>),
    /// Writing to the destination failed.
    SinkFailed,
}

/// Why the bridge is ending.
#[derive(Debug)]
enum Ending {
    Shutdown,
    /// The client → SaaS direction stopped.
    FromClient(Stop),
    /// The SaaS → client direction stopped.
    FromUpstream(Stop),
}

/// What a side is told on the way out.
#[derive(Debug)]
enum Farewell {
    /// Send this close frame, then wait (briefly) for the reply.
    Close(Option<Close>),
    /// The side closed first: flush the reply tungstenite queued.
    Reply,
    /// The side is gone.
    Nothing,
}

impl Ending {
    /// (to the client, to the SaaS).
    fn farewells(self) -> (Farewell, Farewell) {
        let away = || Farewell::Close(Some(Close::new(GOING_AWAY, "going away")));
        let upstream_failed = || Farewell::Close(Some(Close::new(UPSTREAM_FAILED, "upstream failed")));
        match self {
            Self::Shutdown => (away(), away()),
            Self::FromClient(Stop::Closed(close)) => (Farewell::Reply, Farewell::Close(close)),
            Self::FromClient(Stop::Failed(Some(code))) => {
                (Farewell::Close(Some(Close::new(code, reason(code)))), away())
            }
            Self::FromClient(Stop::Failed(None)) | Self::FromUpstream(Stop::SinkFailed) => {
                (Farewell::Nothing, away())
            }
            Self::FromClient(Stop::SinkFailed) | Self::FromUpstream(Stop::Failed(None)) => {
                (upstream_failed(), Farewell::Nothing)
            }
            Self::FromUpstream(Stop::Closed(close)) => (Farewell::Close(close), Farewell::Reply),
            Self::FromUpstream(Stop::Failed(Some(code))) => {
                (upstream_failed(), Farewell::Close(Some(Close::new(code, reason(code)))))
            }
        }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        TOO_BIG => "message too big",
        INVALID_PAYLOAD => "invalid utf-8",
        _ => "protocol error",
    }
}

/// Relays both directions until one stops or `shutdown` is cancelled, then closes both sides.
async fn pump(client: WebSocket, upstream: UpstreamSocket, shutdown: CancellationToken) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();
    let ending = tokio::select! {
        () = shutdown.cancelled() => Ending::Shutdown,
        stop = relay::<Client, Upstream, _, _>(&mut client_rx, &mut upstream_tx) => Ending::FromClient(stop),
        stop = relay::<Upstream, Client, _, _>(&mut upstream_rx, &mut client_tx) => Ending::FromUpstream(stop),
    };
    tracing::debug!(?ending, "websocket bridge ending");
    let (to_client, to_upstream) = ending.farewells();
    let closing = async {
        tokio::join!(
            farewell::<Client, _, _>(&mut client_tx, &mut client_rx, to_client),
            farewell::<Upstream, _, _>(&mut upstream_tx, &mut upstream_rx, to_upstream),
        )
    };
    if tokio::time::timeout(CLOSE_WAIT, closing).await.is_err() {
        tracing::debug!("the closing handshake did not finish in time");
    }
}

/// Relays `from` → `to` until `from` closes or fails; pings `to` when it has been sent nothing for
/// [`KEEPALIVE`].
async fn relay<F, T, St, Si>(from: &mut St, to: &mut Si) -> Stop
where
    F: Side,
    T: Side,
    St: Stream<Item = Result<F::Msg, F::Error>> + Unpin,
    Si: Sink<T::Msg> + Unpin,
{
    let idle = tokio::time::sleep(KEEPALIVE);
    tokio::pin!(idle);
    loop {
        let frame = tokio::select! {
            () = &mut idle => Frame::Ping(Bytes::from_static(KEEPALIVE_PAYLOAD)),
            next = from.next() => match next {
                None => return Stop::Failed(None),
                Some(Err(e)) => return Stop::Failed(F::failure(&e)),
                Some(Ok(msg)) => match F::frame(msg) {
                    None => continue,
                    Some(Frame::Close(close)) => return Stop::Closed(close),
                    Some(Frame::Pong(p)) if p == KEEPALIVE_PAYLOAD => continue,
                    Some(frame) => frame,
                },
            },
        };
        let Some(msg) = T::message(frame) else { return Stop::Failed(Some(INVALID_PAYLOAD)) };
        if to.send(msg).await.is_err() {
            return Stop::SinkFailed;
        }
        idle.as_mut().reset(Instant::now() + KEEPALIVE);
    }
}

/// Says goodbye to one side (see [`Farewell`]).
async fn farewell<S, Si, St>(tx: &mut Si, rx: &mut St, farewell: Farewell)
where
    S: Side,
    Si: Sink<S::Msg> + Unpin,
    St: Stream<Item = Result<S::Msg, S::Error>> + Unpin,
{
    match farewell {
        Farewell::Nothing => {}
        Farewell::Reply => {
            let _ = tx.close().await;
        }
        Farewell::Close(close) => {
            let Some(msg) = S::message(Frame::Close(close)) else { return };
            if tx.send(msg).await.is_err() {
                return;
            }
            // Wait for the reply, discarding what was still in flight.
            while let Some(Ok(msg)) = rx.next().await {
                if matches!(S::frame(msg), Some(Frame::Close(_))) {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_form_maps_the_scheme_only() {
        let uri: Uri = "https://saas.example.com/base/api/ws?x=1".parse().unwrap();
        assert_eq!(ws_form(&uri).ok().unwrap().to_string(), "wss://saas.example.com/base/api/ws?x=1");
        let uri: Uri = "http://127.0.0.1:8080/api/ws".parse().unwrap();
        assert_eq!(ws_form(&uri).ok().unwrap().to_string(), "ws://127.0.0.1:8080/api/ws");
    }

    #[test]
    fn endings_close_the_other_side_with_a_sensible_code() {
        let code = |f: &Farewell| match f {
            Farewell::Close(Some(c)) => Some(c.code),
            _ => None,
        };
        let (c, u) = Ending::Shutdown.farewells();
        assert_eq!((code(&c), code(&u)), (Some(GOING_AWAY), Some(GOING_AWAY)));
        let (c, u) = Ending::FromClient(Stop::Closed(Some(Close::new(4000, "bye")))).farewells();
        assert!(matches!(c, Farewell::Reply));
        assert_eq!(code(&u), Some(4000));
        let (c, u) = Ending::FromClient(Stop::Failed(Some(TOO_BIG))).farewells();
        assert_eq!((code(&c), code(&u)), (Some(TOO_BIG), Some(GOING_AWAY)));
        let (c, u) = Ending::FromUpstream(Stop::Failed(None)).farewells();
        assert_eq!(code(&c), Some(UPSTREAM_FAILED));
        assert!(matches!(u, Farewell::Nothing));
        let (c, u) = Ending::FromUpstream(Stop::Closed(None)).farewells();
        assert!(matches!(c, Farewell::Close(None)));
        assert!(matches!(u, Farewell::Reply));
    }
}
