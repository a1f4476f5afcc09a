//! Event delivery from the outbox to a fake SaaS webhook that verifies every delivery with the
//! `standardwebhooks` crate (the reference implementation, independent of ours).

use std::time::Duration;

use axum::http::Method;
use serde_json::{Value, json};
use waggle::events::{EventType, event};

use crate::fakes::saas::verified;
use crate::fakes::{self, Fake, Recorded};
use crate::harness::{TestApp, now, wait_until};

/// How long a delivery may take to show its effects.
const SETTLE: Duration = Duration::from_secs(10);

const PATH: &str = fakes::saas::EVENTS;

/// A fake SaaS answering deliveries with the statuses in `script` (then 200 forever).
async fn saas(script: Vec<u16>) -> Fake {
    fakes::saas::events(script).await
}

async fn app(saas: &Fake, schedule: &str) -> TestApp {
    TestApp::builder()
        .saas(saas)
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
    app.enqueue(events).await;
}

/// Waits until the outbox is empty: every event was acknowledged (after a 2xx) or dead-lettered.
async fn drained(app: &TestApp) {
    wait_until("the outbox drains", SETTLE, async || app.queue_depth().await == 0).await;
}

/// Waits until `events_delivered` reaches `n` (counted once the outcome is committed, just after
/// the queue shows it), and checks it does not overshoot.
async fn counted(app: &TestApp, n: u64) {
    wait_until("deliveries are counted", SETTLE, async || app.metric("events_delivered") >= n).await;
    assert_eq!(app.metric("events_delivered"), n);
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
    // Acknowledged only after the 2xx: the queue empties.
    drained(&app).await;
    assert_eq!(app.queue_depth().await, 0);
    counted(&app, 1).await;
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
    assert_eq!(app.metric("events_retried"), 3);
}

#[tokio::test]
async fn a_410_pauses_delivery_until_an_admin_resumes_it() {
    let saas = saas(vec![410]).await;
    let app = app(&saas, "10,10").await;
    enqueue(&app, vec![user_event("alice", 1)]).await;
    saas.wait_for(Duration::from_secs(10), |l| !l.is_empty()).await;
    // The pause is persisted in the same step that handled the 410; every later step sees it.
    wait_until("delivery pauses", SETTLE, async || app.metric("events_paused") == 1).await;
    assert_eq!(saas.requests_to(PATH).len(), 1, "nothing more while paused");
    let status: Value =
        app.request(Method::GET, "/admin/events", "admin").send().await.unwrap().json().await.unwrap();
    assert!(status["paused"].as_str().unwrap().contains("410"), "{status}");
    assert_eq!(status["queue"]["depth"], 1, "the event is kept");
    let r = app.request(Method::POST, "/admin/events/resume", "admin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    saas.wait_for(Duration::from_secs(10), |l| l.len() >= 2).await;
    drained(&app).await;
    assert_eq!(app.queue_depth().await, 0);
}

#[tokio::test]
async fn an_exhausted_schedule_dead_letters_the_event_and_an_admin_can_replay_it() {
    let saas = saas(vec![500, 500, 500]).await;
    let app = app(&saas, "10,10").await;
    let e = user_event("bob", 1);
    enqueue(&app, vec![e.clone()]).await;
    saas.wait_for(Duration::from_secs(10), |l| l.len() >= 3).await;
    wait_until("the event is dead-lettered", SETTLE, async || app.dead_letters().await == 1).await;
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
    assert_eq!(app.metric("events_dead_lettered"), 1);
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
    // Alice's delivery hangs until Bob's has arrived: only parallel delivery finishes.
    let saas = fakes::saas::events_held_until_another("alice").await;
    let app = app(&saas, "10").await;
    enqueue(&app, vec![user_event("alice", 1), user_event("bob", 1)]).await;
    saas.wait_for(Duration::from_secs(10), |l| l.len() >= 2).await;
    drained(&app).await;
    assert_eq!(app.queue_depth().await, 0);
    assert!(saas.requests_to(PATH).len() == 2, "each delivered once, no timeout-induced retry");
}

#[tokio::test]
async fn a_slow_delivery_holds_one_slot_of_the_window_not_the_others() {
    // Window of 4; Alice's delivery hangs until 24 others have arrived. A worker that waits for its
    // whole batch would stall behind Alice (5 s); a rolling window keeps 3 slots busy meanwhile.
    let saas = fakes::saas::events_held_until_others("alice", 24).await;
    let app = TestApp::builder()
        .saas(&saas)
        .env("WAGGLE_EVENTS__SCHEDULE_MS", "10")
        .env("WAGGLE_EVENTS__POLL_MS", "50")
        .env("WAGGLE_EVENTS__CONCURRENCY", "4")
        .spawn()
        .await;
    let mut events = vec![user_event("alice", 1)];
    for n in 1..=12 {
        events.push(user_event("bob", n));
        events.push(user_event(&format!("user{n}"), 1));
    }
    let bob: Vec<String> = events.iter().filter(|e| e.subject == "user:bob").map(|e| e.id.clone()).collect();
    enqueue(&app, events).await;
    // Well before Alice's 5 s hold could end by itself.
    let log = saas.wait_for(Duration::from_secs(4), |l| l.len() >= 25).await;
    let first_others = log.iter().take_while(|r| !String::from_utf8_lossy(&r.body).contains("alice")).count();
    assert!(first_others < 4, "Alice's event was among the first sent");
    let bob_seen: Vec<String> = log
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("\"bob\""))
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(bob_seen, bob, "one subject's events arrive once each, in order");
    drained(&app).await;
    counted(&app, 25).await;
}
