//! What a real Nextcloud 31 showed (`tests/real_nextcloud`), kept in the fast loop against the
//! faithful fake: an administrator found without configuration, the instance id from the login
//! page's session cookie kept across restarts (so `/api` answers while Nextcloud is down), the sync
//! schedule following the enabled state, and webhook_listeners refusing every user and group event.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::fakes::nextcloud::{
    INSTANCE_ID, OWN_RECORD, SharedDirectory, USERS, acting_user, ocs_failure, serve_directory,
};
use crate::fakes::saas::{echo as saas, events_sink};
use crate::fakes::{Fake, Recorded, ocs_ok};
use crate::harness::{TENANT_KEY, TENANT_KEY_ID, TestApp, closed_url, wait_until};

/// A directory whose administrator is `admin` (its uid), served over OCS to that administrator only,
/// with AppAPI's user list and own records to find it by.
fn directory_with_admin(nc: &Fake, admin: &str) -> SharedDirectory {
    let dir = SharedDirectory::default();
    {
        let mut d = dir.lock().unwrap();
        d.users.insert(admin.into(), ("Boss".into(), "boss@x".into(), true, vec!["admin".into()]));
        d.users.insert("alice".into(), ("Alice".into(), "a@x".into(), true, vec![]));
        d.groups.insert("admin".into());
    }
    let uids: Vec<String> = dir.lock().unwrap().users.keys().cloned().collect();
    nc.on(Method::GET, USERS, StatusCode::OK, ocs_ok(&json!(uids)));
    let d = dir.clone();
    nc.on_async(Method::GET, OWN_RECORD, None, move |r: Recorded| {
        let me = acting_user(&r).unwrap_or_default();
        let found = d.lock().unwrap().users.get(&me).cloned();
        async move {
            match found {
                Some((name, email, enabled, groups)) => {
                    let data = json!({"id": me, "displayname": name, "email": email, "enabled": enabled, "groups": groups});
                    (StatusCode::OK, axum::Json(ocs_ok(&data))).into_response()
                }
                None => ocs_failure(StatusCode::UNAUTHORIZED, 997, "Current user is not logged in"),
            }
        }
    });
    serve_directory_as(nc, dir.clone(), admin);
    dir
}

/// [`serve_directory`], with the user listing read as `admin` (whatever its uid).
fn serve_directory_as(nc: &Fake, dir: SharedDirectory, admin: &str) {
    serve_directory(nc, dir.clone());
    let admin = admin.to_owned();
    let d = dir;
    nc.on_async(Method::GET, "/ocs/v1.php/cloud/users/details", None, move |r: Recorded| {
        let dir = d.lock().unwrap().clone();
        let admin = admin.clone();
        async move {
            assert_eq!(acting_user(&r).as_deref(), Some(admin.as_str()), "read as the administrator found");
            let users: serde_json::Map<String, Value> = dir
                .users
                .iter()
                .map(|(uid, (name, email, enabled, groups))| {
                    (uid.clone(), json!({"id": uid, "displayname": name, "email": email, "enabled": enabled, "groups": groups}))
                })
                .collect();
            (StatusCode::OK, axum::Json(ocs_ok(&json!({ "users": users })))).into_response()
        }
    });
}

#[tokio::test]
async fn reconciliation_finds_an_administrator_without_configuration_and_remembers_it() {
    let events = events_sink().await;
    let nc = crate::fakes::nextcloud::nextcloud().await;
    directory_with_admin(&nc, "boss");
    let app = TestApp::builder().nextcloud(&nc).env("WAGGLE_SERVICE_URL", &events.url()).spawn().await;

    let r = app.request(Method::POST, "/admin/sync", "admin").send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // alice is tried first (sorted; no `admin` user here), then boss.
    let lookups: Vec<String> = nc.requests_to(OWN_RECORD).iter().filter_map(acting_user).collect();
    assert_eq!(lookups, ["alice", "boss"]);
    // Nothing was asked of the provisioning API as the system (Nextcloud answers those 401/997).
    let refused = nc
        .requests()
        .iter()
        .filter(|r| r.path().contains("/cloud/") && acting_user(r).as_deref() == Some(""))
        .count();
    assert_eq!(refused, 0);
    events.wait_for(Duration::from_secs(10), |l| l.iter().any(|r| r.json()["data"]["uid"] == "boss")).await;

    // The next run starts with the administrator found: one lookup.
    let r = app.request(Method::POST, "/admin/sync", "admin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let lookups: Vec<String> = nc.requests_to(OWN_RECORD).iter().filter_map(acting_user).collect();
    assert_eq!(lookups, ["alice", "boss", "boss"]);
}

#[tokio::test]
async fn a_configured_admin_uid_that_is_not_an_admin_is_reported() {
    let nc = crate::fakes::nextcloud::nextcloud().await;
    let app = TestApp::builder().nextcloud(&nc).env("WAGGLE_SYNC__ADMIN_UID", "alice").spawn().await;
    let r = app.request(Method::POST, "/admin/sync", "admin").send().await.unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("WAGGLE_SYNC__ADMIN_UID names alice"), "{v}");
}

#[tokio::test]
async fn the_instance_id_is_stored_at_init_and_api_answers_while_nextcloud_is_down() {
    let saas = saas().await;
    let storage = tempfile::tempdir().unwrap();
    let env = |b: crate::harness::Builder| {
        b.env("WAGGLE_SERVICE_URL", &saas.url())
            .env("WAGGLE_TENANT_KEY", TENANT_KEY)
            .env("WAGGLE_TENANT_KEY_ID", TENANT_KEY_ID)
            .storage(storage.path())
    };
    let nc = crate::fakes::nextcloud::nextcloud().await;
    let app = env(TestApp::builder()).nextcloud(&nc).no_instance_wait().spawn().await;
    let r = app.request(Method::POST, "/init", "").send().await.unwrap();
    assert_eq!(r.status(), 200);
    nc.wait_for(Duration::from_secs(10), |l| l.iter().any(|r| r.json()["progress"] == 100)).await;
    assert_eq!(app.instance_id().as_deref(), Some(INSTANCE_ID));
    assert!(
        nc.requests_to("/ocs/v2.php/cloud/capabilities").is_empty(),
        "the login page's cookie named the instance; capabilities were not needed"
    );
    app.stop().await.unwrap();

    // Nextcloud gone (a port nothing listens on); a new process on the same storage.
    let app = env(TestApp::builder()).env("NEXTCLOUD_URL", &closed_url()).no_instance_wait().spawn().await;
    let r = app.request(Method::GET, "/api/echo?down=1", "alice").send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let upstream = saas.requests_to("/api/echo");
    assert_eq!(upstream.last().unwrap().header("x-waggle-instance"), Some(INSTANCE_ID));
}

#[tokio::test]
async fn api_before_the_instance_id_is_known_is_503_at_once() {
    let saas = saas().await;
    let app = TestApp::builder()
        .env("WAGGLE_SERVICE_URL", &saas.url())
        .env("NEXTCLOUD_URL", &closed_url())
        .no_instance_wait()
        .spawn()
        .await;
    let started = std::time::Instant::now();
    let r = app.request(Method::GET, "/api/echo", "alice").send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(1), "no wait on Nextcloud");
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "instance_id_unknown");
    assert!(saas.requests().is_empty());
}

#[tokio::test]
async fn the_sync_schedule_follows_the_enabled_state_across_restarts() {
    let events = events_sink().await;
    let nc = crate::fakes::nextcloud::nextcloud().await;
    directory_with_admin(&nc, "admin");
    let storage = tempfile::tempdir().unwrap();
    let spawn = || {
        TestApp::builder()
            .nextcloud(&nc)
            .storage(storage.path())
            .env("WAGGLE_SERVICE_URL", &events.url())
            .env("WAGGLE_SYNC_INTERVAL", "1")
            .spawn()
    };
    let runs = |nc: &Fake| nc.requests_to("/ocs/v1.php/cloud/users/details").len();
    let app = spawn().await;
    let enabled = |on: &str| app.request(Method::PUT, &format!("/enabled?enabled={on}"), "").send();
    assert_eq!(enabled("1").await.unwrap().status(), 200);
    nc.wait_for(Duration::from_secs(5), |_| runs(&nc) >= 1).await;

    assert_eq!(enabled("0").await.unwrap().status(), 200);
    // The schedule counts every interval it skips. Once it skipped one, a run that was already
    // under way has finished (ticks are sequential); then prove an absence over two more intervals.
    let skipped = |app: &TestApp| app.metric("reconcile_skipped_disabled");
    let base = skipped(&app);
    wait_until("an interval is skipped", Duration::from_secs(5), async || skipped(&app) > base).await;
    let before = runs(&nc);
    let ticks = skipped(&app);
    wait_until("two more intervals pass", Duration::from_secs(5), async || skipped(&app) >= ticks + 2).await;
    assert_eq!(runs(&nc), before, "no reconciliation while disabled");
    app.stop().await.unwrap();

    // Nextcloud does not call /enabled again when Waggle restarts: the stored state holds.
    let app = spawn().await;
    wait_until("two intervals pass", Duration::from_secs(5), async || skipped(&app) >= 2).await;
    assert_eq!(runs(&nc), before, "still disabled after a restart");
    let r = app.request(Method::PUT, "/enabled?enabled=1", "").send().await.unwrap();
    assert_eq!(r.status(), 200);
    nc.wait_for(Duration::from_secs(5), |_| runs(&nc) > before).await;
}

#[tokio::test]
async fn webhook_listeners_on_nextcloud_31_accept_no_user_or_group_event() {
    let nc = crate::fakes::nextcloud::nextcloud().await;
    let app = TestApp::builder().nextcloud(&nc).spawn().await;
    let r = app.request(Method::PUT, "/enabled?enabled=1", "").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"error": ""}), "enabling does not fail on it");
    let api = crate::fakes::nextcloud::WEBHOOKS;
    let probes = nc
        .wait_for(Duration::from_secs(5), |l| {
            l.iter().filter(|r| r.path() == api && r.method == Method::POST).count() >= 8
        })
        .await;
    let classes: Vec<String> = probes
        .iter()
        .filter(|r| r.path() == api && r.method == Method::POST)
        .map(|r| r.json()["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(classes.len(), 8, "every candidate was probed once: {classes:?}");
    assert!(
        classes.iter().all(|c| c.starts_with("OCP\\User\\Events\\") || c.starts_with("OCP\\Group\\Events\\"))
    );
}
