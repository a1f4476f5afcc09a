//! The real-Nextcloud suite: one Nextcloud 31.0.6 + AppAPI 5.0.2 instance from the kit in
//! `../shared/nextcloud` (or `$WAGGLE_NEXTCLOUD_KIT`), the real `waggle` binary registered as the
//! README tells a user, and a fake SaaS that verifies every signature. The cases run in order, as an
//! admin would meet them, and stop at the first failure with the logs of all three parties.
//!
//! Not part of `cargo test` (it takes about a minute and needs PHP): `scripts/test.sh` and CI run it
//! with `cargo test --test real_nextcloud`. A missing kit or PHP fails the run; nothing is skipped.

mod browser;
mod cases;
mod kit;
mod readme;
mod saas;
mod service;
mod world;

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    waggle::tls::install_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run())
}

async fn run() -> ExitCode {
    let started = Instant::now();
    println!("real-nextcloud: starting Nextcloud, the fake SaaS and Waggle");
    let mut world = match world::World::start().await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("real-nextcloud: FAILED to set up: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("real-nextcloud: ready in {:.1} s ({})", started.elapsed().as_secs_f64(), world.nc.url);
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases::ALL {
        let t = Instant::now();
        let outcome = case(&mut world).await;
        let outcome = outcome.and_then(|()| world.check_saas());
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("case {name} ... ok ({:.1} s)", t.elapsed().as_secs_f64());
            }
            Err(e) => {
                failed += 1;
                println!("case {name} ... FAILED ({:.1} s)", t.elapsed().as_secs_f64());
                world.keep_work();
                eprintln!("{e:#}\n{}", world.diagnostics());
                break;
            }
        }
    }
    let skipped = cases::ALL.len() - passed - failed;
    for note in &world.notes {
        println!("real-nextcloud: {note}");
    }
    if let Err(e) = world.shutdown() {
        eprintln!("real-nextcloud: shutdown: {e:#}");
        failed += 1;
    }
    println!(
        "real-nextcloud: {passed} passed, {failed} failed, {skipped} not run (after a failure) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if failed == 0 && skipped == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
