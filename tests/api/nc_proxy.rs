//! `/nc/*`: the SaaS reaching Nextcloud as a user. Attack cases (each must be refused with a 4xx and
//! reach the fake Nextcloud zero times) and positive cases, on real loopback sockets.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use serde_json::{Value, json};
use waggle::signing::{
    CallbackRequest, Message, Purpose, SigningKey, callback_components, content_digest_value, sign_callback,
    sign_request,
};

use crate::fakes::{Recorded, ocs_ok};
use crate::harness::{APP_ID, SECRET, TENANT_KEY, TENANT_KEY_ID, TestApp, appapi_token, now, wait_until};

fn key() -> SigningKey {
    SigningKey::from_tenant_key(TENANT_KEY_ID, TENANT_KEY)
}

fn nonce() -> String {
    waggle::signing::random_nonce(&mut rand::rng())
}

/// A request as it leaves the SaaS (before Nextcloud's proxy adds its AppAPI headers).
#[derive(Clone, Debug)]
struct Call {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn signed(method: &str, target: &str, user: &str, body: &[u8]) -> Call {
    signed_with(method, target, user, body, None, now())
}

fn signed_with(
    method: &str,
    target: &str,
    user: &str,
    body: &[u8],
    destination: Option<&str>,
    created: u64,
) -> Call {
    let m = Method::from_bytes(method.as_bytes()).unwrap();
    let req = CallbackRequest {
        method: &m,
        tunnel: true,
        target,
        user,
        body,
        content_type: (!body.is_empty()).then_some("application/octet-stream"),
        destination,
    };
    let (wire, headers) = sign_callback(&key(), &req, created, &nonce()).unwrap();
    let path = format!("/nc{}", target.split('?').next().unwrap());
    Call { method: wire, path, headers, body: body.to_vec() }
}

async fn app() -> TestApp {
    TestApp::builder()
        .env("WAGGLE_TENANT_KEY", TENANT_KEY)
        .env("WAGGLE_TENANT_KEY_ID", TENANT_KEY_ID)
        .spawn()
        .await
}

/// Sends `call` the way Nextcloud's PHP proxy would: AppAPI headers with an empty user added.
async fn send(app: &TestApp, call: &Call) -> reqwest::Response {
    let mut req = app
        .client
        .request(call.method.clone(), app.url(&call.path))
        .header("AUTHORIZATION-APP-API", appapi_token("", SECRET))
        .header("EX-APP-ID", APP_ID)
        .body(call.body.clone());
    for (k, v) in &call.headers {
        req = req.header(k, v);
    }
    req.send().await.unwrap()
}

fn nc_calls(app: &TestApp) -> Vec<Recorded> {
    app.nc
        .requests()
        .into_iter()
        .filter(|r| {
            r.path().starts_with("/remote.php")
                || r.path().starts_with("/ocs/v2.php/cloud/user")
                || r.path().starts_with("/status")
        })
        .collect()
}

fn set(call: &mut Call, name: &str, value: &str) {
    call.headers
        .insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
}

fn mac_bytes(call: &Call) -> Vec<u8> {
    let sig = call.headers["signature"].to_str().unwrap();
    let b64 = sig.trim_start_matches("sig1=:").trim_end_matches(':');
    base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
}

fn with_mac(call: &mut Call, value: &str) {
    set(call, "signature", &format!("sig1=:{value}:"));
}

/// Signs like the SaaS but with the API tag: a `waggle-api` signature replayed on `/nc`.
fn api_tagged(target: &str) -> Call {
    let mut h = HeaderMap::new();
    h.insert("x-waggle-target", HeaderValue::from_str(target).unwrap());
    h.insert("x-waggle-user", HeaderValue::from_static("alice"));
    h.insert("content-digest", HeaderValue::from_str(&content_digest_value(b"")).unwrap());
    let uri: http::Uri = "/".parse().unwrap();
    let m = Method::GET;
    let s = sign_request(
        &key(),
        Purpose::Api,
        &Message::from_uri(&m, &uri, &h),
        &callback_components(false, false),
        now(),
        &nonce(),
    )
    .unwrap();
    s.apply(&mut h).unwrap();
    Call { method: Method::GET, path: format!("/nc{target}"), headers: h, body: vec![] }
}

type Mutation = Box<dyn Fn(&mut Call)>;

const FILE: &str = "/remote.php/dav/files/alice/x.txt";

/// (name, the request before mutation, the mutation). Every one must fail with a 4xx and never
/// reach Nextcloud.
fn attack_cases() -> Vec<(&'static str, Call, Mutation)> {
    let get = || signed("GET", FILE, "alice", b"");
    let put = || signed("PUT", FILE, "alice", b"the real report");
    let propfind = || signed("PROPFIND", "/remote.php/dav/files/alice/", "alice", b"");
    let nothing: fn() -> Mutation = || Box::new(|_| {});
    vec![
        (
            "no signature headers",
            get(),
            Box::new(|c| {
                c.headers.remove("signature");
                c.headers.remove("signature-input");
            }),
        ),
        (
            "signature-input only",
            get(),
            Box::new(|c| {
                c.headers.remove("signature");
            }),
        ),
        (
            "duplicate Signature",
            get(),
            Box::new(|c| {
                let v = c.headers["signature"].clone();
                c.headers.append("signature", v);
            }),
        ),
        (
            "duplicate Signature-Input",
            get(),
            Box::new(|c| {
                let v = c.headers["signature-input"].clone();
                c.headers.append("signature-input", v);
            }),
        ),
        (
            "second label",
            get(),
            Box::new(|c| {
                let v = c.headers["signature"].to_str().unwrap().to_owned();
                set(c, "signature", &format!("{v}, sig2=:AAAA:"));
            }),
        ),
        (
            "label renamed",
            get(),
            Box::new(|c| {
                let i = c.headers["signature-input"].to_str().unwrap().replacen("sig1=", "sig2=", 1);
                let s = c.headers["signature"].to_str().unwrap().replacen("sig1=", "sig2=", 1);
                set(c, "signature-input", &i);
                set(c, "signature", &s);
            }),
        ),
        (
            "MAC truncated to 31 bytes",
            get(),
            Box::new(|c| {
                let m = mac_bytes(c);
                with_mac(c, &base64::engine::general_purpose::STANDARD.encode(&m[..31]));
            }),
        ),
        (
            "MAC extended to 33 bytes",
            get(),
            Box::new(|c| {
                let mut m = mac_bytes(c);
                m.push(0);
                with_mac(c, &base64::engine::general_purpose::STANDARD.encode(&m));
            }),
        ),
        ("MAC empty", get(), Box::new(|c| with_mac(c, ""))),
        (
            "MAC as hex",
            get(),
            Box::new(|c| {
                let m = mac_bytes(c);
                let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
                set(c, "signature", &format!("sig1=:{hex}:"));
            }),
        ),
        (
            "MAC base64url without padding",
            get(),
            Box::new(|c| {
                let m = mac_bytes(c);
                with_mac(c, &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&m));
            }),
        ),
        (
            "MAC one bit flipped",
            get(),
            Box::new(|c| {
                let mut m = mac_bytes(c);
                m[0] ^= 1;
                with_mac(c, &base64::engine::general_purpose::STANDARD.encode(&m));
            }),
        ),
        (
            "unknown key id",
            {
                let mut c = get();
                let i = c.headers["signature-input"].to_str().unwrap().replace(TENANT_KEY_ID, "k-unknown");
                set(&mut c, "signature-input", &i);
                c
            },
            nothing(),
        ),
        (
            "right key id, wrong key",
            {
                let other = SigningKey::from_tenant_key(TENANT_KEY_ID, "another-tenant-key-0000000000000000");
                let m = Method::GET;
                let req = CallbackRequest {
                    method: &m,
                    tunnel: true,
                    target: FILE,
                    user: "alice",
                    body: b"",
                    content_type: None,
                    destination: None,
                };
                let (wire, headers) = sign_callback(&other, &req, now(), &nonce()).unwrap();
                Call { method: wire, path: format!("/nc{FILE}"), headers, body: vec![] }
            },
            nothing(),
        ),
        ("API-tagged signature replayed on /nc", api_tagged(FILE), nothing()),
        (
            "tag rewritten to waggle-nc",
            api_tagged(FILE),
            Box::new(|c| {
                let i = c.headers["signature-input"].to_str().unwrap().replace("waggle-api", "waggle-nc");
                set(c, "signature-input", &i);
            }),
        ),
        ("created 120 s in the future", signed_with("GET", FILE, "alice", b"", None, now() + 120), nothing()),
        ("created 400 s ago", signed_with("GET", FILE, "alice", b"", None, now() - 400), nothing()),
        (
            "created rewritten in milliseconds",
            get(),
            Box::new(|c| {
                let i = c.headers["signature-input"].to_str().unwrap().to_owned();
                let created = i.split("created=").nth(1).unwrap().split(';').next().unwrap().to_owned();
                set(
                    c,
                    "signature-input",
                    &i.replace(&format!("created={created}"), &format!("created={created}000")),
                );
            }),
        ),
        (
            "created with a leading plus",
            get(),
            Box::new(|c| {
                let i = c.headers["signature-input"].to_str().unwrap().replacen("created=", "created=+", 1);
                set(c, "signature-input", &i);
            }),
        ),
        (
            "created as a float",
            get(),
            Box::new(|c| {
                let i = c.headers["signature-input"].to_str().unwrap().to_owned();
                let created = i.split("created=").nth(1).unwrap().split(';').next().unwrap().to_owned();
                set(
                    c,
                    "signature-input",
                    &i.replace(&format!("created={created}"), &format!("created={created}.5")),
                );
            }),
        ),
        ("body byte flipped", put(), Box::new(|c| c.body[0] ^= 0x20)),
        (
            "body truncated",
            put(),
            Box::new(|c| {
                c.body.pop();
            }),
        ),
        ("body appended", put(), Box::new(|c| c.body.extend_from_slice(b"!"))),
        (
            "body replaced, digest recomputed",
            put(),
            Box::new(|c| {
                c.body = b"an evil report".to_vec();
                set(c, "content-digest", &content_digest_value(&c.body));
            }),
        ),
        (
            "digest missing",
            put(),
            Box::new(|c| {
                c.headers.remove("content-digest");
            }),
        ),
        (
            "digest of the wrong algorithm only",
            put(),
            Box::new(|c| {
                set(c, "content-digest", "sha-512=:AAAA:");
            }),
        ),
        ("content type changed", put(), Box::new(|c| set(c, "content-type", "text/html"))),
        (
            "target header swapped",
            get(),
            Box::new(|c| {
                set(c, "x-waggle-target", "/remote.php/dav/files/alice/other.txt");
                c.path = "/nc/remote.php/dav/files/alice/other.txt".into();
            }),
        ),
        (
            "observed path differs from the signed target",
            get(),
            Box::new(|c| {
                c.path = "/nc/remote.php/dav/files/alice/other.txt".into();
            }),
        ),
        (
            "observed path decoded twice",
            signed("GET", "/remote.php/dav/files/alice/a%2540b", "alice", b""),
            Box::new(|c| {
                c.path = "/nc/remote.php/dav/files/alice/a@b".into();
            }),
        ),
        (
            "query swapped",
            signed("GET", "/ocs/v2.php/cloud/user?format=json", "alice", b""),
            Box::new(|c| {
                set(c, "x-waggle-target", "/ocs/v2.php/cloud/user?format=xml");
            }),
        ),
        ("signed GET sent as DELETE", get(), Box::new(|c| c.method = Method::DELETE)),
        (
            "signed GET sent as POST with an unsigned override",
            get(),
            Box::new(|c| {
                c.method = Method::POST;
                set(c, "x-http-method-override", "DELETE");
            }),
        ),
        ("override changed", propfind(), Box::new(|c| set(c, "x-http-method-override", "DELETE"))),
        ("override lower-cased", propfind(), Box::new(|c| set(c, "x-http-method-override", "propfind"))),
        (
            "override removed",
            propfind(),
            Box::new(|c| {
                c.headers.remove("x-http-method-override");
            }),
        ),
        (
            "override outside the verb list",
            signed("POST", FILE, "alice", b""),
            Box::new(|c| set(c, "x-http-method-override", "TRACE")),
        ),
        ("user changed", get(), Box::new(|c| set(c, "x-waggle-user", "bob"))),
        (
            "user header duplicated",
            get(),
            Box::new(|c| {
                c.headers.append("x-waggle-user", HeaderValue::from_static("bob"));
            }),
        ),
        (
            "target header duplicated",
            get(),
            Box::new(|c| {
                c.headers.append("x-waggle-target", HeaderValue::from_static(FILE));
            }),
        ),
        ("tab in the user", signed("GET", FILE, "al\tice", b""), nothing()),
        ("colon in the user", signed("GET", "/ocs/v2.php/cloud/user", "al:ice", b""), nothing()),
        ("traversal ..", signed("GET", "/remote.php/dav/files/alice/../bob/x", "alice", b""), nothing()),
        (
            "traversal %2E%2E",
            signed("GET", "/remote.php/dav/files/alice/%2E%2E/bob/x", "alice", b""),
            nothing(),
        ),
        (
            "traversal %252e%252e",
            signed("GET", "/remote.php/dav/files/alice/%252e%252e/bob/x", "alice", b""),
            nothing(),
        ),
        ("traversal ..%2F", signed("GET", "/remote.php/dav/files/alice/..%2Fbob/x", "alice", b""), nothing()),
        (
            "traversal with backslashes",
            signed("GET", "/remote.php/dav/files/alice/..%5Cbob", "alice", b""),
            nothing(),
        ),
        ("double slash", signed("GET", "/remote.php//dav/files/alice/x", "alice", b""), nothing()),
        ("NUL in the target", signed("GET", "/remote.php/dav/files/alice/x%00.txt", "alice", b""), nothing()),
        (
            "non-canonical percent-encoding",
            signed("GET", "/remote.php/dav/files/alice/%c3%a9", "alice", b""),
            nothing(),
        ),
        (
            "DAV path of another user",
            signed("GET", "/remote.php/dav/files/bob/x.txt", "alice", b""),
            nothing(),
        ),
        (
            "trash of another user",
            signed("PROPFIND", "/remote.php/dav/trashbin/bob/trash", "alice", b""),
            nothing(),
        ),
        ("outside the allow-list", signed("GET", "/status.php", "alice", b""), nothing()),
        ("AppAPI's own API", signed("GET", "/ocs/v1.php/apps/app_api/api/v1/users", "alice", b""), nothing()),
        ("system call to a DAV path", signed("GET", FILE, "", b""), nothing()),
        (
            "unsigned Destination",
            signed("MOVE", FILE, "alice", b""),
            Box::new(|c| set(c, "destination", "/remote.php/dav/files/alice/y.txt")),
        ),
        (
            "Destination in another user's tree",
            signed_with("MOVE", FILE, "alice", b"", Some("/remote.php/dav/files/bob/x.txt"), now()),
            nothing(),
        ),
        ("no AppAPI hop", get(), Box::new(|c| set(c, "x-skip-appapi", "1"))),
    ]
}

#[tokio::test]
async fn attack_cases_are_refused_and_never_reach_nextcloud() {
    let app = app().await;
    let cases = attack_cases();
    assert!(cases.len() >= 40, "at least 40 attack cases, have {}", cases.len());
    for (name, mut call, mutate) in cases {
        mutate(&mut call);
        let response = if call.headers.remove("x-skip-appapi").is_some() {
            let mut req =
                app.client.request(call.method.clone(), app.url(&call.path)).body(call.body.clone());
            for (k, v) in &call.headers {
                req = req.header(k, v);
            }
            req.send().await.unwrap()
        } else {
            send(&app, &call).await
        };
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert!((400..500).contains(&status), "{name}: answered {status} {body}");
        assert!(!body.contains(TENANT_KEY) && !body.contains(SECRET), "{name}: secret in the answer");
        assert!(nc_calls(&app).is_empty(), "{name}: reached Nextcloud");
    }
    assert!(app.metric_names().iter().any(|k| k.starts_with("nc_signature_failed_")));
}

#[tokio::test]
async fn a_replayed_request_is_refused() {
    let app = app().await;
    app.nc.on(Method::GET, "/ocs/v2.php/cloud/user", StatusCode::OK, ocs_ok(&json!({"id": "alice"})));
    let call = signed("GET", "/ocs/v2.php/cloud/user?format=json", "alice", b"");
    assert_eq!(send(&app, &call).await.status(), 200);
    let again = send(&app, &call).await;
    assert_eq!(again.status(), 401);
    assert_eq!(again.json::<Value>().await.unwrap()["error"]["code"], "invalid_signature");
    assert_eq!(nc_calls(&app).len(), 1);
    assert_eq!(app.metric("nc_signature_failed_nonce_replayed"), 1);
}

#[tokio::test]
async fn a_signature_made_before_the_process_started_is_accepted_once() {
    // Signed five seconds before the app below starts, on fresh storage: never spent, so it passes
    // once (spent signatures are recorded durably; see tests/api/replay.rs for restarts).
    let call = signed_with("GET", "/ocs/v2.php/cloud/user", "alice", b"", None, now() - 5);
    let app = app().await;
    app.nc.on(Method::GET, "/ocs/v2.php/cloud/user", StatusCode::OK, ocs_ok(&json!({"id": "alice"})));
    assert_eq!(send(&app, &call).await.status(), 200);
    assert_eq!(send(&app, &call).await.status(), 401);
    assert_eq!(nc_calls(&app).len(), 1);
}

#[tokio::test]
async fn ocs_calls_are_forwarded_as_the_user_with_appapi_impersonation_only() {
    let app = app().await;
    app.nc.on(
        Method::GET,
        "/ocs/v2.php/cloud/user",
        StatusCode::OK,
        ocs_ok(&json!({"id": "alice", "email": "a@x"})),
    );
    let mut call = signed("GET", "/ocs/v2.php/cloud/user?format=json", "alice", b"");
    set(&mut call, "authorization", "Basic c2Fhczpzd2lmdA==");
    set(&mut call, "cookie", "nc_token=stolen");
    set(&mut call, "x-forwarded-for", "6.6.6.6");
    let r = send(&app, &call).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.json::<Value>().await.unwrap()["ocs"]["data"]["id"], "alice");
    let calls = nc_calls(&app);
    assert_eq!(calls.len(), 1);
    let nc = &calls[0];
    assert_eq!(nc.uri, "/ocs/v2.php/cloud/user?format=json", "the signed target, query included");
    assert_eq!(nc.header("authorization-app-api"), Some(appapi_token("alice", SECRET).as_str()));
    assert_eq!(nc.header("ex-app-id"), Some(APP_ID));
    assert_eq!(nc.header("ex-app-version"), Some("0.1.0"));
    assert_eq!(nc.header("ocs-apirequest"), Some("true"));
    for gone in [
        "authorization",
        "cookie",
        "x-forwarded-for",
        "signature",
        "signature-input",
        "x-waggle-user",
        "x-waggle-target",
        "content-digest",
        "x-http-method-override",
    ] {
        assert!(nc.header(gone).is_none(), "{gone} must not reach Nextcloud");
    }
    // The audit row is written once the response body is done.
    wait_until("the audit row is written", Duration::from_secs(5), async || {
        !app.audit(Some("alice")).await.is_empty()
    })
    .await;
    let audit = app.audit(Some("alice")).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].method.as_str(), audit[0].target.as_str(), audit[0].status),
        ("GET", "/ocs/v2.php/cloud/user?format=json", 200)
    );
    assert!(audit[0].bytes_out > 0);
}

#[tokio::test]
async fn webdav_verbs_arrive_through_the_override_with_their_headers() {
    let app = app().await;
    for verb in ["PROPFIND", "MKCOL", "MOVE", "DELETE", "COPY", "PROPPATCH", "REPORT"] {
        let m = Method::from_bytes(verb.as_bytes()).unwrap();
        app.nc.on_async(m, "/remote.php/dav/files/alice/dir/", None, |r: Recorded| async move {
            let status =
                if r.method.as_str() == "PROPFIND" { StatusCode::MULTI_STATUS } else { StatusCode::CREATED };
            (status, "<d:multistatus xmlns:d=\"DAV:\"/>").into_response()
        });
    }
    let mut call = signed(
        "PROPFIND",
        "/remote.php/dav/files/alice/dir/",
        "alice",
        b"<d:propfind xmlns:d=\"DAV:\"><d:allprop/></d:propfind>",
    );
    set(&mut call, "depth", "1");
    let r = send(&app, &call).await;
    assert_eq!(r.status(), 207);
    let nc = nc_calls(&app).pop().unwrap();
    assert_eq!(nc.method.as_str(), "PROPFIND");
    assert_eq!(nc.header("depth"), Some("1"));
    assert_eq!(nc.header("content-type"), Some("application/octet-stream"));
    assert!(nc.body.starts_with(b"<d:propfind"));

    for verb in ["MKCOL", "DELETE"] {
        let call = signed(verb, "/remote.php/dav/files/alice/dir/", "alice", b"");
        assert_eq!(send(&app, &call).await.status(), 201, "{verb}");
        assert_eq!(nc_calls(&app).pop().unwrap().method.as_str(), verb);
    }
    let mut call = signed_with(
        "MOVE",
        "/remote.php/dav/files/alice/dir/",
        "alice",
        b"",
        Some("/remote.php/dav/files/alice/moved/"),
        now(),
    );
    set(&mut call, "overwrite", "F");
    assert_eq!(send(&app, &call).await.status(), 201);
    let nc = nc_calls(&app).pop().unwrap();
    assert_eq!(nc.method.as_str(), "MOVE");
    assert_eq!(nc.header("overwrite"), Some("F"));
    assert_eq!(
        nc.header("destination"),
        Some(format!("{}remote.php/dav/files/alice/moved/", app.nc.url()).as_str()),
        "rewritten onto NEXTCLOUD_URL"
    );
}

#[tokio::test]
async fn range_requests_stream_206_back() {
    let app = app().await;
    app.nc.on_async(Method::GET, FILE, None, |r: Recorded| async move {
        assert_eq!(r.header("range"), Some("bytes=2-5"));
        let mut h = HeaderMap::new();
        h.insert("content-range", HeaderValue::from_static("bytes 2-5/10"));
        h.insert("set-cookie", HeaderValue::from_static("oc_sessionPassphrase=abc; path=/"));
        (StatusCode::PARTIAL_CONTENT, h, "2345").into_response()
    });
    let mut call = signed("GET", FILE, "alice", b"");
    set(&mut call, "range", "bytes=2-5");
    let r = send(&app, &call).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 2-5/10");
    assert!(r.headers().get("set-cookie").is_none(), "Nextcloud's session cookie never reaches the SaaS");
    assert_eq!(r.text().await.unwrap(), "2345");
}

#[tokio::test]
async fn a_large_put_is_spooled_verified_forwarded_and_cleaned_up() {
    let app = TestApp::builder()
        .env("WAGGLE_TENANT_KEY", TENANT_KEY)
        .env("WAGGLE_TENANT_KEY_ID", TENANT_KEY_ID)
        .env("WAGGLE_PROXY__MEMORY_BODY_BYTES", "1048576")
        .spawn()
        .await;
    app.nc.on(Method::PUT, FILE, StatusCode::CREATED, Value::Null);
    let body: Vec<u8> = (0..64 * 1024 * 1024).map(|i: u32| (i % 253) as u8).collect();
    let call = signed("PUT", FILE, "alice", &body);
    let r = send(&app, &call).await;
    assert_eq!(r.status(), 201);
    let nc = nc_calls(&app).pop().unwrap();
    assert_eq!(nc.body.len(), body.len());
    assert!(nc.body == body, "byte-exact");
    let spool = app.storage_path().join("spool");
    assert_eq!(std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0), 0, "spool file removed");
    // A tampered large body is refused after spooling, and its file is removed too.
    let mut bad = signed("PUT", FILE, "alice", &body);
    let last = bad.body.len() - 1;
    bad.body[last] ^= 1;
    assert_eq!(send(&app, &bad).await.status(), 401);
    assert_eq!(nc_calls(&app).len(), 1);
    assert_eq!(std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0), 0);
}

#[tokio::test]
async fn policy_read_only_cap_and_destructive_rate() {
    let app = TestApp::builder()
        .env("WAGGLE_TENANT_KEY", TENANT_KEY)
        .env("WAGGLE_TENANT_KEY_ID", TENANT_KEY_ID)
        .env("WAGGLE_CALLBACK__READ_ONLY", "true")
        .spawn()
        .await;
    let r = send(&app, &signed("PUT", FILE, "alice", b"x")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "read_only");
    assert!(nc_calls(&app).is_empty());

    let app = TestApp::builder()
        .env("WAGGLE_TENANT_KEY", TENANT_KEY)
        .env("WAGGLE_TENANT_KEY_ID", TENANT_KEY_ID)
        .env("WAGGLE_CALLBACK__BODY_CAP_BYTES", "1000")
        .env("WAGGLE_CALLBACK__DESTRUCTIVE_PER_MINUTE", "2")
        .spawn()
        .await;
    assert_eq!(send(&app, &signed("PUT", FILE, "alice", &[7u8; 1001])).await.status(), 413);
    app.nc.on(Method::DELETE, FILE, StatusCode::NO_CONTENT, Value::Null);
    assert_eq!(send(&app, &signed("DELETE", FILE, "alice", b"")).await.status(), 204);
    assert_eq!(send(&app, &signed("DELETE", FILE, "alice", b"")).await.status(), 204);
    assert_eq!(send(&app, &signed("DELETE", FILE, "alice", b"")).await.status(), 429);
    assert_eq!(nc_calls(&app).len(), 2);
}

#[tokio::test]
async fn a_flood_of_forgeries_is_rate_limited_but_valid_signatures_still_pass() {
    let app = TestApp::builder()
        .env("WAGGLE_TENANT_KEY", TENANT_KEY)
        .env("WAGGLE_TENANT_KEY_ID", TENANT_KEY_ID)
        .env("WAGGLE_CALLBACK__FAILURE_BURST", "5")
        .env("WAGGLE_CALLBACK__FAILURE_PER_SEC", "1")
        .spawn()
        .await;
    app.nc.on(Method::GET, "/ocs/v2.php/cloud/user", StatusCode::OK, ocs_ok(&json!({"id": "alice"})));
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let mut forged = signed("GET", "/ocs/v2.php/cloud/user", "alice", b"");
        set(&mut forged, "x-waggle-user", "admin");
        statuses.push(send(&app, &forged).await.status().as_u16());
    }
    assert!(statuses.contains(&401) && statuses.contains(&429), "{statuses:?}");
    let valid = send(&app, &signed("GET", "/ocs/v2.php/cloud/user", "alice", b"")).await;
    assert_eq!(valid.status(), 200, "a valid signature is never limited");
}
