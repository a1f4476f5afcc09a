//! The Nextcloud kit (`../shared/nextcloud/nextcloud.sh`): locate it, start one throw-away instance on
//! a free loopback port, run `occ` and `cron` in it, read its logs, stop it.
//!
//! Nothing here skips: a missing kit, PHP or PHP extension is an error that names what to install.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail, ensure};

/// Environment variable naming the kit's directory (default: `../shared/nextcloud` from the repository root).
pub(crate) const KIT_ENV: &str = "WAGGLE_NEXTCLOUD_KIT";

/// The kit's `nextcloud.sh`.
#[derive(Debug, Clone)]
pub(crate) struct Kit {
    script: PathBuf,
}

impl Kit {
    /// Finds the kit and checks that PHP is installed. Errors say how to fix the machine.
    pub(crate) fn locate() -> anyhow::Result<Self> {
        let dir = match std::env::var_os(KIT_ENV) {
            Some(d) => PathBuf::from(d),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/nextcloud"),
        };
        let script = dir.join("nextcloud.sh");
        ensure!(
            script.is_file(),
            "the Nextcloud kit is missing: no {} (set {KIT_ENV} to the directory holding nextcloud.sh)",
            script.display()
        );
        let php = Command::new("php").args(["-r", "echo PHP_VERSION;"]).output();
        match php {
            Ok(out) if out.status.success() => {}
            _ => bail!(
                "PHP is not installed: run `bash {} install-deps` (CI's .ci/run does this)",
                script.display()
            ),
        }
        Ok(Self { script })
    }

    fn command(&self) -> Command {
        let mut c = Command::new("bash");
        c.arg(&self.script);
        c
    }

    /// Starts an instance in `dir` on `port`; returns once `status.php` says installed.
    pub(crate) fn start(&self, dir: &Path, port: u16) -> anyhow::Result<Instance> {
        let out = self
            .command()
            .arg("start")
            .arg(dir)
            .arg(port.to_string())
            .stderr(Stdio::inherit())
            .output()
            .context("cannot run nextcloud.sh start")?;
        ensure!(out.status.success(), "nextcloud.sh start failed ({})", out.status);
        let line = String::from_utf8(out.stdout)?;
        let var = |name: &str| -> anyhow::Result<String> {
            let re = regex::Regex::new(&format!(r"{name}=(\S+)"))?;
            let raw = re.captures(&line).with_context(|| format!("no {name} in `{line}`"))?[1].to_owned();
            // `printf %q` quoting: the values here are plain (URL, user, alphanumeric password, path).
            Ok(raw.trim_matches('\'').to_owned())
        };
        let config = std::fs::read_to_string(dir.join("nextcloud/config/config.php"))?;
        let instance_id = regex::Regex::new(r"'instanceid' => '([^']+)'")?
            .captures(&config)
            .context("no instanceid in config.php")?[1]
            .to_owned();
        Ok(Instance {
            kit: self.clone(),
            url: var("NC_URL")?,
            admin_password: var("NC_ADMIN_PASSWORD")?,
            dir: PathBuf::from(var("NC_DIR")?),
            instance_id,
            running: true,
        })
    }
}

/// One running Nextcloud.
#[derive(Debug)]
pub(crate) struct Instance {
    kit: Kit,
    /// `http://127.0.0.1:<port>`.
    pub(crate) url: String,
    /// The generated password of `admin`.
    pub(crate) admin_password: String,
    /// The instance directory (server tree, data, logs).
    pub(crate) dir: PathBuf,
    /// `instanceid` from config.php: what Waggle must find on its own.
    pub(crate) instance_id: String,
    running: bool,
}

impl Instance {
    /// Runs `occ` with `args` (and extra environment); fails on a non-zero exit or after 60 s.
    pub(crate) fn occ(&self, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<String> {
        self.occ_within(60, args, env)
    }

    /// Runs `occ`, killed after `secs` seconds (`timeout` from coreutils).
    pub(crate) fn occ_within(
        &self,
        secs: u32,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<String> {
        let mut c = Command::new("timeout");
        c.arg(secs.to_string()).arg("bash").arg(&self.kit.script);
        c.arg("occ").arg(&self.dir).args(args).args(["--no-interaction", "--no-warnings"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().with_context(|| format!("cannot run occ {}", args.join(" ")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        ensure!(
            out.status.success(),
            "occ {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(stdout)
    }

    /// Stops the server (the kit stops only its recorded process group).
    pub(crate) fn stop(&mut self) -> anyhow::Result<()> {
        if !self.running {
            return Ok(());
        }
        let status = self.kit.command().arg("stop").arg(&self.dir).stderr(Stdio::null()).status()?;
        ensure!(status.success(), "nextcloud.sh stop failed");
        self.running = false;
        Ok(())
    }

    /// Starts the stopped server again on its port.
    pub(crate) fn restart(&mut self) -> anyhow::Result<()> {
        let port: u16 = self.url.rsplit(':').next().context("port")?.parse()?;
        let mut again = self.kit.start(&self.dir, port)?;
        again.running = false; // `self` owns the server; dropping `again` must not stop it
        ensure!(again.url == self.url, "restarted on another URL");
        self.running = true;
        Ok(())
    }

    /// `nextcloud.log` lines (JSON) at or above `level` that contain `needle`.
    pub(crate) fn log_lines(&self, level: u8, needle: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.join("data/nextcloud.log")).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains(needle))
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["level"].as_u64())
                    .is_some_and(|lv| lv >= u64::from(level))
            })
            .map(str::to_owned)
            .collect()
    }

    /// The last lines of the instance's logs, for a failure report.
    pub(crate) fn tail_logs(&self) -> String {
        let mut out = String::new();
        for name in ["data/nextcloud.log", "php.log"] {
            let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {name} (last 15 lines)\n"));
            for l in &lines[lines.len().saturating_sub(15)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A port on 127.0.0.1 that was free a moment ago (bound, read, released).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
