//! A signature is accepted at most once, whatever happens between two uses: a graceful restart, a
//! restart within the same second, `kill -9` of the real binary. For `/nc` callbacks (signed up to
//! 55 s ahead, inside the 60 s allowance) and for `/saas/keys/announce`. Each replay must be refused
//! and reach neither Nextcloud nor the SaaS.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::json;
use waggle::signing::{
    CallbackRequest, Component, Message, Purpose, SigningKey, content_digest_value, sign_callback,
    sign_request,
};

use crate::fakes::{self, Fake, ocs_ok};
use crate::harness::{
    APP_ID, Process, SECRET, TENANT_KEY, TENANT_KEY_ID, TestApp, appapi_token, free_port, now,
};

const TARGET: &str = "/ocs/v2.php/cloud/user";

/// A `/nc` GET for alice signed `created` (unix seconds) with the test tenant key.
fn signed(created: u64) -> (Method, HeaderMap) {
    let key = SigningKey::from_tenant_key(TENANT_KEY_ID, TENANT_KEY);
    let req = CallbackRequest {
        method: &Method::GET,
        tunnel: true,
        target: TARGET,
        user: "alice",
        body: b"",
        content_type: None,
        destination: None,
    };
    sign_callback(&key, &req, created, &waggle::signing::random_nonce(&mut rand::rng())).unwrap()
}

/// Sends a signed call to Waggle at `base` as Nextcloud's PHP proxy would (empty AppAPI user).
async fn send(client: &reqwest::Client, base: &str, call: &(Method, HeaderMap)) -> u16 {
    client
        .request(call.0.clone(), format!("{base}/nc{TARGET}"))
        .headers(call.1.clone())
        .header("AUTHORIZATION-APP-API", appapi_token("", SECRET))
        .header("EX-APP-ID", APP_ID)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn reached_nextcloud(nc: &Fake) -> usize {
    nc.requests_to(TARGET).len()
}

async fn nextcloud() -> Fake {
    let nc = fakes::nextcloud::nextcloud().await;
    nc.on(Method::GET, TARGET, StatusCode::OK, ocs_ok(&json!({"id": "alice"})));
    nc
}

#[tokio::test]
async fn a_callback_used_before_a_restart_is_refused_after_it() {
    let nc = nextcloud().await;
    let storage = tempfile::tempdir().unwrap();
    let spawn = || TestApp::builder().storage(storage.path()).nextcloud(&nc).spawn();
    // Two signatures: one made 55 s ahead (within the 60 s allowance for clock lead), one now.
    let ahead = signed(now() + 55);
    let current = signed(now());

    let app = spawn().await;
    let base = app.url("");
    assert_eq!(send(&app.client, &base, &ahead).await, 200);
    assert_eq!(send(&app.client, &base, &current).await, 200);
    assert_eq!(reached_nextcloud(&nc), 2);
    app.stop().await.unwrap();

    // Restarted on the same storage, usually within the same second.
    let app = spawn().await;
    let base = app.url("");
    assert_eq!(send(&app.client, &base, &ahead).await, 401);
    assert_eq!(send(&app.client, &base, &current).await, 401);
    assert_eq!(reached_nextcloud(&nc), 2, "no replay reached Nextcloud");
    assert_eq!(app.metric("nc_signature_failed_nonce_replayed"), 2);
    // A signature made before the restart but never used still works.
    let unused = signed(now() - 5);
    assert_eq!(send(&app.client, &base, &unused).await, 200);
    assert_eq!(reached_nextcloud(&nc), 3);
}

fn start(port: u16, storage: &std::path::Path, nc: &Fake) -> Process {
    let (port, storage, nc) = (port.to_string(), storage.to_str().unwrap(), nc.url());
    Process::spawn(
        Process::command(&[
            ("APP_SECRET", SECRET),
            ("APP_ID", APP_ID),
            ("APP_PORT", &port),
            ("APP_PERSISTENT_STORAGE", storage),
            ("NEXTCLOUD_URL", &nc),
            ("WAGGLE_TENANT_KEY", TENANT_KEY),
            ("WAGGLE_TENANT_KEY_ID", TENANT_KEY_ID),
            ("RUST_LOG", "warn"),
        ]),
        false,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_right_after_a_callback_does_not_reopen_it() {
    let nc = nextcloud().await;
    let storage = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    waggle::tls::install_provider();
    let client = reqwest::Client::new();
    let ahead = signed(now() + 55);

    let mut first = start(port, storage.path(), &nc);
    first.wait_up(&client, port).await;
    assert_eq!(send(&client, &base, &ahead).await, 200);
    first.kill(); // SIGKILL: no shutdown code runs

    let mut second = start(port, storage.path(), &nc);
    second.wait_up(&client, port).await;
    assert_eq!(send(&client, &base, &ahead).await, 401);
    assert_eq!(reached_nextcloud(&nc), 1, "Nextcloud received the call once");
    let fresh = signed(now());
    assert_eq!(send(&client, &base, &fresh).await, 200, "fresh signatures pass at once after a restart");
    second.kill();
}

/// A key announcement signed with `key_id`/`key`, 30 s ahead.
fn announcement(key_id: &str, key: &str, instance: &str) -> (HeaderMap, Vec<u8>) {
    let body = serde_json::to_vec(&json!({"instance_id": instance, "key_id": "k-next"})).unwrap();
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("content-digest", HeaderValue::from_str(&content_digest_value(&body)).unwrap());
    let uri: http::Uri = "/saas/keys/announce".parse().unwrap();
    let covered = [
        Component::Method,
        Component::Field("content-digest".parse().unwrap()),
        Component::Field("content-type".parse().unwrap()),
    ];
    let key = SigningKey::from_tenant_key(key_id, key);
    let nonce = waggle::signing::random_nonce(&mut rand::rng());
    let message = Message::from_uri(&Method::POST, &uri, &h);
    let s = sign_request(&key, Purpose::KeyAnnounce, &message, &covered, now() + 30, &nonce).unwrap();
    s.apply(&mut h).unwrap();
    (h, body)
}

#[tokio::test]
async fn a_key_announcement_used_before_a_restart_is_refused_after_it() {
    // A key bootstrapped from the SaaS (stored, so rotatable); the SaaS then refuses the rotation,
    // so the key that signed the announcement stays current across the restart.
    const KEY: &str = "bootstrapped-tenant-key-aaaaaaaaaaaaaaaa";
    let saas = fakes::saas::key_service("k-1", KEY, Duration::ZERO).await;
    saas.on(Method::POST, fakes::saas::ROTATE, StatusCode::SERVICE_UNAVAILABLE, json!({}));
    let nc = fakes::nextcloud::nextcloud().await;
    let storage = tempfile::tempdir().unwrap();
    let spawn =
        || TestApp::builder().storage(storage.path()).nextcloud(&nc).saas(&saas).without_tenant_key().spawn();
    let app = spawn().await;
    assert_eq!(app.request(Method::POST, "/init", "").send().await.unwrap().status(), 200);
    crate::harness::wait_until("the key is bootstrapped", Duration::from_secs(15), async || {
        app.key_status()["key_id"] == "k-1"
    })
    .await;
    let (h, body) = announcement("k-1", KEY, &app.instance_id().unwrap());
    let post = |app: &TestApp| {
        app.client
            .post(app.url("/saas/keys/announce"))
            .headers(h.clone())
            .header("AUTHORIZATION-APP-API", appapi_token("", SECRET))
            .header("EX-APP-ID", APP_ID)
            .body(body.clone())
            .send()
    };
    let first = post(&app).await.unwrap().status().as_u16();
    assert_eq!(first, 502, "accepted, and the SaaS's refusal to rotate is reported");
    assert_eq!(saas.requests_to(fakes::saas::ROTATE).len(), 1);
    app.stop().await.unwrap();

    let app = spawn().await;
    assert_eq!(app.key_status()["key_id"], "k-1");
    assert_eq!(post(&app).await.unwrap().status(), 401);
    assert_eq!(saas.requests_to(fakes::saas::ROTATE).len(), 1, "the SaaS was not asked again");
    assert_eq!(app.metric("key_announce_refused_nonce_replayed"), 1);
}

#[tokio::test]
async fn waiting_for_the_replay_store_does_not_outlast_a_restart() {
    // The store's lock is released when an app stops, so a restart on the same storage is immediate.
    let storage = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let app = TestApp::builder().storage(storage.path()).spawn().await;
        assert!(started.elapsed() < Duration::from_secs(5));
        app.stop().await.unwrap();
    }
}
