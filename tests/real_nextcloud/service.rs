//! The real `waggle` binary of this build, started as the README starts it (the environment of
//! `config/local.env`), with only what a deployment must change: the port, the storage directory,
//! Nextcloud's URL and the SaaS's URL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, ensure};

/// A running Waggle process.
#[derive(Debug)]
pub(crate) struct Waggle {
    child: Option<Child>,
    env: BTreeMap<String, String>,
    log: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub(crate) url: String,
}

impl Waggle {
    /// Starts the binary with `env`, appending its output to `log`; returns once `/heartbeat` answers.
    pub(crate) async fn start(env: BTreeMap<String, String>, log: &Path) -> anyhow::Result<Self> {
        let port = env.get("APP_PORT").context("APP_PORT")?.clone();
        let mut w =
            Self { child: None, env, log: log.to_path_buf(), url: format!("http://127.0.0.1:{port}") };
        w.spawn().await?;
        Ok(w)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_waggle"));
        // Nothing from the developer's shell leaks in: only the documented variables.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("WAGGLE_")
                || k.starts_with("APP_")
                || k.starts_with("HP_")
                || matches!(k.as_str(), "NEXTCLOUD_URL" | "AA_VERSION" | "RUST_LOG")
            {
                cmd.env_remove(k);
            }
        }
        cmd.envs(&self.env).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
        self.child = Some(cmd.spawn().context("cannot start the waggle binary")?);
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                anyhow::bail!("waggle exited at start ({status}); log:\n{}", self.tail_log(20));
            }
            if let Ok(r) = client.get(format!("{}/heartbeat", self.url)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            ensure!(tokio::time::Instant::now() < deadline, "waggle did not answer /heartbeat within 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 15 s).
    pub(crate) fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        for _ in 0..150 {
            if let Some(status) = child.try_wait()? {
                ensure!(status.success(), "waggle exited with {status} after SIGTERM");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child.kill()?;
        child.wait()?;
        anyhow::bail!("waggle did not stop within 15 s of SIGTERM")
    }

    /// Stops and starts the process again on the same port and storage.
    pub(crate) async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.spawn().await
    }

    /// The last `n` lines of Waggle's output.
    pub(crate) fn tail_log(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Lines of Waggle's output containing `needle`.
    pub(crate) fn log_lines(&self, needle: &str) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
    }
}

impl Drop for Waggle {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
