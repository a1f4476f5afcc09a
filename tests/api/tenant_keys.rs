//! Tenant key lifecycle against a fake SaaS and a fake Nextcloud: bootstrap (with pending approval),
//! restart, failures, single flight, encrypted storage errors, environment override, rotation with
//! overlap, and signed key announcements.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};
use waggle::signing::{
    CallbackRequest, Component, Message, Purpose, SigningKey, content_digest_value, sign_callback,
    sign_request,
};

use crate::fakes::nextcloud::progress;
use crate::fakes::saas::verify_api;
use crate::fakes::{self, Fake, Recorded, ocs_ok};
use crate::harness::{APP_ID, SECRET, TestApp, appapi_token, now, wait_until};

const KEY_1: &str = "bootstrapped-tenant-key-aaaaaaaaaaaaaaaa";
const KEY_2: &str = "rotated-tenant-key-bbbbbbbbbbbbbbbbbbbbbb";

/// A fake SaaS whose bootstrap answers with `KEY_1` after `delay`.
async fn saas_with_bootstrap(delay: Duration) -> Fake {
    fakes::saas::key_service("k-1", KEY_1, delay).await
}

fn builder(saas: &Fake) -> crate::harness::Builder {
    TestApp::builder()
        .saas(saas)
        .without_tenant_key()
        .env("WAGGLE_PAIRING_CODE", "PAIR-1234")
        .env("WAGGLE_NC_PUBLIC_URL", "https://cloud.example.com")
        .env("WAGGLE_KEYS__POLL_MIN_MS", "50")
        .env("WAGGLE_KEYS__POLL_MAX_MS", "200")
}

async fn init_and_wait(app: &TestApp) -> Vec<Recorded> {
    let r = app.request(Method::POST, "/init", "").send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.nc
        .wait_for(Duration::from_secs(15), |log| {
            log.iter().any(|r| r.json()["progress"] == 100 || r.json().get("error").is_some())
        })
        .await
}

async fn key_state(app: &TestApp) -> Value {
    let r = app.request(Method::GET, "/admin/tenant-key", "admin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["tenant_key"].clone()
}

#[tokio::test]
async fn first_install_bootstraps_stores_encrypted_and_a_restart_keeps_the_key() {
    let saas = saas_with_bootstrap(Duration::ZERO).await;
    let storage = tempfile::tempdir().unwrap();
    let nc = fakes::nextcloud::with_admins().await;
    let app = builder(&saas).storage(storage.path()).nextcloud(&nc).spawn().await;
    let log = init_and_wait(&app).await;
    assert_eq!(progress(&log).last().unwrap()["progress"], 100, "{:?}", progress(&log));

    let boot = saas.requests_to("/waggle/v1/bootstrap");
    assert_eq!(boot.len(), 1);
    let b = boot[0].json();
    assert_eq!(b["instance_id"], "octestinstance");
    assert_eq!(b["nextcloud_url"], "https://cloud.example.com/");
    assert_eq!(
        b["callback_urls"]["php_proxy"],
        "https://cloud.example.com/index.php/apps/app_api/proxy/waggle"
    );
    assert_eq!(b["callback_urls"]["harp"], "https://cloud.example.com/exapps/waggle");
    assert_eq!(b["app"], json!({"id": "waggle", "version": "0.1.0"}));
    assert_eq!(b["admin"], json!({"uid": "root", "email": "root@example.com", "display_name": "The Admin"}));
    // Found by reading each candidate's own record as that user, in order, never as the system.
    let lookups: Vec<String> = nc
        .requests_to(fakes::nextcloud::OWN_RECORD)
        .iter()
        .filter_map(fakes::nextcloud::acting_user)
        .collect();
    assert_eq!(lookups, ["ada", "root"]);
    assert_eq!(b["pairing_code"], "PAIR-1234");

    let file = storage.path().join("tenant-key.enc");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let bytes = std::fs::read(&file).unwrap();
    assert!(!bytes.windows(KEY_1.len()).any(|w| w == KEY_1.as_bytes()), "encrypted at rest");

    let state = key_state(&app).await;
    assert_eq!(
        (state["state"].as_str(), state["key_id"].as_str(), state["source"].as_str()),
        (Some("active"), Some("k-1"), Some("stored"))
    );
    assert!(!state.to_string().contains(KEY_1), "status never shows key material");

    // The key signs /api.
    assert_eq!(app.request(Method::GET, "/api/echo", "alice").send().await.unwrap().status(), 200);
    verify_api(saas.requests_to("/api/echo").last().unwrap(), &saas.addr.to_string(), "k-1", KEY_1).unwrap();
    app.stop().await.unwrap();

    // Restart on the same storage: same key, no new bootstrap.
    let app = builder(&saas).storage(storage.path()).nextcloud(&nc).spawn().await;
    init_and_wait(&app).await;
    assert_eq!(saas.requests_to("/waggle/v1/bootstrap").len(), 1, "no second bootstrap");
    assert_eq!(app.request(Method::GET, "/api/echo", "alice").send().await.unwrap().status(), 200);
    verify_api(saas.requests_to("/api/echo").last().unwrap(), &saas.addr.to_string(), "k-1", KEY_1).unwrap();
}

#[tokio::test]
async fn a_pending_answer_keeps_init_below_100_until_approval() {
    // The first two polls stay pending, the third approves.
    let saas = fakes::saas::key_service_pending("k-1", KEY_1, "awaiting approval", 2).await;
    let app = builder(&saas).spawn().await;
    let r = app.request(Method::POST, "/init", "").send().await.unwrap();
    assert_eq!(r.status(), 200);
    // While pending, the admin status says so.
    let mut seen = Value::Null;
    wait_until("the key state leaves `none`", Duration::from_secs(5), async || {
        seen = key_state(&app).await;
        seen["state"] == "pending" || seen["state"] == "active"
    })
    .await;
    assert_eq!(seen["state"], "pending", "the pending state is visible");
    assert_eq!(seen["message"], "awaiting approval");
    let log =
        app.nc.wait_for(Duration::from_secs(15), |log| log.iter().any(|r| r.json()["progress"] == 100)).await;
    assert!(saas.requests_to("/waggle/v1/bootstrap/pending/p1").len() >= 3);
    let p = progress(&log);
    let before_approval: Vec<_> = p.iter().filter_map(|v| v["progress"].as_i64()).collect();
    assert!(
        before_approval.iter().filter(|n| **n == 100).count() == 1 && *before_approval.last().unwrap() == 100
    );
    assert_eq!(key_state(&app).await["state"], "active");
}

#[tokio::test]
async fn a_bootstrap_failure_is_reported_through_the_init_progress_error() {
    let saas = fakes::saas::key_service_refusing(
        StatusCode::FORBIDDEN,
        "pairing_required",
        "enter the pairing code from the admin console",
    )
    .await;
    let app = builder(&saas).spawn().await;
    let log = init_and_wait(&app).await;
    let error =
        progress(&log).iter().find_map(|v| v["error"].as_str().map(str::to_owned)).expect("an error report");
    assert!(error.contains("pairing_required") && error.contains("403"), "{error}");
    assert!(progress(&log).iter().all(|v| v["progress"] != 100));
    assert_eq!(key_state(&app).await["state"], "none");
}

#[tokio::test]
async fn concurrent_inits_and_triggers_make_one_bootstrap_request() {
    let saas = saas_with_bootstrap(Duration::from_millis(300)).await;
    let app = builder(&saas).spawn().await;
    let (a, b, c) = tokio::join!(
        app.request(Method::POST, "/init", "").send(),
        app.request(Method::POST, "/admin/tenant-key/bootstrap", "admin").send(),
        app.request(Method::PUT, "/enabled?enabled=1", "").send(),
    );
    assert_eq!(
        (a.unwrap().status(), b.unwrap().status(), c.unwrap().status()),
        (StatusCode::OK, StatusCode::OK, StatusCode::OK)
    );
    app.nc.wait_for(Duration::from_secs(10), |log| log.iter().any(|r| r.json()["progress"] == 100)).await;
    let r = app.request(Method::POST, "/init", "").send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The second init finishes (its key step finds the key) without asking the SaaS again.
    app.nc
        .wait_for(Duration::from_secs(10), |log| {
            progress(log).iter().filter(|p| p["progress"] == 100).count() >= 2
        })
        .await;
    assert_eq!(saas.requests_to("/waggle/v1/bootstrap").len(), 1);
}

#[tokio::test]
async fn a_wrong_app_secret_or_a_corrupt_file_stops_signing_with_a_clear_error_and_never_rebootstraps() {
    let saas = saas_with_bootstrap(Duration::ZERO).await;
    let storage = tempfile::tempdir().unwrap();
    let app = builder(&saas).storage(storage.path()).spawn().await;
    init_and_wait(&app).await;
    app.stop().await.unwrap();
    assert_eq!(saas.requests_to("/waggle/v1/bootstrap").len(), 1);

    // Restart with another APP_SECRET.
    let app = builder(&saas).storage(storage.path()).env("APP_SECRET", "a-different-secret").spawn().await;
    let state = app.key_status();
    let text = state;
    assert_eq!(text["state"], "error");
    assert!(text["message"].as_str().unwrap().contains("APP_SECRET"), "{text}");
    let token = appapi_token("alice", "a-different-secret");
    let r = app
        .client
        .get(app.url("/api/echo"))
        .header("AUTHORIZATION-APP-API", token)
        .header("EX-APP-ID", APP_ID)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "tenant_key_missing");
    app.stop().await.unwrap();

    // A corrupt file (one flipped byte) and a truncated one: same clear error, no new identity.
    let file = storage.path().join("tenant-key.enc");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let app = builder(&saas).storage(storage.path()).spawn().await;
    assert_eq!(app.key_status()["state"], "error");
    let log = init_and_wait(&app).await;
    let error = progress(&log).iter().find_map(|v| v["error"].as_str().map(str::to_owned)).unwrap();
    assert!(error.contains("cannot be decrypted"), "{error}");
    app.stop().await.unwrap();
    std::fs::write(&file, &bytes[..10]).unwrap();
    let app = builder(&saas).storage(storage.path()).spawn().await;
    assert!(app.key_status()["message"].as_str().unwrap().contains("truncated"));
    assert_eq!(saas.requests_to("/waggle/v1/bootstrap").len(), 1, "never a silent re-bootstrap");
}

#[tokio::test]
async fn an_environment_key_overrides_the_stored_one_and_never_bootstraps() {
    let saas = saas_with_bootstrap(Duration::ZERO).await;
    let storage = tempfile::tempdir().unwrap();
    let app = builder(&saas).storage(storage.path()).spawn().await;
    init_and_wait(&app).await;
    app.stop().await.unwrap();
    let app = builder(&saas)
        .storage(storage.path())
        .env("WAGGLE_TENANT_KEY", "environment-key-cccccccccccccccc")
        .env("WAGGLE_TENANT_KEY_ID", "k-env")
        .spawn()
        .await;
    init_and_wait(&app).await;
    let state = key_state(&app).await;
    assert_eq!((state["key_id"].as_str(), state["source"].as_str()), (Some("k-env"), Some("environment")));
    assert_eq!(app.request(Method::GET, "/api/echo", "alice").send().await.unwrap().status(), 200);
    verify_api(
        saas.requests_to("/api/echo").last().unwrap(),
        &saas.addr.to_string(),
        "k-env",
        "environment-key-cccccccccccccccc",
    )
    .unwrap();
    assert_eq!(saas.requests_to("/waggle/v1/bootstrap").len(), 1);
    let r = app.request(Method::POST, "/admin/tenant-key/rotate", "admin").send().await.unwrap();
    assert_eq!(r.status(), 409, "an environment key is rotated in the environment");
}

/// A rotation endpoint that checks the request is signed with `KEY_1` and answers `KEY_2`.
fn with_rotation(saas: &Fake) {
    fakes::saas::serve_rotation(saas, ("k-1", KEY_1), ("k-2", KEY_2));
}

fn nc_call(key_id: &str, key: &str) -> (Method, HeaderMap) {
    let k = SigningKey::from_tenant_key(key_id, key);
    let m = Method::GET;
    let req = CallbackRequest {
        method: &m,
        tunnel: true,
        target: "/ocs/v2.php/cloud/user",
        user: "alice",
        body: b"",
        content_type: None,
        destination: None,
    };
    sign_callback(&k, &req, now(), &waggle::signing::random_nonce(&mut rand::rng())).unwrap()
}

async fn send_nc(app: &TestApp, key_id: &str, key: &str) -> u16 {
    let (wire, headers) = nc_call(key_id, key);
    app.client
        .request(wire, app.url("/nc/ocs/v2.php/cloud/user"))
        .headers(headers)
        .header("AUTHORIZATION-APP-API", appapi_token("", SECRET))
        .header("EX-APP-ID", APP_ID)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn rotation_keeps_the_old_key_verifying_only_within_the_overlap() {
    let saas = saas_with_bootstrap(Duration::ZERO).await;
    with_rotation(&saas);
    let app = builder(&saas).env("WAGGLE_KEYS__CALLBACK_OVERLAP_SECS", "2").spawn().await;
    app.nc.on(Method::GET, "/ocs/v2.php/cloud/user", StatusCode::OK, ocs_ok(&json!({"id": "alice"})));
    init_and_wait(&app).await;
    assert_eq!(send_nc(&app, "k-1", KEY_1).await, 200);

    let r = app.request(Method::POST, "/admin/tenant-key/rotate", "admin").send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(saas.requests_to("/waggle/v1/keys/rotate").len(), 1);
    let state = key_state(&app).await;
    assert_eq!(
        (state["key_id"].as_str(), state["rotating"].as_bool(), state["previous_key_id"].as_str()),
        (Some("k-2"), Some(true), Some("k-1"))
    );

    // New outbound signatures use the new key.
    app.request(Method::GET, "/api/echo", "alice").send().await.unwrap();
    verify_api(saas.requests_to("/api/echo").last().unwrap(), &saas.addr.to_string(), "k-2", KEY_2).unwrap();
    // Both keys verify /nc during the overlap…
    assert_eq!(send_nc(&app, "k-1", KEY_1).await, 200);
    assert_eq!(send_nc(&app, "k-2", KEY_2).await, 200);
    // …and only the new one after it.
    wait_until("the overlap of k-1 ends", Duration::from_secs(5), async || !app.key_verifies("k-1")).await;
    assert_eq!(send_nc(&app, "k-1", KEY_1).await, 401);
    assert_eq!(send_nc(&app, "k-2", KEY_2).await, 200);
    // The rotation is audited (rows are written by the audit task).
    let rotated = |r: &waggle::store::AuditRecord| r.method == "ROTATE" && r.target == "tenant-key:k-1->k-2";
    wait_until("the rotation is audited", Duration::from_secs(5), async || {
        app.audit(None).await.iter().any(rotated)
    })
    .await;
}

fn announcement(key_id: &str, key: &str, instance: &str, new_id: &str) -> (HeaderMap, Vec<u8>) {
    let body = serde_json::to_vec(&json!({"instance_id": instance, "key_id": new_id})).unwrap();
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("content-digest", HeaderValue::from_str(&content_digest_value(&body)).unwrap());
    let uri: http::Uri = "/saas/keys/announce".parse().unwrap();
    let covered = [
        Component::Method,
        Component::Field("content-digest".parse().unwrap()),
        Component::Field("content-type".parse().unwrap()),
    ];
    let k = SigningKey::from_tenant_key(key_id, key);
    let s = sign_request(
        &k,
        Purpose::KeyAnnounce,
        &Message::from_uri(&Method::POST, &uri, &h),
        &covered,
        now(),
        &waggle::signing::random_nonce(&mut rand::rng()),
    )
    .unwrap();
    s.apply(&mut h).unwrap();
    (h, body)
}

async fn announce(app: &TestApp, h: HeaderMap, body: Vec<u8>) -> u16 {
    app.client
        .post(app.url("/saas/keys/announce"))
        .headers(h)
        .header("AUTHORIZATION-APP-API", appapi_token("", SECRET))
        .header("EX-APP-ID", APP_ID)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn key_announcements_must_be_signed_with_the_current_key() {
    let saas = saas_with_bootstrap(Duration::ZERO).await;
    with_rotation(&saas);
    let app = builder(&saas).spawn().await;
    init_and_wait(&app).await;

    let forgeries = [
        announcement("k-1", "not-the-tenant-key-ddddddddddddddd", "octestinstance", "k-2"),
        announcement("k-9", KEY_1, "octestinstance", "k-2"),
    ];
    for (h, body) in forgeries {
        assert_eq!(announce(&app, h, body).await, 401);
    }
    // A callback-tagged signature is not an announcement either.
    let (h, body) = announcement("k-1", KEY_1, "octestinstance", "k-2");
    let mut swapped = h.clone();
    let input = h["signature-input"].to_str().unwrap().replace("waggle-key", "waggle-nc");
    swapped.insert("signature-input", HeaderValue::from_str(&input).unwrap());
    assert_eq!(announce(&app, swapped, body.clone()).await, 401);
    // Tampered body.
    let mut tampered = body.clone();
    tampered[5] ^= 1;
    assert_eq!(announce(&app, h.clone(), tampered).await, 401);
    assert!(saas.requests_to("/waggle/v1/keys/rotate").is_empty(), "no forgery triggered a rotation");
    assert_eq!(key_state(&app).await["key_id"], "k-1");

    // The genuine announcement rotates, fetching the new key over the direct signed channel.
    assert_eq!(announce(&app, h.clone(), body.clone()).await, 200);
    assert_eq!(key_state(&app).await["key_id"], "k-2");
    assert_eq!(saas.requests_to("/waggle/v1/keys/rotate").len(), 1);
    // Replaying it does nothing.
    assert_eq!(announce(&app, h, body).await, 401);
    assert_eq!(saas.requests_to("/waggle/v1/keys/rotate").len(), 1);
}
