//! WebSockets on `/api/*` and `/auth/*` over real loopback sockets: a tokio-tungstenite client → Waggle
//! → a fake SaaS (axum) that verifies the signed handshake before upgrading and echoes frames.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::client::Response as HandshakeResponse;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use waggle::signing;

use crate::fakes::saas_ws::{FakeSaas, Seen};
use crate::harness::{APP_ID, SECRET, TestApp, appapi_token, closed_url};

const WAIT: Duration = Duration::from_secs(5);

// --- Waggle and the client --------------------------------------------------------------------------

async fn waggle(saas_url: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut builder = TestApp::builder().env("WAGGLE_SERVICE_URL", saas_url);
    for (k, v) in extra {
        builder = builder.env(k, v);
    }
    builder.spawn().await
}

type Client = WebSocketStream<TcpStream>;

/// Opens `ws://<waggle><path>` offering subprotocol `chat`, with AppAPI headers for alice when
/// `appapi`, plus `extra` headers.
async fn open(
    app: &TestApp,
    path: &str,
    appapi: bool,
    extra: &[(&'static str, &'static str)],
) -> Result<(Client, HandshakeResponse), tungstenite::Error> {
    let addr = app.addr.expect("TCP mode");
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    let headers = request.headers_mut();
    if appapi {
        headers.insert("authorization-app-api", appapi_token("alice", SECRET).parse().unwrap());
        headers.insert("ex-app-id", APP_ID.parse().unwrap());
        headers.insert("ex-app-version", "0.1.0".parse().unwrap());
        headers.insert("aa-version", "32".parse().unwrap());
    }
    headers.insert("sec-websocket-protocol", "chat".parse().unwrap());
    for (k, v) in extra {
        headers.append(*k, v.parse().unwrap());
    }
    let stream = TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async_with_config(request, stream, None).await
}

/// The HTTP status of a refused upgrade.
fn refused_status(result: Result<(Client, HandshakeResponse), tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, the upgrade succeeded"),
    }
}

/// The next data or close message, skipping pings and pongs.
async fn recv(client: &mut Client) -> Message {
    loop {
        let next = tokio::time::timeout(WAIT, client.next()).await.expect("a message in time");
        match next.expect("the stream is open").expect("no error") {
            Message::Ping(_) | Message::Pong(_) => {}
            msg => return msg,
        }
    }
}

/// Reads until the stream ends and returns the close frame received, if any.
async fn close_received(client: &mut Client) -> Option<(u16, String)> {
    let mut close = None;
    while let Ok(Some(next)) = tokio::time::timeout(WAIT, client.next()).await {
        match next {
            Ok(Message::Close(frame)) => {
                close =
                    Some(frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string())));
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    close
}

// --- Tests ------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_handshake_is_signed_for_the_user_and_carries_no_nextcloud_credentials() {
    let saas = FakeSaas::start().await;
    let app = waggle(&saas.url(), &[]).await;
    let (mut client, response) = open(
        &app,
        "/api/ws?room=1",
        true,
        &[("cookie", "nc_session_id=abc; oc_sessionPassphrase=x"), ("authorization", "Bearer leak")],
    )
    .await
    .expect("upgraded");
    assert_eq!(response.headers().get("sec-websocket-protocol").unwrap(), "chat");

    let handshakes = saas.handshakes();
    assert_eq!(handshakes.len(), 1);
    let h = &handshakes[0];
    assert_eq!(h.path, "/api/ws");
    assert_eq!(h.verified, Ok(()), "the signature verifies upstream");
    assert_eq!(h.header("x-waggle-user"), Some("alice"));
    assert_eq!(h.header("x-waggle-instance"), Some("octestinstance"));
    assert_eq!(h.header("content-digest"), Some(signing::EMPTY_BODY_DIGEST));
    assert_eq!(h.header("sec-websocket-protocol"), Some("chat"));
    for leaked in
        ["authorization-app-api", "ex-app-id", "ex-app-version", "aa-version", "cookie", "authorization"]
    {
        assert!(h.header(leaked).is_none(), "{leaked} reached the SaaS");
    }
    client.close(None).await.unwrap();
    app.stop().await.unwrap();
}

#[tokio::test]
async fn text_and_binary_frames_echo_byte_exact_and_a_client_close_propagates() {
    let saas = FakeSaas::start().await;
    let app = waggle(&saas.url(), &[]).await;
    let (mut client, _) = open(&app, "/api/ws", true, &[]).await.expect("upgraded");

    let text = "héllo ✓ 🐝 \u{0}end";
    let binary: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    client.send(Message::text(text)).await.unwrap();
    assert_eq!(recv(&mut client).await, Message::text(text));
    client.send(Message::binary(binary.clone())).await.unwrap();
    assert_eq!(recv(&mut client).await, Message::binary(binary.clone()));

    client.close(Some(CloseFrame { code: CloseCode::from(4000), reason: "bye".into() })).await.unwrap();
    assert_eq!(close_received(&mut client).await, Some((4000, "bye".to_owned())), "the close is answered");
    let frames = saas.wait_for_frames(|f| f.iter().any(|s| matches!(s, Seen::Close(_)))).await;
    assert_eq!(
        frames,
        [Seen::Text(text.to_owned()), Seen::Binary(binary), Seen::Close(Some((4000, "bye".to_owned())))]
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_close_from_the_saas_reaches_the_client_with_its_code_and_reason() {
    let saas = FakeSaas::start().await;
    let app = waggle(&saas.url(), &[]).await;
    let (mut client, _) = open(&app, "/api/ws", true, &[]).await.expect("upgraded");
    client.send(Message::text("close-me")).await.unwrap();
    assert_eq!(close_received(&mut client).await, Some((4001, "server bye".to_owned())));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn pings_from_the_client_reach_the_saas_and_its_pong_comes_back() {
    let saas = FakeSaas::start().await;
    let app = waggle(&saas.url(), &[]).await;
    let (mut client, _) = open(&app, "/api/ws", true, &[]).await.expect("upgraded");
    client.send(Message::Ping("p-1".into())).await.unwrap();
    saas.wait_for_frames(|f| f.contains(&Seen::Ping(b"p-1".to_vec()))).await;
    // Waggle answers the ping itself and relays the SaaS's answer too: at least one pong arrives.
    let pong = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Ok(Message::Pong(p))) = client.next().await {
                return p;
            }
        }
    })
    .await
    .expect("a pong");
    assert_eq!(&pong[..], b"p-1");
    client.close(None).await.unwrap();
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_saas_that_never_answers_the_handshake_is_504() {
    // Accepts connections and never answers.
    let (addr, holder) = crate::fakes::saas_ws::silent().await;
    let app = waggle(&format!("http://{addr}/"), &[("WAGGLE_PROXY__HEADER_TIMEOUT_SECS", "1")]).await;
    assert_eq!(refused_status(open(&app, "/api/ws", true, &[]).await), 504);
    app.stop().await.unwrap();
    holder.abort();
}

#[tokio::test]
async fn auth_paths_are_bridged_too() {
    let saas = FakeSaas::start().await;
    let app = waggle(&saas.url(), &[]).await;
    let (mut client, _) = open(&app, "/auth/ws", true, &[]).await.expect("upgraded");
    client.send(Message::text("hi")).await.unwrap();
    assert_eq!(recv(&mut client).await, Message::text("hi"));
    let h = &saas.handshakes()[0];
    assert_eq!((h.path.as_str(), &h.verified), ("/auth/ws", &Ok(())));
    client.close(None).await.unwrap();
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_upgrade_without_appapi_headers_is_401_and_never_reaches_the_saas() {
    let saas = FakeSaas::start().await;
    let app = waggle(&saas.url(), &[]).await;
    assert_eq!(refused_status(open(&app, "/api/ws", false, &[]).await), 401);
    // The refusal is answered before any connection is opened, so none can be pending now.
    assert_eq!(saas.connections(), 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_tenant_key_the_upgrade_is_503_and_never_connects() {
    let saas = FakeSaas::start().await;
    let app = TestApp::builder()
        .env("WAGGLE_SERVICE_URL", &saas.url())
        .env("WAGGLE_TENANT_KEY", "")
        .env("WAGGLE_TENANT_KEY_ID", "")
        .spawn()
        .await;
    assert_eq!(refused_status(open(&app, "/api/ws", true, &[]).await), 503);
    // The refusal is answered before any connection is opened, so none can be pending now.
    assert_eq!(saas.connections(), 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_cross_origin_upgrade_is_refused_before_connecting() {
    let saas = FakeSaas::start().await;
    let app = waggle(&saas.url(), &[]).await;
    let result = open(&app, "/api/ws", true, &[("origin", "https://evil.example")]).await;
    assert_eq!(refused_status(result), 403);
    // The refusal is answered before any connection is opened, so none can be pending now.
    assert_eq!(saas.connections(), 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn saas_down_is_502_without_an_upgrade() {
    let app = waggle(&closed_url(), &[]).await;
    assert_eq!(refused_status(open(&app, "/api/ws", true, &[]).await), 502);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_refusal_by_the_saas_is_relayed_without_an_upgrade() {
    let saas = FakeSaas::start().await;
    let app = waggle(&saas.url(), &[]).await;
    let result = open(&app, "/api/forbidden", true, &[]).await;
    let Err(tungstenite::Error::Http(response)) = result else { panic!("expected a refusal") };
    assert_eq!(response.status(), 403);
    assert_eq!(response.body().as_deref(), Some(&b"no websockets for you"[..]));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_message_over_the_size_limit_closes_with_1009_instead_of_being_relayed() {
    let saas = FakeSaas::start().await;
    let app = waggle(&saas.url(), &[("WAGGLE_PROXY__WS_MAX_MESSAGE_BYTES", "1024")]).await;
    let (mut client, _) = open(&app, "/api/ws", true, &[]).await.expect("upgraded");
    client.send(Message::binary(vec![7u8; 1000])).await.unwrap();
    assert_eq!(recv(&mut client).await, Message::binary(vec![7u8; 1000]), "under the limit is relayed");

    client.send(Message::binary(vec![9u8; 4096])).await.unwrap();
    let close = close_received(&mut client).await;
    assert_eq!(close.map(|c| c.0), Some(1009));
    let frames = saas.wait_for_frames(|f| f.iter().any(|s| matches!(s, Seen::Close(_)))).await;
    assert_eq!(frames, [Seen::Binary(vec![7u8; 1000]), Seen::Close(Some((1001, "going away".to_owned())))]);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn stopping_the_app_closes_both_sides_with_1001() {
    let saas = FakeSaas::start().await;
    let app = waggle(&saas.url(), &[]).await;
    let (mut client, _) = open(&app, "/api/ws", true, &[]).await.expect("upgraded");
    client.send(Message::text("still here")).await.unwrap();
    assert_eq!(recv(&mut client).await, Message::text("still here"));

    let stopping = tokio::spawn(app.stop());
    assert_eq!(close_received(&mut client).await, Some((1001, "going away".to_owned())));
    saas.wait_for_frames(|f| f.contains(&Seen::Close(Some((1001, "going away".to_owned()))))).await;
    tokio::time::timeout(WAIT, stopping).await.expect("the app stops in time").unwrap().unwrap();
}

#[tokio::test]
async fn an_idle_bridge_pings_both_sides_every_15_seconds() {
    let saas = FakeSaas::start().await;
    let app = waggle(&saas.url(), &[]).await;
    let (mut client, _) = open(&app, "/api/ws", true, &[]).await.expect("upgraded");
    let ping = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match client.next().await {
                Some(Ok(Message::Ping(payload))) => return payload,
                Some(Ok(_)) => {}
                other => panic!("the stream ended: {other:?}"),
            }
        }
    })
    .await
    .expect("a ping within 20 s");
    assert!(!ping.is_empty());
    saas.wait_for_frames(|f| f.iter().any(|s| matches!(s, Seen::Ping(_)))).await;
    // The client answers the ping (tungstenite flushes the pong on the next write); the bridge is
    // still open, and the answers to the bridge's own pings are relayed to neither side.
    client.send(Message::text("after ping")).await.unwrap();
    assert_eq!(recv(&mut client).await, Message::text("after ping"));
    assert!(!saas.frames().iter().any(|s| matches!(s, Seen::Pong(_))), "{:?}", saas.frames());
    client.close(None).await.unwrap();
    app.stop().await.unwrap();
}
