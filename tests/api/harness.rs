//! `TestApp`: Waggle built from a settings map, bound to 127.0.0.1:0 (or a unix socket) with a
//! temporary storage directory, wired to a fake Nextcloud.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use base64::Engine as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use waggle::{App, Settings};

use crate::fakes::{self, Fake};

pub(crate) const SECRET: &str = "test-secret-0123456789";
pub(crate) const APP_ID: &str = "waggle";

pub(crate) struct TestApp {
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) nc: Fake,
    pub(crate) client: reqwest::Client,
    /// Owned temporary storage, unless the test passed its own directory.
    _storage: Option<tempfile::TempDir>,
    storage_path: PathBuf,
    pub(crate) state: waggle::state::AppState,
    stop: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

#[derive(Default)]
pub(crate) struct Builder {
    env: HashMap<String, String>,
    storage: Option<PathBuf>,
    nc: Option<Fake>,
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

    /// Uses this fake Nextcloud instead of a fresh one.
    pub(crate) fn nextcloud(mut self, nc: &Fake) -> Self {
        self.nc = Some(nc.clone());
        self
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
            None => fakes::nextcloud().await,
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
            ("WAGGLE_TENANT_KEY", crate::saas_proxy::TENANT_KEY),
            ("WAGGLE_TENANT_KEY_ID", crate::saas_proxy::TENANT_KEY_ID),
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
}

pub(crate) fn appapi_token(user: &str, secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
}
