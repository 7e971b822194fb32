//! The count block layout (migration 3, table `sli_count_blocks`): a journey's count buckets are
//! packed into one row per *block*, the minute buckets of a UTC hour in an hour block and the hour
//! buckets of a UTC day in a day block, in a compact binary encoding. A restore of 30 days then
//! reads about 37 rows per journey instead of about 1,100 (one per bucket, the 0002 layout).
//!
//! A block is always written whole, from the buckets the windows hold when the flush drains them
//! ([`take_blocks`]): a flush never increments a stored value, so writing a block twice (a retry)
//! cannot double-count. A changed minute bucket rewrites its hour block (up to 60 buckets, a few
//! hundred bytes); an hour bucket that changes (a coarsening, a late sample) rewrites its day
//! block and, in the same transaction, deletes the hour blocks it replaces.
//!
//! Encoding, all integers unsigned LEB128 varints:
//!
//! ```text
//! format (1) · bucket width in ms · series count · per series: byte length, UTF-8 name
//! then per bucket, oldest first: index of the bucket in the block · per series: total, bad
//! ```
//!
//! The series names are the journey's window slots (`pipeline::series_key`), so a restore maps
//! them to the current config the way the JSON rows of the 0002 layout did.

use std::time::Duration;

use slis::Timestamp;
use slis::window::{Changes, CountBucket, Counts, JourneyWindows};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
const FORMAT: u64 = 1;

/// The block holding a count bucket: (block start, block width), both in ms.
pub fn block_of(start_ms: i64, width_ms: i64) -> (i64, i64) {
    let block = if width_ms < HOUR_MS { HOUR_MS } else { DAY_MS };
    (start_ms.div_euclid(block) * block, block)
}

/// Like [`JourneyWindows::take_changes`], but the count buckets come as whole blocks: every
/// bucket of each block that holds a changed bucket, block after block, oldest first.
pub fn take_blocks(w: &mut JourneyWindows, out: &mut Changes) {
    let mark = out.counts.len();
    w.take_changes(out);
    let mut blocks: Vec<(i64, i64, i64)> = out
        .counts
        .drain(mark..)
        .map(|b| {
            let width = ms(b.width);
            let (start, block) = block_of(b.start.unix_millis(), width);
            (start, block, width)
        })
        .collect();
    blocks.sort_unstable();
    blocks.dedup();
    for (start, block, width) in blocks {
        let from = Timestamp::from_unix_millis(start);
        out.counts.extend(
            w.count_buckets(from, Timestamp::from_unix_millis(start + block))
                .into_iter()
                .filter(|b| ms(b.width) == width),
        );
    }
}

/// Encodes the buckets of one block (all of the same width, inside the block, oldest first).
pub fn encode(series: &[String], block_start_ms: i64, buckets: &[&CountBucket]) -> Vec<u8> {
    let width = buckets.first().map_or(MINUTE_MS, |b| ms(b.width));
    let mut out = Vec::with_capacity(16 + 16 * series.len() + buckets.len() * (2 + 6 * series.len()));
    put(&mut out, FORMAT);
    put(&mut out, width as u64);
    put(&mut out, series.len() as u64);
    for s in series {
        put(&mut out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    for b in buckets {
        put(&mut out, ((b.start.unix_millis() - block_start_ms) / width) as u64);
        for c in &b.counts {
            put(&mut out, c.total);
            put(&mut out, c.bad);
        }
    }
    out
}

/// The buckets of a stored block: calls `each(start_ms, width_ms, counts by slot)`; `series[i]`
/// names the journey's slot `i` now. Series the journey no longer has are counted in `unknown`
/// (once per block) and skipped. Nothing is reported for a block that does not decode.
pub fn decode(
    data: &[u8],
    block_start_ms: i64,
    block_width_ms: i64,
    series: &[String],
    unknown: &mut u64,
    mut each: impl FnMut(i64, i64, &[Counts]),
) -> Result<(), String> {
    let mut r = Reader { data, at: 0 };
    let format = r.varint()?;
    if format != FORMAT {
        return Err(format!("unknown block format {format}"));
    }
    let width = r.varint()?;
    let block = u64::try_from(block_width_ms).unwrap_or(0);
    if width == 0 || width > block || !block.is_multiple_of(width) {
        return Err(format!(
            "bucket width {width} ms does not divide the block's {block_width_ms} ms"
        ));
    }
    let width = width as i64;
    let stored = r.varint()? as usize;
    if stored > 4_096 {
        return Err(format!("{stored} series"));
    }
    let mut slots = Vec::with_capacity(stored);
    for _ in 0..stored {
        let len = r.varint()? as usize;
        let name = std::str::from_utf8(r.bytes(len)?).map_err(|e| format!("a series name is not UTF-8: {e}"))?;
        let slot = series.iter().position(|s| s == name);
        if slot.is_none() {
            *unknown += 1;
        }
        slots.push(slot);
    }
    // Decode everything first: a block is restored whole or not at all.
    let per_block = (block_width_ms / width) as u64;
    let mut buckets: Vec<(i64, Vec<Counts>)> = Vec::new();
    while !r.done() {
        let index = r.varint()?;
        if index >= per_block {
            return Err(format!("bucket {index} of a block holding {per_block}"));
        }
        let mut counts = vec![Counts::default(); series.len()];
        for slot in &slots {
            let (total, bad) = (r.varint()?, r.varint()?);
            if let Some(slot) = *slot {
                counts[slot] = Counts { total, bad };
            }
        }
        buckets.push((block_start_ms + index as i64 * width, counts));
    }
    for (start, counts) in buckets {
        each(start, width, &counts);
    }
    Ok(())
}

pub(crate) fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data, at: 0 }
    }

    pub(crate) fn done(&self) -> bool {
        self.at >= self.data.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.data.get(self.at) else {
                return Err(format!("truncated at byte {}", self.at));
            };
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("a varint longer than 64 bits at byte {}", self.at))
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(len).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(format!("truncated at byte {}", self.at));
        };
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(start_ms: i64, width_ms: i64, counts: &[(u64, u64)]) -> CountBucket {
        CountBucket {
            start: Timestamp::from_unix_millis(start_ms),
            width: Duration::from_millis(width_ms as u64),
            counts: counts.iter().map(|&(total, bad)| Counts { total, bad }).collect(),
        }
    }

    #[test]
    fn blocks_are_utc_hours_of_minutes_and_utc_days_of_hours() {
        let cases = [
            (
                (7 * DAY_MS + 5 * HOUR_MS + 17 * MINUTE_MS, MINUTE_MS),
                (7 * DAY_MS + 5 * HOUR_MS, HOUR_MS),
            ),
            ((7 * DAY_MS + 5 * HOUR_MS, HOUR_MS), (7 * DAY_MS, DAY_MS)),
            ((7 * DAY_MS, MINUTE_MS), (7 * DAY_MS, HOUR_MS)),
            ((-MINUTE_MS, MINUTE_MS), (-HOUR_MS, HOUR_MS)),
        ];
        for ((start, width), want) in cases {
            assert_eq!(block_of(start, width), want, "{start} {width}");
        }
    }

    #[test]
    fn a_block_decodes_to_what_was_encoded_mapped_to_the_current_slots() {
        let series = ["a (error)".to_owned(), "roots".to_owned()];
        let day = 20_000 * DAY_MS;
        let buckets = [
            bucket(day, HOUR_MS, &[(200, 1), (200, 0)]),
            bucket(day + 23 * HOUR_MS, HOUR_MS, &[(u64::MAX, 300), (0, 0)]),
        ];
        let data = encode(&series, day, &buckets.iter().collect::<Vec<_>>());
        // format, width (4 bytes), 2 series, their names, then 7 and 15 bytes of buckets.
        assert_eq!(data.len(), 1 + 4 + 1 + (1 + 9) + (1 + 5) + 7 + 15);
        let mut got = Vec::new();
        let mut unknown = 0;
        // The config now has a new SLO in front and no longer has "roots" at its old slot.
        let now = ["b (latency)".to_owned(), "roots".to_owned(), "a (error)".to_owned()];
        decode(&data, day, DAY_MS, &now, &mut unknown, |s, w, c| {
            got.push((s, w, c.to_vec()))
        })
        .unwrap();
        let c = |total, bad| Counts { total, bad };
        assert_eq!(
            got,
            [
                (day, HOUR_MS, vec![c(0, 0), c(200, 0), c(200, 1)]),
                (day + 23 * HOUR_MS, HOUR_MS, vec![c(0, 0), c(0, 0), c(u64::MAX, 300)]),
            ]
        );
        assert_eq!(unknown, 0);
        decode(&data, day, DAY_MS, &series[..1], &mut unknown, |_, _, _| {}).unwrap();
        assert_eq!(unknown, 1, "roots is gone");
    }

    #[test]
    fn broken_blocks_are_errors_and_restore_nothing() {
        let series = ["roots".to_owned()];
        let day = 20_000 * DAY_MS;
        let good = encode(&series, day, &[&bucket(day, HOUR_MS, &[(5, 1)])]);
        let cases: [(Vec<u8>, &str); 5] = [
            (vec![], "truncated at byte 0"),
            (vec![2], "unknown block format 2"),
            (good[..good.len() - 1].to_vec(), "truncated at byte 14"),
            ([&good[..], &[24, 1, 0]].concat(), "bucket 24 of a block holding 24"),
            (
                [&[1u8, 0xa0, 0xd1, 0x19][..], &good[5..]].concat(),
                "bucket width 420000 ms does not divide the block's 86400000 ms",
            ),
        ];
        for (data, want) in cases {
            let mut n = 0;
            let got = decode(&data, day, DAY_MS, &series, &mut 0, |_, _, _| n += 1);
            assert_eq!(got, Err(want.to_owned()), "{data:?}");
            assert_eq!(n, 0);
        }
    }
}
