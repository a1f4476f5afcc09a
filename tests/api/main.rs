//! Integration tests: Waggle on a real loopback port (or unix socket) against loopback fakes.

mod fakes;
mod harness;

mod auth_matrix;
mod config_cli;
mod lifecycle;
mod manifest;
mod saas_proxy;
mod unix_socket;
