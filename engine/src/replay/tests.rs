//! The reader against the writer, every format, corrupt records, limits.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use super::*;
use crate::decode::AttrKeys;
use tracebudget_synth::{Generator, Shape, ShapeDefaults};

fn requests(n: usize) -> Vec<ExportTraceServiceRequest> {
    let journeys = crate::pipeline::tests::journeys();
    let shape = Shape::from_journeys(&journeys, &ShapeDefaults::default()).unwrap();
    let mut g = Generator::new(shape, 7).unwrap();
    (0..n)
        .map(|i| {
            g.batch(slis::Timestamp::from_unix_secs(1_780_000_000 + i as i64), 20, u64::MAX)
                .request
        })
        .collect()
}

/// Every item of an input: `Ok((position, kind, spans))` or `Err("position: reason")`.
fn read_all(data: Vec<u8>, max: usize) -> Vec<Result<(String, Kind, usize), String>> {
    let read = Arc::new(AtomicU64::new(0));
    let mut input = Input::new("t", Box::new(std::io::Cursor::new(data)), read, max).unwrap();
    let mut out = Vec::new();
    while let Some(item) = input.next_item() {
        out.push(match item {
            Item::Request { at, kind, body } => match decode(kind, body, &AttrKeys::default()) {
                Ok(d) => Ok((at.to_string(), kind, d.spans.len())),
                Err(e) => Err(format!("{at}: {e}")),
            },
            Item::Corrupt(c) => Err(format!("{}: {}", c.at, c.reason)),
        });
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn spans(r: &ExportTraceServiceRequest) -> usize {
    r.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

#[test]
fn what_the_writer_writes_the_reader_reads() {
    let reqs = requests(3);
    let dir = std::env::temp_dir().join(format!("tb-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (format, gz, kind) in [
        (OutFormat::Json, false, Kind::OtlpJson),
        (OutFormat::Json, true, Kind::OtlpJson),
        (OutFormat::Proto, false, Kind::OtlpProtobuf),
        (OutFormat::Proto, true, Kind::OtlpProtobuf),
    ] {
        let path = dir.join(format!("{format:?}-{gz}"));
        let w = Writer::create(&path, format, gz).unwrap();
        // The three ways a request arrives: decoded (gRPC), protobuf and JSON bodies.
        w.write(Request::Otlp(&reqs[0])).unwrap();
        w.write(Request::OtlpProtobuf(&reqs[1].encode_to_vec())).unwrap();
        let json = serde_json::to_string_pretty(&reqs[2]).unwrap();
        assert!(json.contains('\n'));
        w.write(Request::OtlpJson(json.as_bytes())).unwrap();
        let got = read_all(std::fs::read(&path).unwrap(), 1 << 20);
        let at = |i: usize| match format {
            OutFormat::Json => format!("line {}", i + 1),
            OutFormat::Proto => {
                let before: usize = reqs[..i].iter().map(|r| 4 + r.encoded_len()).sum();
                format!("byte offset {before}")
            }
        };
        let want: Vec<_> = reqs
            .iter()
            .enumerate()
            .map(|(i, r)| Ok((at(i), kind, spans(r))))
            .collect();
        assert_eq!(got, want, "{format:?} gzip {gz}");
    }
    let zipkin = Writer::create(&dir.join("z"), OutFormat::Proto, false).unwrap();
    let e = zipkin.write(Request::ZipkinJson(b"[]")).unwrap_err();
    assert_eq!(e.to_string(), "zipkin requests are recorded with --format json only");
    std::fs::remove_dir_all(&dir).unwrap();
}

const ZIPKIN: &str = r#"[{"traceId":"0000000000000001","id":"0000000000000002","name":"get","timestamp":1780000000000000,"duration":1000,"localEndpoint":{"serviceName":"frontend"}}]"#;

#[test]
fn json_lines_mix_otlp_and_zipkin_and_skip_corrupt_lines() {
    let req = &requests(1)[0];
    let otlp = serde_json::to_string(req).unwrap();
    let n = spans(req);
    let max = 1 << 16;
    let text = format!(
        "{otlp}\n\n{ZIPKIN}\nnot json\n{{\"resourceSpans\": [}}\n{}\n{otlp}\r\n[{{\"traceId\":\"zz\"}}]\n{{\"other\":1}}",
        "x".repeat(max + 1)
    );
    let want: Vec<Result<(String, Kind, usize), String>> = vec![
        Ok(("line 1".into(), Kind::OtlpJson, n)),
        Ok(("line 3".into(), Kind::ZipkinJson, 1)),
        Err("line 4: neither an OTLP JSON object ('{') nor a Zipkin JSON array ('[')".into()),
        Err("line 5: invalid json: expected value at line 1 column 20".into()),
        Err(format!(
            "line 6: line of {} bytes exceeds the limit of {max} bytes",
            max + 1
        )),
        Ok(("line 7".into(), Kind::OtlpJson, n)),
        Ok(("line 8".into(), Kind::ZipkinJson, 0)), // a span with bad ids: counted by decode
        Err("line 9: json object has none of the known keys, expected a json object with \"resourceSpans\"".into()),
    ];
    assert_eq!(read_all(text.clone().into_bytes(), max), want);
    assert_eq!(read_all(gzip(text.as_bytes()), max), want);
}

#[test]
fn protobuf_frames_corrupt_truncated_and_oversized() {
    let reqs = requests(2);
    let frame = |body: &[u8]| {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    };
    let a = reqs[0].encode_to_vec();
    let b = reqs[1].encode_to_vec();
    let garbage = vec![0xffu8; 10];
    let mut data = frame(&a);
    data.extend(frame(&garbage));
    data.extend(frame(&b));
    let off_garbage = 4 + a.len();
    let off_b = off_garbage + 14;
    let off_end = off_b + 4 + b.len();
    // (bytes, limit, items)
    let mut truncated = data.clone();
    truncated.extend(frame(&a)[..20].to_vec());
    let mut oversized = data.clone();
    oversized.extend(u32::MAX.to_be_bytes());
    oversized.extend(frame(&a));
    let head: Vec<Result<(String, Kind, usize), String>> = vec![
        Ok(("byte offset 0".to_owned(), Kind::OtlpProtobuf, spans(&reqs[0]))),
        Err(format!(
            "byte offset {off_garbage}: invalid protobuf ExportTraceServiceRequest: failed to decode Protobuf message: invalid varint"
        )),
        Ok((format!("byte offset {off_b}"), Kind::OtlpProtobuf, spans(&reqs[1]))),
    ];
    let with = |last: String| {
        let mut v = head.clone();
        v.push(Err(last));
        v
    };
    let cases = [
        (data.clone(), head.clone()),
        (
            truncated,
            with(format!(
                "byte offset {off_end}: truncated frame: 16 of {} bytes",
                a.len()
            )),
        ),
        (
            oversized,
            with(format!(
                "byte offset {off_end}: frame length 4294967295 exceeds the limit of 1048576 bytes; the rest of the input cannot be framed"
            )),
        ),
        (gzip(&data), head.clone()),
        // Two gzip members, as `record --gzip` writes them.
        ([gzip(&data[..off_b]), gzip(&data[off_b..])].concat(), head.clone()),
    ];
    for (i, (bytes, want)) in cases.into_iter().enumerate() {
        assert_eq!(read_all(bytes, 1 << 20), want, "case {i}");
    }
    // A gzip stream cut short (a crash mid-write without `record`'s members): what came before is read.
    let gz = gzip(&data);
    let cut = read_all(gz[..gz.len() - 8].to_vec(), 1 << 20);
    assert_eq!(cut[..3], head[..]);
    assert!(
        matches!(&cut[3], Err(e) if e.starts_with(&format!("byte offset {off_end}: cannot read further"))),
        "{cut:?}"
    );
    assert_eq!(read_all(Vec::new(), 1 << 20), vec![]);
}
