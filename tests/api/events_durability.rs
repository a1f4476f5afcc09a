//! Durability on the real binary: 1,000 events committed while the SaaS is down, `kill -9`, restart
//! on the same storage, SaaS back up: every event arrives, none is lost, and a duplicate can only
//! carry the same id.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::events_reconcile::{Directory, serve_directory};
use crate::fakes::Fake;
use crate::harness::{APP_ID, SECRET, appapi_token};
use crate::saas_proxy::{TENANT_KEY, TENANT_KEY_ID};

const BIN: &str = env!("CARGO_BIN_EXE_waggle");
const USERS: usize = 1_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(port: u16, storage: &std::path::Path, nc: &Fake, saas_port: u16) -> Child {
    let schedule = vec!["200"; 60].join(",");
    Command::new(BIN)
        .env_clear()
        .envs([
            ("APP_SECRET", SECRET),
            ("APP_ID", APP_ID),
            ("APP_PORT", &port.to_string()),
            ("APP_PERSISTENT_STORAGE", storage.to_str().unwrap()),
            ("NEXTCLOUD_URL", &nc.url()),
            ("WAGGLE_SERVICE_URL", &format!("http://127.0.0.1:{saas_port}/")),
            ("WAGGLE_TENANT_KEY", TENANT_KEY),
            ("WAGGLE_TENANT_KEY_ID", TENANT_KEY_ID),
            ("WAGGLE_SYNC__ADMIN_UID", "admin"),
            ("WAGGLE_EVENTS__SCHEDULE_MS", &schedule),
            ("WAGGLE_EVENTS__POLL_MS", "50"),
            ("WAGGLE_EVENTS__CONCURRENCY", "16"),
            ("RUST_LOG", "warn"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_up(client: &reqwest::Client, port: u16) {
    let started = Instant::now();
    while client.get(format!("http://127.0.0.1:{port}/heartbeat")).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "waggle did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let nc = crate::fakes::nextcloud().await;
    let dir = Arc::new(Mutex::new(Directory::default()));
    for i in 0..USERS {
        dir.lock()
            .unwrap()
            .users
            .insert(format!("user{i:04}"), (format!("User {i}"), String::new(), true, vec![]));
    }
    serve_directory(&nc, dir);
    let storage = tempfile::tempdir().unwrap();
    let saas_port = free_port(); // nothing listens there yet: the SaaS is down
    let port = free_port();
    waggle::tls::install_provider();
    let client = reqwest::Client::new();

    let mut first = start(port, storage.path(), &nc, saas_port);
    wait_up(&client, port).await;
    let r = admin(&client, reqwest::Method::POST, port, "/admin/sync").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["reconcile"]["events"], USERS as u64, "1,000 events committed");
    // Let delivery fail a few times, then kill -9 in the middle of it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status: Value = admin(&client, reqwest::Method::GET, port, "/admin/events")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["queue"]["depth"], USERS as u64, "all pending while the SaaS is down");
    assert!(status["deliveries"]["events_retried"].as_u64().unwrap_or(0) > 0, "{status}");
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    // The SaaS comes up on its port; Waggle restarts on the same storage.
    let saas = Fake::start_on(saas_port).await;
    saas.on(Method::POST, "/waggle/v1/events", StatusCode::NO_CONTENT, Value::Null);
    let mut second = start(port, storage.path(), &nc, saas_port);
    wait_up(&client, port).await;
    let log = saas
        .wait_for(Duration::from_secs(60), |l| {
            l.iter().filter_map(|r| r.header("webhook-id")).collect::<BTreeSet<_>>().len() >= USERS
        })
        .await;
    second.kill().unwrap();
    second.wait().unwrap();

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
