//! The webhook fast path: probing and registering webhook_listeners at enable (400 = not on this
//! version), authenticated deliveries that trigger a (targeted) reconcile, and unregistering at
//! disable with rows already gone tolerated.

use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::{Value, json};

use crate::fakes::nextcloud::{Directory, SharedDirectory};
use crate::fakes::{self, Fake, Recorded};
use crate::harness::{APP_ID, SECRET, TestApp, appapi_token, wait_until};

const API: &str = fakes::nextcloud::WEBHOOKS;
const ACCEPTED: &str = "OCP\\User\\Events\\UserFirstTimeLoggedInEvent";

async fn setup() -> (TestApp, Fake, SharedDirectory) {
    let saas = fakes::saas::events_sink().await;
    let (nc, dir) = fakes::nextcloud::with_directory().await;
    Directory::user(&dir, "alice", "Alice", "a@x", true, &[]);
    fakes::nextcloud::serve_user(&nc, dir.clone(), "alice");
    // webhook_listeners: only the first-login event is compatible on this "server".
    fakes::nextcloud::serve_webhook_listeners(&nc, ACCEPTED);
    let app = TestApp::builder()
        .nextcloud(&nc)
        .saas(&saas)
        .env("WAGGLE_SYNC__ADMIN_UID", "admin")
        .env("WAGGLE_EVENTS__POLL_MS", "50")
        .spawn()
        .await;
    (app, saas, dir)
}

fn hook(app: &TestApp, secret: &str, body: &Value) -> reqwest::RequestBuilder {
    // As AppAPI delivers: its headers with the triggering user, our header from authData, and no
    // Content-Type.
    app.client
        .post(app.url("/hooks/nextcloud"))
        .header("AUTHORIZATION-APP-API", appapi_token("alice", SECRET))
        .header("EX-APP-ID", APP_ID)
        .header("x-waggle-hook-secret", secret)
        .body(body.to_string())
}

#[tokio::test]
async fn webhook_listeners_are_probed_registered_used_and_removed() {
    let (app, saas, dir) = setup().await;
    let r = app.request(Method::PUT, "/enabled?enabled=1", "").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"error": ""}), "a 400 is not an error");
    let log = app
        .nc
        .wait_for(Duration::from_secs(10), |l| {
            l.iter().filter(|r| r.path() == API && r.method == Method::POST).count() >= 8
        })
        .await;
    let posts: Vec<&Recorded> = log.iter().filter(|r| r.path() == API && r.method == Method::POST).collect();
    let secret = waggle::events::ingest::hook_secret(SECRET.as_bytes(), APP_ID);
    for p in &posts {
        let b = p.json();
        assert_eq!(
            p.header("authorization-app-api"),
            Some(appapi_token("", SECRET).as_str()),
            "system context"
        );
        assert_eq!(p.header("ocs-apirequest"), Some("true"));
        assert_eq!(
            (b["uri"].as_str(), b["authMethod"].as_str(), b["httpMethod"].as_str()),
            (Some("/hooks/nextcloud"), Some("header"), Some("POST"))
        );
        assert_eq!(b["authData"]["x-waggle-hook-secret"], secret);
    }
    // Enabling again registers nothing twice.
    app.request(Method::PUT, "/enabled?enabled=1", "").send().await.unwrap();
    wait_until("the second registration pass finishes", Duration::from_secs(10), async || {
        app.metric("webhook_listeners_registered") == 2
    })
    .await;
    let accepted_posts = app
        .nc
        .requests()
        .iter()
        .filter(|r| r.path() == API && r.method == Method::POST && r.json()["event"] == ACCEPTED)
        .count();
    assert_eq!(accepted_posts, 1);

    // A delivery with the right secret is acknowledged at once and leads to the initial export.
    let delivery = json!({"event": {"class": ACCEPTED, "user_id": "alice"}, "user": {"uid": "alice", "displayName": "Alice"}, "time": 1});
    let started = Instant::now();
    let r = hook(&app, &secret, &delivery).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1), "acknowledged well within AppAPI's 3 s");
    saas.wait_for(Duration::from_secs(10), |l| !l.is_empty()).await;
    assert_eq!(saas.requests()[0].json()["type"], "user.created");

    // Later deliveries reconcile just that user.
    dir.lock().unwrap().users.get_mut("alice").unwrap().0 = "Alice Liddell".into();
    let details_before = app.nc.requests_to("/ocs/v1.php/cloud/users/details").len();
    assert_eq!(hook(&app, &secret, &delivery).send().await.unwrap().status(), 200);
    let log = saas.wait_for(Duration::from_secs(10), |l| l.len() >= 2).await;
    let updated = log[1].json();
    assert_eq!(
        (updated["type"].as_str(), updated["data"]["source"].as_str()),
        (Some("user.updated"), Some("webhook"))
    );
    assert_eq!(
        app.nc.requests_to("/ocs/v1.php/cloud/users/details").len(),
        details_before,
        "targeted, not a full run"
    );
    assert!(!app.nc.requests_to("/ocs/v1.php/cloud/users/alice").is_empty());

    // A wrong secret changes nothing.
    dir.lock().unwrap().users.get_mut("alice").unwrap().0 = "Mallory".into();
    let before = app.nc.requests().len();
    let r = hook(&app, "0000", &delivery).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // The refusal is answered before anything could be started for the delivery.
    assert_eq!(app.nc.requests().len(), before, "no reconcile for a forged delivery");
    assert_eq!(saas.requests().len(), 2);

    // Disable removes our rows.
    let r = app.request(Method::PUT, "/enabled?enabled=0", "").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"error": ""}));
    assert_eq!(app.nc.requests_to(&format!("{API}/1")).len(), 1);
}
