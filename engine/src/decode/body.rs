//! `Content-Encoding` of HTTP request bodies, with a hard limit on the inflated size: a small gzip
//! bomb is stopped after `max + 1` bytes, never inflated in full.

use std::io::Read;

use bytes::Bytes;
use flate2::read::{MultiGzDecoder, ZlibDecoder};

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("corrupt body: {0}")]
    Corrupt(String),
    #[error("unsupported content-encoding {0:?}, expected gzip, deflate or identity")]
    Unsupported(String),
}

/// Undo Content-Encoding (identity / absent, gzip, deflate) with a hard limit on the inflated size
/// (decompression bombs): TooLarge when the result would exceed `max` bytes (also when the raw body does).
///
/// `deflate` is the zlib format, as HTTP defines it (and the OpenTelemetry Collector reads it);
/// gzip may have several members, as `gzip -c a b` writes.
pub fn inflate(body: Bytes, content_encoding: Option<&str>, max: usize) -> Result<Bytes, BodyError> {
    if body.len() > max {
        return Err(BodyError::TooLarge { limit: max });
    }
    let encoding = content_encoding.map(str::trim).unwrap_or("");
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        Ok(body)
    } else if encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip") {
        read_limited(MultiGzDecoder::new(&body[..]), body.len(), max)
    } else if encoding.eq_ignore_ascii_case("deflate") {
        read_limited(ZlibDecoder::new(&body[..]), body.len(), max)
    } else {
        Err(BodyError::Unsupported(encoding.to_owned()))
    }
}

fn read_limited(decoder: impl Read, raw_len: usize, max: usize) -> Result<Bytes, BodyError> {
    // Telemetry compresses about 5–10×; a guess, capped so a bomb cannot make us reserve much.
    let mut out = Vec::with_capacity(raw_len.saturating_mul(8).min(max).min(1 << 20));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::Corrupt(e.to_string()))?;
    if out.len() > max {
        return Err(BodyError::TooLarge { limit: max });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::io::{self, Write};

    use flate2::Compression;
    use flate2::write::{GzEncoder, ZlibEncoder};

    use super::*;

    const MIB: usize = 1 << 20;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn encodings() {
        let data = b"{\"resourceSpans\": []}".repeat(100);
        let gz = gzip(&data);
        let two_members = [gzip(b"hello, "), gzip(b"world")].concat();
        let truncated = gz[..gz.len() / 2].to_vec();
        let no_trailer = gz[..gz.len() - 4].to_vec();
        // (encoding, body, max, inflated body or error message)
        let raw_too_large = format!("body exceeds the limit of {} bytes", gz.len() - 1);
        type Case<'a> = (Option<&'a str>, Vec<u8>, usize, Result<&'a [u8], &'a str>);
        let cases: &[Case<'_>] = &[
            (None, data.clone(), MIB, Ok(&data)),
            (Some(""), data.clone(), MIB, Ok(&data)),
            (Some("identity"), data.clone(), MIB, Ok(&data)),
            (Some("gzip"), gz.clone(), MIB, Ok(&data)),
            (Some(" GZip "), gz.clone(), MIB, Ok(&data)),
            (Some("x-gzip"), gz.clone(), MIB, Ok(&data)),
            (Some("deflate"), zlib(&data), MIB, Ok(&data)),
            (Some("gzip"), two_members, MIB, Ok(b"hello, world")),
            (Some("gzip"), gz.clone(), data.len(), Ok(&data)), // exactly at the limit
            (Some("gzip"), gzip(b""), MIB, Ok(b"")),
            (
                Some("gzip"),
                gz.clone(),
                data.len() - 1,
                Err("body exceeds the limit of 2099 bytes"),
            ),
            (
                None,
                data.clone(),
                data.len() - 1,
                Err("body exceeds the limit of 2099 bytes"),
            ),
            (Some("gzip"), gz.clone(), gz.len() - 1, Err(&raw_too_large)), // the raw body
            (
                Some("gzip"),
                truncated,
                MIB,
                Err("corrupt body: incomplete deflate stream"),
            ),
            (
                Some("gzip"),
                no_trailer,
                MIB,
                Err("corrupt body: unexpected end of file"),
            ),
            (
                Some("gzip"),
                data.clone(),
                MIB,
                Err("corrupt body: invalid gzip header"),
            ),
            (
                Some("deflate"),
                data.clone(),
                MIB,
                Err("corrupt body: corrupt deflate stream"),
            ),
            (
                Some("deflate"),
                gz.clone(),
                MIB,
                Err("corrupt body: corrupt deflate stream"),
            ),
            (
                Some("br"),
                data.clone(),
                MIB,
                Err("unsupported content-encoding \"br\", expected gzip, deflate or identity"),
            ),
            (
                Some("gzip, br"),
                data.clone(),
                MIB,
                Err("unsupported content-encoding \"gzip, br\", expected gzip, deflate or identity"),
            ),
        ];
        for (encoding, body, max, want) in cases {
            let got = inflate(Bytes::from(body.clone()), *encoding, *max);
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(&got[..], *want, "{encoding:?}"),
                (Err(e), Err(message)) => assert_eq!(e.to_string(), *message, "{encoding:?} max {max}"),
                (got, want) => panic!("{encoding:?} max {max}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// 100 MB of zeros gzip to about 100 KB; with a 1 MiB limit the decoder stops after 1 MiB + 1
    /// byte (`Read::take`), so the 100 MB are never inflated nor allocated.
    #[test]
    fn gzip_bomb_is_too_large() {
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        io::copy(&mut io::repeat(0).take(100_000_000), &mut e).unwrap();
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < MIB, "{}", bomb.len());
        let err = inflate(Bytes::from(bomb), Some("gzip"), MIB).unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: MIB }), "{err:?}");
    }
}
