//! End-to-end tests: the real `tracebudget` binary, one module per area.

mod alerting;
mod api;
mod check;
mod cluster;
mod cross_site;
mod dashboards;
mod demo;
mod docs;
mod grafana;
mod hostile;
mod ingest;
mod jetstream;
mod jetstream_cluster;
mod layout;
mod load;
mod privacy;
mod prometheus;
mod reload;
mod replay;
mod restart;
mod secrets;
mod storage;
mod tls;
mod trace_health;
