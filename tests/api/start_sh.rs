//! `start.sh`, the container entrypoint, run by `/bin/sh` (dash on Debian, as in the image)
//! with stub `frpc` and `waggle` executables and every path under a temporary root: the `HP_*`
//! variables set and unset, with and without the FRP certificate directory, frpc failing and
//! restarting, frpc missing, and the real binary behind the tunnel's socket. start.sh is never PID 1
//! here, which is the case where frpc could outlive Waggle.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::harness::{SECRET, free_port, wait_until_blocking};

const START_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/start.sh");
const KEY: &str = r#"hp-K"e\y{{x}}-shared"#;

/// Records each start (pid, parent pid, time in ns, arguments, a copy of the config and its mode),
/// then follows `STUB_FRPC`: one plan per start, the last one repeating. `exit:N` exits at once,
/// `run:S` runs S seconds, `run` runs until SIGTERM (and records that it got it).
const STUB_FRPC: &str = r#"#!/bin/sh
starts="$STUB_DIR/frpc.starts"
[ -f "$starts" ] || : >"$starts"
n=$(($(wc -l <"$starts") + 1))
cp "$2" "$STUB_DIR/frpc-$n.toml"
stat -c %a "$2" >"$STUB_DIR/frpc-$n.mode"
echo "$$ $PPID $(date +%s%N) $*" >>"$starts"
plan=exit:0
i=1
for p in $STUB_FRPC; do
    [ "$i" -le "$n" ] && plan=$p
    i=$((i + 1))
done
case "$plan" in
    exit:*) exit "${plan#exit:}" ;;
    run:*) sleep "${plan#run:}"; exit 0 ;;
    run)
        trap 'echo "$$" >>"$STUB_DIR/frpc.terminated"; exit 0' TERM
        while :; do sleep 0.05; done
        ;;
esac
"#;

/// Records its pid (the exec kept start.sh's), then `exit:N`, or waits for the file `stop`.
const STUB_WAGGLE: &str = r#"#!/bin/sh
echo "$$" >"$STUB_DIR/waggle.pid"
case "${STUB_WAGGLE:-exit:0}" in
    exit:*) exit "${STUB_WAGGLE#exit:}" ;;
    until-stop)
        while [ ! -e "$STUB_DIR/stop" ]; do sleep 0.05; done
        exit 0
        ;;
esac
"#;

struct Rig {
    root: tempfile::TempDir,
}

impl Rig {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for (name, body) in [("frpc", STUB_FRPC), ("waggle", STUB_WAGGLE)] {
            let path = bin.join(name);
            std::fs::write(&path, body).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self { root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn p(&self, rel: &str) -> String {
        self.path(rel).to_str().unwrap().to_owned()
    }

    /// What a HaRP daemon injects, plus start.sh's knobs pointing into the temporary root.
    fn harp_env(&self) -> HashMap<String, String> {
        [
            ("HP_SHARED_KEY", KEY.to_owned()),
            ("HP_FRP_ADDRESS", "appapi-harp".to_owned()),
            ("HP_FRP_PORT", "8782".to_owned()),
            ("APP_ID", "waggle".to_owned()),
            ("APP_PORT", "23017".to_owned()),
            ("WAGGLE_FRP_CERTS_DIR", self.p("certs/frp")),
            ("WAGGLE_FRPC_CONFIG", self.p("run/frpc.toml")),
            ("WAGGLE_HARP_SOCKET", self.p("exapp.sock")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// `sh -x start.sh` (tracing on, as a debugging admin might run it) with exactly `vars`.
    fn command(&self, vars: &HashMap<String, String>, path_first: Option<&Path>) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-x").arg(START_SH).env_clear().stdin(Stdio::null());
        let bin = self.p("bin");
        let path = match path_first {
            Some(first) => format!("{}:{bin}:/usr/bin:/bin", first.display()),
            None => format!("{bin}:/usr/bin:/bin"),
        };
        cmd.env("PATH", path).env("STUB_DIR", self.root.path());
        cmd.envs(vars);
        cmd
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// (pid, parent pid, start time in ns) of every frpc start so far.
    fn frpc_starts(&self) -> Vec<(u32, u32, u128)> {
        self.read("frpc.starts")
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap())
            })
            .collect()
    }
}

/// Whether a process runs (a zombie does not count).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
            !(state.starts_with('Z') || state.starts_with('X'))
        }
        Err(_) => false,
    }
}

impl Rig {
    /// Starts the command with stdout and stderr going to one log file (a pipe would keep the test
    /// waiting on any process that inherited it).
    fn spawn(&self, mut cmd: Command) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.path("out.log")).unwrap();
        cmd.stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap()
    }

    /// Runs the command to its end (at most 30 s); returns its status and everything it printed.
    fn run(&self, cmd: Command) -> (ExitStatus, String) {
        let _ = std::fs::remove_file(self.path("out.log"));
        let mut child = self.spawn(cmd);
        let status = wait_exit(&mut child, Duration::from_secs(30));
        (status, self.read("out.log"))
    }
}

/// Every process these tests started that may still run (frpc stubs and the supervisors) is killed
/// when the rig goes, so a failing test leaves nothing behind.
impl Drop for Rig {
    fn drop(&mut self) {
        let mut pids: Vec<u32> =
            self.frpc_starts().iter().flat_map(|(pid, parent, _)| [*pid, *parent]).collect();
        pids.extend(self.read("waggle.pid").trim().parse::<u32>());
        for pid in pids.into_iter().filter(|p| running(*p)) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let mut status = None;
    wait_until_blocking("start.sh exits", limit, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap()
}

fn assert_no_secret(output: &str) {
    for fragment in [KEY, "hp-K", "y{{x}}-shared", r#"hp-K\"e\\y"#] {
        assert!(!output.contains(fragment), "the shared key leaked ({fragment}): {output}");
    }
}

/// The config start.sh must write for `harp_env`, with `tls` the transport lines. The key and every
/// path are escaped twice: TOML, then Go template (frpc renders its file as a template first).
fn expected_config(rig: &Rig, tls: &str) -> String {
    format!(
        r#"# Generated by start.sh at container start; holds the HaRP shared key.
serverAddr = "appapi-harp"
serverPort = 8782
# Keep retrying when HaRP is not up yet (nextcloud/HaRP#29).
loginFailExit = false

{tls}

metadatas.token = "hp-K\"e\\y{{{{"{{{{"}}}}x}}}}-shared"

[[proxies]]
name = "waggle"
type = "tcp"
remotePort = 23017

[proxies.plugin]
type = "unix_domain_socket"
unixPath = "{}"
"#,
        rig.p("exapp.sock")
    )
}

#[test]
fn without_the_shared_key_it_execs_the_command_and_runs_no_frpc() {
    let rig = Rig::new();
    let vars: HashMap<String, String> =
        [("STUB_WAGGLE", "exit:7"), ("APP_ID", "waggle"), ("APP_PORT", "23017")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let mut child = rig.spawn(rig.command(&vars, None));
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let out = rig.read("out.log");
    assert_eq!(status.code(), Some(7), "the command's status passes through: {out}");
    assert_eq!(
        rig.read("waggle.pid").trim(),
        child.id().to_string(),
        "exec: the command keeps start.sh's pid"
    );
    assert!(out.contains("HP_SHARED_KEY not set"), "{out}");
    assert!(rig.frpc_starts().is_empty(), "no frpc without HaRP");
    assert!(!rig.path("run/frpc.toml").exists(), "no config written");

    // An empty key counts as unset (AppAPI never passes empty values, an admin might).
    let mut vars = rig.harp_env();
    vars.insert("HP_SHARED_KEY".into(), String::new());
    vars.insert("STUB_WAGGLE".into(), "exit:0".into());
    let (status, out) = rig.run(rig.command(&vars, None));
    assert!(status.success(), "{out}");
    assert!(rig.frpc_starts().is_empty());
}

/// HaRP mode without `/certs/frp`: the exact config, mode 0600, frpc started with it, and once the
/// application is gone frpc is stopped too, although the application is a zombie nobody reaped yet.
#[test]
fn with_the_shared_key_it_writes_the_config_runs_frpc_and_stops_it_with_the_application() {
    let rig = Rig::new();
    let mut vars = rig.harp_env();
    vars.insert("STUB_FRPC".into(), "run".into());
    vars.insert("STUB_WAGGLE".into(), "until-stop".into());
    // A leftover config with wide permissions must not be reused.
    std::fs::create_dir_all(rig.path("run")).unwrap();
    std::fs::write(rig.path("run/frpc.toml"), "stale").unwrap();
    std::fs::set_permissions(rig.path("run/frpc.toml"), std::fs::Permissions::from_mode(0o644)).unwrap();

    let mut child = rig.spawn(rig.command(&vars, None));
    wait_until_blocking("frpc started", Duration::from_secs(10), || !rig.frpc_starts().is_empty());
    wait_until_blocking("waggle started", Duration::from_secs(10), || !rig.read("waggle.pid").is_empty());
    assert_eq!(rig.read("waggle.pid").trim(), child.id().to_string(), "exec keeps the pid");

    let config = rig.read("frpc-1.toml");
    assert_eq!(config, expected_config(&rig, "transport.tls.enable = false"));
    assert_eq!(rig.read("frpc-1.mode").trim(), "600", "the config holding the key is private");
    let mode = std::fs::metadata(rig.path("run/frpc.toml")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (frpc_pid, supervisor_pid, _) = rig.frpc_starts()[0];
    let args = rig.read("frpc.starts");
    assert!(args.trim_end().ends_with(&format!("-c {}", rig.p("run/frpc.toml"))), "{args}");

    // The application exits; its parent (this test) does not reap it yet.
    std::fs::write(rig.path("stop"), "").unwrap();
    wait_until_blocking("frpc is stopped after the application exits", Duration::from_secs(10), || {
        rig.read("frpc.terminated").trim() == frpc_pid.to_string()
    });
    wait_until_blocking("the supervisor is gone", Duration::from_secs(10), || !running(supervisor_pid));
    assert!(!running(frpc_pid));
    assert_eq!(rig.frpc_starts().len(), 1, "not restarted once the application is gone");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).code(), Some(0));
    let output = rig.read("out.log");
    assert!(output.contains("without TLS"), "{output}");
    assert_no_secret(&output);
}

/// With the certificate directory HaRP copies in at install (here under the temporary root), frpc
/// uses mutual TLS with its files and HaRP's server name.
#[test]
fn with_the_certificate_directory_frpc_uses_tls() {
    let rig = Rig::new();
    std::fs::create_dir_all(rig.path("certs/frp")).unwrap();
    let mut vars = rig.harp_env();
    vars.insert("STUB_FRPC".into(), "exit:0".into());
    vars.insert("STUB_WAGGLE".into(), "exit:0".into());
    let (status, out) = rig.run(rig.command(&vars, None));
    assert!(status.success(), "{out}");
    // frpc may or may not have started before the application exited; the file is written first.
    let config = std::fs::read_to_string(rig.path("run/frpc.toml")).unwrap();
    let certs = rig.p("certs/frp");
    let tls = format!(
        "transport.tls.enable = true\n\
         transport.tls.certFile = \"{certs}/client.crt\"\n\
         transport.tls.keyFile = \"{certs}/client.key\"\n\
         transport.tls.trustedCaFile = \"{certs}/ca.crt\"\n\
         transport.tls.serverName = \"harp.nc\""
    );
    assert_eq!(config, expected_config(&rig, &tls));
    assert!(out.contains("frpc will use TLS"), "{out}");
    assert_no_secret(&out);
}

/// frpc that keeps failing is restarted with a doubling delay up to the cap; a run that lasted
/// `WAGGLE_FRPC_STABLE_SECS` resets the delay; nothing is restarted once the application is gone.
#[test]
fn a_failing_frpc_is_restarted_with_backoff() {
    let rig = Rig::new();
    let mut vars = rig.harp_env();
    vars.insert("STUB_FRPC".into(), "exit:3 exit:3 exit:3 exit:3 exit:3 run:2.5 exit:3".into());
    vars.insert("STUB_WAGGLE".into(), "until-stop".into());
    vars.insert("WAGGLE_FRPC_BACKOFF_MS".into(), "100".into());
    vars.insert("WAGGLE_FRPC_BACKOFF_MAX_MS".into(), "400".into());
    vars.insert("WAGGLE_FRPC_STABLE_SECS".into(), "2".into());
    let mut child = rig.spawn(rig.command(&vars, None));
    wait_until_blocking("eight frpc starts", Duration::from_secs(30), || rig.frpc_starts().len() >= 8);
    std::fs::write(rig.path("stop"), "").unwrap();
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).code(), Some(0));
    let starts = rig.frpc_starts();
    let supervisor = starts[0].1;
    wait_until_blocking("the supervisor is gone", Duration::from_secs(10), || !running(supervisor));
    let total = rig.frpc_starts().len();

    let output = rig.read("out.log");
    let delays: Vec<&str> = output
        .lines()
        .filter_map(|l| l.split("restarting in ").nth(1))
        .map(|d| d.trim_end_matches(" s"))
        .collect();
    // Five quick failures: 0.1, 0.2, 0.4, then capped at 0.4. The sixth run lasted 2.5 s (>= the
    // stable time): back to 0.1, then 0.2.
    assert_eq!(delays[..7], ["0.100", "0.200", "0.400", "0.400", "0.400", "0.100", "0.200"], "{output}");
    assert!(output.contains("frpc exited with status 3"), "{output}");
    // The delays were really waited (lower bounds only; a loaded machine is slower, never faster).
    for (i, expected_ms) in [100u128, 200, 400, 400, 400].iter().enumerate() {
        let gap_ms = (starts[i + 1].2 - starts[i].2) / 1_000_000;
        assert!(gap_ms >= *expected_ms, "start {} came {gap_ms} ms after the previous one", i + 2);
    }
    assert_eq!(rig.frpc_starts().len(), total, "no restart after the application exited");
    assert_no_secret(&output);
}

#[test]
fn a_missing_frpc_stops_the_start_with_a_clear_message() {
    let rig = Rig::new();
    let mut vars = rig.harp_env();
    vars.insert("WAGGLE_FRPC_BIN".into(), rig.p("bin/no-such-frpc"));
    let (status, out) = rig.run(rig.command(&vars, None));
    assert_eq!(status.code(), Some(69), "{out}");
    assert!(out.contains("frpc not found"), "{out}");
    assert!(rig.read("waggle.pid").is_empty(), "the application is not started without its tunnel");

    // Found through PATH by name, it must exist there too.
    std::fs::remove_file(rig.path("bin/frpc")).unwrap();
    let vars = rig.harp_env();
    let mut cmd = rig.command(&vars, None);
    cmd.env("PATH", format!("{}:/nonexistent", rig.p("bin")));
    let (status, out) = rig.run(cmd);
    assert_eq!(status.code(), Some(69), "{out}");
    assert_no_secret(&out);
}

/// Bad input is refused before anything starts, naming the variable and never printing the key.
#[test]
fn bad_harp_input_is_refused_by_name_without_printing_the_key() {
    let rig = Rig::new();
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        ("HP_FRP_ADDRESS", None, "HP_FRP_ADDRESS"),
        ("APP_PORT", None, "APP_PORT"),
        ("APP_PORT", Some("70000"), "APP_PORT"),
        ("HP_FRP_PORT", Some("http"), "HP_FRP_PORT"),
        ("HP_SHARED_KEY", Some("hp-K\ny{{x}}-shared"), "HP_SHARED_KEY contains a control character"),
        ("WAGGLE_FRPC_BACKOFF_MS", Some("soon"), "WAGGLE_FRPC_BACKOFF_MS"),
    ];
    for (var, value, message) in cases {
        let mut vars = rig.harp_env();
        match value {
            Some(v) => vars.insert(var.into(), v.into()),
            None => vars.remove(var),
        };
        let (status, out) = rig.run(rig.command(&vars, None));
        assert_eq!(status.code(), Some(64), "{var}: {out}");
        assert!(out.contains(message), "{var}: {out}");
        assert_no_secret(&out);
        assert!(rig.frpc_starts().is_empty() && rig.read("waggle.pid").is_empty());
    }
}

/// `host:port` in `HP_FRP_ADDRESS` without `HP_FRP_PORT` (AppAPI's `--harp_frp_address` form).
#[test]
fn the_frp_port_may_come_with_the_address() {
    let rig = Rig::new();
    let mut vars = rig.harp_env();
    vars.remove("HP_FRP_PORT");
    vars.insert("HP_FRP_ADDRESS".into(), "harp.internal:9782".into());
    vars.insert("STUB_WAGGLE".into(), "exit:0".into());
    let (status, out) = rig.run(rig.command(&vars, None));
    assert!(status.success(), "{out}");
    let config = std::fs::read_to_string(rig.path("run/frpc.toml")).unwrap();
    assert!(config.contains("serverAddr = \"harp.internal\"\nserverPort = 9782\n"), "{config}");
}

/// The real binary behind the tunnel: started by start.sh in HaRP mode, Waggle listens on the socket
/// named in the frpc config (mode 0660, for frpc in the same container) and on no TCP port, answers
/// its healthcheck there, and stops on SIGTERM; frpc goes with it and the socket is removed.
#[test]
fn the_real_waggle_serves_the_socket_that_frpc_is_pointed_at() {
    let rig = Rig::new();
    let wbin = rig.path("wbin");
    std::fs::create_dir(&wbin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_waggle"), wbin.join("waggle")).unwrap();
    let port = free_port();
    let mut vars = rig.harp_env();
    vars.insert("STUB_FRPC".into(), "run".into());
    vars.insert("APP_PORT".into(), port.to_string());
    vars.insert("APP_HOST".into(), "127.0.0.1".into());
    vars.insert("APP_SECRET".into(), SECRET.into());
    vars.insert("NEXTCLOUD_URL".into(), "http://127.0.0.1:9/".into());
    vars.insert("APP_PERSISTENT_STORAGE".into(), rig.p("data"));

    let mut child = rig.spawn(rig.command(&vars, Some(&wbin)));
    let healthcheck = || {
        Command::new(wbin.join("waggle"))
            .arg("healthcheck")
            .env_clear()
            .envs(&vars)
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    wait_until_blocking("waggle answers its healthcheck on the socket", Duration::from_secs(30), || {
        assert!(child.try_wait().unwrap().is_none(), "start.sh exited");
        healthcheck()
    });
    wait_until_blocking("frpc started", Duration::from_secs(10), || !rig.frpc_starts().is_empty());
    let config = rig.read("frpc-1.toml");
    let socket = rig.p("exapp.sock");
    assert!(config.contains(&format!("unixPath = \"{socket}\"\n")), "{config}");
    assert!(config.contains(&format!("remotePort = {port}\n")), "{config}");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "frpc in the same container may connect, nobody else");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "no TCP listener in HaRP mode");

    let (frpc_pid, _, _) = rig.frpc_starts()[0];
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    wait_until_blocking("frpc is stopped with waggle", Duration::from_secs(15), || {
        rig.read("frpc.terminated").trim() == frpc_pid.to_string()
    });
    let status = wait_exit(&mut child, Duration::from_secs(15));
    let output = rig.read("out.log");
    assert_eq!(
        status.code(),
        Some(0),
        "graceful exit, straight from SIGTERM (waggle kept the pid): {output}"
    );
    assert!(!rig.path("exapp.sock").exists(), "the socket is removed at shutdown");
    assert!(output.contains("listening on the HaRP unix socket"), "{output}");
    assert_no_secret(&output);
    assert!(!output.contains(SECRET), "{output}");
}
