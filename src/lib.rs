//! Waggle: a Nextcloud External App (AppAPI ExApp) that connects Nextcloud to a remote SaaS.
//!
//! `main.rs` only parses the command line; everything else lives here so integration tests drive the
//! same code: [`config::Settings`] → [`app::App::build`] → [`app::App::run_until_stopped`].

pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod events;
pub mod headers;
pub mod healthcheck;
pub mod keys;
pub mod lifecycle;
pub mod metrics;
pub mod nc_call;
pub mod nextcloud;
pub mod nonce;
pub mod proxy;
pub mod routes;
pub mod saas;
pub mod shutdown;
pub mod signing;
pub mod spa;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tls;

pub use app::App;
pub use config::Settings;
