//! The `tracebudget` binary's library: the whole config file (each section's struct is owned by
//! its crate; this crate assembles them), the CLI commands, and later the HTTP server.

pub mod alerts;
pub mod check;
pub mod config;
pub mod dashboards;
pub mod http;
pub mod loadgen;
pub mod serve;
pub mod silence_cli;
pub mod silences;
