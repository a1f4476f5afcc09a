//! The AppAPI authentication matrix over real HTTP.

use axum::http::Method;
use base64::Engine as _;
use serde_json::Value;

use crate::harness::{APP_ID, SECRET, TestApp, appapi_token};

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn status_and_body(r: reqwest::RequestBuilder) -> (u16, Value) {
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert!(!text.contains(SECRET), "the secret is never echoed");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn refuses_every_malformed_or_wrong_credential_with_401() {
    let app = TestApp::spawn().await;
    let url = app.url("/init");
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("missing header", vec![("EX-APP-ID", APP_ID.into())]),
        ("bad base64", vec![("AUTHORIZATION-APP-API", "%%%not-base64".into()), ("EX-APP-ID", APP_ID.into())]),
        (
            "url-safe base64",
            vec![("AUTHORIZATION-APP-API", b64(b"\xfb:x").replace('+', "-")), ("EX-APP-ID", APP_ID.into())],
        ),
        ("no colon", vec![("AUTHORIZATION-APP-API", b64(b"alice")), ("EX-APP-ID", APP_ID.into())]),
        ("not utf-8", vec![("AUTHORIZATION-APP-API", b64(b"\xff\xfe:x")), ("EX-APP-ID", APP_ID.into())]),
        (
            "wrong secret",
            vec![("AUTHORIZATION-APP-API", appapi_token("", "nope")), ("EX-APP-ID", APP_ID.into())],
        ),
        (
            "secret one char short",
            vec![("AUTHORIZATION-APP-API", appapi_token("", &SECRET[1..])), ("EX-APP-ID", APP_ID.into())],
        ),
        (
            "wrong EX-APP-ID",
            vec![("AUTHORIZATION-APP-API", appapi_token("", SECRET)), ("EX-APP-ID", "other_app".into())],
        ),
        ("missing EX-APP-ID", vec![("AUTHORIZATION-APP-API", appapi_token("", SECRET))]),
        (
            "control char in user",
            vec![
                ("AUTHORIZATION-APP-API", b64(format!("a\u{7}b:{SECRET}").as_bytes())),
                ("EX-APP-ID", APP_ID.into()),
            ],
        ),
    ];
    for (name, headers) in cases {
        let mut req = app.client.post(&url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let (status, body) = status_and_body(req).await;
        assert_eq!(status, 401, "{name}");
        assert_eq!(body["error"]["code"], "unauthorized", "{name}: {body}");
        assert!(body["error"]["message"].is_string(), "{name}");
    }
    // Only the anonymous instance-id lookup of the start-up task reached Nextcloud.
    assert!(app.nc.requests().iter().all(|r| r.path() == "/index.php/login"), "nothing was started");
}

#[tokio::test]
async fn header_names_are_case_insensitive_and_aa_version_is_not_checked() {
    let app = TestApp::spawn().await;
    for (auth, id) in [
        ("authorization-app-api", "ex-app-id"),
        ("AUTHORIZATION-APP-API", "EX-APP-ID"),
        ("Authorization-App-Api", "Ex-App-Id"),
    ] {
        let r = app
            .client
            .put(app.url("/enabled?enabled=0"))
            .header(auth, appapi_token("", SECRET))
            .header(id, APP_ID)
            .header("aa-version", "32")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{auth}/{id}");
    }
}

#[tokio::test]
async fn user_routes_refuse_system_context() {
    let app = TestApp::spawn().await;
    let (status, body) = status_and_body(app.request(Method::GET, "/", "")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("user_required")));
    let r = app.request(Method::GET, "/", "alice").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.text().await.unwrap().contains("Waggle"));
}

#[tokio::test]
async fn public_assets_accept_system_context_but_still_need_the_secret() {
    let app = TestApp::spawn().await;
    let r = app.request(Method::GET, "/img/app.svg", "").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let r = app.client.get(app.url("/img/app.svg")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = app.request(Method::GET, "/img/missing.svg", "").send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn unknown_paths_stay_404_without_credentials() {
    let app = TestApp::spawn().await;
    for (method, path) in
        [(Method::GET, "/nope"), (Method::POST, "/nope/deeper"), (Method::DELETE, "/heartbeat/x")]
    {
        let r = app.client.request(method.clone(), app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
}

#[tokio::test]
async fn websocket_upgrade_without_credentials_is_refused() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/"))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn admin_routes_check_group_membership_through_ocs() {
    let app = TestApp::spawn().await;
    let r = app.request(Method::GET, "/admin/status", "admin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["app"]["id"], "waggle");
    assert_eq!(body["init"]["state"], "not_started");
    assert_eq!(body["events"]["queue"]["depth"], 0, "queue figures on the status route");
    let text = body.to_string();
    assert!(!text.contains(SECRET));
    let lookup = app.nc.requests_to("/ocs/v2.php/cloud/users/admin");
    assert_eq!(lookup.len(), 1);
    assert_eq!(lookup[0].header("authorization-app-api"), Some(appapi_token("admin", SECRET).as_str()));

    let (status, body) = status_and_body(app.request(Method::GET, "/admin/status", "alice")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("admin_required")));
    let (status, _) = status_and_body(app.request(Method::GET, "/admin/status", "")).await;
    assert_eq!(status, 401);
    // A user Nextcloud does not know is no admin.
    let (status, body) = status_and_body(app.request(Method::GET, "/admin/status", "mallory")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("admin_required")));
    // Nextcloud failing is a 502, never access.
    app.nc.on(
        Method::GET,
        "/ocs/v2.php/cloud/users/admin",
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        Value::Null,
    );
    let (status, body) = status_and_body(app.request(Method::GET, "/admin/status", "admin")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (502, Some("nextcloud_unavailable")));
}
