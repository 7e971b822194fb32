//! One recorded input read as a stream of requests (see the module docs of `replay`).

use std::fmt;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use flate2::read::MultiGzDecoder;

use crate::decode::{AttrKeys, DecodeError, Decoded, otlp, zipkin};

/// What one line or frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An OTLP/JSON `ExportTraceServiceRequest` on one line.
    OtlpJson,
    /// A Zipkin v2 JSON array of spans on one line.
    ZipkinJson,
    /// A length-prefixed protobuf `ExportTraceServiceRequest`.
    OtlpProtobuf,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OtlpJson => "otlp_json",
            Kind::ZipkinJson => "zipkin_json",
            Kind::OtlpProtobuf => "otlp_protobuf",
        }
    }
}

/// Where a request (or a corrupt one) lies in its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// 1-based line of a JSON input.
    Line(u64),
    /// Byte offset (in the uncompressed stream) of a protobuf frame's length prefix.
    Offset(u64),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Offset(o) => write!(f, "byte offset {o}"),
        }
    }
}

/// A line or frame that could not be read or decoded: skipped and counted, the run goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corrupt {
    /// The input's name as given (`-` for stdin).
    pub input: String,
    pub at: Position,
    pub reason: String,
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.input, self.at, self.reason)
    }
}

/// What the next read gave.
#[derive(Debug)]
pub enum Item {
    Request { at: Position, kind: Kind, body: Bytes },
    Corrupt(Corrupt),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Lines,
    Frames,
}

/// A recorded input: see the module docs.
pub struct Input {
    name: String,
    reader: BufReader<Box<dyn Read + Send>>,
    framing: Framing,
    gzip: bool,
    max: usize,
    /// Lines read, or bytes of the uncompressed stream consumed.
    line: u64,
    offset: u64,
    done: bool,
    line_buf: Vec<u8>,
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Input")
            .field("name", &self.name)
            .field("framing", &self.framing)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

/// Counts the bytes read from the raw (possibly compressed) input, for progress.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Up to `n` first bytes of `r`, and a reader that gives them again followed by the rest.
fn sniff(mut r: Box<dyn Read + Send>, n: usize) -> io::Result<(Vec<u8>, Box<dyn Read + Send>)> {
    let mut head = Vec::with_capacity(n);
    (&mut r).take(n as u64).read_to_end(&mut head)?;
    let again = Cursor::new(head.clone()).chain(r);
    Ok((head, Box::new(again)))
}

const BUFFER: usize = 1 << 20;

impl Input {
    /// Opens `raw`, named `name` in messages; `read` counts the raw bytes consumed. Lines and
    /// frames above `max` bytes are corrupt.
    pub fn new(name: &str, raw: Box<dyn Read + Send>, read: Arc<AtomicU64>, max: usize) -> io::Result<Input> {
        let counted: Box<dyn Read + Send> = Box::new(Counted { inner: raw, read });
        let (head, mut stream) = sniff(counted, 2)?;
        let gzip = head == [0x1f, 0x8b];
        if gzip {
            stream = Box::new(MultiGzDecoder::new(BufReader::with_capacity(BUFFER, stream)));
        }
        // JSON starts with `{`, `[` or whitespace; a protobuf frame with its length's high byte,
        // 0 for any frame under 16 MiB.
        let (head, stream) = sniff(stream, 1)?;
        let framing = match head.first() {
            Some(b'{' | b'[' | b' ' | b'\t' | b'\r' | b'\n') | None => Framing::Lines,
            Some(_) => Framing::Frames,
        };
        Ok(Input {
            name: name.to_owned(),
            reader: BufReader::with_capacity(BUFFER, stream),
            framing,
            gzip,
            max,
            line: 0,
            offset: 0,
            done: false,
            line_buf: Vec::new(),
        })
    }

    /// Opens a file, or stdin for `-`.
    pub fn open(name: &str, read: Arc<AtomicU64>, max: usize) -> io::Result<Input> {
        let raw: Box<dyn Read + Send> = if name == "-" {
            Box::new(io::stdin())
        } else {
            Box::new(std::fs::File::open(name)?)
        };
        Input::new(name, raw, read, max)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// "OTLP protobuf frames" or "JSON lines", for the summary.
    pub fn framing(&self) -> &'static str {
        match self.framing {
            Framing::Lines => "json lines",
            Framing::Frames => "protobuf frames",
        }
    }

    fn corrupt(&self, at: Position, reason: impl Into<String>) -> Item {
        Item::Corrupt(Corrupt {
            input: self.name.clone(),
            at,
            reason: reason.into(),
        })
    }

    /// The next request or corrupt record; `None` at the end. A read error (a truncated gzip
    /// stream, an unreadable file) is reported once as corrupt and ends the input.
    pub fn next_item(&mut self) -> Option<Item> {
        if self.done {
            return None;
        }
        match self.framing {
            Framing::Lines => self.next_line(),
            Framing::Frames => self.next_frame(),
        }
    }

    fn fail(&mut self, at: Position, e: &io::Error) -> Option<Item> {
        self.done = true;
        Some(self.corrupt(at, format!("cannot read further: {e}")))
    }

    fn next_line(&mut self) -> Option<Item> {
        loop {
            self.line += 1;
            let at = Position::Line(self.line);
            self.line_buf.clear();
            match read_line(&mut self.reader, &mut self.line_buf, self.max) {
                Ok(Line::End) => {
                    self.done = true;
                    return None;
                }
                Ok(Line::Read) => {}
                Ok(Line::TooLong(n)) => {
                    let max = self.max;
                    return Some(self.corrupt(at, format!("line of {n} bytes exceeds the limit of {max} bytes")));
                }
                Err(e) => return self.fail(at, &e),
            }
            let text = self.line_buf.trim_ascii();
            let kind = match text.first() {
                None => continue, // blank lines are nothing
                Some(b'{') => Kind::OtlpJson,
                Some(b'[') => Kind::ZipkinJson,
                Some(_) => {
                    return Some(self.corrupt(at, "neither an OTLP JSON object ('{') nor a Zipkin JSON array ('[')"));
                }
            };
            return Some(Item::Request {
                at,
                kind,
                body: Bytes::copy_from_slice(text),
            });
        }
    }

    fn next_frame(&mut self) -> Option<Item> {
        let at = Position::Offset(self.offset);
        let mut len = [0u8; 4];
        match read_full(&mut self.reader, &mut len) {
            Ok(0) => {
                self.done = true;
                return None;
            }
            Ok(4) => {}
            Ok(n) => {
                self.done = true;
                return Some(self.corrupt(at, format!("truncated frame: {n} of the 4 length bytes")));
            }
            Err(e) => return self.fail(at, &e),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > self.max {
            // The framing cannot be trusted past a length this large: the rest is not read.
            self.done = true;
            let max = self.max;
            return Some(self.corrupt(
                at,
                format!("frame length {len} exceeds the limit of {max} bytes; the rest of the input cannot be framed"),
            ));
        }
        // Filled by the read itself (no zeroing first): the frame is copied once.
        let mut body = Vec::with_capacity(len);
        match (&mut self.reader).take(len as u64).read_to_end(&mut body) {
            Ok(n) if n == len => {}
            Ok(n) => {
                self.done = true;
                return Some(self.corrupt(at, format!("truncated frame: {n} of {len} bytes")));
            }
            Err(e) => return self.fail(at, &e),
        }
        self.offset += 4 + len as u64;
        Some(Item::Request {
            at,
            kind: Kind::OtlpProtobuf,
            body: Bytes::from(body),
        })
    }
}

enum Line {
    End,
    Read,
    /// Skipped to its end without keeping it: its length.
    TooLong(u64),
}

/// Reads one line (without its `\n`) into `out`, keeping at most `max` bytes: a longer line is
/// consumed to its end and dropped.
fn read_line(r: &mut impl BufRead, out: &mut Vec<u8>, max: usize) -> io::Result<Line> {
    let mut seen: u64 = 0;
    let mut any = false;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        any = true;
        let (chunk, newline) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        seen += chunk.len() as u64;
        if seen <= max as u64 {
            out.extend_from_slice(chunk);
        } else {
            out.clear();
        }
        let used = chunk.len() + usize::from(newline);
        r.consume(used);
        if newline {
            break;
        }
    }
    if !any {
        return Ok(Line::End);
    }
    Ok(if seen > max as u64 {
        Line::TooLong(seen)
    } else {
        Line::Read
    })
}

/// Reads until `buf` is full or the end; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Decodes one request with the engine's own decoders.
pub fn decode(kind: Kind, body: Bytes, keys: &AttrKeys) -> Result<Decoded, DecodeError> {
    match kind {
        Kind::OtlpJson => otlp::decode_json(&body, keys),
        Kind::ZipkinJson => zipkin::decode_json(&body, keys),
        Kind::OtlpProtobuf => otlp::decode_protobuf(body, keys),
    }
}
