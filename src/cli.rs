//! The command line: serve (default), `healthcheck` (the Docker HEALTHCHECK) and `nc-call` (the
//! reference `/nc` client). Exit codes: 0 success, 1 failure, 2 configuration error; `healthcheck`
//! exits 0 or 1 only, because Docker reserves every other code of a HEALTHCHECK command.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::{App, Settings, healthcheck, nc_call, shutdown, telemetry};

#[derive(Debug, Parser)]
#[command(version, about = "Waggle: connects Nextcloud to a remote SaaS (AppAPI ExApp)")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Exit 0 when the running instance answers `GET /heartbeat` (Docker HEALTHCHECK).
    Healthcheck,
    /// Sign a `/nc` callback exactly as the SaaS must, send it, print the answer.
    NcCall(Box<nc_call::NcCallArgs>),
}

fn exit(result: anyhow::Result<()>, prefix: &str) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{prefix}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the Tokio runtime and runs the command line on it.
pub fn main() -> ExitCode {
    match runtime() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("waggle: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The Tokio runtime Waggle runs on.
///
/// With one CPU available (a `--cpus=1` container, or an affinity mask of one CPU) it is
/// single-threaded: a work-stealing scheduler with one worker only adds synchronisation to every
/// task wake-up. `TOKIO_WORKER_THREADS` forces the multi-threaded runtime with that many workers.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let forced = std::env::var_os("TOKIO_WORKER_THREADS").is_some();
    let mut builder = if cpus == 1 && !forced {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

/// Parses the command line and runs the command.
pub async fn run() -> ExitCode {
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    // nc-call is a client: it needs the tenant key, not the server's configuration.
    if let Command::NcCall(args) = command {
        return exit(nc_call::run(*args).await, "waggle nc-call");
    }
    let probe = matches!(command, Command::Healthcheck);
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("waggle: configuration error: {e}");
            return if probe { ExitCode::FAILURE } else { ExitCode::from(2) };
        }
    };
    let result = if probe {
        // In its own task, so that even a panic ends as "unhealthy" (1), never as 101.
        tokio::spawn(async move { healthcheck::run(&settings, Duration::from_secs(4)).await })
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the probe failed: {e}")))
    } else {
        telemetry::init(settings.log_format);
        // Before binding: once the port accepts, a SIGTERM must already mean "drain", not "die".
        let stop = shutdown::signal();
        match App::build(settings).await {
            Ok(app) => app.run_until_stopped(stop).await,
            Err(e) => Err(e),
        }
    };
    exit(result, "waggle")
}
