//! The stream consumer: receivers and decoders, trace assembly with bounded memory, the ingest
//! pipeline that feeds `slis`, persistence of SLI buckets and stream checkpoints.
//!
//! So far it owns its config sections (`[ingest]`, `[storage]`, `[[journeys]]`); the receivers
//! and the pipeline arrive with the ingestion issue.

pub mod config;
