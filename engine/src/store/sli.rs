//! SLI buckets in the database: `sli_counts` (exact weighted counts, one JSON entry per series)
//! and `sli_latency` (HDR histograms), one row per journey and bucket, as the windows hold them.
//!
//! A flush writes the *whole* content of every changed bucket (see `slis::window::Changes`), so
//! writing a row twice is harmless: a failed flush keeps its rows in [`Pending`], the next drain
//! replaces the ones that changed again, and the retry writes the lot. A row wider than a minute
//! (a coarsened bucket) deletes the finer rows inside its span in the same transaction, so the
//! stored buckets coarsen as the memory does. Restoring adds every row back through the windows'
//! own restore, which merges rows that the tiers have made coarser since they were written.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use futures_util::TryStreamExt;
use slis::Timestamp;
use slis::window::{Changes, Counts, Recorded};
use sqlx::{AnyPool, AssertSqlSafe, Row as _};

use crate::pipeline::Pipeline;

const MINUTE_MS: i64 = 60_000;
/// Rows per INSERT statement: 5 parameters each, far below both backends' parameter limits.
const ROWS_PER_STATEMENT: usize = 500;

/// Rows waiting to be written: the newest content of every changed bucket, kept across failed
/// flushes. Bounded by the buckets the windows hold, however long the database is away.
#[derive(Debug, Default)]
pub struct Pending {
    counts: BTreeMap<(usize, i64), Row<String>>,
    latencies: BTreeMap<(usize, i64), Row<Vec<u8>>>,
}

#[derive(Debug)]
struct Row<T> {
    width_ms: i64,
    value: T,
}

impl Pending {
    /// Adds drained changes (journey index, changes); `series[j]` names journey `j`'s slots.
    pub fn merge(&mut self, drained: Vec<(usize, Changes)>, series: &[Vec<String>]) {
        for (j, changes) in drained {
            for b in changes.counts {
                let value = encode_counts(&series[j], &b.counts);
                put(&mut self.counts, j, b.start, b.width, value);
            }
            for b in changes.latencies {
                put(&mut self.latencies, j, b.start, b.width, b.encoded);
            }
        }
    }

    /// Rows waiting.
    pub fn len(&self) -> usize {
        self.counts.len() + self.latencies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.counts.clear();
        self.latencies.clear();
    }
}

/// Inserts a row, dropping the waiting rows a coarser one replaces.
fn put<T>(rows: &mut BTreeMap<(usize, i64), Row<T>>, journey: usize, start: Timestamp, width: Duration, value: T) {
    let start_ms = start.unix_millis();
    let width_ms = i64::try_from(width.as_millis()).unwrap_or(i64::MAX);
    if width_ms > MINUTE_MS {
        let inside: Vec<_> = rows
            .range((journey, start_ms)..(journey, start_ms.saturating_add(width_ms)))
            .map(|(k, _)| *k)
            .collect();
        for k in inside {
            rows.remove(&k);
        }
    }
    rows.insert((journey, start_ms), Row { width_ms, value });
}

/// `{"<series>": [total, bad], …}`, the series in slot order.
pub fn encode_counts(series: &[String], counts: &[Counts]) -> String {
    let mut s = String::with_capacity(24 * counts.len() + 2);
    s.push('{');
    for (i, (key, c)) in series.iter().zip(counts).enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&serde_json::to_string(key).expect("a string always encodes"));
        let _ = write!(s, ":[{},{}]", c.total, c.bad);
    }
    s.push('}');
    s
}

/// Counts by slot from a stored JSON object; series the journey no longer has are counted in
/// `unknown` and skipped.
pub fn decode_counts(text: &str, series: &[String], unknown: &mut u64) -> Result<Vec<Counts>, String> {
    let bad_json = |e: serde_json::Error| format!("counts are not {{\"series\": [total, bad]}}: {e}");
    // Keys borrow from the text unless they hold escapes.
    let map: Vec<(std::borrow::Cow<'_, str>, (u64, u64))> =
        match serde_json::from_str::<BTreeMap<&str, (u64, u64)>>(text) {
            Ok(m) => m.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            Err(_) => serde_json::from_str::<BTreeMap<String, (u64, u64)>>(text)
                .map_err(bad_json)?
                .into_iter()
                .map(|(k, v)| (k.into(), v))
                .collect(),
        };
    let mut counts = vec![Counts::default(); series.len()];
    for (key, (total, bad)) in map {
        match series.iter().position(|s| *s == key) {
            Some(slot) => counts[slot] = Counts { total, bad },
            None => *unknown += 1,
        }
    }
    Ok(counts)
}

/// What one write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub count_rows: u64,
    pub latency_rows: u64,
    /// Finer rows replaced by coarser ones.
    pub replaced: u64,
    /// Rows deleted past the retention.
    pub expired: u64,
}

/// What a restore found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub count_rows: u64,
    pub latency_rows: u64,
    /// Rows of journeys the config no longer has (left in the database).
    pub unknown_journey_rows: u64,
    /// Series entries of SLOs the config no longer has, or whose SLI changed.
    pub unknown_series: u64,
    /// Rows older than the retention.
    pub too_old_rows: u64,
    /// Rows that do not decode, with why (skipped; the rest is restored).
    pub corrupt: Vec<String>,
    /// Time spent reading and restoring the counts, then the histograms.
    pub counts_elapsed: Duration,
    pub latency_elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct StoreError {
    pub what: &'static str,
    #[source]
    pub source: sqlx::Error,
}

fn err(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError { what, source }
}

/// The SLI tables of one engine instance.
#[derive(Debug, Clone)]
pub struct SliStore {
    pool: AnyPool,
    instance: String,
}

impl SliStore {
    pub fn new(pool: AnyPool, instance: impl Into<String>) -> Self {
        SliStore {
            pool,
            instance: instance.into(),
        }
    }

    /// Writes every waiting row in one transaction, and deletes rows ending at or before
    /// `expire_before` when given. `journeys[j]` is journey `j`'s name.
    pub async fn write(
        &self,
        pending: &Pending,
        journeys: &[String],
        expire_before: Option<Timestamp>,
    ) -> Result<Written, StoreError> {
        let mut tx = self.pool.begin().await.map_err(err("begin a flush"))?;
        let mut written = Written::default();
        for (table, coarse) in [
            ("sli_counts", coarse(&pending.counts)),
            ("sli_latency", coarse(&pending.latencies)),
        ] {
            let sql =
                format!("DELETE FROM {table} WHERE instance = $1 AND journey = $2 AND start_ms > $3 AND start_ms < $4");
            for (j, start_ms, width_ms) in coarse {
                written.replaced += sqlx::query(AssertSqlSafe(sql.clone()))
                    .bind(&self.instance)
                    .bind(&journeys[j])
                    .bind(start_ms)
                    .bind(start_ms.saturating_add(width_ms))
                    .execute(&mut *tx)
                    .await
                    .map_err(err("delete rows a coarser bucket replaces"))?
                    .rows_affected();
            }
        }

        written.count_rows = self
            .upsert(&mut tx, "sli_counts", "counts", &pending.counts, journeys)
            .await
            .map_err(err("write count buckets"))?;
        written.latency_rows = self
            .upsert(&mut tx, "sli_latency", "histogram", &pending.latencies, journeys)
            .await
            .map_err(err("write latency buckets"))?;

        if let Some(horizon) = expire_before {
            for table in ["sli_counts", "sli_latency"] {
                written.expired += sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE instance = $1 AND start_ms + width_ms <= $2"
                )))
                .bind(&self.instance)
                .bind(horizon.unix_millis())
                .execute(&mut *tx)
                .await
                .map_err(err("delete buckets past the retention"))?
                .rows_affected();
            }
        }
        tx.commit().await.map_err(err("commit a flush"))?;
        Ok(written)
    }

    /// Upserts `rows` into `table` (`column` holding the value), in multi-row statements.
    async fn upsert<T>(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        table: &str,
        column: &str,
        rows: &BTreeMap<(usize, i64), Row<T>>,
        journeys: &[String],
    ) -> Result<u64, sqlx::Error>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Sync,
    {
        let rows: Vec<_> = rows.iter().collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::query(AssertSqlSafe(upsert(table, column, chunk.len())));
            for ((j, start_ms), row) in chunk {
                q = q
                    .bind(&self.instance)
                    .bind(&journeys[*j])
                    .bind(*start_ms)
                    .bind(row.width_ms)
                    .bind(&row.value);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(rows.len() as u64)
    }

    /// Rebuilds `pipeline`'s windows from this instance's rows, as of `now`.
    pub async fn restore(&self, pipeline: &mut Pipeline, now: Timestamp) -> Result<Restored, StoreError> {
        let index: HashMap<String, usize> = pipeline
            .journeys()
            .0
            .iter()
            .enumerate()
            .map(|(i, j)| (j.name.clone(), i))
            .collect();
        let mut out = Restored::default();
        pipeline.begin_restore(now);
        let started = std::time::Instant::now();

        let mut rows = sqlx::query(
            "SELECT journey, start_ms, width_ms, counts FROM sli_counts WHERE instance = $1 ORDER BY journey, start_ms",
        )
        .bind(&self.instance)
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await.map_err(err("read count buckets"))? {
            let journey: String = row.try_get(0).map_err(err("read count buckets"))?;
            let (start_ms, width_ms): (i64, i64) = (
                row.try_get(1).map_err(err("read count buckets"))?,
                row.try_get(2).map_err(err("read count buckets"))?,
            );
            let text: String = row.try_get(3).map_err(err("read count buckets"))?;
            let Some(&j) = index.get(&journey) else {
                out.unknown_journey_rows += 1;
                continue;
            };
            let counts = match decode_counts(&text, pipeline.series(j), &mut out.unknown_series) {
                Ok(c) => c,
                Err(e) => {
                    out.corrupt
                        .push(format!("sli_counts {journey} at {}: {e}", ms(start_ms)));
                    continue;
                }
            };
            match pipeline.restore_counts(j, ms(start_ms), millis(width_ms), &counts) {
                Recorded::Counted => out.count_rows += 1,
                Recorded::TooOld => out.too_old_rows += 1,
            }
        }
        drop(rows);
        out.counts_elapsed = started.elapsed();

        let started = std::time::Instant::now();
        let mut rows = sqlx::query(
            "SELECT journey, start_ms, width_ms, histogram FROM sli_latency WHERE instance = $1 \
             ORDER BY journey, start_ms",
        )
        .bind(&self.instance)
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await.map_err(err("read latency buckets"))? {
            let journey: String = row.try_get(0).map_err(err("read latency buckets"))?;
            let (start_ms, width_ms): (i64, i64) = (
                row.try_get(1).map_err(err("read latency buckets"))?,
                row.try_get(2).map_err(err("read latency buckets"))?,
            );
            let encoded: Vec<u8> = row.try_get(3).map_err(err("read latency buckets"))?;
            let Some(&j) = index.get(&journey) else {
                out.unknown_journey_rows += 1;
                continue;
            };
            match pipeline.restore_latencies(j, ms(start_ms), millis(width_ms), &encoded) {
                Ok(Recorded::Counted) => out.latency_rows += 1,
                Ok(Recorded::TooOld) => out.too_old_rows += 1,
                Err(e) => out.corrupt.push(format!("sli_latency {journey}: {e}")),
            }
        }
        drop(rows);
        pipeline.finish_restore(now);
        out.latency_elapsed = started.elapsed();
        Ok(out)
    }
}

/// (journey, start, width) of the rows wider than a minute.
fn coarse<T>(rows: &BTreeMap<(usize, i64), Row<T>>) -> Vec<(usize, i64, i64)> {
    rows.iter()
        .filter(|(_, r)| r.width_ms > MINUTE_MS)
        .map(|(&(j, s), r)| (j, s, r.width_ms))
        .collect()
}

/// A multi-row upsert of `rows` rows into `table` (instance, journey, start_ms, width_ms, `value`).
fn upsert(table: &str, value: &str, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} (instance, journey, start_ms, width_ms, {value}) VALUES ");
    for r in 0..rows {
        let p = r * 5;
        if r > 0 {
            sql.push(',');
        }
        let _ = write!(sql, "(${},${},${},${},${})", p + 1, p + 2, p + 3, p + 4, p + 5);
    }
    let _ = write!(
        sql,
        " ON CONFLICT (instance, journey, start_ms) DO UPDATE SET width_ms = excluded.width_ms, \
         {value} = excluded.{value}"
    );
    sql
}

fn ms(t: i64) -> Timestamp {
    Timestamp::from_unix_millis(t)
}

fn millis(d: i64) -> Duration {
    Duration::from_millis(d.max(0) as u64)
}
