//! The `tracebudget` binary's library: the whole config file (each section's struct is owned by
//! its crate; this crate assembles them), the CLI commands, the HTTP API and the dashboards.

pub mod alerts;
pub mod check;
pub mod cluster;
pub mod config;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod loadgen;
pub mod metrics;
pub mod privacy;
pub mod publish;
pub mod record;
pub mod redact;
pub mod reload;
pub mod replay;
pub mod serve;
pub mod silence_cli;
pub mod silences;
pub mod state;
