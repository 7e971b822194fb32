//! Opening a log directory: list the segments, delete the covered ones, read the rest in order,
//! cut at the first torn or corrupt record.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;

use bytes::Bytes;

use super::segment::{self, Next, SegmentFile, SegmentReader};
use super::{Lsn, Record, Recovery, WalError};

/// The segments left after recovery, oldest first (the last one is where appends go), and what
/// was found.
#[derive(Debug)]
pub(super) struct Found {
    pub segments: Vec<SegmentFile>,
    pub recovery: Recovery,
}

/// Reads the log in `dir`, handing each record above `covered` to `replay`; see the module docs.
pub(super) fn recover(dir: &Path, covered: Lsn, mut replay: impl FnMut(Record)) -> Result<Found, WalError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| WalError::Io { path, source }
    };
    match fs::metadata(dir) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(WalError::NoDirectory(dir.to_owned()));
        }
        Err(error) => return Err(WalError::io(dir, error)),
        Ok(meta) if !meta.is_dir() => {
            let error = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
            return Err(WalError::io(dir, error));
        }
        Ok(_) => {}
    }
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let Some(first) = entry.file_name().to_str().and_then(segment::parse_name) else {
            continue;
        };
        let bytes = entry.metadata().map_err(io_error(&entry.path()))?.len();
        segments.push(SegmentFile::new(dir, first, bytes));
    }
    segments.sort_by_key(|segment| segment.first);

    let mut changed = false;
    // A segment followed by one starting at or below `covered + 1` holds only covered records.
    let fully_covered = segments
        .windows(2)
        .take_while(|pair| pair[1].first.0 <= covered.0 + 1)
        .count();
    for segment in segments.drain(..fully_covered) {
        fs::remove_file(&segment.path).map_err(io_error(&segment.path))?;
        changed = true;
    }

    let mut recovery = Recovery::default();
    if let Some(first) = segments.first() {
        recovery.missing_records = first.first.0.saturating_sub(covered.0 + 1);
    }
    let mut end = None;
    let mut kept = 0;
    while kept < segments.len() {
        let segment = &mut segments[kept];
        if end.is_some_and(|end| end != segment.first) {
            tracing::warn!(
                segment = %segment.path.display(),
                expected = %end.unwrap_or_default(),
                "wal segment does not continue the one before it; cutting the log there"
            );
            break;
        }
        let mut reader = SegmentReader::open(&segment.path).map_err(io_error(&segment.path))?;
        let mut lsn = segment.first;
        let cut = loop {
            match reader.next().map_err(io_error(&segment.path))? {
                Next::Record {
                    kind,
                    receive_time_unix_nanos,
                } => {
                    if lsn > covered {
                        replay(Record {
                            lsn,
                            kind,
                            receive_time_unix_nanos,
                            payload: Bytes::copy_from_slice(reader.payload()),
                        });
                        recovery.records += 1;
                    } else {
                        recovery.covered_records += 1;
                    }
                    lsn = lsn.next();
                }
                Next::End => break None,
                Next::Torn => break Some(false),
                Next::Corrupt => break Some(true),
            }
        };
        end = Some(lsn);
        kept += 1;
        if let Some(corrupt) = cut {
            let offset = reader.offset();
            tracing::warn!(
                segment = %segment.path.display(),
                offset,
                cut_bytes = segment.bytes - offset,
                corrupt,
                "wal segment ends in a torn or corrupt record; truncating it there"
            );
            recovery.truncated_bytes += segment.bytes - offset;
            recovery.corrupt_records += u64::from(corrupt);
            let file = OpenOptions::new()
                .write(true)
                .open(&segment.path)
                .map_err(io_error(&segment.path))?;
            file.set_len(offset).map_err(io_error(&segment.path))?;
            file.sync_all().map_err(io_error(&segment.path))?;
            segment.bytes = offset;
            changed = true;
            break;
        }
    }
    for dropped in segments.drain(kept..) {
        recovery.truncated_bytes += dropped.bytes;
        recovery.dropped_segments += 1;
        fs::remove_file(&dropped.path).map_err(io_error(&dropped.path))?;
        changed = true;
    }

    let end = end.unwrap_or(Lsn(1));
    recovery.next = end.max(covered.next());
    // The last segment goes too when it holds only covered records (the next append would not
    // continue it) or nothing but does not start at the next LSN.
    if segments
        .last()
        .is_some_and(|last| end.0 <= covered.0 + 1 && last.first != recovery.next)
    {
        let last = segments.pop().expect("checked");
        fs::remove_file(&last.path).map_err(io_error(&last.path))?;
        changed = true;
    }
    if changed {
        segment::sync_dir(dir).map_err(io_error(dir))?;
    }
    Ok(Found { segments, recovery })
}
