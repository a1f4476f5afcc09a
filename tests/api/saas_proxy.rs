//! `/api` and `/auth` to a fake SaaS on loopback: every request arrives signed (checked with Waggle's
//! own verifier), streamed, and without Nextcloud's secrets.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use waggle::signing::{Message, VerifyPolicy, content_digest_value, verify_request};

use crate::fakes::saas::echo as saas;
use crate::fakes::{Fake, Recorded};
use crate::harness::{SECRET, TENANT_KEY, TENANT_KEY_ID, TestApp, appapi_token, closed_url, now};

async fn app_with(saas: &Fake, extra: &[(&str, &str)]) -> TestApp {
    let mut b = TestApp::builder()
        .env("WAGGLE_SERVICE_URL", &saas.url())
        .env("WAGGLE_TENANT_KEY", TENANT_KEY)
        .env("WAGGLE_TENANT_KEY_ID", TENANT_KEY_ID)
        .env("WAGGLE_NC_PUBLIC_URL", "https://cloud.example.com");
    for (k, v) in extra {
        b = b.env(k, v);
    }
    b.spawn().await
}

/// Verifies a recorded upstream request with Waggle's verifier and the API policy.
fn assert_signed(r: &Recorded, authority: &str, user: &str) {
    let (path, query) = match r.uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (r.uri.as_str(), None),
    };
    let message = Message { method: &r.method, scheme: "http", authority, path, query, headers: &r.headers };
    let verified = verify_request(
        &message,
        |id| (id == TENANT_KEY_ID).then_some(TENANT_KEY.as_bytes()),
        &VerifyPolicy::api(now()),
    )
    .unwrap_or_else(|e| panic!("signature of {} {} did not verify: {e:?}", r.method, r.uri));
    assert_eq!(verified.keyid, TENANT_KEY_ID);
    assert_eq!(r.header("x-waggle-user"), Some(user));
    assert_eq!(r.header("x-waggle-instance"), Some("octestinstance"));
    assert_eq!(
        r.header("content-digest"),
        Some(content_digest_value(&r.body).as_str()),
        "digest matches the body"
    );
}

#[tokio::test]
async fn every_method_arrives_signed_with_the_user_and_the_real_verb() {
    let saas = saas().await;
    let app = app_with(&saas, &[]).await;
    let authority = saas.addr.to_string();
    // (sent method, path, override, body, method the SaaS must see)
    type Case = (Method, &'static str, Option<&'static str>, &'static [u8], Method);
    let cases: Vec<Case> = vec![
        (Method::GET, "/api/echo", None, b"", Method::GET),
        (Method::POST, "/api/echo", None, br#"{"a":1}"#, Method::POST),
        (Method::PUT, "/api/echo", None, b"put body", Method::PUT),
        (Method::DELETE, "/api/echo", None, b"", Method::DELETE),
        (Method::POST, "/api/echo", Some("PATCH"), br#"{"patch":true}"#, Method::PATCH),
        (Method::POST, "/auth/echo", None, b"login=x", Method::POST),
    ];
    for (method, path, override_to, body, expected) in cases {
        let mut req = app
            .request(method.clone(), path, "alice")
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(o) = override_to {
            req = req.header("X-HTTP-Method-Override", o);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 200, "{method} {path}");
        let echoed: Value = response.json().await.unwrap();
        assert_eq!(echoed["method"], expected.as_str());
        let r = saas.requests().pop().unwrap();
        assert_eq!(r.method, expected);
        assert_eq!(r.body.as_ref(), body);
        assert!(r.header("x-http-method-override").is_none(), "the override is consumed");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_signed(&r, &authority, "alice");
    }
}

#[tokio::test]
async fn reserved_characters_and_utf8_in_the_query_pass_untouched_and_signed() {
    let saas = saas().await;
    let app = app_with(&saas, &[]).await;
    let path_and_query =
        "/api/v1/files?path=%2FDocs%2FR%C3%A9sum%C3%A9.pdf&q=a+b%26c%3Dd&empty=&flag&x=%E2%9C%93";
    let r = app.request(Method::GET, path_and_query, "alice").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let rec = saas.requests().pop().unwrap();
    assert_eq!(rec.uri, path_and_query);
    assert_signed(&rec, &saas.addr.to_string(), "alice");
}

#[tokio::test]
async fn bodies_of_every_size_arrive_whole_and_large_ones_are_spooled_then_removed() {
    let saas = saas().await;
    let app = app_with(&saas, &[("WAGGLE_PROXY__MEMORY_BODY_BYTES", "65536")]).await;
    for size in [0usize, 4096, 64 * 1024 * 1024] {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let digest = Sha256::digest(&body);
        let r = app.request(Method::POST, "/api/echo", "alice").body(body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{size}");
        let rec = saas.requests().pop().unwrap();
        assert_eq!(rec.body.len(), size);
        assert_eq!(Sha256::digest(&rec.body), digest);
        assert_eq!(rec.header("content-length"), Some(size.to_string().as_str()));
        assert_signed(&rec, &saas.addr.to_string(), "alice");
    }
    let spool = app.storage_path().join("spool");
    let left = std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no spool file is left behind");
}

#[tokio::test]
async fn a_chunked_upload_is_forwarded_with_its_length_and_digest() {
    let saas = saas().await;
    let app = app_with(&saas, &[("WAGGLE_PROXY__MEMORY_BODY_BYTES", "1024")]).await;
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..50).map(|i| Ok(Bytes::from(vec![b'a' + (i % 26) as u8; 1000]))).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = app.request(Method::PUT, "/api/echo", "alice").body(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let rec = saas.requests().pop().unwrap();
    assert_eq!(rec.body.len(), 50_000);
    assert_eq!(rec.header("content-length"), Some("50000"));
    assert!(rec.header("transfer-encoding").is_none());
    assert_signed(&rec, &saas.addr.to_string(), "alice");
}

#[tokio::test]
async fn bodies_over_the_cap_get_413_and_never_reach_the_saas() {
    let saas = saas().await;
    let app = app_with(&saas, &[("WAGGLE_PROXY__API_BODY_CAP_BYTES", "10000")]).await;
    let r = app.request(Method::POST, "/api/echo", "alice").body(vec![0u8; 10_001]).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "payload_too_large");
    // Without a Content-Length (chunked), reading stops at the cap too.
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..20).map(|_| Ok(Bytes::from(vec![1u8; 1000]))).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = app.request(Method::POST, "/api/echo", "alice").body(body).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert!(saas.requests().is_empty());
}

#[tokio::test]
async fn no_nextcloud_secret_reaches_the_saas_and_forwarding_headers_are_ours() {
    let saas = saas().await;
    let app = app_with(&saas, &[]).await;
    let token = appapi_token("alice", SECRET);
    let planted: &[(&str, &str)] = &[
        ("Authorization", "Basic YWxpY2U6cGFzc3dvcmQ="),
        ("Cookie", "nc_session_id=sess123; nc_token=remember-me-token; oc_sessionPassphrase=phrase"),
        ("Origin", "https://cloud.example.com"),
        ("Referer", "https://cloud.example.com/apps/files/secret-folder"),
        ("X-Origin-IP", "203.0.113.7"),
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Host", "evil.example"),
        ("Forwarded", "for=6.6.6.6"),
        ("AA-REQUEST-ID", "req-abc"),
        ("harp-shared-key", "harp-secret-value"),
        ("EX-APP-HOST", "internal-host"),
        ("Signature", "sig1=:AAAA:"),
        ("X-Waggle-User", "mallory"),
        ("Connection", "keep-alive, x-hop"),
        ("X-Hop", "hop-value"),
        ("Host", "cloud.example.com"),
    ];
    let mut req = app.request(Method::POST, "/api/echo", "alice").body("x");
    for (k, v) in planted {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    let rec = saas.requests().pop().unwrap();
    for name in [
        "authorization-app-api",
        "authorization",
        "cookie",
        "origin",
        "referer",
        "x-origin-ip",
        "ex-app-id",
        "ex-app-version",
        "aa-version",
        "aa-request-id",
        "harp-shared-key",
        "ex-app-host",
        "forwarded",
        "x-hop",
    ] {
        assert!(rec.header(name).is_none(), "{name} must not reach the SaaS");
    }
    let all_values: String = rec
        .headers
        .values()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    for secret in [
        token.as_str(),
        SECRET,
        "YWxpY2U6cGFzc3dvcmQ=",
        "remember-me-token",
        "sess123",
        "phrase",
        "harp-secret-value",
        "secret-folder",
        "6.6.6.6",
        "evil.example",
        "mallory",
    ] {
        assert!(!all_values.contains(secret), "{secret} leaked upstream: {all_values}");
    }
    assert_eq!(rec.header("x-forwarded-for"), Some("203.0.113.7"));
    assert_eq!(rec.header("x-forwarded-proto"), Some("https"));
    assert_eq!(rec.header("x-forwarded-host"), Some("cloud.example.com"));
    assert_eq!(rec.header("x-request-id"), Some("req-abc"), "the request id is passed on for correlation");
    assert_signed(&rec, &saas.addr.to_string(), "alice");
}

#[tokio::test]
async fn saas_responses_lose_nextcloud_cookies_and_hop_by_hop_headers() {
    let saas = saas().await;
    saas.on_async(Method::GET, "/api/cookies", None, |_| async {
        let mut h = HeaderMap::new();
        h.append("set-cookie", "nc_token=evil; Path=/".parse().unwrap());
        h.append("set-cookie", "ocabcdef123456=evil; Path=/".parse().unwrap());
        h.append("set-cookie", "saas_session=ok; Path=/api; HttpOnly".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-saas", "1".parse().unwrap());
        (StatusCode::OK, h, "ok").into_response()
    });
    let app = app_with(&saas, &[]).await;
    let r = app.request(Method::GET, "/api/cookies", "alice").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookies: Vec<&str> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(cookies, ["saas_session=ok; Path=/api; HttpOnly"]);
    assert!(r.headers().get("keep-alive").is_none());
    assert_eq!(r.headers()["x-saas"], "1");
    assert!(r.headers().contains_key("cache-control"), "explicit Cache-Control on proxied answers");
}

#[tokio::test]
async fn sse_events_arrive_before_the_stream_ends() {
    let saas = saas().await;
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let released = std::sync::Mutex::new(Some(released));
    saas.on_async(Method::GET, "/api/events", None, move |_| {
        let gate = released.lock().unwrap().take();
        async move {
            let first =
                futures_util::stream::once(async { Ok::<_, std::io::Error>(Bytes::from("data: first\n\n")) });
            let rest = futures_util::stream::once(async move {
                if let Some(gate) = gate {
                    let _ = gate.await;
                }
                Ok::<_, std::io::Error>(Bytes::from("data: last\n\n"))
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(first.chain(rest)))
                .unwrap()
        }
    });
    let app = app_with(&saas, &[]).await;
    let r = app.request(Method::GET, "/api/events", "alice").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-accel-buffering"], "no");
    assert!(r.headers()["cache-control"].to_str().unwrap().contains("no-transform"));
    let mut stream = r.bytes_stream();
    let first =
        tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("first event in time");
    assert_eq!(first.unwrap().unwrap(), Bytes::from("data: first\n\n"), "first event before the end");
    release.send(()).unwrap();
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(rest, b"data: last\n\n");
}

#[tokio::test]
async fn saas_down_is_502_and_slow_headers_are_504() {
    let down_url = closed_url();
    let app = TestApp::builder()
        .env("WAGGLE_SERVICE_URL", &down_url)
        .env("WAGGLE_TENANT_KEY", TENANT_KEY)
        .env("WAGGLE_TENANT_KEY_ID", TENANT_KEY_ID)
        .spawn()
        .await;
    let r = app.request(Method::GET, "/api/echo", "alice").send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "upstream_unreachable");

    let saas = saas().await;
    // Accepts the request and never answers it.
    saas.on_async(Method::GET, "/api/slow", None, |_| async {
        std::future::pending::<()>().await;
        "never".into_response()
    });
    let app = app_with(&saas, &[("WAGGLE_PROXY__HEADER_TIMEOUT_SECS", "1")]).await;
    let r = app.request(Method::GET, "/api/slow", "alice").send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn a_reset_mid_body_reaches_the_client_as_a_broken_body() {
    let saas = saas().await;
    // The reset comes once the client has the response headers.
    let (reset_now, gate) = tokio::sync::oneshot::channel::<()>();
    let gate = std::sync::Mutex::new(Some(gate));
    saas.on_async(Method::GET, "/api/broken", None, move |_| {
        let gate = gate.lock().unwrap().take();
        async move {
            let first = futures_util::stream::once(async { Ok(Bytes::from(vec![b'x'; 1000])) });
            let reset = futures_util::stream::once(async move {
                if let Some(gate) = gate {
                    let _ = gate.await;
                }
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"))
            });
            let chunks = first.chain(reset);
            Response::builder().header("content-length", "100000").body(Body::from_stream(chunks)).unwrap()
        }
    });
    let app = app_with(&saas, &[]).await;
    let r = app.request(Method::GET, "/api/broken", "alice").send().await.unwrap();
    assert_eq!(r.status(), 200, "headers were already sent");
    reset_now.send(()).unwrap();
    assert!(r.bytes().await.is_err(), "the client sees a truncated body, not a complete one");
}

#[tokio::test]
async fn cross_site_writes_are_refused_before_anything_is_sent() {
    let saas = saas().await;
    let app = app_with(&saas, &[]).await;
    let cases: &[(&str, &str, &str)] = &[
        ("sec-fetch-site", "cross-site", "cross_site_request"),
        ("origin", "https://evil.example", "origin_not_allowed"),
        ("origin", "null", "origin_not_allowed"),
    ];
    for (name, value, code) in cases {
        let r = app
            .request(Method::POST, "/api/echo", "alice")
            .header(*name, *value)
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{name}: {value}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], *code);
    }
    let r = app
        .request(Method::GET, "/api/echo", "alice")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "reads are not state-changing");
    let r = app
        .request(Method::POST, "/api/echo", "alice")
        .header("origin", "https://cloud.example.com")
        .header("sec-fetch-site", "same-origin")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(saas.requests().len(), 2, "only the two allowed requests reached the SaaS");
}

#[tokio::test]
async fn without_a_key_or_a_service_url_nothing_is_sent_unsigned() {
    let saas = saas().await;
    let app = TestApp::builder()
        .env("WAGGLE_SERVICE_URL", &saas.url())
        .env("WAGGLE_TENANT_KEY", "")
        .env("WAGGLE_TENANT_KEY_ID", "")
        .spawn()
        .await;
    let r = app.request(Method::GET, "/api/echo", "alice").send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "tenant_key_missing");
    let app = TestApp::builder()
        .env("WAGGLE_TENANT_KEY", TENANT_KEY)
        .env("WAGGLE_TENANT_KEY_ID", TENANT_KEY_ID)
        .spawn()
        .await;
    let r = app.request(Method::GET, "/api/echo", "alice").send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "saas_not_configured");
    assert!(saas.requests().is_empty());
}

#[tokio::test]
async fn bad_overrides_dot_segments_and_system_context_are_refused() {
    let saas = saas().await;
    let app = app_with(&saas, &[]).await;
    let r = app
        .request(Method::POST, "/api/echo", "alice")
        .header("X-HTTP-Method-Override", "PROPFIND")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // reqwest would normalise `%2e%2e` away, so these go over a raw socket.
    for path in ["/api/%2e%2e/admin", "/api/..%2f..%2fadmin", "/api/%252e%252e/admin", "/api/x/../../admin"] {
        assert_eq!(raw_get(&app, path, "alice").await, 400, "{path}");
    }
    let r = app.request(Method::GET, "/api/echo", "").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(saas.requests().is_empty());
}

/// Sends a GET with the path exactly as given (no client-side normalisation) and returns the status.
async fn raw_get(app: &TestApp, path: &str, user: &str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(app.addr.unwrap()).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAUTHORIZATION-APP-API: {}\r\nEX-APP-ID: waggle\r\nConnection: close\r\n\r\n",
        appapi_token(user, SECRET)
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out[9..12].parse().unwrap()
}
