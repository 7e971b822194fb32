//! One segment file: its name, the framing of a record, and reading records back one at a time.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::Lsn;

/// Bytes before the payload: length, checksum, kind, receive time.
pub(super) const HEADER_BYTES: usize = 4 + 4 + 1 + 8;

/// The bytes a record with a payload of `payload` bytes takes on disk.
pub(super) fn frame_len(payload: usize) -> u64 {
    (HEADER_BYTES + payload) as u64
}

/// The file name of the segment whose first record is `first`.
pub(super) fn file_name(first: Lsn) -> String {
    format!("{:020}.wal", first.0)
}

/// The first LSN a segment file name stands for; `None` for any other file.
pub(super) fn parse_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Lsn)
}

/// A segment on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SegmentFile {
    /// The LSN of its first record.
    pub first: Lsn,
    pub path: PathBuf,
    /// Its length.
    pub bytes: u64,
}

impl SegmentFile {
    pub(super) fn new(dir: &Path, first: Lsn, bytes: u64) -> SegmentFile {
        SegmentFile {
            first,
            path: dir.join(file_name(first)),
            bytes,
        }
    }
}

/// Makes the directory's entries (files created or removed) durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn checksum(kind: u8, receive_time_unix_nanos: i64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(&receive_time_unix_nanos.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Appends the header of one record's frame to `out`; the payload follows it on disk. The
/// payload must be at most `u32::MAX` bytes.
pub(super) fn encode_header(out: &mut Vec<u8>, kind: u8, receive_time_unix_nanos: i64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("payload length checked by append");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(kind, receive_time_unix_nanos, payload).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&receive_time_unix_nanos.to_le_bytes());
}

/// What reading the next record found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// A whole record with a matching checksum; its payload is [`SegmentReader::payload`].
    Record { kind: u8, receive_time_unix_nanos: i64 },
    /// The end of the file, right after a record.
    End,
    /// The file ends inside a record (or its length points past the end).
    Torn,
    /// A whole record whose checksum does not match.
    Corrupt,
}

/// Reads the records of one segment in order, through one reused buffer.
#[derive(Debug)]
pub(super) struct SegmentReader {
    file: BufReader<File>,
    /// Bytes of the file from `offset` on.
    remaining: u64,
    /// Where the last whole, good record ends.
    offset: u64,
    payload: Vec<u8>,
}

impl SegmentReader {
    pub(super) fn open(path: &Path) -> io::Result<SegmentReader> {
        let file = File::open(path)?;
        let remaining = file.metadata()?.len();
        Ok(SegmentReader {
            file: BufReader::with_capacity(64 << 10, file),
            remaining,
            offset: 0,
            payload: Vec::new(),
        })
    }

    /// Where the last good record ends (the length to truncate the file to after a cut).
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    /// The payload of the record [`SegmentReader::next`] last returned.
    pub(super) fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Reads the next record; after anything but [`Next::Record`] the reader is done.
    pub(super) fn next(&mut self) -> io::Result<Next> {
        if self.remaining == 0 {
            return Ok(Next::End);
        }
        if self.remaining < HEADER_BYTES as u64 {
            return Ok(Next::Torn);
        }
        let mut header = [0u8; HEADER_BYTES];
        self.file.read_exact(&mut header)?;
        let field = |at: usize| <[u8; 4]>::try_from(&header[at..at + 4]).expect("4 bytes");
        let len = u32::from_le_bytes(field(0));
        let sum = u32::from_le_bytes(field(4));
        let kind = header[8];
        let time = i64::from_le_bytes(<[u8; 8]>::try_from(&header[9..17]).expect("8 bytes"));
        let frame = frame_len(len as usize);
        if frame > self.remaining {
            return Ok(Next::Torn);
        }
        self.payload.clear();
        self.payload.resize(len as usize, 0);
        self.file.read_exact(&mut self.payload)?;
        if checksum(kind, time, &self.payload) != sum {
            return Ok(Next::Corrupt);
        }
        self.remaining -= frame;
        self.offset += frame;
        Ok(Next::Record {
            kind,
            receive_time_unix_nanos: time,
        })
    }
}
