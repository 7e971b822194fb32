//! Writes received requests in the format [`super::Input`] reads: OTLP JSON lines or OTLP
//! protobuf frames (4-byte big-endian length, as the Collector's `file` exporter writes them).
//! Each request is written whole and flushed to the operating system before the next (with
//! `--gzip`, as a gzip member of its own), so a crash loses at most the request being written and
//! leaves a file whose every complete request reads back.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use crate::decode::otlp;

/// The file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutFormat {
    /// One JSON request per line: OTLP/JSON objects, and Zipkin v2 arrays kept as received.
    Json,
    /// Length-prefixed OTLP protobuf (Zipkin cannot be written: decode loses its tags).
    Proto,
}

/// A request as a receiver got it.
#[derive(Clone, Copy, Debug)]
pub enum Request<'a> {
    OtlpProtobuf(&'a [u8]),
    OtlpJson(&'a [u8]),
    /// Already decoded (the gRPC receiver, the load generator).
    Otlp(&'a ExportTraceServiceRequest),
    ZipkinJson(&'a [u8]),
}

/// See the module docs. Shared by the receivers' tasks: one request is written at a time.
#[derive(Debug)]
pub struct Writer {
    format: OutFormat,
    gzip: bool,
    file: Mutex<File>,
}

impl Writer {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path, format: OutFormat, gzip: bool) -> io::Result<Writer> {
        Ok(Writer {
            format,
            gzip,
            file: Mutex::new(File::create(path)?),
        })
    }

    pub fn format(&self) -> OutFormat {
        self.format
    }

    /// The bytes one request takes in the file, before compression.
    pub fn encode(&self, request: Request<'_>) -> io::Result<Vec<u8>> {
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
        Ok(match self.format {
            OutFormat::Json => {
                let mut line = match request {
                    // A raw newline in valid JSON is whitespace (strings escape theirs).
                    Request::OtlpJson(body) | Request::ZipkinJson(body) => body
                        .iter()
                        .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
                        .collect(),
                    Request::OtlpProtobuf(body) => {
                        let request = ExportTraceServiceRequest::decode(body).map_err(|e| invalid(e.to_string()))?;
                        serde_json::to_vec(&request).map_err(|e| invalid(e.to_string()))?
                    }
                    Request::Otlp(request) => serde_json::to_vec(request).map_err(|e| invalid(e.to_string()))?,
                };
                line.push(b'\n');
                line
            }
            OutFormat::Proto => {
                let body = match request {
                    Request::OtlpProtobuf(body) => body.to_vec(),
                    Request::OtlpJson(body) => otlp::parse_json(body)
                        .map_err(|e| invalid(e.to_string()))?
                        .encode_to_vec(),
                    Request::Otlp(request) => request.encode_to_vec(),
                    Request::ZipkinJson(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::Unsupported,
                            "zipkin requests are recorded with --format json only",
                        ));
                    }
                };
                let len = u32::try_from(body.len()).map_err(|_| invalid(format!("request of {} bytes", body.len())))?;
                let mut frame = Vec::with_capacity(4 + body.len());
                frame.extend_from_slice(&len.to_be_bytes());
                frame.extend_from_slice(&body);
                frame
            }
        })
    }

    /// Writes one request and flushes it.
    pub fn write(&self, request: Request<'_>) -> io::Result<()> {
        let mut data = self.encode(request)?;
        if self.gzip {
            let mut gz = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::fast());
            gz.write_all(&data)?;
            data = gz.finish()?;
        }
        let mut file = self.file.lock().expect("record file lock poisoned");
        file.write_all(&data)?;
        file.flush()
    }
}
