//! The `waggle` binary. Everything lives in the library; see `cli.rs`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    waggle::cli::run().await
}
