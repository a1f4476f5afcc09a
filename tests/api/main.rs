//! Integration tests: Waggle on a real loopback port (or unix socket) against loopback fakes.

mod fakes;
mod harness;

mod auth_matrix;
mod browser;
mod build_context;
mod config_cli;
mod events_delivery;
mod events_durability;
mod events_hooks;
mod events_reconcile;
mod lifecycle;
mod manifest;
mod nc_cli;
mod nc_proxy;
mod nextcloud31;
mod php_proxy;
mod replay;
mod saas_proxy;
mod saas_ws;
mod spa;
mod start_sh;
mod tenant_keys;
mod unix_socket;
