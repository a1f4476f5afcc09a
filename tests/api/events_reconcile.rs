//! Reconciliation against a fake Nextcloud with a mutable directory: add, change, disable and remove
//! users and groups, and assert the exact events that reach the (fake) SaaS webhook.

use std::time::Duration;

use axum::http::Method;
use serde_json::{Value, json};

use crate::fakes::nextcloud::{Directory, SharedDirectory};
use crate::fakes::{self, Fake};
use crate::harness::{TestApp, wait_until};

async fn setup() -> (TestApp, Fake, SharedDirectory) {
    let saas = fakes::saas::events_sink().await;
    let (nc, dir) = fakes::nextcloud::with_directory().await;
    let app = TestApp::builder()
        .nextcloud(&nc)
        .saas(&saas)
        .env("WAGGLE_SYNC__ADMIN_UID", "admin")
        .env("WAGGLE_EVENTS__POLL_MS", "50")
        .spawn()
        .await;
    (app, saas, dir)
}

async fn sync(app: &TestApp) -> Value {
    let r = app.request(Method::POST, "/admin/sync", "admin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["reconcile"].clone()
}

/// Waits until `n` more deliveries arrived and returns them as (type, data without source), sorted.
async fn delivered(saas: &Fake, before: usize, n: usize) -> Vec<(String, Value)> {
    let log = saas.wait_for(Duration::from_secs(10), |l| l.len() >= before + n).await;
    let mut out: Vec<(String, Value)> = log[before..]
        .iter()
        .map(|r| {
            let v = r.json();
            let mut data = v["data"].clone();
            data.as_object_mut().unwrap().remove("source");
            (v["type"].as_str().unwrap().to_owned(), data)
        })
        .collect();
    out.sort_by_key(|a| (a.0.clone(), a.1.to_string()));
    out
}

fn user(dir: &SharedDirectory, uid: &str, name: &str, email: &str, enabled: bool, groups: &[&str]) {
    Directory::user(dir, uid, name, email, enabled, groups);
}

#[tokio::test]
async fn directory_changes_become_the_exact_events() {
    let (app, saas, dir) = setup().await;
    user(&dir, "alice", "Alice", "a@x", true, &["staff"]);
    user(&dir, "bob", "Bob", "", true, &[]);
    dir.lock().unwrap().groups.extend(["staff".to_owned(), "empty".to_owned()]);

    // The initial export: the full state, marked as such.
    let report = sync(&app).await;
    assert_eq!(
        (report["initial"].as_bool(), report["events"].as_u64(), report["users"].as_u64()),
        (Some(true), Some(5), Some(2))
    );
    let got = delivered(&saas, 0, 5).await;
    assert_eq!(
        got,
        vec![
            ("group.created".into(), json!({"gid": "empty"})),
            ("group.created".into(), json!({"gid": "staff"})),
            ("group.member_added".into(), json!({"gid": "staff", "uid": "alice"})),
            (
                "user.created".into(),
                json!({"uid": "alice", "display_name": "Alice", "email": "a@x", "enabled": true})
            ),
            (
                "user.created".into(),
                json!({"uid": "bob", "display_name": "Bob", "email": null, "enabled": true})
            ),
        ]
    );
    assert!(saas.requests().iter().all(|r| r.json()["data"]["source"] == "initial"));

    // Changes.
    user(&dir, "alice", "Alice A.", "a@x", true, &[]);
    user(&dir, "bob", "Bob", "", false, &[]);
    user(&dir, "carol", "Carol", "c@x", true, &["staff"]);
    {
        let mut d = dir.lock().unwrap();
        d.groups.remove("empty");
        d.groups.insert("new".into());
    }
    let report = sync(&app).await;
    assert_eq!((report["initial"].as_bool(), report["events"].as_u64()), (Some(false), Some(7)));
    let got = delivered(&saas, 5, 7).await;
    assert_eq!(
        got,
        vec![
            ("group.created".into(), json!({"gid": "new"})),
            ("group.deleted".into(), json!({"gid": "empty"})),
            ("group.member_added".into(), json!({"gid": "staff", "uid": "carol"})),
            ("group.member_removed".into(), json!({"gid": "staff", "uid": "alice"})),
            (
                "user.created".into(),
                json!({"uid": "carol", "display_name": "Carol", "email": "c@x", "enabled": true})
            ),
            ("user.disabled".into(), json!({"uid": "bob"})),
            (
                "user.updated".into(),
                json!({"uid": "alice", "changed": ["display_name"], "display_name": "Alice A.", "email": "a@x"})
            ),
        ]
    );
    assert!(saas.requests()[5..].iter().all(|r| r.json()["data"]["source"] == "reconcile"));

    // Removal of a user with a membership, and re-enabling.
    dir.lock().unwrap().users.remove("carol");
    user(&dir, "bob", "Bob", "", true, &[]);
    sync(&app).await;
    let got = delivered(&saas, 12, 3).await;
    assert_eq!(
        got,
        vec![
            ("group.member_removed".into(), json!({"gid": "staff", "uid": "carol"})),
            ("user.deleted".into(), json!({"uid": "carol"})),
            ("user.enabled".into(), json!({"uid": "bob"})),
        ]
    );

    // No change, no event.
    let report = sync(&app).await;
    assert_eq!(report["events"], 0);
    // Events are acknowledged after the SaaS recorded them: an empty outbox means all arrived.
    wait_until("the outbox drains", Duration::from_secs(10), async || app.queue_depth().await == 0).await;
    assert_eq!(saas.requests().len(), 15);
    let status: Value =
        app.request(Method::GET, "/admin/events", "admin").send().await.unwrap().json().await.unwrap();
    assert_eq!(status["last_reconcile"]["events"], 0);
    assert_eq!(status["queue"]["depth"], 0);
}

#[tokio::test]
async fn paging_covers_more_users_than_one_page_and_a_recreated_user_gets_a_new_event_id() {
    let (app, saas, dir) = setup().await;
    for i in 0..1_203 {
        user(&dir, &format!("u{i:05}"), &format!("User {i}"), "", true, &[]);
    }
    let report = sync(&app).await;
    assert_eq!((report["users"].as_u64(), report["events"].as_u64()), (Some(1_203), Some(1_203)));
    let ocs_pages = app.nc.requests_to("/ocs/v1.php/cloud/users/details").len();
    assert_eq!(ocs_pages, 3, "500 + 500 + 203");
    saas.wait_for(Duration::from_secs(30), |l| l.len() >= 1_203).await;

    // Delete and recreate the same user with the same data: a new id, so the SaaS does not dedupe it away.
    let created_before: Vec<String> = saas
        .requests()
        .iter()
        .filter(|r| r.json()["data"]["uid"] == "u00000")
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    dir.lock().unwrap().users.remove("u00000");
    sync(&app).await;
    user(&dir, "u00000", "User 0", "", true, &[]);
    sync(&app).await;
    let log = saas
        .wait_for(Duration::from_secs(10), |l| {
            l.iter().filter(|r| r.json()["data"]["uid"] == "u00000").count() >= 3
        })
        .await;
    let ids: Vec<String> = log
        .iter()
        .filter(|r| r.json()["data"]["uid"] == "u00000")
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], created_before[0]);
    assert_ne!(ids[2], ids[0], "the second user.created has its own id");
}
