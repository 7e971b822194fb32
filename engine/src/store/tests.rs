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

/// (start, width) of a table's rows, oldest first.
async fn rows(db: &Db, table: &str) -> Vec<(i64, i64)> {
    let start = if table == "sli_count_blocks" {
        "block_ms"
    } else {
        "start_ms"
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {start}, width_ms FROM {table} ORDER BY {start}"
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
        let mut flusher = Flusher::new(SliStore::new(&db, ""), p.clone(), metrics.clone());
        let w = flusher.flush().await.unwrap();
        // 51 minutes (19:36 to 20:26 UTC): two hour blocks of counts, 51 minute histograms.
        assert_eq!((w.count_rows, w.latency_rows), (2, 51), "{url}: {w:?}");
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

        let store = SliStore::new(&db, "");
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
        // The traffic's minutes (19:36 to 20:26 UTC) were two hour blocks; their hours are now
        // in one day block.
        let counts = rows(&db, "sli_count_blocks").await;
        let day = T0 * 1_000 / 86_400_000 * 86_400_000;
        assert_eq!(counts, [(day, 86_400_000)], "{url}");
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
        db.close().await;
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
        pending.merge(p.drain_changes().journeys, &names, &series);
        let waiting = pending.len();
        let closed = Db::open(&url).await.unwrap();
        closed.close().await;
        let err = SliStore::new(&closed, "").write(&pending, None).await.unwrap_err();
        assert_eq!(err.what, "begin a flush", "{url}: {err}");
        assert_eq!(pending.len(), waiting, "{url}: a failed write keeps its rows");

        traffic(&mut p, 1); // the same minutes change again: their rows are replaced, not added
        pending.merge(p.drain_changes().journeys, &names, &series);
        assert_eq!(pending.len(), waiting, "{url}");
        let store = SliStore::new(&db, "");
        store.write(&pending, None).await.unwrap();

        let at = now(60);
        let mut restored = pipeline(10_000).0;
        store.restore(&mut restored, at).await.unwrap();
        assert_eq!(view(&restored, at), view(&p, at), "{url}");
        db.close().await;
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
        let mut flusher = Flusher::new(SliStore::new(&db, ""), p.clone(), Arc::default());
        flusher.flush().await.unwrap();
        // A row of a journey the config no longer has, and one that does not decode, in each
        // layout.
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
        for (journey, data) in [("gone", vec![1u8]), ("checkout", vec![2u8])] {
            sqlx::query(
                "INSERT INTO sli_count_blocks (instance, journey, block_ms, width_ms, data) \
                 VALUES ('', $1, 0, 86400000, $2)",
            )
            .bind(journey)
            .bind(data)
            .execute(&db.pool)
            .await
            .unwrap();
        }
        let mut restored = pipeline(10_000).0;
        let r = SliStore::new(&db, "").restore(&mut restored, now(60)).await.unwrap();
        assert_eq!(r.unknown_journey_rows, 2, "{url}");
        assert_eq!(
            r.corrupt,
            [
                "sli_count_blocks checkout at 1970-01-01T00:00:00.000Z: unknown block format 2".to_owned(),
                format!(
                    "sli_counts checkout at {}: counts are not {{\"series\": [total, bad]}}: \
                     invalid type: sequence, expected a map at line 1 column 0",
                    slis::Timestamp::from_unix_secs(T0 - 600)
                ),
            ],
            "{url}"
        );

        // Past the 7-day period and the one-day margin every bucket is evicted, then deleted.
        p.lock().unwrap().tick(now(9 * 86_400));
        let w = flusher.flush().await.unwrap();
        assert!(w.expired > 0, "{url}: {w:?}");
        for table in ["sli_count_blocks", "sli_counts", "sli_latency"] {
            let left = rows(&db, table).await;
            assert_eq!(
                left,
                [],
                "{url} {table}: every row ends before the horizon, strangers' too"
            );
        }
        db.close().await;
    }
    dbs.drop().await;
}

/// `{"<series>": [total, bad], …}`: a count row as a 0002 binary wrote it.
fn json_counts(series: &[String], counts: &[Counts]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = series
        .iter()
        .zip(counts)
        .map(|(k, c)| (k.clone(), serde_json::json!([c.total, c.bad])))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Issue #4: a database a 0002 binary wrote (one JSON row per count bucket) is upgraded with its
/// data intact: restored as it is, then moved into blocks by the first flush.
#[tokio::test]
async fn count_rows_of_the_0002_layout_restore_and_move_into_blocks_on_both_backends() {
    let dbs = Databases::new("sli_legacy").await;
    for url in dbs.urls() {
        let db = Db::open(&url).await.unwrap();
        let old = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(db.migrator().migrations[..2].to_vec()),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        old.run(&db.pool).await.unwrap();
        let (mut p, _) = pipeline(10_000);
        traffic(&mut p, 0);
        p.tick(now(31));
        let drained = p.drain_changes();
        let mut buckets = 0;
        for (j, changes) in &drained.journeys {
            for b in &changes.counts {
                sqlx::query(
                    "INSERT INTO sli_counts (instance, journey, start_ms, width_ms, counts) VALUES ('', 'checkout', $1, $2, $3)",
                )
                .bind(b.start.unix_millis())
                .bind(b.width.as_millis() as i64)
                .bind(json_counts(p.series(*j), &b.counts))
                .execute(&db.pool)
                .await
                .unwrap();
                buckets += 1;
            }
            for b in &changes.latencies {
                sqlx::query(
                    "INSERT INTO sli_latency (instance, journey, start_ms, width_ms, histogram) VALUES ('', 'checkout', $1, $2, $3)",
                )
                .bind(b.start.unix_millis())
                .bind(b.width.as_millis() as i64)
                .bind(b.encoded.clone())
                .execute(&db.pool)
                .await
                .unwrap();
            }
        }
        assert_eq!(buckets, 51, "{url}: the traffic touched 51 minutes");
        assert_eq!(
            db.migrate().await.unwrap(),
            ["3 sli count blocks", "4 alerting", "5 jetstream"],
            "{url}"
        );

        let at = now(60);
        let want = view(&p, at);
        let store = SliStore::new(&db, "");
        let (mut restored, _) = pipeline(10_000);
        let r = store.restore(&mut restored, at).await.unwrap();
        assert_eq!(
            (r.legacy_rows, r.count_blocks, r.count_rows, r.corrupt.len()),
            (51, 0, 51, 0),
            "{url}: {r:?}"
        );
        assert_eq!(view(&restored, at), want, "{url}: 0002 rows restore as they are");

        // The first flush writes every bucket as a block and deletes the old rows with it.
        let restored = Arc::new(Mutex::new(restored));
        let mut flusher = Flusher::new(store.clone(), restored.clone(), Arc::default());
        let w = flusher.flush().await.unwrap();
        assert_eq!((w.moved, w.count_rows), (51, 2), "{url}: {w:?}");
        assert_eq!(rows(&db, "sli_counts").await, [], "{url}");
        let hour = T0 / 3_600 * 3_600_000;
        assert_eq!(
            rows(&db, "sli_count_blocks").await,
            [(hour - 3_600_000, 3_600_000), (hour, 3_600_000)],
            "{url}: the minutes of 19:00 and 20:00 UTC"
        );
        assert_eq!(flusher.flush().await.unwrap().moved, 0, "{url}: moved once");

        let (mut again, _) = pipeline(10_000);
        let r = SliStore::new(&db, "").restore(&mut again, at).await.unwrap();
        assert_eq!(
            (r.legacy_rows, r.count_blocks, r.count_rows),
            (0, 2, 51),
            "{url}: {r:?}"
        );
        assert_eq!(view(&again, at), want, "{url}: the blocks hold the same counts");
        db.close().await;
    }
    dbs.drop().await;
}

/// Issue 7: instances "a" and "b" flush into one database; each restores only its own rows, and
/// each reads the other's into windows that, merged with its own, answer every window like one
/// pipeline that took both instances' traffic.
#[tokio::test]
async fn instances_restore_their_own_rows_and_read_the_others() {
    let dbs = Databases::new("sli_instances").await;
    for url in dbs.urls() {
        let db = Db::open(&url).await.unwrap();
        db.migrate().await.unwrap();
        let (mut a, _) = pipeline(10_000);
        let (mut b, _) = pipeline(10_000);
        let (mut both, _) = pipeline(10_000);
        traffic(&mut a, 0);
        traffic(&mut b, 1);
        traffic(&mut both, 0);
        traffic(&mut both, 1);
        for p in [&mut a, &mut b, &mut both] {
            p.tick(now(31));
        }
        let store_a = SliStore::new(&db, "a");
        let store_b = SliStore::new(&db, "b");
        assert!(
            store_a.other_instances().await.unwrap().is_empty(),
            "{url}: an empty database"
        );
        let a = Arc::new(Mutex::new(a));
        Flusher::new(store_a.clone(), a.clone(), Arc::new(StorageMetrics::default()))
            .flush()
            .await
            .unwrap();
        assert!(
            store_a.other_instances().await.unwrap().is_empty(),
            "{url}: only a's rows"
        );
        assert_eq!(
            store_b.other_instances().await.unwrap(),
            ["a"],
            "{url}: b sees a's rows"
        );
        let b = Arc::new(Mutex::new(b));
        Flusher::new(store_b.clone(), b.clone(), Arc::new(StorageMetrics::default()))
            .flush()
            .await
            .unwrap();
        let at = now(60);

        // Each restores its own rows only.
        let (mut restored_a, _) = pipeline(10_000);
        store_a.restore(&mut restored_a, at).await.unwrap();
        assert_eq!(view(&restored_a, at), view(&a.lock().unwrap(), at), "{url}");

        // a reads b's rows; merged, they answer like one pipeline of both.
        assert_eq!(store_a.other_instances().await.unwrap(), ["b"], "{url}");
        let (mut others, names, series) = restored_a.others_layout();
        let read = store_a
            .read_instance("b", &mut others, &names, series, at)
            .await
            .unwrap();
        assert_eq!((read.count_blocks, read.corrupt.len()), (2, 0), "{url}: {read:?}");
        assert!(!restored_a.has_others());
        assert!(restored_a.set_others(vec![others]));
        assert!(restored_a.has_others());
        let (m, w) = (restored_a.merged(0), &both.windows()[0]);
        for window in [Duration::from_secs(300), HOUR, 6 * HOUR, 7 * 24 * HOUR] {
            let window = Window::Last(window);
            for slot in 0..w.slots() {
                assert_eq!(
                    m.counts(slot, window, at),
                    w.counts(slot, window, at),
                    "{url} {window:?}"
                );
                assert_eq!(m.lifetime(slot), w.lifetime(slot), "{url}");
            }
            assert_eq!(m.percentiles(window, at), w.percentiles(window, at), "{url} {window:?}");
        }
        assert_eq!(
            restored_a.merged_root_counts().collect::<Vec<_>>(),
            both.root_counts().collect::<Vec<_>>()
        );
        // Its own windows are untouched: what a writes stays a's.
        assert_eq!(view(&restored_a, at), view(&a.lock().unwrap(), at), "{url}");
        // Windows of another layout are refused; none clears.
        assert!(!restored_a.set_others(vec![vec![slis::window::JourneyWindows::new(vec![], HOUR)]]));
        assert!(restored_a.set_others(Vec::new()));
        assert!(!restored_a.has_others());
        db.close().await;
    }
    dbs.drop().await;
}
