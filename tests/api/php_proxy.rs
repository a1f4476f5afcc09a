//! AppAPI 5.0.2's PHP proxy (`/index.php/apps/app_api/proxy/<appid>/…`) as a loopback fake, faithful
//! to what the real one does to answers (observed on Nextcloud 31.0.6, `tests/real_nextcloud`): it
//! reads the whole answer, de-chunks it, keeps only the first value of each header, and still copies
//! `Transfer-Encoding: chunked` onto the plain body. Clients then fail on every chunked answer. Waggle
//! answers requests that came through it (`X-Origin-IP`) with a `Content-Length`; direct and HaRP
//! requests keep streaming.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use waggle::signing::{CallbackRequest, SigningKey, sign_callback};

use crate::fakes::saas::echo as saas;
use crate::fakes::{Fake, Recorded};
use crate::harness::{APP_ID, SECRET, TENANT_KEY, TENANT_KEY_ID, TestApp, now};

async fn app_with(saas: &Fake, extra: &[(&str, &str)]) -> TestApp {
    let mut b = TestApp::builder().saas(saas);
    for (k, v) in extra {
        b = b.env(k, v);
    }
    b.spawn().await
}

/// The fake proxy in front of `upstream` (Waggle or any server), acting for `user`.
async fn php_proxy(upstream: String, user: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((conn, peer)) = listener.accept().await else { return };
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let _ = relay(conn, peer, &upstream, user).await;
            });
        }
    });
    addr
}

/// One request: parse it, forward it as AppAPI does, answer with AppAPI 5.0.2's framing.
async fn relay(
    mut conn: tokio::net::TcpStream,
    peer: SocketAddr,
    upstream: &str,
    user: &str,
) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    let head_len = loop {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "client went away");
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(len) = req.parse(&buf)? {
            break len;
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&buf)?;
    let method = Method::from_bytes(req.method.unwrap_or("GET").as_bytes())?;
    let path = req.path.unwrap_or("/");
    let inner = path.strip_prefix(&format!("/index.php/apps/app_api/proxy/{APP_ID}")).unwrap_or(path);
    let length: usize = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_len..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = conn.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "body cut short");
        body.extend_from_slice(&chunk[..n]);
    }

    // Forwarded: the client's headers minus Content-Length, X-Origin-IP and AppAPI's own, then
    // X-Origin-IP and the AppAPI headers for the logged-in user.
    let mut out = reqwest::header::HeaderMap::new();
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if matches!(name.as_str(), "content-length" | "x-origin-ip" | "authorization-app-api" | "host") {
            continue;
        }
        out.append(reqwest::header::HeaderName::from_bytes(name.as_bytes())?, h.value.try_into()?);
    }
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{SECRET}"));
    for (k, v) in [
        ("x-origin-ip", peer.ip().to_string()),
        ("aa-version", "5.0.2".to_owned()),
        ("ex-app-id", APP_ID.to_owned()),
        ("ex-app-version", "0.1.0".to_owned()),
        ("authorization-app-api", token),
        ("aa-request-id", "km23GPiigL8m6RpDqE8o".to_owned()),
    ] {
        out.insert(k, v.parse()?);
    }
    let client = reqwest::Client::new();
    let answer = client.request(method, format!("{upstream}{inner}")).headers(out).body(body).send().await?;

    // The answer: read whole (de-chunked), first value of each header, Transfer-Encoding kept.
    let status = answer.status();
    let mut head = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    let mut seen = std::collections::HashSet::new();
    for (name, value) in answer.headers() {
        if seen.insert(name.clone()) && name != "connection" {
            head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
        }
    }
    head.push_str("connection: close\r\n\r\n");
    let bytes = answer.bytes().await?;
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(&bytes).await?;
    conn.shutdown().await?;
    Ok(())
}

/// Three chunks, no length: how a SaaS (or Nextcloud under php-fpm) streams.
fn chunked(parts: &'static [&'static str], content_type: &'static str) -> Response {
    let stream = futures_util::stream::iter(parts.iter().map(|p| Ok::<_, std::io::Error>(Bytes::from(*p))));
    Response::builder().header("content-type", content_type).body(Body::from_stream(stream)).unwrap()
}

const PARTS: &[&str] = &["{\"part\":1}\n", "{\"part\":2}\n", "{\"part\":3}\n"];

fn proxied(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}/index.php/apps/app_api/proxy/{APP_ID}{path}")
}

#[tokio::test]
async fn the_fake_php_proxy_corrupts_chunked_answers_as_appapi_5_0_2_does() {
    let server = Fake::start().await;
    server.on_async(Method::GET, "/api/stream", None, |_: Recorded| async {
        chunked(PARTS, "application/x-ndjson")
    });
    server.on(Method::GET, "/api/plain", StatusCode::OK, serde_json::json!({"ok": true}));
    let proxy = php_proxy(server.url().trim_end_matches('/').to_owned(), "alice").await;
    let client = reqwest::Client::new();

    let r = client.get(proxied(proxy, "/api/stream")).send().await.unwrap();
    assert_eq!(r.headers()["transfer-encoding"], "chunked", "the header is copied onto a plain body");
    assert!(r.bytes().await.is_err(), "a client cannot parse it");
    // With a Content-Length the same proxy delivers intact.
    let r = client.get(proxied(proxy, "/api/plain")).send().await.unwrap();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"ok": true}));
}

#[tokio::test]
async fn answers_through_the_php_proxy_carry_a_content_length_and_arrive_intact() {
    let saas = saas().await;
    saas.on_async(Method::GET, "/api/stream", None, |_: Recorded| async {
        chunked(PARTS, "application/x-ndjson")
    });
    saas.on_async(Method::GET, "/api/sse", None, |_: Recorded| async {
        chunked(&["data: one\n\n", "data: two\n\n"], "text/event-stream")
    });
    // 3 MiB: above the in-memory threshold (1 MiB), so it is spooled to disk first.
    saas.on_async(Method::GET, "/api/large", None, |_: Recorded| async {
        let chunks = (0..48u8).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![b'a' + i % 26; 64 * 1024])));
        Response::new(Body::from_stream(futures_util::stream::iter(chunks)))
    });
    let app = app_with(&saas, &[]).await;
    let proxy = php_proxy(app.url(""), "alice").await;
    let client = reqwest::Client::new();

    let r = client.get(proxied(proxy, "/api/stream")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "33");
    assert_eq!(r.text().await.unwrap(), PARTS.concat());

    let r = client.get(proxied(proxy, "/api/sse")).send().await.unwrap();
    assert!(r.headers().contains_key("content-length"), "SSE arrives whole, at the end, through this proxy");
    assert_eq!(r.text().await.unwrap(), "data: one\n\ndata: two\n\n");

    let r = client.get(proxied(proxy, "/api/large")).send().await.unwrap();
    assert_eq!(r.headers()["content-length"], (48 * 64 * 1024).to_string().as_str());
    let body = r.bytes().await.unwrap();
    assert!(body.chunks(64 * 1024).enumerate().all(|(i, c)| c.iter().all(|b| *b == b'a' + (i % 26) as u8)));
    let spool = app.storage_path().join("spool");
    let leftovers = std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "the response spool file is removed");
}

#[tokio::test]
async fn direct_requests_keep_streaming_without_a_length() {
    let saas = saas().await;
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let released = std::sync::Mutex::new(Some(released));
    saas.on_async(Method::GET, "/api/stream", None, move |_: Recorded| {
        let gate = released.lock().unwrap().take();
        async move {
            let first = futures_util::stream::once(async { Ok::<_, std::io::Error>(Bytes::from("first\n")) });
            let rest = futures_util::stream::once(async move {
                if let Some(gate) = gate {
                    let _ = gate.await;
                }
                Ok::<_, std::io::Error>(Bytes::from("last\n"))
            });
            Response::new(Body::from_stream(first.chain(rest)))
        }
    });
    let app = app_with(&saas, &[]).await;
    // As HaRP or a direct caller: AppAPI headers, no X-Origin-IP.
    let r = app.request(Method::GET, "/api/stream", "alice").send().await.unwrap();
    assert!(!r.headers().contains_key("content-length"));
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    let mut stream = r.bytes_stream();
    let first =
        tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("first chunk in time");
    assert_eq!(first.unwrap().unwrap(), Bytes::from("first\n"), "the first chunk arrives before the end");
    release.send(()).unwrap();
}

#[tokio::test]
async fn an_answer_over_the_buffer_cap_is_a_clear_502() {
    let saas = saas().await;
    saas.on_async(Method::GET, "/api/stream", None, |_: Recorded| async {
        chunked(PARTS, "application/x-ndjson")
    });
    let app = app_with(&saas, &[("WAGGLE_PROXY__PHP_PROXY_RESPONSE_CAP_BYTES", "20")]).await;
    let proxy = php_proxy(app.url(""), "alice").await;
    let r = reqwest::Client::new().get(proxied(proxy, "/api/stream")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_response_too_large");
}

#[tokio::test]
async fn a_propfind_through_the_php_proxy_parses() {
    let nc = crate::fakes::nextcloud::nextcloud().await;
    let multistatus = concat!(
        "<?xml version=\"1.0\"?>\n<d:multistatus xmlns:d=\"DAV:\">",
        "<d:response><d:href>/remote.php/dav/files/alice/</d:href></d:response>",
        "<d:response><d:href>/remote.php/dav/files/alice/a.txt</d:href></d:response>",
        "</d:multistatus>"
    );
    nc.on_async(
        Method::from_bytes(b"PROPFIND").unwrap(),
        "/remote.php/dav/files/alice/",
        None,
        move |_: Recorded| async move {
            // Nextcloud (Sabre) streams its multistatus chunked.
            let parts =
                multistatus.as_bytes().chunks(40).map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)));
            let mut r =
                Response::new(Body::from_stream(futures_util::stream::iter(parts.collect::<Vec<_>>())));
            *r.status_mut() = StatusCode::MULTI_STATUS;
            r.headers_mut().insert("content-type", "application/xml; charset=utf-8".parse().unwrap());
            r.into_response()
        },
    );
    let app = TestApp::builder().nextcloud(&nc).spawn().await;
    let proxy = php_proxy(app.url(""), "").await;
    let key = SigningKey::from_tenant_key(TENANT_KEY_ID, TENANT_KEY);
    let propfind = Method::from_bytes(b"PROPFIND").unwrap();
    let call = CallbackRequest {
        method: &propfind,
        tunnel: true,
        target: "/remote.php/dav/files/alice/",
        user: "alice",
        body: b"",
        content_type: None,
        destination: None,
    };
    let nonce = waggle::signing::random_nonce(&mut rand::rng());
    let (wire, headers) = sign_callback(&key, &call, now(), &nonce).unwrap();
    let r = reqwest::Client::new()
        .request(wire, proxied(proxy, "/nc/remote.php/dav/files/alice/"))
        .headers(headers)
        .header("depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 207);
    assert!(r.headers().contains_key("content-length"));
    let xml = r.text().await.expect("the multistatus arrives intact");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(doc.descendants().filter(|n| n.tag_name().name() == "response").count(), 2);
}
