//! The command line: serve (default), `healthcheck` (the Docker HEALTHCHECK) and `nc-call` (the
//! reference `/nc` client). Exit codes: 0 success, 1 failure, 2 configuration error.

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

/// Parses the command line and runs the command.
pub async fn run() -> ExitCode {
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    // nc-call is a client: it needs the tenant key, not the server's configuration.
    if let Command::NcCall(args) = command {
        return exit(nc_call::run(*args).await, "waggle nc-call");
    }
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("waggle: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = if matches!(command, Command::Healthcheck) {
        healthcheck::run(&settings, Duration::from_secs(4)).await
    } else {
        telemetry::init(settings.log_format);
        match App::build(settings).await {
            Ok(app) => app.run_until_stopped(shutdown::signal()).await,
            Err(e) => Err(e),
        }
    };
    exit(result, "waggle")
}
