//! End-to-end tests: the real `tracebudget` binary, one module per area.

mod check;
mod ingest;
mod load;
mod restart;
mod storage;
