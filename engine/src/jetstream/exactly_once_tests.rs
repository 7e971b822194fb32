//! A crash between two messages, on both backends: the flusher's transaction holds the buckets,
//! the position and the open traces of one instant, and a pipeline restored from it and fed the
//! rest of the stream counts, judges and blames exactly like one that never stopped.

use std::sync::{Arc, Mutex};

use slis::{SpanKind, StatusCode};

use crate::exemplars::Blame;
use crate::metrics::{EngineMetrics, ResultLabels};
use crate::pipeline::tests::{now, pipeline, span};
use crate::pipeline::{Pipeline, Source};
use crate::store::testing::Databases;
use crate::store::{Db, Flusher, SliStore, StorageMetrics};

const STREAM: &str = "SPANS";

/// Before the crash: trace 6 (complete) and trace 7 (no root yet) close; then batch 1.
fn early() -> Vec<slis::Span> {
    vec![
        span(6, 1, None, "frontend", -60_000, 10),
        span(6, 2, Some(1), "payment", -60_000, 5),
        span(7, 2, Some(1), "payment", -60_000, 5),
    ]
}

fn batch1() -> Vec<slis::Span> {
    let mut error_root = span(3, 1, None, "frontend", 0, 20);
    error_root.status = StatusCode::Error;
    let mut failing = span(3, 2, Some(1), "payment", 0, 10);
    failing.status = StatusCode::Error;
    let mut remote = span(5, 1, Some(9), "frontend", 0, 40);
    remote.kind = SpanKind::Server;
    vec![
        span(1, 1, None, "frontend", 0, 50), // complete
        span(1, 2, Some(1), "payment", 0, 20),
        span(2, 1, None, "frontend", 0, 60), // payment comes in batch 2
        error_root,
        failing,
        span(4, 1, None, "frontend", 0, 300), // slow: payment is its critical path
        span(4, 2, Some(1), "payment", 0, 250),
        remote, // root whose parent is outside the trace
        span(5, 2, Some(1), "payment", 0, 10),
    ]
}

fn batch2() -> Vec<slis::Span> {
    vec![
        span(2, 2, Some(1), "payment", 500, 30),
        span(6, 3, Some(1), "payment", 500, 5), // late: trace 6 closed with its root
        span(7, 1, None, "frontend", 500, 70),  // late root of trace 7, closed without one
        span(8, 1, None, "frontend", 500, 80),  // a new trace, never completed
    ]
}

fn closed(m: &EngineMetrics) -> Vec<u64> {
    ["complete", "incomplete", "no_journey", "no_root"]
        .iter()
        .map(|&result| m.traces_closed.get_or_create(&ResultLabels { result }).get())
        .collect()
}

fn totals(p: &Pipeline) -> Vec<(String, u64, u64)> {
    p.slo_totals().map(|(n, _, c)| (n.to_owned(), c.total, c.bad)).collect()
}

fn blame(p: &Pipeline) -> Vec<Vec<Blame>> {
    (0..3).map(|slo| p.contributors(slo, now(-3_600), 10)).collect()
}

#[tokio::test]
async fn a_restored_partition_counts_judges_and_blames_like_one_that_never_stopped() {
    // The reference never stops.
    let (mut reference, rm) = pipeline(1_000);
    reference.ingest(Source::JetStream, early(), now(-60)).unwrap();
    reference.tick(now(-20));
    reference.ingest(Source::JetStream, batch1(), now(0)).unwrap();
    reference.ingest(Source::JetStream, batch2(), now(1)).unwrap();
    reference.tick(now(100));
    let want = (totals(&reference), closed(&rm), rm.late_spans.get(), blame(&reference));
    assert_eq!(
        want.1,
        [6, 1, 0, 1],
        "1, 3, 4, 5, 6, 2 complete; 8 not; 7 closed without a root"
    );
    assert!(want.3.iter().any(|b| !b.is_empty()), "something is blamed");

    let dbs = Databases::new("exactly_once").await;
    for url in dbs.urls() {
        let db = Db::open(&url).await.unwrap();
        db.migrate().await.unwrap();
        let store = SliStore::new(&db, "");

        // Before the crash: messages 1 (early) and 2 (batch 1) ingested and flushed.
        let (mut a, am) = pipeline(1_000);
        a.enable_stream(STREAM, 1);
        assert_eq!(store.claim_partition(STREAM, 0).await.unwrap(), (0, None));
        a.open_partition(0, 0, None, now(-61)).unwrap();
        a.ingest(Source::JetStream, early(), now(-60)).unwrap();
        a.advance_position(0, 1);
        a.tick(now(-20));
        a.ingest(Source::JetStream, batch1(), now(0)).unwrap();
        a.advance_position(0, 2);
        let a = Arc::new(Mutex::new(a));
        let mut flusher = Flusher::new(store.clone(), a.clone(), Arc::new(StorageMetrics::default()));
        let committed = flusher.committed();
        let written = flusher.flush().await.unwrap();
        assert_eq!(written.checkpoints, 1, "{url}");
        assert_eq!(committed.borrow().get(&0), Some(&2), "{url}");
        let before_crash = closed(&am);
        drop((flusher, a));

        // After the crash: the windows and the partition come back, message 3 is consumed.
        let (mut b, bm) = pipeline(1_000);
        store.restore(&mut b, now(2)).await.unwrap();
        b.enable_stream(STREAM, 1);
        let (seq, snapshot) = store.claim_partition(STREAM, 0).await.unwrap();
        assert_eq!(seq, 2, "{url}");
        let restored = b.open_partition(0, seq, snapshot.as_deref(), now(2)).unwrap();
        assert_eq!(
            (restored.open_traces, restored.spans, restored.closed_ids),
            (5, 9, 2),
            "{url}"
        );
        b.ingest(Source::JetStream, batch2(), now(3)).unwrap();
        b.tick(now(100));
        let after: Vec<u64> = closed(&bm).iter().zip(&before_crash).map(|(x, y)| x + y).collect();
        let got = (totals(&b), after, am.late_spans.get() + bm.late_spans.get(), blame(&b));
        assert_eq!(got, want, "{url}");
    }
    dbs.drop().await;
}

#[test]
fn a_snapshot_round_trips_byte_for_byte_and_refuses_damage() {
    use crate::assembler::SnapshotWriter;
    let (mut p, _) = pipeline(1_000);
    p.enable_stream(STREAM, 1);
    p.open_partition(0, 0, None, now(-61)).unwrap();
    p.ingest(Source::JetStream, early(), now(-60)).unwrap();
    p.tick(now(-20));
    p.ingest(Source::JetStream, batch1(), now(0)).unwrap();
    let data = p.drain_changes().stream.unwrap().partitions.remove(0).2;

    let (mut q, _) = pipeline(1_000);
    q.enable_stream(STREAM, 1);
    q.open_partition(0, 0, Some(&data), now(5)).unwrap();
    let again = q.drain_changes().stream.unwrap().partitions.remove(0).2;
    assert_eq!(again, data);
    assert_eq!((q.buffered_spans(), p.buffered_spans()), (9, 9));

    // A journey the config no longer has reads as none; damage is an error and restores nothing.
    let mut empty = crate::assembler::Assembler::new(std::time::Duration::from_secs(30), 100);
    let names: Vec<String> = vec!["other".into()];
    let r = empty.restore(&data, &names, now(5)).unwrap();
    assert_eq!((r.open_traces, r.closed_ids), (5, 2));
    for cut in [1, 10, data.len() / 2, data.len() - 1] {
        let mut fresh = crate::assembler::Assembler::new(std::time::Duration::from_secs(30), 100);
        assert!(fresh.restore(&data[..cut], &names, now(5)).is_err(), "cut at {cut}");
        assert_eq!(fresh.open_traces(), 0);
    }
    let mut wrong = data.clone();
    wrong[0] = 9;
    let mut fresh = crate::assembler::Assembler::new(std::time::Duration::from_secs(30), 100);
    assert_eq!(
        fresh.restore(&wrong, &names, now(5)).unwrap_err(),
        "unknown open-trace snapshot format 9"
    );
    let _ = SnapshotWriter::new(&names);
}
