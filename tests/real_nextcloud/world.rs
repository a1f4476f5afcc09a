//! The suite's world: the Nextcloud instance, the fake SaaS, the Waggle process, the test users, and
//! the small clients the cases use (through Nextcloud's PHP proxy, straight to Waggle as AppAPI
//! would, signed `/nc` calls, and WebDAV as a user).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use base64::Engine as _;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use waggle::signing::{CallbackRequest, SigningKey, random_nonce, sign_callback};

use crate::kit::{Instance, Kit, free_port};
use crate::readme::Readme;
use crate::saas::Saas;
use crate::service::Waggle;

/// Reconciliation interval for the run: short, so changes made with `occ` arrive in seconds.
pub(crate) const SYNC_INTERVAL_SECS: u64 = 2;

/// A Nextcloud user of the run.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) uid: String,
    pub(crate) password: String,
}

pub(crate) struct World {
    pub(crate) nc: Instance,
    pub(crate) saas: Saas,
    pub(crate) waggle: Waggle,
    pub(crate) readme: Readme,
    pub(crate) http: reqwest::Client,
    pub(crate) secret: String,
    pub(crate) app_port: u16,
    pub(crate) alice: User,
    /// Figures and observations printed at the end.
    pub(crate) notes: Vec<String>,
    work: Option<tempfile::TempDir>,
    work_path: PathBuf,
}

impl World {
    /// Starts Nextcloud (with two users), the fake SaaS and Waggle; nothing is registered yet.
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let kit = Kit::locate()?;
        let readme = Readme::load()?;
        let work = tempfile::Builder::new().prefix("waggle-real-nc-").tempdir()?;
        let work_path = work.path().to_path_buf();
        let nc = kit.start(&work_path.join("nc"), free_port()?)?;
        let alice = User { uid: "alice".into(), password: format!("alice-{}", token()) };
        let bob = User { uid: "bob".into(), password: format!("bob-{}", token()) };
        for u in [&alice, &bob] {
            nc.occ(
                &["user:add", "--password-from-env", "--display-name", &capitalised(&u.uid), &u.uid],
                &[("OC_PASS", &u.password)],
            )?;
        }
        nc.occ(&["user:setting", "admin", "settings", "email", "admin@example.test"], &[])?;
        nc.occ(&["user:setting", "alice", "settings", "email", "alice@example.test"], &[])?;

        let saas = Saas::start(&nc.instance_id).await?;
        let secret = readme.env.get("APP_SECRET").context("local.env has no APP_SECRET")?.clone();
        for s in [secret.as_str(), &nc.admin_password, &alice.password, &bob.password] {
            saas.forbid(s);
        }
        for uid in ["", "admin", "alice", "bob", "carol"] {
            saas.forbid(&base64::engine::general_purpose::STANDARD.encode(format!("{uid}:{secret}")));
        }

        let app_port = free_port()?;
        let mut env = readme.env.clone();
        env.insert("APP_PORT".into(), app_port.to_string());
        env.insert("APP_PERSISTENT_STORAGE".into(), work_path.join("waggle-data").display().to_string());
        env.insert("NEXTCLOUD_URL".into(), nc.url.clone());
        env.insert("WAGGLE_SERVICE_URL".into(), saas.url.clone());
        env.insert("WAGGLE_SYNC_INTERVAL".into(), SYNC_INTERVAL_SECS.to_string());
        env.insert("NO_COLOR".into(), "1".into());
        let waggle = Waggle::start(env, &work_path.join("waggle.log")).await?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            nc,
            saas,
            waggle,
            readme,
            http,
            secret,
            app_port,
            alice,
            notes: vec![],
            work: Some(work),
            work_path,
        })
    }

    /// `…/index.php/apps/app_api/proxy/waggle<path>`.
    pub(crate) fn proxy_url(&self, path: &str) -> String {
        format!("{}/index.php/apps/app_api/proxy/waggle{path}", self.nc.url)
    }

    /// A request through the PHP proxy with the user's Basic credentials.
    pub(crate) fn as_user(&self, method: Method, path: &str, user: &User) -> RequestBuilder {
        self.http.request(method, self.proxy_url(path)).basic_auth(&user.uid, Some(&user.password))
    }

    pub(crate) fn admin(&self) -> User {
        User { uid: "admin".into(), password: self.nc.admin_password.clone() }
    }

    /// A request straight to Waggle carrying the AppAPI headers AppAPI would add for `uid`.
    pub(crate) fn direct(&self, method: Method, path: &str, uid: &str) -> RequestBuilder {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{uid}:{}", self.secret));
        self.http
            .request(method, format!("{}{path}", self.waggle.url))
            .header("AUTHORIZATION-APP-API", token)
            .header("EX-APP-ID", "waggle")
            .header("EX-APP-VERSION", "0.1.0")
            .header("AA-VERSION", "5.0.2")
    }

    /// Waggle's `/admin/status`, asked directly (works while Nextcloud's proxy refuses).
    pub(crate) async fn status(&self) -> anyhow::Result<Value> {
        let r = self.direct(Method::GET, "/admin/status", "admin").send().await?;
        ensure!(r.status() == 200, "/admin/status answered {}", r.status());
        Ok(r.json().await?)
    }

    /// A metric counter from `/admin/status` (0 when absent).
    pub(crate) async fn metric(&self, name: &str) -> anyhow::Result<u64> {
        Ok(self.status().await?["metrics"][name].as_u64().unwrap_or(0))
    }

    /// A fact from Waggle's store, read from the database file (works while Nextcloud refuses Waggle's
    /// own admin check, e.g. when the app is disabled).
    pub(crate) fn fact(&self, key: &str) -> anyhow::Result<Option<String>> {
        let path = self.work_path.join("waggle-data/waggle.sqlite3");
        let db = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        match db.query_row("SELECT value FROM facts WHERE key = ?1", [key], |r| r.get(0)) {
            Ok(v) => Ok(Some(v)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A `/nc` call signed with the tenant key, sent to Nextcloud's public proxy route.
    pub(crate) async fn nc_call(
        &self,
        method: &str,
        target: &str,
        user: &str,
        body: &[u8],
        destination: Option<&str>,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Response> {
        let (key_id, key) = self.saas.key();
        let m = Method::from_bytes(method.as_bytes())?;
        let request = CallbackRequest {
            method: &m,
            tunnel: true,
            target,
            user,
            body,
            content_type: (!body.is_empty()).then_some("text/plain"),
            destination,
        };
        let created = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let key = SigningKey::from_tenant_key(key_id, &key);
        let (wire, mut headers) = sign_callback(&key, &request, created, &random_nonce(&mut rand::rng()))?;
        for (k, v) in extra {
            headers.insert(reqwest::header::HeaderName::from_bytes(k.as_bytes())?, v.parse()?);
        }
        let path = target.split('?').next().unwrap_or(target);
        Ok(self
            .http
            .request(wire, self.proxy_url(&format!("/nc{path}")))
            .headers(headers)
            .body(body.to_vec())
            .send()
            .await?)
    }

    /// WebDAV straight on Nextcloud with the user's own login.
    pub(crate) fn webdav(&self, method: &str, path: &str, user: &User) -> anyhow::Result<RequestBuilder> {
        Ok(self
            .http
            .request(
                Method::from_bytes(method.as_bytes())?,
                format!("{}/remote.php/dav/files/{}/{path}", self.nc.url, user.uid),
            )
            .basic_auth(&user.uid, Some(&user.password)))
    }

    /// Fails if the SaaS recorded any violation so far.
    pub(crate) fn check_saas(&self) -> anyhow::Result<()> {
        let v = self.saas.violations();
        ensure!(v.is_empty(), "the fake SaaS refused what Waggle sent: {v:#?}");
        Ok(())
    }

    /// Everything useful after a failure.
    pub(crate) fn diagnostics(&self) -> String {
        format!(
            "--- waggle (last 40 lines)\n{}\n{}--- work directory kept: {}",
            self.waggle.tail_log(40),
            self.nc.tail_logs(),
            self.work_path.display()
        )
    }

    /// Stops Waggle and Nextcloud; the work directory is removed after a clean run and kept otherwise.
    pub(crate) fn shutdown(&mut self) -> anyhow::Result<()> {
        let w = self.waggle.stop();
        let n = self.nc.stop();
        if std::thread::panicking() {
            return Ok(());
        }
        w?;
        n?;
        Ok(())
    }

    /// Keeps the work directory (after a failure).
    pub(crate) fn keep_work(&mut self) -> PathBuf {
        if let Some(w) = self.work.take() {
            return w.keep();
        }
        self.work_path.clone()
    }
}

fn token() -> String {
    random_nonce(&mut rand::rng()).chars().filter(char::is_ascii_alphanumeric).take(16).collect()
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Waits until `check` returns `Some`, polling every 100 ms, or fails with `what` after `timeout`.
pub(crate) async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        ensure!(tokio::time::Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
