//! End-to-end tests: the real `tracebudget` binary, one module per area.

mod alerting;
mod api;
mod check;
mod dashboards;
mod ingest;
mod load;
mod restart;
mod storage;
