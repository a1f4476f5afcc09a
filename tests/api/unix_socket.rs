//! HaRP mode: with `HP_SHARED_KEY` set, Waggle listens on the unix socket and nowhere else.

use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::harness::{APP_ID, SECRET, TestApp, appapi_token};

async fn get(socket: &std::path::Path, path: &str, auth: Option<String>) -> (u16, String) {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::get(path).header("host", "localhost");
    if let Some(a) = auth {
        req = req.header("authorization-app-api", a).header("ex-app-id", APP_ID).header("aa-version", "32");
    }
    let response = sender.send_request(req.body(Empty::<Bytes>::new()).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn listens_on_the_harp_socket_when_the_shared_key_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("exapp.sock");
    // A stale socket file from a previous run must not stop the start.
    let _stale = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let app = TestApp::builder()
        .env("HP_SHARED_KEY", "harp-key")
        .env("WAGGLE_HARP_SOCKET", socket.to_str().unwrap())
        .spawn()
        .await;
    assert!(app.addr.is_none(), "no TCP listener in HaRP mode");
    let (status, body) = get(&socket, "/heartbeat", None).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, _) = get(&socket, "/", Some(appapi_token("alice", SECRET))).await;
    assert_eq!(status, 200);
    let (status, _) = get(&socket, "/", None).await;
    assert_eq!(status, 401);

    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);

    // The healthcheck subcommand's probe works over the socket.
    let mut env: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for (k, v) in [
        ("APP_SECRET", SECRET),
        ("NEXTCLOUD_URL", "http://127.0.0.1:9/"),
        ("HP_SHARED_KEY", "harp-key"),
        ("WAGGLE_HARP_SOCKET", socket.to_str().unwrap()),
    ] {
        env.insert(k.into(), v.into());
    }
    let settings = waggle::Settings::load_from(&env).unwrap();
    waggle::healthcheck::run(&settings, Duration::from_secs(2)).await.unwrap();

    app.stop().await.unwrap();
    assert!(!socket.exists(), "the socket is removed at shutdown");
}
