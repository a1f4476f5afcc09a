//! The binary end to end: Waggle as a subprocess with debug logs, the `waggle nc-call` reference
//! client and a hand-signed request against it, and a scan of every log line for secrets.

use std::process::Command;
use std::time::Duration;

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use waggle::signing::{CallbackRequest, SigningKey, sign_callback};

use crate::fakes::{self, Recorded};
use crate::harness::{APP_ID, BIN, Process, SECRET, TENANT_KEY, TENANT_KEY_ID, appapi_token, free_port, now};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nc_call_works_end_to_end_and_no_secret_or_signature_reaches_the_logs() {
    let nc = fakes::nextcloud::nextcloud().await;
    nc.on_async(
        Method::from_bytes(b"PROPFIND").unwrap(),
        "/remote.php/dav/files/alice/",
        None,
        |_: Recorded| async {
            (StatusCode::MULTI_STATUS, "<d:multistatus xmlns:d=\"DAV:\"/>").into_response()
        },
    );
    let storage = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let nc_url = nc.url();
    let mut child = Process::spawn(
        Process::command(&[
            ("APP_SECRET", SECRET),
            ("APP_ID", APP_ID),
            ("APP_PORT", port.as_str()),
            ("APP_PERSISTENT_STORAGE", storage.path().to_str().unwrap()),
            ("NEXTCLOUD_URL", nc_url.as_str()),
            ("WAGGLE_TENANT_KEY", TENANT_KEY),
            ("WAGGLE_TENANT_KEY_ID", TENANT_KEY_ID),
            ("RUST_LOG", "trace"),
        ]),
        true,
    );
    let base = format!("http://127.0.0.1:{port}");
    waggle::tls::install_provider();
    let client = reqwest::Client::new();
    child.wait_up(&client, port.parse().unwrap()).await;

    // 1. The reference client.
    let out = tokio::task::spawn_blocking({
        let base = base.clone();
        move || {
            Command::new(BIN)
                .env_clear()
                .envs([
                    ("WAGGLE_TENANT_KEY", TENANT_KEY),
                    ("WAGGLE_TENANT_KEY_ID", TENANT_KEY_ID),
                    ("APP_SECRET", SECRET),
                    ("APP_ID", APP_ID),
                ])
                .args(["nc-call", "--url", &base, "--direct", "--method", "PROPFIND"])
                .args(["--target", "/remote.php/dav/files/alice/", "--user", "alice", "--header", "Depth: 1"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "nc-call failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("207"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("multistatus"));
    let seen = nc.requests_to("/remote.php/dav/files/alice/");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method.as_str(), "PROPFIND");
    assert_eq!(seen[0].header("depth"), Some("1"));

    // 2. A hand-signed request whose signature value we know, plus one forgery.
    let key = SigningKey::from_tenant_key(TENANT_KEY_ID, TENANT_KEY);
    let m = Method::from_bytes(b"PROPFIND").unwrap();
    let req = CallbackRequest {
        method: &m,
        tunnel: true,
        target: "/remote.php/dav/files/alice/",
        user: "alice",
        body: b"",
        content_type: None,
        destination: None,
    };
    let (wire, headers) = sign_callback(&key, &req, now(), "nonce-log-capture-0000001").unwrap();
    let signature = headers["signature"].to_str().unwrap().to_owned();
    let mac = signature.trim_start_matches("sig1=:").trim_end_matches(':').to_owned();
    let mut forged = headers.clone();
    forged.insert("x-waggle-user", HeaderValue::from_static("bob"));
    for h in [headers, forged] {
        let r = client
            .request(wire.clone(), format!("{base}/nc/remote.php/dav/files/alice/"))
            .headers(h)
            .header("AUTHORIZATION-APP-API", appapi_token("", SECRET))
            .header("EX-APP-ID", APP_ID)
            .header("Cookie", "nc_token=remember-me-secret")
            .send()
            .await
            .unwrap();
        assert!(r.status() == 207 || r.status() == 401);
    }

    child.sigterm();
    child.wait_exit(Duration::from_secs(15));
    let logs = child.logs();
    assert!(logs.contains("nc call"), "the audit line is logged: {logs}");
    assert!(logs.contains("callback signature refused"), "the forgery is logged");
    for secret in [
        TENANT_KEY,
        SECRET,
        appapi_token("", SECRET).as_str(),
        appapi_token("alice", SECRET).as_str(),
        mac.as_str(),
        "remember-me-secret",
    ] {
        assert!(!logs.contains(secret), "a secret or signature reached the logs: {secret}");
    }
}
