//! A write-ahead log: what a receiver acknowledged is on disk before it answers, until a flush to
//! the database covers it.
//!
//! Records go to segment files `NNNNNNNNNNNNNNNNNNNN.wal` in one directory, each named by the
//! 20-digit, zero-padded sequence number ([`Lsn`]) of its first record; a record's LSN is implicit
//! from its position (the segment's first LSN plus its index). A segment is rolled when the next
//! record would take it past [`WalOptions::segment_bytes`]. A record is framed as
//!
//! ```text
//! len: u32 LE | crc32 of (kind, receive_time, payload): u32 LE | kind: u8 | receive_time_unix_nanos: i64 LE | payload
//! ```
//!
//! where `len` is the payload's length and the checksum is CRC-32 (IEEE, `crc32fast`).
//!
//! [`Wal::append`] is a group commit: one writer thread takes every record queued while its
//! previous write and `fsync` ran, writes them all, calls `sync_data` once and only then answers
//! each caller with its LSN. [`WalOptions::max_bytes`] bounds the bytes on disk plus those queued;
//! an append that would pass it is refused with [`WalError::Full`] and nothing is written. A disk
//! error fails the whole batch with [`WalError::Io`] and the log fails closed: every later append
//! is refused with [`WalError::Failed`] until it is reopened (after a failed `fsync` the state of
//! the page cache is unknown, so nothing written since the last good one can be vouched for).
//!
//! **Coverage is the caller's.** [`Wal::cover`] says every record up to an LSN is in a committed
//! flush; segments all of whose records are covered are deleted. The covered LSN is not persisted
//! here: the caller stores it in the same database transaction as the flush it describes and
//! passes it back to [`Wal::open`], so the log and the database can never disagree about what a
//! flush holds. A lost `cover` call only means replaying records the database already has, which
//! [`Wal::open`] skips by the LSN it is given.
//!
//! [`Wal::open`] reads the segments in order and hands every record above the covered LSN to a
//! callback, one at a time (memory does not grow with the log). A torn or corrupt record (short
//! read, length past the end of the file, checksum mismatch) cuts the log there: the file is
//! truncated, later segments are deleted, the cut is counted in [`Recovery`], and open succeeds.
//! Records after the cut were never acknowledged when the cut is a torn tail (every acknowledged
//! record was `fsync`ed before the answer); a cut in the middle of the log means the disk lost
//! data, and the log keeps what it can still prove.
//!
//! A batch that failed may still be found on disk when the log is reopened (its bytes may have
//! reached the disk before the error): its callers were answered with an error and may send it
//! again, so delivery is at least once.

mod metrics;
mod recover;
mod segment;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::oneshot;

pub use metrics::WalMetrics;

/// A record's sequence number: 1 for the first record ever written, then one more per record.
/// `Lsn(0)` is "before every record" (nothing covered).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The LSN right after this one.
    pub fn next(self) -> Lsn {
        Lsn(self.0 + 1)
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A record read back by [`Wal::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its position in the log.
    pub lsn: Lsn,
    /// What the payload is, as the caller of [`Wal::append`] said (a wire format, say).
    pub kind: u8,
    /// When the request was received, in nanoseconds since the Unix epoch.
    pub receive_time_unix_nanos: i64,
    /// The bytes appended.
    pub payload: Bytes,
}

/// Sizes of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// A segment is rolled when the next record would take it past this many bytes (a record
    /// larger than this gets a segment of its own).
    pub segment_bytes: u64,
    /// The most bytes the segments may take on disk together, counting records queued for the
    /// writer; an append past it is refused with [`WalError::Full`].
    pub max_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 16 << 20,
            max_bytes: 1 << 30,
        }
    }
}

/// Why the log refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The record does not fit under `max_bytes` now; nothing was written.
    #[error("wal {dir} is full: {used} of {max} bytes used, a record of {record} bytes does not fit")]
    Full {
        dir: PathBuf,
        used: u64,
        max: u64,
        record: u64,
    },
    /// The record could never fit: its frame is larger than `max_bytes` or its payload than 4 GiB.
    #[error("wal record of {record} bytes is larger than the wal's max_bytes ({max})")]
    TooLarge { record: u64, max: u64 },
    /// A disk operation failed; for an append, nothing of its batch is durable.
    #[error("wal i/o failed on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// An earlier disk error closed the log for appends.
    #[error("wal refuses appends since an i/o error on {path} ({reason}); reopen it to recover")]
    Failed { path: PathBuf, reason: String },
    /// The directory to open is not there.
    #[error("wal directory {0} does not exist")]
    NoDirectory(PathBuf),
    /// The writer thread is gone (it panicked); nothing of the record is durable.
    #[error("wal writer of {0} has stopped")]
    Stopped(PathBuf),
}

impl WalError {
    fn io(path: &Path, source: std::io::Error) -> WalError {
        WalError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The refusal reason for [`WalMetrics::refusals`].
    fn reason(&self) -> &'static str {
        match self {
            WalError::Full { .. } => "full",
            WalError::TooLarge { .. } => "too_large",
            WalError::Io { .. } | WalError::Failed { .. } | WalError::NoDirectory(_) => "io",
            WalError::Stopped(_) => "stopped",
        }
    }
}

/// What [`Wal::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Records handed to the callback (above the covered LSN).
    pub records: u64,
    /// Records read and skipped as covered.
    pub covered_records: u64,
    /// Bytes cut off: a torn or corrupt tail and the segments after a cut.
    pub truncated_bytes: u64,
    /// Records whose checksum did not match (each one a cut).
    pub corrupt_records: u64,
    /// Whole segments deleted because they came after a cut.
    pub dropped_segments: u64,
    /// Records above the covered LSN missing before the first segment (someone deleted segments
    /// the database had not covered).
    pub missing_records: u64,
    /// The LSN the next append gets.
    pub next: Lsn,
}

/// What the callers and the writer thread share.
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    max_bytes: u64,
    /// Bytes of the segments on disk plus those of records queued for the writer.
    used: AtomicU64,
    /// The path and error that closed the log, once set never cleared.
    failed: OnceLock<(PathBuf, String)>,
    metrics: Arc<WalMetrics>,
}

impl Shared {
    fn failed(&self) -> Option<WalError> {
        self.failed.get().map(|(path, reason)| WalError::Failed {
            path: path.clone(),
            reason: reason.clone(),
        })
    }

    /// Counts the refusal and passes the error on.
    fn refuse(&self, error: WalError) -> WalError {
        self.metrics.refused(error.reason());
        error
    }

    fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// A record waiting for the writer.
#[derive(Debug)]
struct Pending {
    kind: u8,
    receive_time_unix_nanos: i64,
    payload: Bytes,
    reply: oneshot::Sender<Result<Lsn, WalError>>,
}

/// What the writer thread is asked to do.
#[derive(Debug)]
enum Command {
    Append(Pending),
    Cover(Lsn, oneshot::Sender<Result<(), WalError>>),
}

/// An open write-ahead log; see the module docs. Dropping it lets the writer finish what is
/// queued and waits for it.
#[derive(Debug)]
pub struct Wal {
    shared: Arc<Shared>,
    commands: Option<mpsc::Sender<Command>>,
    writer: Option<JoinHandle<()>>,
}

impl Wal {
    /// Opens the log in `dir` (which must exist), cuts a torn or corrupt tail, deletes the
    /// segments `covered` covers, hands every record above `covered` to `replay` in LSN order
    /// and starts the writer thread. `covered` is what the last committed flush covered (see the
    /// module docs); `Lsn(0)` when nothing was ever flushed.
    pub fn open(
        dir: impl Into<PathBuf>,
        covered: Lsn,
        options: WalOptions,
        metrics: Arc<WalMetrics>,
        replay: impl FnMut(Record),
    ) -> Result<(Wal, Recovery), WalError> {
        let dir = dir.into();
        let found = recover::recover(&dir, covered, replay)?;
        let recovery = found.recovery.clone();
        metrics.recovered(&recovery);
        let writer = writer::Writer::start(&dir, options, covered, &found)?;
        let used = writer.disk_bytes();
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            max_bytes: options.max_bytes,
            used: AtomicU64::new(used),
            failed: OnceLock::new(),
            metrics,
        });
        let (commands, queue) = mpsc::channel();
        let thread_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer.run(&thread_shared, queue))
            .map_err(|source| WalError::io(&dir, source))?;
        Ok((
            Wal {
                shared,
                commands: Some(commands),
                writer: Some(handle),
            },
            recovery,
        ))
    }

    /// Appends a record and resolves once it is durable (written and `fsync`ed), with its LSN.
    /// Refused at once, with nothing written, when the log is full or has failed.
    pub async fn append(&self, kind: u8, receive_time_unix_nanos: i64, payload: Bytes) -> Result<Lsn, WalError> {
        let shared = &*self.shared;
        if let Some(error) = shared.failed() {
            return Err(shared.refuse(error));
        }
        let record = segment::frame_len(payload.len());
        if record > shared.max_bytes || payload.len() > u32::MAX as usize {
            return Err(shared.refuse(WalError::TooLarge {
                record,
                max: shared.max_bytes,
            }));
        }
        let reserved = shared.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            (used + record <= shared.max_bytes).then_some(used + record)
        });
        if let Err(used) = reserved {
            return Err(shared.refuse(WalError::Full {
                dir: shared.dir.clone(),
                used,
                max: shared.max_bytes,
                record,
            }));
        }
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            kind,
            receive_time_unix_nanos,
            payload,
            reply,
        };
        let sent = self
            .commands
            .as_ref()
            .is_some_and(|commands| commands.send(Command::Append(pending)).is_ok());
        if !sent {
            shared.release(record);
            return Err(shared.refuse(WalError::Stopped(shared.dir.clone())));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(shared.refuse(WalError::Stopped(shared.dir.clone()))))
    }

    /// Marks every record up to `lsn` covered by a committed flush and deletes the segments that
    /// hold nothing else (the active one too once all it holds is covered; a new one starts with
    /// the next append). Resolves when the files are gone.
    pub async fn cover(&self, lsn: Lsn) -> Result<(), WalError> {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .commands
            .as_ref()
            .is_some_and(|commands| commands.send(Command::Cover(lsn, reply)).is_ok());
        if !sent {
            return Err(WalError::Stopped(self.shared.dir.clone()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(WalError::Stopped(self.shared.dir.clone())))
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.commands = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}
