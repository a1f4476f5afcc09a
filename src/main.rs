//! The `waggle` binary: serve (default) or probe a running instance (`healthcheck`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use waggle::{App, Settings, healthcheck, shutdown, telemetry};

#[derive(Parser)]
#[command(version, about = "Waggle: connects Nextcloud to a remote SaaS (AppAPI ExApp)")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Exit 0 when the running instance answers `GET /heartbeat` (Docker HEALTHCHECK).
    Healthcheck,
    /// Sign a `/nc` callback exactly as the SaaS must, send it, print the answer.
    NcCall(Box<waggle::nc_call::NcCallArgs>),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::NcCall(args)) = cli.command {
        return match waggle::nc_call::run(*args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("waggle nc-call: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("waggle: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Healthcheck => healthcheck::run(&settings, Duration::from_secs(4)).await,
        Command::NcCall(_) => unreachable!("handled before the settings load"),
        Command::Serve => {
            telemetry::init(settings.log_format);
            match App::build(settings).await {
                Ok(app) => app.run_until_stopped(shutdown::signal()).await,
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("waggle: {e:#}");
            ExitCode::FAILURE
        }
    }
}
