//! The stream consumer: receivers and decoders, trace assembly with bounded memory, the ingest
//! pipeline that feeds `slis`, persistence of SLI buckets and stream checkpoints.

pub mod assembler;
pub mod cluster;
pub mod collector;
pub mod config;
pub mod decode;
pub mod exemplars;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod jetstream;
pub mod listen;
pub mod metrics;
pub mod pipeline;
pub mod receiver;
pub mod replay;
pub mod store;
pub mod wal;
