//! Waggle: a Nextcloud External App (AppAPI ExApp) that connects Nextcloud to a remote SaaS.
//!
//! `main.rs` only parses the command line; everything else lives here so integration tests drive the
//! same code: [`config::Settings`] → [`app::App::build`] → [`app::App::run_until_stopped`].
//!
//! The public surface is what the binary, the integration tests, the fuzz targets and the examples
//! need; everything else is `pub(crate)`, so dead code is reported.

// Public: what the binary, the integration tests, the fuzz targets and the examples use.
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod events;
pub mod headers;
pub mod healthcheck;
pub mod keys;
pub mod nextcloud;
pub mod signing;
pub mod spa;
pub mod state;
pub mod store;
pub mod tls;

// Internal.
pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod callbacks;
pub(crate) mod clock;
pub(crate) mod lifecycle;
pub(crate) mod lifecycle_state;
pub(crate) mod metrics;
pub(crate) mod nc_call;
pub(crate) mod proxy;
pub(crate) mod replay;
pub(crate) mod routes;
pub(crate) mod saas;
pub(crate) mod shutdown;
pub(crate) mod telemetry;
pub(crate) mod tenant;

pub use app::App;
pub use config::Settings;
