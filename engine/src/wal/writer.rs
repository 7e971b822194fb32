//! The writer thread: group commit of queued records, segment rolling, deletion of covered
//! segments. Blocking file I/O runs here, never on the async runtime.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::recover::Found;
use super::segment::{self, SegmentFile};
use super::{Command, Lsn, Pending, Shared, WalError, WalOptions};

/// Buffered frames are written out once they reach this many bytes (the batch still gets one
/// `fsync` at its end).
const WRITE_CHUNK: usize = 1 << 20;

/// The segment appends go to.
#[derive(Debug)]
struct Active {
    segment: SegmentFile,
    file: File,
    /// Written since its last `sync_data`.
    dirty: bool,
}

/// The state of the log's files, owned by the writer thread.
#[derive(Debug)]
pub(super) struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    /// Full segments, oldest first.
    closed: VecDeque<SegmentFile>,
    /// `None` only once `cover` deleted it; the next append creates one.
    active: Option<Active>,
    /// The LSN of the next record.
    next: Lsn,
    /// The last record answered as durable.
    durable: Lsn,
    /// Every record up to this one is covered.
    covered: Lsn,
    /// Frames not yet written to `active`.
    buf: Vec<u8>,
}

impl Writer {
    /// Takes over the segments recovery left (appending to the last one, or a new one) after
    /// `covered`.
    pub(super) fn start(dir: &Path, options: WalOptions, covered: Lsn, found: &Found) -> Result<Writer, WalError> {
        let next = found.recovery.next;
        let mut closed: VecDeque<SegmentFile> = found.segments.iter().cloned().collect();
        let active = match closed.pop_back() {
            Some(segment) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&segment.path)
                    .map_err(|source| WalError::io(&segment.path, source))?;
                Active {
                    segment,
                    file,
                    dirty: false,
                }
            }
            None => create(dir, next).map_err(|(path, source)| WalError::Io { path, source })?,
        };
        Ok(Writer {
            dir: dir.to_owned(),
            segment_bytes: options.segment_bytes,
            closed,
            active: Some(active),
            next,
            durable: Lsn(next.0 - 1),
            covered: covered.min(Lsn(next.0 - 1)),
            buf: Vec::new(),
        })
    }

    /// Bytes of the segments on disk.
    pub(super) fn disk_bytes(&self) -> u64 {
        let closed: u64 = self.closed.iter().map(|segment| segment.bytes).sum();
        closed + self.active.as_ref().map_or(0, |active| active.segment.bytes)
    }

    /// Serves `queue` until every sender is gone: each round takes every command queued, commits
    /// the appends as one batch, then applies the covers.
    pub(super) fn run(mut self, shared: &Shared, queue: mpsc::Receiver<Command>) {
        self.publish(shared);
        let mut batch = Vec::new();
        let mut covers = Vec::new();
        while let Ok(first) = queue.recv() {
            for command in std::iter::once(first).chain(queue.try_iter()) {
                match command {
                    Command::Append(pending) => batch.push(pending),
                    Command::Cover(lsn, reply) => covers.push((lsn, reply)),
                }
            }
            if !batch.is_empty() {
                self.commit(shared, &mut batch);
            }
            for (lsn, reply) in covers.drain(..) {
                let _ = reply.send(self.cover(shared, lsn));
            }
        }
    }

    /// Writes and syncs `batch`, then answers each of its callers.
    fn commit(&mut self, shared: &Shared, batch: &mut Vec<Pending>) {
        let bytes: u64 = batch
            .iter()
            .map(|pending| segment::frame_len(pending.payload.len()))
            .sum();
        if let Some(failed) = shared.failed.get() {
            shared.release(bytes);
            for pending in batch.drain(..) {
                let error = WalError::Failed {
                    path: failed.0.clone(),
                    reason: failed.1.clone(),
                };
                let _ = pending.reply.send(Err(shared.refuse(error)));
            }
            return;
        }
        let first = self.next;
        match self.write(shared, batch) {
            Ok(()) => {
                shared.metrics.committed(batch.len() as u64, bytes);
                self.durable = Lsn(self.next.0 - 1);
                self.publish(shared);
                for (pending, lsn) in batch.drain(..).zip(first.0..) {
                    let _ = pending.reply.send(Ok(Lsn(lsn)));
                }
            }
            Err((path, source)) => {
                tracing::error!(
                    path = %path.display(),
                    error = %source,
                    records = batch.len(),
                    "wal write failed; refusing appends until the wal is reopened"
                );
                let _ = shared.failed.set((path.clone(), source.to_string()));
                shared.release(bytes);
                for pending in batch.drain(..) {
                    let error = WalError::Io {
                        path: path.clone(),
                        source: io::Error::new(source.kind(), source.to_string()),
                    };
                    let _ = pending.reply.send(Err(shared.refuse(error)));
                }
            }
        }
    }

    /// Frames `batch` into the active segment (rolling as needed), writes it out and syncs it.
    fn write(&mut self, shared: &Shared, batch: &[Pending]) -> Result<(), (PathBuf, io::Error)> {
        for pending in batch {
            let frame = segment::frame_len(pending.payload.len());
            let full = self
                .active
                .as_ref()
                .is_none_or(|active| active.segment.bytes > 0 && active.segment.bytes + frame > self.segment_bytes);
            if full {
                self.roll(shared)?;
            }
            segment::encode_header(
                &mut self.buf,
                pending.kind,
                pending.receive_time_unix_nanos,
                &pending.payload,
            );
            if pending.payload.len() < WRITE_CHUNK {
                self.buf.extend_from_slice(&pending.payload);
            } else {
                // A large payload goes straight from the caller's buffer to the file.
                self.flush()?;
                self.write_out(&pending.payload)?;
            }
            let active = self.active.as_mut().expect("rolled");
            active.segment.bytes += frame;
            self.next = self.next.next();
            if self.buf.len() >= WRITE_CHUNK {
                self.flush()?;
            }
        }
        self.flush()?;
        self.sync(shared)
    }

    /// Writes the buffered frames to the active segment.
    fn flush(&mut self) -> Result<(), (PathBuf, io::Error)> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let written = self.write_out(&buf);
        self.buf = buf;
        self.buf.clear();
        written
    }

    /// Writes `bytes` to the active segment.
    fn write_out(&mut self, bytes: &[u8]) -> Result<(), (PathBuf, io::Error)> {
        let active = self.active.as_mut().expect("frames go to an active segment");
        active.dirty = true;
        active
            .file
            .write_all(bytes)
            .map_err(|source| (active.segment.path.clone(), source))
    }

    /// `sync_data` of the active segment, if anything was written to it since the last one.
    fn sync(&mut self, shared: &Shared) -> Result<(), (PathBuf, io::Error)> {
        let Some(active) = self.active.as_mut().filter(|active| active.dirty) else {
            return Ok(());
        };
        active
            .file
            .sync_data()
            .map_err(|source| (active.segment.path.clone(), source))?;
        active.dirty = false;
        shared.metrics.fsyncs.inc();
        Ok(())
    }

    /// Closes the active segment (written out and synced) and starts one at `next`.
    fn roll(&mut self, shared: &Shared) -> Result<(), (PathBuf, io::Error)> {
        self.flush()?;
        self.sync(shared)?;
        let active = create(&self.dir, self.next)?;
        if let Some(previous) = self.active.replace(active) {
            self.closed.push_back(previous.segment);
        }
        Ok(())
    }

    /// Raises the covered mark to `lsn` (at most the last durable record) and deletes the
    /// segments holding only covered records.
    fn cover(&mut self, shared: &Shared, lsn: Lsn) -> Result<(), WalError> {
        self.covered = self.covered.max(lsn.min(self.durable));
        let mut freed = 0;
        let mut result = Ok(());
        while let Some(oldest) = self.closed.front() {
            let end = self
                .closed
                .get(1)
                .or(self.active.as_ref().map(|active| &active.segment))
                .map_or(self.next, |segment| segment.first);
            if end.0 > self.covered.0 + 1 {
                break;
            }
            if let Err(source) = fs::remove_file(&oldest.path) {
                result = Err(WalError::io(&oldest.path, source));
                break;
            }
            freed += oldest.bytes;
            self.closed.pop_front();
        }
        let active_covered = self.active.as_ref().is_some_and(|active| {
            active.segment.bytes > 0 && self.next.0 <= self.covered.0 + 1 && self.closed.is_empty()
        });
        if result.is_ok() && active_covered && self.buf.is_empty() {
            let active = self.active.take().expect("checked");
            match fs::remove_file(&active.segment.path) {
                Ok(()) => freed += active.segment.bytes,
                Err(source) => {
                    result = Err(WalError::io(&active.segment.path, source));
                    self.active = Some(active);
                }
            }
        }
        shared.release(freed);
        self.publish(shared);
        result
    }

    /// Sets the gauges.
    fn publish(&self, shared: &Shared) {
        let segments = self.closed.len() + usize::from(self.active.is_some());
        shared.metrics.segments.set(segments as i64);
        shared.metrics.disk_bytes.set(self.disk_bytes() as i64);
    }
}

/// Creates the segment starting at `first` and makes its directory entry durable.
fn create(dir: &Path, first: Lsn) -> Result<Active, (PathBuf, io::Error)> {
    let segment = SegmentFile::new(dir, first, 0);
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&segment.path)
        .map_err(|source| (segment.path.clone(), source))?;
    segment::sync_dir(dir).map_err(|source| (dir.to_owned(), source))?;
    Ok(Active {
        segment,
        file,
        dirty: false,
    })
}
