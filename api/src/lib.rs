//! The `tracebudget` binary's library, in three layers: [`cli`] (one module per subcommand and
//! the argument parsing `main` dispatches), [`app`] (the running server's state, the config
//! file, reload, privacy, the cluster, the SLO metrics and silences) and [`http`] (the API and
//! dashboards). `cli` uses both others, `http` uses `app`, and `app` uses neither.

pub mod app;
pub mod cli;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
