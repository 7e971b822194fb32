//! End-to-end tests: the real `tracebudget` binary, one module per area.

mod alerting;
mod api;
mod check;
mod ingest;
mod load;
mod reload;
mod restart;
mod storage;
