//! Durability on the real binary: 1,000 events committed while the SaaS is down, `kill -9`, restart
//! on the same storage, SaaS back up: every event arrives, none is lost, and a duplicate can only
//! carry the same id.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::fakes::{self, Fake};
use crate::harness::{
    APP_ID, Process, SECRET, TENANT_KEY, TENANT_KEY_ID, appapi_token, free_port, wait_until,
};

const USERS: usize = 1_000;

fn start(port: u16, storage: &std::path::Path, nc: &Fake, saas_port: u16) -> Process {
    let schedule = vec!["200"; 60].join(",");
    let (port, storage, nc, saas) =
        (port.to_string(), storage.to_str().unwrap(), nc.url(), format!("http://127.0.0.1:{saas_port}/"));
    Process::spawn(
        Process::command(&[
            ("APP_SECRET", SECRET),
            ("APP_ID", APP_ID),
            ("APP_PORT", &port),
            ("APP_PERSISTENT_STORAGE", storage),
            ("NEXTCLOUD_URL", &nc),
            ("WAGGLE_SERVICE_URL", &saas),
            ("WAGGLE_TENANT_KEY", TENANT_KEY),
            ("WAGGLE_TENANT_KEY_ID", TENANT_KEY_ID),
            ("WAGGLE_SYNC__ADMIN_UID", "admin"),
            ("WAGGLE_EVENTS__SCHEDULE_MS", &schedule),
            ("WAGGLE_EVENTS__POLL_MS", "50"),
            ("WAGGLE_EVENTS__CONCURRENCY", "16"),
            ("RUST_LOG", "warn"),
        ]),
        false,
    )
}

fn admin(
    client: &reqwest::Client,
    method: reqwest::Method,
    port: u16,
    path: &str,
) -> reqwest::RequestBuilder {
    client
        .request(method, format!("http://127.0.0.1:{port}{path}"))
        .header("AUTHORIZATION-APP-API", appapi_token("admin", SECRET))
        .header("EX-APP-ID", APP_ID)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_with_the_saas_down_loses_no_event() {
    let (nc, dir) = fakes::nextcloud::with_directory().await;
    for i in 0..USERS {
        dir.lock()
            .unwrap()
            .users
            .insert(format!("user{i:04}"), (format!("User {i}"), String::new(), true, vec![]));
    }
    let storage = tempfile::tempdir().unwrap();
    let saas_port = free_port(); // nothing listens there yet: the SaaS is down
    let port = free_port();
    waggle::tls::install_provider();
    let client = reqwest::Client::new();

    let mut first = start(port, storage.path(), &nc, saas_port);
    first.wait_up(&client, port).await;
    let r = admin(&client, reqwest::Method::POST, port, "/admin/sync").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["reconcile"]["events"], USERS as u64, "1,000 events committed");
    // Let delivery fail a few times, then kill -9 in the middle of it.
    let mut status = Value::Null;
    wait_until("deliveries are being retried", Duration::from_secs(20), async || {
        status = admin(&client, reqwest::Method::GET, port, "/admin/events")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status["deliveries"]["events_retried"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(status["queue"]["depth"], USERS as u64, "all pending while the SaaS is down");
    assert!(status["deliveries"]["events_retried"].as_u64().unwrap_or(0) > 0, "{status}");
    first.kill(); // SIGKILL

    // The SaaS comes up on its port; Waggle restarts on the same storage.
    let saas = fakes::saas::events_sink_on(saas_port).await;
    let mut second = start(port, storage.path(), &nc, saas_port);
    second.wait_up(&client, port).await;
    let log = saas
        .wait_for(Duration::from_secs(60), |l| {
            l.iter().filter_map(|r| r.header("webhook-id")).collect::<BTreeSet<_>>().len() >= USERS
        })
        .await;
    second.kill();

    // Every user's event arrived; a user seen twice was seen with the same id.
    let mut ids_per_user: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &log {
        let uid = r.json()["data"]["uid"].as_str().unwrap().to_owned();
        ids_per_user.entry(uid).or_default().insert(r.header("webhook-id").unwrap().to_owned());
    }
    assert_eq!(ids_per_user.len(), USERS, "no event lost");
    assert!(ids_per_user.values().all(|ids| ids.len() == 1), "duplicates only with the same id");
    let duplicates = log.len() - USERS;
    eprintln!("durability: {USERS} events, {} deliveries ({duplicates} duplicates by id)", log.len());
}
