//! The test harness: `TestApp` (Waggle built from a settings map, bound to 127.0.0.1:0 or a unix
//! socket, with a temporary storage directory, wired to the fakes in `fakes/`), the `waggle` binary
//! as a subprocess, the shared fixtures (secrets, the tenant key, the clock), and `wait_until`, the
//! one way a test waits: for a condition, with a deadline, never for a fixed time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use waggle::{App, Settings};

use crate::fakes::{self, Fake};

pub(crate) const SECRET: &str = "test-secret-0123456789";
pub(crate) const APP_ID: &str = "waggle";
/// The pre-provisioned tenant key every `TestApp` starts with (unless a test clears it).
pub(crate) const TENANT_KEY: &str = "tenant-key-for-tests-0123456789abcdef";
pub(crate) const TENANT_KEY_ID: &str = "k-test-1";
/// The `waggle` binary built for these tests.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_waggle");

/// How often a waiting test looks at its condition again.
const POLL: Duration = Duration::from_millis(10);

/// Unix seconds now.
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub(crate) fn appapi_token(user: &str, secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
}

/// Waits until `condition` holds, or panics naming `what` after `timeout`.
pub(crate) async fn wait_until(what: &str, timeout: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_until`] for tests without an async runtime.
pub(crate) fn wait_until_blocking(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(POLL);
    }
}

/// A port nothing listens on (bound, read, released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A base URL where nothing listens: connections are refused.
pub(crate) fn closed_url() -> String {
    format!("http://127.0.0.1:{}/", free_port())
}

pub(crate) struct TestApp {
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) nc: Fake,
    pub(crate) client: reqwest::Client,
    /// Owned temporary storage, unless the test passed its own directory.
    _storage: Option<tempfile::TempDir>,
    storage_path: PathBuf,
    state: waggle::state::AppState,
    stop: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

#[derive(Default)]
pub(crate) struct Builder {
    env: HashMap<String, String>,
    storage: Option<PathBuf>,
    nc: Option<Fake>,
    /// Return before the start-up task has resolved Nextcloud's instance id.
    no_instance_wait: bool,
}

impl Builder {
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Uses `dir` as `APP_PERSISTENT_STORAGE` (to restart on the same storage).
    pub(crate) fn storage(mut self, dir: &std::path::Path) -> Self {
        self.storage = Some(dir.to_path_buf());
        self
    }

    /// Returns at once, without waiting for the instance id (Nextcloud down, or the lookup under test).
    pub(crate) fn no_instance_wait(mut self) -> Self {
        self.no_instance_wait = true;
        self
    }

    /// Uses this fake Nextcloud instead of a fresh one.
    pub(crate) fn nextcloud(mut self, nc: &Fake) -> Self {
        self.nc = Some(nc.clone());
        self
    }

    /// Points `WAGGLE_SERVICE_URL` at this fake SaaS.
    pub(crate) fn saas(self, saas: &Fake) -> Self {
        self.env("WAGGLE_SERVICE_URL", &saas.url())
    }

    /// Starts without a tenant key (tests of provisioning).
    pub(crate) fn without_tenant_key(self) -> Self {
        self.env("WAGGLE_TENANT_KEY", "").env("WAGGLE_TENANT_KEY_ID", "")
    }

    pub(crate) async fn spawn(self) -> TestApp {
        let (owned, storage_path) = match self.storage {
            Some(path) => (None, path),
            None => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().to_path_buf();
                (Some(dir), path)
            }
        };
        let nc = match self.nc {
            Some(nc) => nc,
            None => fakes::nextcloud::nextcloud().await,
        };
        let mut env: HashMap<String, String> = [
            ("APP_ID", APP_ID),
            ("APP_SECRET", SECRET),
            ("APP_VERSION", "0.1.0"),
            ("APP_HOST", "127.0.0.1"),
            ("APP_PORT", "0"),
            ("AA_VERSION", "5.0.2"),
            ("WAGGLE_SERVER__SHUTDOWN_GRACE_SECS", "2"),
            // A pre-provisioned key by default; tests of provisioning clear both with "".
            ("WAGGLE_TENANT_KEY", TENANT_KEY),
            ("WAGGLE_TENANT_KEY_ID", TENANT_KEY_ID),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.insert("NEXTCLOUD_URL".into(), nc.url());
        env.insert("APP_PERSISTENT_STORAGE".into(), storage_path.display().to_string());
        env.extend(self.env);
        let settings = Settings::load_from(&env).expect("test settings are valid");
        let app = App::build(settings).await.expect("app builds");
        let addr = app.local_addr();
        let state = app.state().clone();
        let stop = CancellationToken::new();
        let s = stop.clone();
        let handle = tokio::spawn(app.run_until_stopped(async move { s.cancelled().await }));
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        if !self.no_instance_wait {
            // A fresh install learns the instance id at start (from the fake's login page), as a real
            // one does; requests to /api need it.
            wait_until("the start-up task resolves the instance id", Duration::from_secs(5), async || {
                state.instance_id().is_some()
            })
            .await;
        }
        TestApp { addr, nc, client, _storage: owned, storage_path, state, stop, handle }
    }
}

impl TestApp {
    pub(crate) fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr.expect("TCP mode"))
    }

    /// A request carrying AppAPI headers for `user` (empty = system context).
    pub(crate) fn request(&self, method: reqwest::Method, path: &str, user: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("AUTHORIZATION-APP-API", appapi_token(user, SECRET))
            .header("EX-APP-ID", APP_ID)
            .header("EX-APP-VERSION", "0.1.0")
            .header("AA-VERSION", "5.0.2")
    }

    /// Stops the app (like SIGTERM) and waits for it to finish.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.handle.await.unwrap()
    }

    pub(crate) fn storage_path(&self) -> PathBuf {
        self.storage_path.clone()
    }

    // --- Looking inside (the harness is the one place that knows Waggle's internals) ---------------

    /// A counter's value.
    pub(crate) fn metric(&self, name: &str) -> u64 {
        self.state.metric(name)
    }

    /// Names of the counters that were touched.
    pub(crate) fn metric_names(&self) -> Vec<String> {
        self.state.metric_names()
    }

    /// Nextcloud's instance id as Waggle resolved it (None before).
    pub(crate) fn instance_id(&self) -> Option<String> {
        self.state.instance_id()
    }

    /// Whether Nextcloud last enabled the app.
    pub(crate) fn is_enabled(&self) -> bool {
        self.state.is_enabled()
    }

    /// The tenant key state as the admin status shows it.
    pub(crate) fn key_status(&self) -> Value {
        serde_json::to_value(self.state.key_status()).unwrap()
    }

    /// Whether `key_id` still verifies `/nc` requests.
    pub(crate) fn key_verifies(&self, key_id: &str) -> bool {
        self.state.key_verifies(key_id)
    }

    /// Events waiting in the outbox.
    pub(crate) async fn queue_depth(&self) -> u64 {
        self.state.queue_stats(0).await.unwrap().depth
    }

    /// Dead-lettered events.
    pub(crate) async fn dead_letters(&self) -> u64 {
        self.state.queue_stats(0).await.unwrap().dead_letters
    }

    /// Commits `events` to the outbox (as reconciliation would); the commit wakes the delivery worker.
    pub(crate) async fn enqueue(&self, events: Vec<waggle::events::Event>) {
        let now_ms = i64::try_from(now() * 1000).unwrap();
        self.state.enqueue(events, now_ms).await.unwrap();
    }

    /// The newest audit rows (newest first), optionally for one user.
    pub(crate) async fn audit(&self, user: Option<&str>) -> Vec<waggle::store::AuditRecord> {
        self.state.audit_recent(user.map(str::to_owned), 50).await.unwrap()
    }
}

/// The `waggle` binary running as a subprocess, its stderr captured when asked.
pub(crate) struct Process {
    child: Child,
    logs: Option<std::thread::JoinHandle<String>>,
}

impl Process {
    /// A `Command` for the binary with exactly `vars` as its environment.
    pub(crate) fn command(vars: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear().stdin(Stdio::null());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// Spawns `cmd`; with `capture_logs`, stderr is collected (see [`Self::logs`]), else discarded.
    pub(crate) fn spawn(mut cmd: Command, capture_logs: bool) -> Self {
        cmd.stdout(Stdio::null()).stderr(if capture_logs { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd.spawn().unwrap();
        let logs = child.stderr.take().map(|mut stderr| {
            std::thread::spawn(move || {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
                s
            })
        });
        Self { child, logs }
    }

    /// Waits until `GET /heartbeat` on `port` answers.
    pub(crate) async fn wait_up(&self, client: &reqwest::Client, port: u16) {
        let url = format!("http://127.0.0.1:{port}/heartbeat");
        wait_until("waggle answers /heartbeat", Duration::from_secs(20), async || {
            client.get(&url).send().await.is_ok()
        })
        .await;
    }

    /// Sends SIGTERM.
    pub(crate) fn sigterm(&self) {
        let kill = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(kill.success());
    }

    /// Sends SIGKILL and reaps the process.
    pub(crate) fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits (blocking) for the process to exit.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut status = None;
        wait_until_blocking("the process exits", timeout, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }

    /// The captured stderr, once the process has exited.
    pub(crate) fn logs(self) -> String {
        self.logs.expect("logs captured").join().unwrap()
    }
}
