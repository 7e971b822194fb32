//! Persistence: the database (SQLite or PostgreSQL), the SLI bucket tables and the flusher that
//! writes them off the hot path.

pub mod block;
pub mod db;
pub mod flusher;
pub mod sli;
pub mod testing;

pub use db::{Backend, Db, DbError, Typed};
pub use flusher::{Committed, FlushHandle, Flusher, StorageMetrics};
pub use sli::{Pending, Restored, SliStore, StoreError, Written};
#[cfg(test)]
mod tests;
