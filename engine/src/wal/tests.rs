use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::segment::{HEADER_BYTES, file_name};
use super::{Lsn, Record, Recovery, Wal, WalError, WalMetrics, WalOptions};
use crate::metrics::ReasonLabels;

/// A fresh, empty directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let unique = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tb-wal-{name}-{}-{unique}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

struct Opened {
    wal: Wal,
    recovery: Recovery,
    records: Vec<Record>,
    metrics: Arc<WalMetrics>,
}

fn open(dir: &Path, covered: u64, options: WalOptions) -> Opened {
    let metrics = Arc::new(WalMetrics::default());
    let mut records = Vec::new();
    let (wal, recovery) = Wal::open(dir, Lsn(covered), options, metrics.clone(), |record| {
        records.push(record)
    })
    .unwrap();
    Opened {
        wal,
        recovery,
        records,
        metrics,
    }
}

/// The segment file names in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn name(first: u64) -> String {
    file_name(Lsn(first))
}

/// A payload of `PAYLOAD` bytes, all `n`.
fn payload(n: u8) -> Bytes {
    Bytes::from(vec![n; PAYLOAD])
}

const PAYLOAD: usize = 20;
/// The frame of a `payload`.
const FRAME: u64 = (HEADER_BYTES + PAYLOAD) as u64;

fn record(lsn: u64) -> Record {
    Record {
        lsn: Lsn(lsn),
        kind: lsn as u8 % 3,
        receive_time_unix_nanos: 1_000 * lsn as i64,
        payload: payload(lsn as u8),
    }
}

/// Appends `record(lsn)` for each of `lsns`, one at a time, checking each LSN.
async fn append(wal: &Wal, lsns: impl IntoIterator<Item = u64>) {
    for lsn in lsns {
        let r = record(lsn);
        let got = wal.append(r.kind, r.receive_time_unix_nanos, r.payload).await.unwrap();
        assert_eq!(got, Lsn(lsn));
    }
}

fn records(lsns: impl IntoIterator<Item = u64>) -> Vec<Record> {
    lsns.into_iter().map(record).collect()
}

fn refusals(metrics: &WalMetrics, reason: &'static str) -> u64 {
    metrics.refusals.get_or_create(&ReasonLabels { reason }).get()
}

/// Segments of two records each.
const SMALL: WalOptions = WalOptions {
    segment_bytes: 2 * FRAME + 5,
    max_bytes: 1 << 20,
};

#[test]
fn a_wal_is_shared_across_tasks() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let dir = temp_dir("send");
    let opened = open(&dir, 0, WalOptions::default());
    send_sync(&opened.wal);
    send(opened.wal.append(0, 0, Bytes::new()));
    send(opened.wal.cover(Lsn(0)));
}

#[test]
fn names_are_twenty_digits() {
    assert_eq!(name(1), "00000000000000000001.wal");
    assert_eq!(super::segment::parse_name(&name(12345)), Some(Lsn(12345)));
    for other in ["1.wal", "0000000000000000000a.wal", "00000000000000000001.tmp"] {
        assert_eq!(super::segment::parse_name(other), None, "{other}");
    }
}

#[tokio::test]
async fn round_trip() {
    let dir = temp_dir("round-trip");
    let opened = open(&dir, 0, WalOptions::default());
    assert_eq!(
        opened.recovery,
        Recovery {
            next: Lsn(1),
            ..Recovery::default()
        }
    );
    assert_eq!(files(&dir), [name(1)]);
    append(&opened.wal, 1..=3).await;
    assert_eq!(opened.metrics.appends.get(), 3);
    assert_eq!(opened.metrics.appended_bytes.get(), 3 * FRAME);
    assert_eq!(opened.metrics.fsyncs.get(), 3);
    assert_eq!(opened.metrics.disk_bytes.get(), 3 * FRAME as i64);
    drop(opened);

    let opened = open(&dir, 0, WalOptions::default());
    assert_eq!(opened.records, records(1..=3));
    assert_eq!(
        opened.recovery,
        Recovery {
            records: 3,
            next: Lsn(4),
            ..Recovery::default()
        }
    );
    assert_eq!(opened.metrics.recovered_records.get(), 3);
    append(&opened.wal, 4..=4).await;
    drop(opened);
    assert_eq!(open(&dir, 0, WalOptions::default()).records, records(1..=4));
}

#[tokio::test]
async fn group_commit_syncs_once_per_batch() {
    let dir = temp_dir("group");
    let opened = open(&dir, 0, WalOptions::default());
    let callers = 200u64;
    let appends = (0..callers).map(|caller| {
        let wal = &opened.wal;
        async move {
            let lsn = wal
                .append(7, caller as i64, Bytes::from(caller.to_le_bytes().to_vec()))
                .await
                .unwrap();
            (lsn, caller)
        }
    });
    let mut answers = futures_util::future::join_all(appends).await;
    answers.sort();
    let lsns: Vec<Lsn> = answers.iter().map(|(lsn, _)| *lsn).collect();
    assert_eq!(lsns, (1..=callers).map(Lsn).collect::<Vec<_>>());
    let fsyncs = opened.metrics.fsyncs.get();
    assert!(fsyncs < callers, "{fsyncs} fsyncs for {callers} records");
    assert_eq!(opened.metrics.appends.get(), callers);
    drop(opened);

    let reopened = open(&dir, 0, WalOptions::default());
    let expected: Vec<Record> = answers
        .iter()
        .map(|&(lsn, caller)| Record {
            lsn,
            kind: 7,
            receive_time_unix_nanos: caller as i64,
            payload: Bytes::from(caller.to_le_bytes().to_vec()),
        })
        .collect();
    assert_eq!(reopened.records, expected);
    assert_eq!(reopened.recovery.records, callers);
}

#[tokio::test]
async fn segments_roll_at_segment_bytes() {
    let dir = temp_dir("roll");
    let opened = open(&dir, 0, SMALL);
    append(&opened.wal, 1..=5).await;
    assert_eq!(files(&dir), [name(1), name(3), name(5)]);
    assert_eq!(opened.metrics.segments.get(), 3);
    assert_eq!(opened.metrics.fsyncs.get(), 5);
    drop(opened);
    let opened = open(&dir, 0, SMALL);
    assert_eq!(opened.records, records(1..=5));
    assert_eq!(opened.recovery.next, Lsn(6));
}

#[tokio::test]
async fn a_batch_rolls_segments_as_it_goes() {
    let dir = temp_dir("roll-batch");
    let opened = open(&dir, 0, SMALL);
    let appends = (1..=9).map(|lsn| {
        let r = record(lsn);
        opened.wal.append(r.kind, r.receive_time_unix_nanos, r.payload)
    });
    let lsns: Vec<Lsn> = futures_util::future::join_all(appends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lsns, (1..=9).map(Lsn).collect::<Vec<_>>());
    let segments = [1, 3, 5, 7, 9].map(name);
    assert_eq!(files(&dir), segments);
    drop(opened);
    assert_eq!(open(&dir, 0, SMALL).records, records(1..=9));
}

#[test]
fn metrics_are_exposed_from_the_start() {
    let mut registry = prometheus_client::registry::Registry::with_prefix("tracebudget");
    WalMetrics::default().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        "tracebudget_wal_appends_total 0",
        "tracebudget_wal_fsyncs_total 0",
        "tracebudget_wal_refusals_total{reason=\"full\"} 0",
        "tracebudget_wal_refusals_total{reason=\"io\"} 0",
        "tracebudget_wal_truncated_bytes_total 0",
        "tracebudget_wal_segments 0",
        "tracebudget_wal_disk_bytes 0",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

#[tokio::test]
async fn cover_deletes_whole_segments_and_recovery_skips_covered_records() {
    let dir = temp_dir("cover");
    let opened = open(&dir, 0, SMALL);
    append(&opened.wal, 1..=5).await;
    opened.wal.cover(Lsn(2)).await.unwrap();
    assert_eq!(files(&dir), [name(3), name(5)]);
    opened.wal.cover(Lsn(3)).await.unwrap();
    assert_eq!(files(&dir), [name(3), name(5)]);
    assert_eq!(opened.metrics.segments.get(), 2);
    assert_eq!(opened.metrics.disk_bytes.get(), 3 * FRAME as i64);
    drop(opened);

    let opened = open(&dir, 3, SMALL);
    assert_eq!(opened.records, records(4..=5));
    assert_eq!(
        opened.recovery,
        Recovery {
            records: 2,
            covered_records: 1,
            next: Lsn(6),
            ..Recovery::default()
        }
    );
    // All of the active segment covered: it goes, the next append starts a new one.
    opened.wal.cover(Lsn(5)).await.unwrap();
    assert_eq!(files(&dir), Vec::<String>::new());
    assert_eq!(opened.metrics.segments.get(), 0);
    append(&opened.wal, 6..=6).await;
    assert_eq!(files(&dir), [name(6)]);
    // A cover past the last durable record covers only up to it.
    opened.wal.cover(Lsn(100)).await.unwrap();
    assert_eq!(files(&dir), Vec::<String>::new());
    append(&opened.wal, 7..=7).await;
    drop(opened);

    let opened = open(&dir, 6, SMALL);
    assert_eq!(opened.records, records(7..=7));
    drop(opened);
    // The database covered more than the directory holds: everything goes, LSNs continue after.
    let opened = open(&dir, 10, SMALL);
    assert_eq!(opened.records, []);
    assert_eq!(opened.recovery.next, Lsn(11));
    assert_eq!(files(&dir), [name(11)]);
    append(&opened.wal, 11..=11).await;
}

#[tokio::test]
async fn missing_segments_below_the_first_are_counted() {
    let dir = temp_dir("missing");
    let opened = open(&dir, 0, SMALL);
    append(&opened.wal, 1..=4).await;
    drop(opened);
    std::fs::remove_file(dir.join(name(1))).unwrap();
    let opened = open(&dir, 0, SMALL);
    assert_eq!(opened.records, records(3..=4));
    assert_eq!(opened.recovery.missing_records, 2);
}

#[tokio::test]
async fn a_missing_middle_segment_cuts_the_log_before_it() {
    let dir = temp_dir("gap");
    let opened = open(&dir, 0, SMALL);
    append(&opened.wal, 1..=5).await;
    drop(opened);
    std::fs::remove_file(dir.join(name(3))).unwrap();
    let opened = open(&dir, 0, SMALL);
    assert_eq!(opened.records, records(1..=2));
    assert_eq!(
        opened.recovery,
        Recovery {
            records: 2,
            truncated_bytes: FRAME,
            dropped_segments: 1,
            next: Lsn(3),
            ..Recovery::default()
        }
    );
    assert_eq!(files(&dir), [name(1)]);
    append(&opened.wal, 3..=3).await;
    assert_eq!(files(&dir), [name(1), name(3)]);
}

#[tokio::test]
async fn a_large_payload_round_trips() {
    let dir = temp_dir("large");
    let opened = open(&dir, 0, WalOptions::default());
    let large = Bytes::from((0..3 << 20).map(|i| i as u8).collect::<Vec<u8>>());
    let small = payload(1);
    let (a, b, c) = tokio::join!(
        opened.wal.append(1, 10, small.clone()),
        opened.wal.append(2, 20, large.clone()),
        opened.wal.append(3, 30, small.clone()),
    );
    assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (Lsn(1), Lsn(2), Lsn(3)));
    drop(opened);
    let reopened = open(&dir, 0, WalOptions::default());
    let payloads: Vec<Bytes> = reopened.records.into_iter().map(|r| r.payload).collect();
    assert_eq!(payloads, [small.clone(), large, small]);
}

/// Writes three records into one segment and returns its bytes.
async fn three_records() -> Vec<u8> {
    let dir = temp_dir("three");
    let opened = open(&dir, 0, WalOptions::default());
    append(&opened.wal, 1..=3).await;
    drop(opened);
    let bytes = std::fs::read(dir.join(name(1))).unwrap();
    assert_eq!(bytes.len() as u64, 3 * FRAME);
    bytes
}

#[tokio::test]
async fn a_torn_tail_is_cut_at_the_last_whole_record() {
    let whole = three_records().await;
    for len in 2 * FRAME..=3 * FRAME {
        let dir = temp_dir("torn");
        let segment = dir.join(name(1));
        std::fs::write(&segment, &whole[..len as usize]).unwrap();
        let opened = open(&dir, 0, WalOptions::default());
        let kept = if len == 3 * FRAME { 3 } else { 2 };
        assert_eq!(opened.records, records(1..=kept), "cut at {len}");
        assert_eq!(
            opened.recovery,
            Recovery {
                records: kept,
                truncated_bytes: len - kept * FRAME,
                next: Lsn(kept + 1),
                ..Recovery::default()
            },
            "cut at {len}"
        );
        assert_eq!(opened.metrics.truncated_bytes.get(), len - kept * FRAME);
        assert_eq!(std::fs::metadata(&segment).unwrap().len(), kept * FRAME);
        // Appends continue right after the cut.
        append(&opened.wal, kept + 1..=kept + 1).await;
        drop(opened);
        assert_eq!(open(&dir, 0, WalOptions::default()).records, records(1..=kept + 1));
    }
}

#[tokio::test]
async fn a_flipped_payload_byte_cuts_the_log_there() {
    let whole = three_records().await;
    for at in FRAME as usize + HEADER_BYTES..2 * FRAME as usize {
        let dir = temp_dir("flip");
        let mut bytes = whole.clone();
        bytes[at] ^= 0x40;
        std::fs::write(dir.join(name(1)), &bytes).unwrap();
        let opened = open(&dir, 0, WalOptions::default());
        assert_eq!(opened.records, records(1..=1), "flip at {at}");
        assert_eq!(
            opened.recovery,
            Recovery {
                records: 1,
                truncated_bytes: 2 * FRAME,
                corrupt_records: 1,
                next: Lsn(2),
                ..Recovery::default()
            },
            "flip at {at}"
        );
        assert_eq!(opened.metrics.corrupt_records.get(), 1);
        assert_eq!(std::fs::metadata(dir.join(name(1))).unwrap().len(), FRAME);
    }
}

#[tokio::test]
async fn a_flipped_header_byte_cuts_the_log_there() {
    let whole = three_records().await;
    for at in FRAME as usize..FRAME as usize + HEADER_BYTES {
        let dir = temp_dir("flip-header");
        let mut bytes = whole.clone();
        bytes[at] ^= 0x40;
        std::fs::write(dir.join(name(1)), &bytes).unwrap();
        let opened = open(&dir, 0, WalOptions::default());
        assert_eq!(opened.records, records(1..=1), "flip at {at}");
        assert_eq!(opened.recovery.truncated_bytes, 2 * FRAME, "flip at {at}");
        // A flipped length that points past the end reads as torn, any other flip as corrupt.
        let torn = at < FRAME as usize + 4;
        assert_eq!(opened.recovery.corrupt_records, u64::from(!torn), "flip at {at}");
    }
}

#[tokio::test]
async fn corruption_in_a_middle_segment_drops_the_later_ones() {
    let dir = temp_dir("middle");
    let opened = open(&dir, 0, SMALL);
    append(&opened.wal, 1..=5).await;
    drop(opened);
    let first = dir.join(name(1));
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[FRAME as usize + HEADER_BYTES] ^= 1;
    std::fs::write(&first, &bytes).unwrap();

    let opened = open(&dir, 0, SMALL);
    assert_eq!(opened.records, records(1..=1));
    assert_eq!(
        opened.recovery,
        Recovery {
            records: 1,
            truncated_bytes: FRAME + 2 * FRAME + FRAME,
            corrupt_records: 1,
            dropped_segments: 2,
            next: Lsn(2),
            ..Recovery::default()
        }
    );
    assert_eq!(files(&dir), [name(1)]);
    append(&opened.wal, 2..=3).await;
    assert_eq!(files(&dir), [name(1), name(3)]);
}

#[tokio::test]
async fn full_refuses_without_writing() {
    let dir = temp_dir("full");
    let options = WalOptions {
        segment_bytes: 1 << 20,
        max_bytes: 3 * FRAME,
    };
    let opened = open(&dir, 0, options);
    append(&opened.wal, 1..=3).await;
    let refused = opened.wal.append(0, 0, payload(4)).await.unwrap_err();
    assert!(matches!(
        refused,
        WalError::Full { used, max, record, .. } if used == 3 * FRAME && max == 3 * FRAME && record == FRAME
    ));
    assert!(refused.to_string().contains(&dir.display().to_string()));
    assert_eq!(refusals(&opened.metrics, "full"), 1);
    assert_eq!(std::fs::metadata(dir.join(name(1))).unwrap().len(), 3 * FRAME);
    assert_eq!(opened.metrics.fsyncs.get(), 3);

    let too_large = Bytes::from(vec![0; 3 * FRAME as usize]);
    let refused = opened.wal.append(0, 0, too_large).await.unwrap_err();
    assert!(matches!(refused, WalError::TooLarge { .. }));
    assert_eq!(refusals(&opened.metrics, "too_large"), 1);

    // Covering frees the space.
    opened.wal.cover(Lsn(3)).await.unwrap();
    append(&opened.wal, 4..=6).await;
    assert_eq!(files(&dir), [name(4)]);
    drop(opened);
    assert_eq!(open(&dir, 3, options).records, records(4..=6));
}

#[tokio::test]
async fn a_disk_error_fails_the_batch_and_closes_the_wal() {
    let dir = temp_dir("io");
    let opened = open(&dir, 0, SMALL);
    append(&opened.wal, 1..=2).await;
    // The next append rolls to a new segment, which cannot be created without the directory.
    std::fs::remove_dir_all(&dir).unwrap();
    let failed = opened.wal.append(0, 0, payload(3)).await.unwrap_err();
    assert!(matches!(failed, WalError::Io { .. }), "{failed}");
    let path = dir.join(name(3)).display().to_string();
    assert!(failed.to_string().contains(&path), "{failed}");

    std::fs::create_dir_all(&dir).unwrap();
    let refused = opened.wal.append(0, 0, payload(3)).await.unwrap_err();
    assert!(matches!(refused, WalError::Failed { .. }), "{refused}");
    assert!(refused.to_string().contains(&path), "{refused}");
    assert!(refused.to_string().contains("reopen"), "{refused}");
    assert_eq!(refusals(&opened.metrics, "io"), 2);
    assert_eq!(opened.metrics.appends.get(), 2);
    assert_eq!(files(&dir), Vec::<String>::new());
}

#[test]
fn open_fails_naming_the_path() {
    let parent = temp_dir("bad-dir");
    let file = parent.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let missing = parent.join("missing");
    for dir in [file.join("wal"), file.clone(), missing] {
        let error = Wal::open(
            &dir,
            Lsn(0),
            WalOptions::default(),
            Arc::new(WalMetrics::default()),
            |_| {},
        )
        .unwrap_err();
        assert!(error.to_string().contains(&dir.display().to_string()), "{error}");
    }
}
