//! Event delivery from the outbox to a fake SaaS webhook that verifies every delivery with the
//! `standardwebhooks` crate (the reference implementation, independent of ours).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use waggle::events::{EventType, event};

use crate::fakes::{Fake, Recorded};
use crate::harness::TestApp;
use crate::saas_proxy::{TENANT_KEY, now};

const PATH: &str = "/waggle/v1/events";

/// The fake's verdict on one delivery, using the reference library.
fn verified(r: &Recorded) -> bool {
    let hook = standardwebhooks::Webhook::from_bytes(TENANT_KEY.as_bytes().to_vec()).unwrap();
    hook.verify(&r.body, &r.headers).is_ok()
}

/// A fake SaaS answering deliveries with the statuses in `script` (then 200 forever).
async fn saas(script: Vec<u16>) -> Fake {
    let saas = Fake::start().await;
    let script = Arc::new(Mutex::new(script.into_iter()));
    saas.on_async(Method::POST, PATH, None, move |r: Recorded| {
        let next = script.lock().unwrap().next().unwrap_or(200);
        let ok = verified(&r);
        async move {
            if !ok {
                return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
            }
            StatusCode::from_u16(next).unwrap().into_response()
        }
    });
    saas
}

async fn app(saas: &Fake, schedule: &str) -> TestApp {
    TestApp::builder()
        .env("WAGGLE_SERVICE_URL", &saas.url())
        .env("WAGGLE_EVENTS__SCHEDULE_MS", schedule)
        .env("WAGGLE_EVENTS__POLL_MS", "50")
        .spawn()
        .await
}

fn user_event(uid: &str, n: u32) -> waggle::events::Event {
    event(
        "octestinstance",
        EventType::UserUpdated,
        &format!("user:{uid}"),
        &n.to_string(),
        &json!({"uid": uid, "n": n}),
        now(),
    )
}

async fn enqueue(app: &TestApp, events: Vec<waggle::events::Event>) {
    let now_ms = i64::try_from(now() * 1000).unwrap();
    app.state.outbox.enqueue(events, now_ms).await.unwrap();
    app.state.events_wakeup.wake();
}

fn delivered_ids(saas: &Fake, status_ok: impl Fn(&Recorded) -> bool) -> Vec<String> {
    saas.requests_to(PATH)
        .iter()
        .filter(|r| status_ok(r))
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn deliveries_carry_standard_webhooks_headers_and_verify_with_the_reference_library() {
    let saas = saas(vec![]).await;
    let app = app(&saas, "10,10").await;
    let e = user_event("alice", 1);
    enqueue(&app, vec![e.clone()]).await;
    let log = saas.wait_for(Duration::from_secs(10), |l| !l.is_empty()).await;
    let r = &log[0];
    assert!(verified(r), "the reference library verifies our signature");
    assert_eq!(r.header("webhook-id"), Some(e.id.as_str()));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let ts: u64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!(ts.abs_diff(now()) < 5);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((body["type"].as_str(), body["data"]["uid"].as_str()), (Some("user.updated"), Some("alice")));
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    // Acknowledged only after the 2xx: the queue is empty now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.state.outbox.stats(0).await.unwrap().depth, 0);
    assert_eq!(app.state.metrics.get("events_delivered"), 1);
}

#[tokio::test]
async fn an_outage_of_three_503s_is_retried_and_the_order_of_a_subject_is_kept() {
    let saas = saas(vec![503, 503, 503]).await;
    let app = app(&saas, "20,20,20,20,20").await;
    let events: Vec<_> = (1..=3).map(|n| user_event("alice", n)).collect();
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    enqueue(&app, events).await;
    saas.wait_for(Duration::from_secs(10), |l| l.len() >= 6).await;
    let all = delivered_ids(&saas, |_| true);
    assert_eq!(
        &all[..4],
        &[ids[0].clone(), ids[0].clone(), ids[0].clone(), ids[0].clone()],
        "the head is retried, nothing overtakes it"
    );
    assert_eq!(&all[4..6], &ids[1..3], "then the rest, in order");
    assert_eq!(app.state.metrics.get("events_retried"), 3);
}

#[tokio::test]
async fn a_410_pauses_delivery_until_an_admin_resumes_it() {
    let saas = saas(vec![410]).await;
    let app = app(&saas, "10,10").await;
    enqueue(&app, vec![user_event("alice", 1)]).await;
    saas.wait_for(Duration::from_secs(10), |l| !l.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(saas.requests_to(PATH).len(), 1, "nothing more while paused");
    let status: Value =
        app.request(Method::GET, "/admin/events", "admin").send().await.unwrap().json().await.unwrap();
    assert!(status["paused"].as_str().unwrap().contains("410"), "{status}");
    assert_eq!(status["queue"]["depth"], 1, "the event is kept");
    let r = app.request(Method::POST, "/admin/events/resume", "admin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    saas.wait_for(Duration::from_secs(10), |l| l.len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.state.outbox.stats(0).await.unwrap().depth, 0);
}

#[tokio::test]
async fn an_exhausted_schedule_dead_letters_the_event_and_an_admin_can_replay_it() {
    let saas = saas(vec![500, 500, 500]).await;
    let app = app(&saas, "10,10").await;
    let e = user_event("bob", 1);
    enqueue(&app, vec![e.clone()]).await;
    saas.wait_for(Duration::from_secs(10), |l| l.len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let list: Value = app
        .request(Method::GET, "/admin/events/dead-letters", "admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dl = &list["dead_letters"][0];
    assert_eq!(
        (dl["id"].as_str(), dl["attempts"].as_u64(), dl["last_status"].as_u64()),
        (Some(e.id.as_str()), Some(3), Some(500))
    );
    assert_eq!(app.state.metrics.get("events_dead_lettered"), 1);
    // Other subjects are not blocked by a dead letter.
    let r = app
        .request(Method::POST, &format!("/admin/events/dead-letters/{}/replay", e.id), "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    saas.wait_for(Duration::from_secs(10), |l| l.len() >= 4).await;
    let last = saas.requests_to(PATH).pop().unwrap();
    assert_eq!(last.header("webhook-id"), Some(e.id.as_str()), "replayed with the same id");
    let r = app
        .request(Method::POST, "/admin/events/dead-letters/evt_nope/replay", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn different_subjects_are_delivered_in_parallel() {
    let saas = Fake::start().await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    saas.on_async(Method::POST, PATH, None, move |r: Recorded| {
        let g = g.clone();
        async move {
            // Alice's delivery hangs until Bob's has arrived: only parallel delivery finishes.
            if String::from_utf8_lossy(&r.body).contains("alice") {
                let _ = tokio::time::timeout(Duration::from_secs(5), g.acquire()).await;
            } else {
                g.add_permits(1);
            }
            StatusCode::OK.into_response()
        }
    });
    let app = app(&saas, "10").await;
    enqueue(&app, vec![user_event("alice", 1), user_event("bob", 1)]).await;
    saas.wait_for(Duration::from_secs(10), |l| l.len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.state.outbox.stats(0).await.unwrap().depth, 0);
    assert!(saas.requests_to(PATH).len() == 2, "each delivered once, no timeout-induced retry");
}
