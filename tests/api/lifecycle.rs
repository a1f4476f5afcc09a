//! The AppAPI lifecycle in the order a real Nextcloud 31 drives it.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::fakes::nextcloud::STATUS;
use crate::fakes::{Gate, ocs_ok};
use crate::harness::{APP_ID, SECRET, TestApp, appapi_token, wait_until};

#[tokio::test]
async fn heartbeat_answers_ok_without_auth() {
    let app = TestApp::spawn().await;
    let started = Instant::now();
    let r = app.client.get(app.url("/heartbeat")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    assert!(started.elapsed() < Duration::from_secs(2), "heartbeat must be immediate");
    // Only the anonymous instance-id lookup of the start-up task reached Nextcloud.
    assert!(
        app.nc.requests().iter().all(|r| r.path() == "/index.php/login"),
        "heartbeat calls nothing upstream"
    );
}

/// Real Nextcloud answers the final `progress: 100` only after calling `/heartbeat` and
/// `/enabled?enabled=1` on the app; the fake does the same, so this passes only if Waggle serves
/// requests while its own status report is still open.
#[tokio::test]
async fn init_reports_progress_and_nextcloud_enables_while_the_report_is_open() {
    let app = TestApp::spawn().await;
    let base = app.url("");
    app.nc.on_async(Method::PUT, "/ocs/v1.php/apps/app_api/ex-app/status", None, move |req| {
        let base = base.clone();
        async move {
            if req.json()["progress"] == 100 {
                let c = reqwest::Client::new();
                let hb = c.get(format!("{base}/heartbeat")).send().await.unwrap();
                assert_eq!(hb.status(), 200);
                let en = c
                    .put(format!("{base}/enabled?enabled=1"))
                    .header("AUTHORIZATION-APP-API", appapi_token("", SECRET))
                    .header("EX-APP-ID", APP_ID)
                    .header("EX-APP-VERSION", "0.1.0")
                    .header("AA-VERSION", "5.0.2")
                    .header("Accept-Language", "en")
                    .send()
                    .await
                    .unwrap();
                let body: Value = en.json().await.unwrap();
                assert_eq!(body, json!({"error": ""}));
            }
            (StatusCode::OK, axum::Json(ocs_ok(&json!([])))).into_response()
        }
    });

    let hb = app.client.get(app.url("/heartbeat")).send().await.unwrap();
    assert_eq!(hb.status(), 200);
    let started = Instant::now();
    let init = app.request(Method::POST, "/init", "").header("AA-REQUEST-ID", "CLI").send().await.unwrap();
    assert_eq!(init.status(), 200);
    assert_eq!(init.headers()["x-request-id"], "CLI", "AA-REQUEST-ID is reused as the request id");
    assert!(started.elapsed() < Duration::from_secs(1), "/init answers at once");

    let log = app
        .nc
        .wait_for(Duration::from_secs(10), |log| {
            log.iter().any(|r| r.path().ends_with("/ex-app/status") && r.json()["progress"] == 100)
        })
        .await;
    let progress: Vec<i64> = log
        .iter()
        .filter(|r| r.path() == "/ocs/v1.php/apps/app_api/ex-app/status")
        .map(|r| r.json()["progress"].as_i64().unwrap())
        .collect();
    assert_eq!(progress.last(), Some(&100));
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "progress only grows: {progress:?}");
    let report = log.iter().find(|r| r.path() == "/ocs/v1.php/apps/app_api/ex-app/status").unwrap();
    assert_eq!(report.method, Method::PUT);
    assert_eq!(report.header("authorization-app-api"), Some(appapi_token("", SECRET).as_str()));
    assert_eq!(report.header("ex-app-id"), Some(APP_ID));
    assert_eq!(report.header("ex-app-version"), Some("0.1.0"));
    assert_eq!(report.header("aa-version"), Some("5.0.2"));
    assert_eq!(report.header("ocs-apirequest"), Some("true"));
    assert_eq!(report.header("accept"), Some("application/json"));
    assert_eq!(report.header("content-type"), Some("application/json"));
    assert!(report.header("cookie").is_none());

    // The enable call inside the report reached the app.
    wait_until("the app is enabled", Duration::from_secs(5), async || app.is_enabled()).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn init_failure_is_reported_as_an_error() {
    let app = TestApp::spawn().await;
    // Make the storage unusable: replace the directory with a file.
    let storage = app.storage_path();
    std::fs::remove_dir_all(&storage).unwrap();
    std::fs::write(&storage, b"not a directory").unwrap();
    let r = app.request(Method::POST, "/init", "").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let log = app
        .nc
        .wait_for(Duration::from_secs(10), |log| log.iter().any(|r| r.json().get("error").is_some()))
        .await;
    let err = log.iter().find_map(|r| r.json().get("error").cloned()).unwrap();
    assert!(err.as_str().unwrap().contains("persistent storage"), "{err}");
    assert!(log.iter().all(|r| r.json()["progress"] != 100), "no success after a failure");
}

#[tokio::test]
async fn concurrent_inits_share_one_run() {
    let app = TestApp::spawn().await;
    // Progress reports wait at a gate, so the first run is still busy when the second /init arrives.
    let gate = Gate::closed();
    let g = gate.clone();
    app.nc.on_async(Method::PUT, STATUS, None, move |_| {
        let g = g.clone();
        async move {
            g.pass().await;
            (StatusCode::OK, axum::Json(ocs_ok(&json!([])))).into_response()
        }
    });
    let (a, b) = tokio::join!(
        app.request(Method::POST, "/init", "").send(),
        app.request(Method::POST, "/init", "").send()
    );
    assert_eq!((a.unwrap().status(), b.unwrap().status()), (StatusCode::OK, StatusCode::OK));
    // Both calls were answered, so both have started or joined a run; let the run proceed.
    gate.open();
    app.nc.wait_for(Duration::from_secs(10), |log| log.iter().any(|r| r.json()["progress"] == 100)).await;
    let first_steps = app.nc.requests().iter().filter(|r| r.json()["progress"] == 10).count();
    assert_eq!(first_steps, 1, "one init run for two concurrent /init calls");
}

#[tokio::test]
async fn enabled_toggles_and_rejects_bad_values() {
    let app = TestApp::spawn().await;
    let r = app.request(Method::PUT, "/enabled?enabled=1", "").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"error": ""}));
    assert!(app.is_enabled());
    let r = app.request(Method::PUT, "/enabled?enabled=0", "").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"error": ""}));
    assert!(!app.is_enabled());
    let r = app.request(Method::PUT, "/enabled?enabled=yes", "").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(!r.json::<Value>().await.unwrap()["error"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn enable_fails_with_a_message_when_storage_is_unusable() {
    let app = TestApp::spawn().await;
    let storage = app.storage_path();
    std::fs::remove_dir_all(&storage).unwrap();
    std::fs::write(&storage, b"x").unwrap();
    let r = app.request(Method::PUT, "/enabled?enabled=1", "").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("storage"), "{body}");
    assert!(!app.is_enabled());
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let app = TestApp::spawn().await;
    // An OCS answer held at a gate keeps an admin request in flight while we stop.
    let gate = Gate::closed();
    let g = gate.clone();
    app.nc.on_async(Method::GET, "/ocs/v2.php/cloud/users/admin", None, move |_| {
        let g = g.clone();
        async move {
            g.pass().await;
            (StatusCode::OK, axum::Json(ocs_ok(&json!({"groups":["admin"]})))).into_response()
        }
    });
    let request = app.request(Method::GET, "/admin/status", "admin").send();
    let in_flight = tokio::spawn(request);
    app.nc
        .wait_for(Duration::from_secs(5), |log| {
            log.iter().any(|r| r.path() == "/ocs/v2.php/cloud/users/admin")
        })
        .await;
    let url = app.url("/heartbeat");
    let stopping = tokio::spawn(app.stop());
    // The listener closes first; the request is still in flight.
    wait_until("the app stops accepting", Duration::from_secs(5), async || reqwest::get(&url).await.is_err())
        .await;
    gate.open();
    stopping.await.unwrap().unwrap();
    let r = in_flight.await.unwrap().unwrap();
    assert_eq!(r.status(), 200, "the in-flight request completed");
    assert!(reqwest::get(url).await.is_err(), "no longer accepting");
}
