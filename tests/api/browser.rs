//! The UI in a real browser: headless Chromium (Debian's, driven by playwright-core from
//! `web/tests/browser/run.mjs`) against the real Waggle with the fakes behind it, through a small
//! stand-in for Nextcloud's front: AppAPI's PHP proxy (AppAPI headers for the signed-in test user,
//! CSP nonce added to `<script` in `.html` documents, Nextcloud's nonce + 'strict-dynamic' CSP) and
//! AppAPI's embedded top-menu page (an empty `#content`, the initial state under app `app_api`, the
//! registered script and style loaded through the proxy).
//!
//! Ignored by plain `cargo test`: it needs `web/node_modules` (playwright-core) and Chromium.
//! `scripts/test.sh` installs the first and runs it: `cargo test --test api browser -- --ignored`.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine as _;

use crate::harness::{APP_ID, SECRET, TestApp, appapi_token};

/// The cookie that says who is signed in to the stand-in Nextcloud.
const USER_COOKIE: &str = "nc_test_user";
/// Nextcloud's CSP nonce for every page of the stand-in (a fixed value is fine for a test).
const NONCE: &str = "dGVzdG5vbmNlMTIz";

#[derive(Clone)]
struct Front {
    waggle: String,
    client: reqwest::Client,
}

/// Nextcloud's CSP for proxied pages and the embedded page (the shape of NC 31's): scripts need
/// the nonce or a nonced script that loaded them.
fn nextcloud_csp(embedded: bool) -> HeaderValue {
    let extra = if embedded { " 'unsafe-eval' 'unsafe-inline'" } else { "" };
    HeaderValue::from_str(&format!(
        "default-src 'none'; base-uri 'none'; manifest-src 'self'; script-src 'nonce-{NONCE}'{extra}; \
         script-src-elem 'strict-dynamic' 'nonce-{NONCE}'{extra}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; media-src 'self'; \
         frame-ancestors 'self'; form-action 'self'"
    ))
    .unwrap()
}

fn user_of(headers: &HeaderMap) -> String {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == USER_COOKIE)
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

/// AppAPI's PHP proxy, as far as the browser can tell: GET/POST/PUT/DELETE only, the user from the
/// session, AppAPI headers replaced, nonce added to scripts of `.html` documents, Nextcloud's CSP.
async fn proxy(State(front): State<Arc<Front>>, Path(path): Path<String>, request: Request) -> Response {
    let method = request.method().clone();
    if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "DELETE") {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let user = user_of(request.headers());
    let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let mut out = front.client.request(method, format!("{}/{path}{query}", front.waggle));
    for (name, value) in request.headers() {
        if ![header::HOST, header::CONTENT_LENGTH, header::CONNECTION].contains(name) {
            out = out.header(name, value);
        }
    }
    let body = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap();
    let answer = out
        .header("AUTHORIZATION-APP-API", appapi_token(&user, SECRET))
        .header("EX-APP-ID", APP_ID)
        .header("EX-APP-VERSION", "0.1.0")
        .header("AA-VERSION", "5.0.2")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let mut headers = answer.headers().clone();
    let mut bytes = answer.bytes().await.unwrap().to_vec();
    if path.ends_with(".html") {
        let html =
            String::from_utf8(bytes).unwrap().replace("<script", &format!("<script nonce=\"{NONCE}\""));
        bytes = html.into_bytes();
        headers.remove(header::CONTENT_LENGTH);
    }
    headers.insert(header::CONTENT_SECURITY_POLICY, nextcloud_csp(false));
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

async fn proxy_root(front: State<Arc<Front>>, request: Request) -> Response {
    proxy(front, Path(String::new()), request).await
}

/// AppAPI's embedded top-menu page: Nextcloud's layout with an empty `#content`, the initial state
/// Waggle registered, and its script and style loaded through the proxy (`?v=` as Nextcloud adds).
async fn embedded() -> Response {
    let state = base64::engine::general_purpose::STANDARD.encode(r#"{"app_id":"waggle","version":"0.1.0"}"#);
    let page = format!(
        r#"<!DOCTYPE html>
<html lang="en" data-locale="en"><head><meta charset="utf-8"><title>Waggle - Nextcloud</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ margin: 0; font-family: system-ui, sans-serif; background: #00679e; }}
 #header {{ height: 50px; display: flex; align-items: center; gap: 16px; padding: 0 12px; color: #fff; font-weight: bold; }}
 #header .app {{ opacity: .8; font-weight: normal; }}
 #content, .waggle-host {{ box-sizing: border-box; margin: 0 8px 8px; height: calc(100vh - 58px); border-radius: 10px; overflow: clip; background: #fff; }}
 .waggle-host #content-vue {{ height: 100%; }}
</style>
<link rel="stylesheet" href="/index.php/apps/app_api/proxy/waggle/css/waggle-main.css?v=0.1.0">
<script nonce="{NONCE}" defer src="/index.php/apps/app_api/proxy/waggle/js/waggle-main.js?v=0.1.0"></script>
</head><body id="body-user">
<input type="hidden" id="initial-state-app_api-waggle" value="{state}">
<div id="skip-actions"></div>
<header id="header"><span>Nextcloud</span><span class="app">Files</span><span class="app">Waggle</span></header>
<div id="content" class="app-app_api"></div>
</body></html>"#
    );
    let mut response = Html(page).into_response();
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, nextcloud_csp(true));
    response
}

async fn front(waggle: String) -> SocketAddr {
    let front = Arc::new(Front {
        waggle,
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
    });
    let app = Router::new()
        .route("/index.php/apps/app_api/proxy/waggle/", any(proxy_root))
        .route("/index.php/apps/app_api/proxy/waggle/{*path}", any(proxy))
        .route("/index.php/apps/app_api/embedded/waggle/main", get(embedded))
        .with_state(front);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
#[ignore = "needs web/node_modules and Chromium; scripts/test.sh runs it"]
async fn browser_opens_every_page_both_ways_in_with_real_data() {
    let app = TestApp::spawn().await;
    let addr = front(app.url("").trim_end_matches('/').to_owned()).await;
    let web = concat!(env!("CARGO_MANIFEST_DIR"), "/web");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("tests/browser/run.mjs")
            .current_dir(web)
            .env("WAGGLE_FRONT", format!("http://{addr}"))
            .env("WAGGLE_SCREENSHOTS", concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots"))
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser run failed:\n{stdout}\n{stderr}");
    println!("{stdout}");
}
