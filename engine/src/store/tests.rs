//! The store against both real backends: a SQLite file and a fresh database on PostgreSQL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use slis::window::{Counts, Window};
use sqlx::Row as _;

use super::Db;
use super::flusher::{Flusher, StorageMetrics};
use super::sli::{Pending, SliStore};
use super::testing::Databases;
use crate::pipeline::tests::{T0, now, pipeline, span};
use crate::pipeline::{Pipeline, Source};

const HOUR: Duration = Duration::from_secs(3_600);

/// Roots every 25 s over the last 50 minutes before `now(0)`, every fifth slow, every seventh an
/// error, each trace complete (frontend + payment) except every third.
fn traffic(p: &mut Pipeline, round: u8) {
    let mut batch = Vec::new();
    for i in 0..120u8 {
        let trace = i.wrapping_add(round.wrapping_mul(120));
        let end_ms = -50 * 60_000 + i64::from(i) * 25_000 + i64::from(round) * 13;
        let slow = if i % 5 == 0 { 450 } else { 40 + i64::from(i) };
        let mut root = span(trace, 1, None, "frontend", end_ms, slow);
        if i % 7 == 0 {
            root.status = slis::StatusCode::Error;
        }
        batch.push(root);
        if i % 3 != 0 {
            batch.push(span(trace, 2, Some(1), "payment", end_ms, 5));
        }
    }
    p.ingest(Source::OtlpHttp, batch, now(0)).unwrap();
}

/// Everything a reader sees of the pipeline at `at`: lifetime counts, counts over several windows,
/// percentiles.
fn view(p: &Pipeline, at: slis::Timestamp) -> Vec<String> {
    let w = &p.windows()[0];
    let mut out: Vec<String> = p.slo_totals().map(|(n, _, c)| format!("{n} {c:?}")).collect();
    for window in [Duration::from_secs(300), HOUR, 6 * HOUR, 7 * 24 * HOUR] {
        for slot in 0..w.slots() {
            out.push(format!(
                "{slot} {window:?} {:?}",
                w.counts(slot, Window::Last(window), at)
            ));
        }
        out.push(format!("{window:?} {:?}", w.percentiles(Window::Last(window), at)));
    }
    out
}

async fn rows(db: &Db, table: &str) -> Vec<(i64, i64)> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT start_ms, width_ms FROM {table} ORDER BY start_ms"
    )))
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test]
async fn flushed_windows_restore_equal_and_coarsen_like_memory_on_both_backends() {
    let dbs = Databases::new("sli_roundtrip").await;
    for url in dbs.urls() {
        let db = Db::open(&url).await.unwrap();
        db.migrate().await.unwrap();
        let (mut p, _) = pipeline(10_000);
        traffic(&mut p, 0);
        p.tick(now(31)); // every trace idle: completeness judged
        let p = Arc::new(Mutex::new(p));
        let metrics = Arc::new(StorageMetrics::default());
        let mut flusher = Flusher::new(SliStore::new(db.pool.clone(), ""), p.clone(), metrics.clone());
        let w = flusher.flush().await.unwrap();
        assert!(w.count_rows >= 50 && w.latency_rows >= 50, "{url}: {w:?}");
        assert!(p.lock().unwrap().unflushed().all(|c| c == Counts::default()));

        // More traffic: unflushed counts say exactly what a flush would add.
        {
            let mut p = p.lock().unwrap();
            let before: Vec<_> = p.slo_totals().map(|(_, _, c)| c).collect();
            traffic(&mut p, 1);
            let after: Vec<_> = p.slo_totals().map(|(_, _, c)| c).collect();
            let unflushed: Vec<_> = p.unflushed().collect();
            for ((b, a), u) in before.iter().zip(&after).zip(&unflushed) {
                assert_eq!(u.total, a.total - b.total, "{url}");
                assert_eq!(u.bad, a.bad - b.bad, "{url}");
            }
            assert_eq!(unflushed[0].total, 120, "{url}: the error SLO counted 120 more roots");
        }
        flusher.flush().await.unwrap();
        let at = now(60);
        let want = view(&p.lock().unwrap(), at);

        let store = SliStore::new(db.pool.clone(), "");
        let (mut restored, _) = pipeline(10_000);
        let r = store.restore(&mut restored, at).await.unwrap();
        assert_eq!(
            (r.unknown_journey_rows, r.too_old_rows, r.corrupt.len()),
            (0, 0, 0),
            "{url}: {r:?}"
        );
        assert_eq!(view(&restored, at), want, "{url}: restored equals flushed");
        assert!(restored.unflushed().all(|c| c == Counts::default()));

        // Seven hours on, the minute rows of the traffic's hours become hour rows in the database.
        let later = now(7 * 3_600);
        p.lock().unwrap().tick(later);
        let w = flusher.flush().await.unwrap();
        assert!(w.replaced > 50, "{url}: minute rows replaced by hour rows: {w:?}");
        let counts = rows(&db, "sli_counts").await;
        assert!(counts.iter().all(|&(_, width)| width == 3_600_000), "{url}: {counts:?}");
        assert_eq!(counts.len(), 2, "{url}: 50 minutes across two hours");
        let hist = rows(&db, "sli_latency").await;
        assert!(hist.iter().all(|&(_, width)| width == 3_600_000), "{url}: {hist:?}");
        let mut again = pipeline(10_000).0;
        store.restore(&mut again, later).await.unwrap();
        assert_eq!(view(&again, later), view(&p.lock().unwrap(), later), "{url}");
        assert_eq!(
            again.slo_totals().map(|(_, _, c)| c).collect::<Vec<_>>()[0],
            Counts { total: 240, bad: 36 },
            "{url}: 2 × 120 roots, 2 × 18 errors"
        );
        db.pool.close().await;
    }
    dbs.drop().await;
}

#[tokio::test]
async fn rows_of_a_failed_write_wait_and_are_written_with_the_next() {
    let dbs = Databases::new("sli_retry").await;
    for url in dbs.urls() {
        let db = Db::open(&url).await.unwrap();
        db.migrate().await.unwrap();
        let (mut p, _) = pipeline(10_000);
        let series: Vec<Vec<String>> = vec![p.series(0).to_vec()];
        let names = vec!["checkout".to_owned()];
        let mut pending = Pending::default();

        traffic(&mut p, 0);
        pending.merge(p.drain_changes().journeys, &series);
        let waiting = pending.len();
        let closed = Db::open(&url).await.unwrap();
        closed.pool.close().await;
        let err = SliStore::new(closed.pool.clone(), "")
            .write(&pending, &names, None)
            .await
            .unwrap_err();
        assert_eq!(err.what, "begin a flush", "{url}: {err}");
        assert_eq!(pending.len(), waiting, "{url}: a failed write keeps its rows");

        traffic(&mut p, 1); // the same minutes change again: their rows are replaced, not added
        pending.merge(p.drain_changes().journeys, &series);
        assert_eq!(pending.len(), waiting, "{url}");
        let store = SliStore::new(db.pool.clone(), "");
        store.write(&pending, &names, None).await.unwrap();

        let at = now(60);
        let mut restored = pipeline(10_000).0;
        store.restore(&mut restored, at).await.unwrap();
        assert_eq!(view(&restored, at), view(&p, at), "{url}");
        db.pool.close().await;
    }
    dbs.drop().await;
}

#[tokio::test]
async fn retention_deletes_rows_the_windows_evicted_and_restore_skips_strangers() {
    let dbs = Databases::new("sli_retention").await;
    for url in dbs.urls() {
        let db = Db::open(&url).await.unwrap();
        db.migrate().await.unwrap();
        let (mut p, _) = pipeline(10_000);
        traffic(&mut p, 0);
        let p = Arc::new(Mutex::new(p));
        let mut flusher = Flusher::new(SliStore::new(db.pool.clone(), ""), p.clone(), Arc::default());
        flusher.flush().await.unwrap();
        // A row of a journey the config no longer has, and one that does not decode.
        for (journey, start, value) in [("gone", 0i64, "{}"), ("checkout", (T0 - 600) * 1_000, "[1,2]")] {
            sqlx::query(
                "INSERT INTO sli_counts (instance, journey, start_ms, width_ms, counts) VALUES ('', $1, $2, 60000, $3)",
            )
            .bind(journey)
            .bind(start)
            .bind(value)
            .execute(&db.pool)
            .await
            .unwrap();
        }
        let mut restored = pipeline(10_000).0;
        let r = SliStore::new(db.pool.clone(), "")
            .restore(&mut restored, now(60))
            .await
            .unwrap();
        assert_eq!(r.unknown_journey_rows, 1, "{url}");
        assert_eq!(r.corrupt.len(), 1, "{url}: {:?}", r.corrupt);
        assert!(r.corrupt[0].contains("checkout"), "{url}: {:?}", r.corrupt);

        // Past the 7-day period and the one-day margin every bucket is evicted, then deleted.
        p.lock().unwrap().tick(now(9 * 86_400));
        let w = flusher.flush().await.unwrap();
        assert!(w.expired > 0, "{url}: {w:?}");
        let left = rows(&db, "sli_counts").await;
        assert_eq!(left, [], "{url}: every row ends before the horizon, strangers' too");
        db.pool.close().await;
    }
    dbs.drop().await;
}
