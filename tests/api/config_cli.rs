//! The binary as a subprocess: configuration errors, the healthcheck subcommand, SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{SECRET, TestApp, free_port, wait_until_blocking};

const BIN: &str = env!("CARGO_BIN_EXE_waggle");

fn waggle(vars: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().args(args).stdin(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

fn valid_env(storage: &str) -> Vec<(&'static str, String)> {
    vec![
        ("APP_SECRET", SECRET.to_owned()),
        ("NEXTCLOUD_URL", "http://127.0.0.1:9/".to_owned()),
        ("APP_PERSISTENT_STORAGE", storage.to_owned()),
    ]
}

fn run_err(vars: &[(&str, &str)]) -> (i32, String) {
    let out = waggle(vars, &[]).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn configuration_errors_exit_non_zero_with_one_line_naming_the_variable() {
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("NEXTCLOUD_URL", "http://nc/")], "APP_SECRET"),
        (vec![("APP_SECRET", "0042")], "NEXTCLOUD_URL"),
        (vec![("APP_SECRET", "0042"), ("NEXTCLOUD_URL", "not a url")], "NEXTCLOUD_URL"),
        (vec![("APP_SECRET", "0042"), ("NEXTCLOUD_URL", "http://nc/"), ("APP_PORT", "http")], "APP_PORT"),
        (
            vec![("APP_SECRET", "0042"), ("NEXTCLOUD_URL", "http://nc/"), ("WAGGLE_TENANT_KEY", "tk-secret")],
            "WAGGLE_TENANT_KEY_ID",
        ),
        (
            vec![
                ("APP_SECRET", "0042"),
                ("NEXTCLOUD_URL", "http://nc/"),
                ("WAGGLE_CONFIG", "/nonexistent.toml"),
            ],
            "WAGGLE_CONFIG",
        ),
    ];
    for (vars, variable) in cases {
        let (code, stderr) = run_err(&vars);
        assert_eq!(code, 2, "{variable}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("waggle: configuration error: "), "{stderr}");
        assert!(stderr.contains(variable), "{stderr} should name {variable}");
        assert!(!stderr.contains("0042") && !stderr.contains("tk-secret"), "no secret printed: {stderr}");
    }
}

#[test]
fn an_unwritable_storage_directory_stops_the_start() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    let out = waggle(
        &[
            ("APP_SECRET", "x"),
            ("NEXTCLOUD_URL", "http://nc/"),
            ("APP_PERSISTENT_STORAGE", &path),
            ("APP_PORT", "0"),
        ],
        &[],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("APP_PERSISTENT_STORAGE"), "{stderr}");
}

// Multi-threaded: the subprocess is awaited with a blocking call while the server runs in-process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_subcommand_probes_the_running_server() {
    let app = TestApp::spawn().await;
    let port = app.addr.unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let env = valid_env(dir.path().to_str().unwrap());
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.push(("APP_PORT", &port));
    vars.push(("APP_HOST", "0.0.0.0"));
    let ok = waggle(&vars, &["healthcheck"]).status().unwrap();
    assert!(ok.success());
    app.stop().await.unwrap();
    let down = waggle(&vars, &["healthcheck"]).output().unwrap();
    assert_eq!(down.status.code(), Some(1));
}

/// Docker reads a HEALTHCHECK's exit code as 0 healthy, 1 unhealthy, and reserves every other code:
/// the probe never exits 2, not even on a configuration error.
#[test]
fn healthcheck_exits_only_0_or_1() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap();
    let port = free_port().to_string();
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],                                                       // nothing set
        vec![("APP_SECRET", SECRET), ("NEXTCLOUD_URL", "not a url")], // invalid value
        vec![("APP_SECRET", SECRET), ("NEXTCLOUD_URL", "http://nc/"), ("APP_HOST", "not a host")],
        // valid, but nothing listens there
        vec![
            ("APP_SECRET", SECRET),
            ("NEXTCLOUD_URL", "http://nc/"),
            ("APP_PERSISTENT_STORAGE", storage),
            ("APP_PORT", &port),
        ],
    ];
    for vars in cases {
        let out = waggle(&vars, &["healthcheck"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{vars:?}: {stderr}");
        assert!(!stderr.contains(SECRET), "no secret printed: {stderr}");
    }
}

/// `APP_HOST` may be a host name: the server binds what it resolves to, and the healthcheck (same
/// environment) finds it there.
#[test]
fn a_host_name_in_app_host_is_served_and_probed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let env = valid_env(dir.path().to_str().unwrap());
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.push(("APP_PORT", &port));
    vars.push(("APP_HOST", "localhost"));
    let mut child = waggle(&vars, &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_until_blocking(
        "the server bound to `localhost` answers its healthcheck",
        Duration::from_secs(20),
        || {
            assert!(child.try_wait().unwrap().is_none(), "the server exited");
            let status = waggle(&vars, &["healthcheck"]).stderr(Stdio::null()).status().unwrap();
            assert!(status.code() == Some(0) || status.code() == Some(1), "{status}");
            status.success()
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The signal handlers are in place before the port is bound: a SIGTERM the moment the port accepts
/// (before the server has served anything) still ends in a graceful exit 0, never in a kill by the
/// signal's default action. Docker and AppAPI may stop a container that has only just started.
#[test]
fn a_sigterm_right_after_the_port_opens_still_drains() {
    let dir = tempfile::tempdir().unwrap();
    let env = valid_env(dir.path().to_str().unwrap());
    for _ in 0..5 {
        let port = free_port().to_string();
        let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        vars.push(("APP_PORT", &port));
        let mut child = waggle(&vars, &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        wait_until_blocking("the port accepts", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_ok()
        });
        let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(kill.success());
        let mut status = None;
        wait_until_blocking("the process exits after SIGTERM", Duration::from_secs(15), || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        assert_eq!(status.unwrap().code(), Some(0), "drained and exited 0, not killed by the signal");
    }
}

#[test]
fn sigterm_stops_the_server_gracefully_with_json_logs_and_no_secrets() {
    let logs = serve_then_sigterm(None);
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let scheduler = if cpus > 1 { "MultiThread" } else { "CurrentThread" };
    assert!(logs.contains(&format!("\"scheduler\":\"{scheduler}\"")), "{cpus} CPUs: {logs}");
}

/// With one CPU (`taskset -c 0`) the binary runs the current-thread scheduler, and still serves,
/// authenticates and stops gracefully.
#[test]
fn on_one_cpu_the_single_threaded_runtime_serves_and_stops_gracefully() {
    if Command::new("taskset").arg("-V").output().is_err() {
        eprintln!("taskset not installed; skipped");
        return;
    }
    let logs = serve_then_sigterm(Some(&["taskset", "-c", "0"]));
    assert!(logs.contains("\"scheduler\":\"CurrentThread\""), "{logs}");
    assert!(logs.contains("\"workers\":1"), "{logs}");
}

/// Starts the binary (optionally through a wrapper command that execs it), checks it answers with
/// and without credentials, sends SIGTERM, asserts a graceful exit with JSON logs free of secrets,
/// and returns the logs.
fn serve_then_sigterm(wrapper: Option<&[&str]>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let env = valid_env(dir.path().to_str().unwrap());
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.push(("APP_PORT", &port));
    vars.push(("RUST_LOG", "debug"));
    let mut cmd = match wrapper {
        None => waggle(&vars, &[]),
        Some(wrapper) => {
            let mut cmd = Command::new(wrapper[0]);
            cmd.env_clear().args(&wrapper[1..]).arg(BIN).stdin(Stdio::null());
            for (k, v) in &vars {
                cmd.env(k, v);
            }
            cmd
        }
    };
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let host = format!("127.0.0.1:{port}");
    wait_until_blocking("the server comes up", Duration::from_secs(20), || {
        probe::get(&host, "/heartbeat", None) == Some(200)
    });
    // Requests carrying credentials, so a leak into the logs would show.
    let token = crate::harness::appapi_token("alice", SECRET);
    assert_eq!(probe::get(&host, "/", Some(&token)), Some(200));
    assert_eq!(probe::get(&host, "/", Some("garbage")), Some(401));

    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let mut status = None;
    wait_until_blocking("the process exits after SIGTERM", Duration::from_secs(15), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let status = status.unwrap();
    assert_eq!(status.code(), Some(0), "graceful exit");
    let logs = logs.join().unwrap();
    assert!(logs.contains("SIGTERM received"), "{logs}");
    assert!(logs.contains("\"nc.user\":\"alice\""), "the span carries the user: {logs}");
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("JSON log line: {line}"));
        assert!(v.get("level").is_some());
    }
    assert!(!logs.contains(SECRET) && !logs.contains(&token), "no secret in logs");
    logs
}

mod probe {
    //! A tiny blocking HTTP/1.1 probe over std, so this test needs no async runtime.
    use std::io::{Read as _, Write as _};

    pub(crate) fn get(host: &str, path: &str, auth: Option<&str>) -> Option<u16> {
        let mut s = std::net::TcpStream::connect(host).ok()?;
        let auth =
            auth.map(|a| format!("AUTHORIZATION-APP-API: {a}\r\nEX-APP-ID: waggle\r\n")).unwrap_or_default();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n").ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        buf.get(9..12)?.parse().ok()
    }
}
