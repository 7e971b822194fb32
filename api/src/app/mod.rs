//! What the running server is, apart from any interface: the pipeline as the alert runtime's
//! source and the evaluator lock as its leadership ([`alerts`]), the config file read and assembled
//! ([`config`]), the config in force ([`state`]) and its reload ([`reload`]), `[privacy]`
//! ([`privacy`]) and the redacted config text ([`redact`]), the other instances' rows
//! ([`cluster`]), the SLO families of `/metrics` ([`metrics`]) and a new silence read and
//! bounded ([`silences`]). It knows neither the command line nor HTTP.

pub mod alerts;
pub mod cluster;
pub mod config;
pub mod metrics;
pub mod privacy;
pub mod redact;
pub mod reload;
pub mod silences;
pub mod state;
