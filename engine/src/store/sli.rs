//! SLI buckets in the database: `sli_count_blocks` (exact weighted counts, packed per journey
//! into hour and day blocks, see `block.rs`) and `sli_latency` (HDR histograms, one row per
//! journey and bucket, as the windows hold them). `sli_counts` holds counts in the 0002 layout
//! (one JSON row per bucket): a restore reads it too, and the first flush after moves its rows
//! into blocks.
//!
//! A flush writes the *whole* content of every changed block and histogram (see
//! `slis::window::Changes`), so writing a row twice is harmless: a failed flush keeps its rows in
//! [`Pending`], the next drain replaces the ones that changed again, and the retry writes the lot.
//! A coarser row (a day block of hour buckets, an hour histogram) deletes the finer rows it
//! replaces in the same transaction, so the stored buckets coarsen as the memory does. Restoring
//! adds every bucket back through the windows' own restore, which merges rows that the tiers
//! have made coarser since they were written.
//!
//! Flushes and restores go through sqlx's typed drivers (no Any conversion per value); a restore
//! reads the counts on one connection and task, the histograms on another, side by side.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::TryStreamExt;
use slis::Timestamp;
use slis::window::{Changes, CountBucket, Counts, JourneyWindows, Recorded, RestoreError};
use sqlx::{AssertSqlSafe, Row as _};

use super::block::{self, DAY_MS, HOUR_MS, MINUTE_MS};
use super::db::{Db, Typed};
use crate::pipeline::{Pipeline, StreamDrain};

/// Rows per INSERT statement: 5 parameters each, far below both backends' parameter limits.
const ROWS_PER_STATEMENT: usize = 500;

/// Rows waiting to be written: the newest content of every changed block and histogram, kept
/// across failed flushes. Bounded by the buckets the windows hold, however long the database is
/// away.
#[derive(Debug, Default)]
pub struct Pending {
    /// The journeys of the rows waiting, by name: rows are keyed by a position in it, not by the
    /// pipeline's journey index, which a config reload may change while rows wait.
    journeys: Vec<String>,
    /// By (journey, block width, block start).
    counts: BTreeMap<(usize, i64, i64), Block>,
    latencies: BTreeMap<(usize, i64), Row<Vec<u8>>>,
    /// The JetStream positions and open traces of the newest drain: written with the rows.
    pub stream: Option<StreamDrain>,
}

#[derive(Debug)]
struct Block {
    data: Vec<u8>,
    /// End of its newest bucket: a day block replaces the hour blocks before it.
    covers_to: i64,
}

#[derive(Debug)]
struct Row<T> {
    width_ms: i64,
    value: T,
}

impl Pending {
    /// Adds drained changes (journey index, changes, count buckets as whole blocks, see
    /// [`block::take_blocks`]); `journeys[j]` names journey `j` and `series[j]` its slots, as
    /// of the drain.
    pub fn merge(&mut self, drained: Vec<(usize, Changes)>, journeys: &[String], series: &[Vec<String>]) {
        for (drained_j, changes) in drained {
            let name = &journeys[drained_j];
            let j = match self.journeys.iter().position(|n| n == name) {
                Some(j) => j,
                None => {
                    self.journeys.push(name.clone());
                    self.journeys.len() - 1
                }
            };
            let mut blocks: BTreeMap<(i64, i64), Vec<&CountBucket>> = BTreeMap::new();
            for b in &changes.counts {
                let (start, width) = block::block_of(b.start.unix_millis(), millis_of(b.width));
                blocks.entry((width, start)).or_default().push(b);
            }
            for ((width, start), buckets) in blocks {
                let covers_to = buckets
                    .iter()
                    .map(|b| b.start.unix_millis() + millis_of(b.width))
                    .max()
                    .unwrap_or(start);
                if width == DAY_MS {
                    let replaced: Vec<_> = self
                        .counts
                        .range((j, HOUR_MS, start)..(j, HOUR_MS, covers_to))
                        .map(|(k, _)| *k)
                        .collect();
                    for k in replaced {
                        self.counts.remove(&k);
                    }
                }
                let data = block::encode(&series[drained_j], start, &buckets);
                self.counts.insert((j, width, start), Block { data, covers_to });
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
        self.journeys.clear();
        self.stream = None;
    }
}

/// Inserts a row, dropping the waiting rows a coarser one replaces.
fn put<T>(rows: &mut BTreeMap<(usize, i64), Row<T>>, journey: usize, start: Timestamp, width: Duration, value: T) {
    let start_ms = start.unix_millis();
    let width_ms = millis_of(width);
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

/// Counts by slot from a 0002 row (a JSON object `{"<series>": [total, bad], …}`); series the
/// journey no longer has are counted in `unknown` and skipped.
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
    /// Count blocks written.
    pub count_rows: u64,
    pub latency_rows: u64,
    /// Finer rows replaced by coarser ones.
    pub replaced: u64,
    /// Rows deleted past the retention.
    pub expired: u64,
    /// 0002 count rows deleted once their buckets were written as blocks.
    pub moved: u64,
    /// JetStream partitions whose checkpoint and open traces were written.
    pub checkpoints: u64,
    pub snapshot_bytes: u64,
}

/// What a restore found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Count buckets restored (from blocks and from 0002 rows).
    pub count_rows: u64,
    pub latency_rows: u64,
    /// Count blocks read.
    pub count_blocks: u64,
    /// Count rows of the 0002 layout read (moved into blocks by the next flush).
    pub legacy_rows: u64,
    /// Rows of journeys the config no longer has (left in the database).
    pub unknown_journey_rows: u64,
    /// Series entries of SLOs the config no longer has, or whose SLI changed.
    pub unknown_series: u64,
    /// Buckets older than the retention.
    pub too_old_rows: u64,
    /// Rows that do not decode, with why (skipped; the rest is restored).
    pub corrupt: Vec<String>,
    /// Since the restore began, until the counts and until the histograms were restored (they
    /// are read side by side, the counts applied last).
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

/// The failure of a flush whose JetStream partition another instance has claimed since: the
/// pending counts hold that partition's messages, which the new owner counts again from the
/// stored position, so they must never be stored (see [`super::Flusher::fenced`]).
pub const FENCED: &str = "partition taken over";

impl StoreError {
    /// Whether another instance owns one of the flushed partitions now.
    pub fn is_fenced(&self) -> bool {
        self.what == FENCED
    }
}

fn err(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError { what, source }
}

/// SQLite: multi-row `VALUES` upserts of [`ROWS_PER_STATEMENT`] rows.
macro_rules! upsert_values {
    ($tx:ident, $store:ident, $journeys:ident, $what:ident, $sql:ident, $rows:ident) => {
        for chunk in $rows.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::query(AssertSqlSafe(upsert_sql($sql, chunk.len())));
            for &(j, start, width, value) in chunk {
                q = q
                    .bind(&$store.instance)
                    .bind(&$journeys[j])
                    .bind(start)
                    .bind(width)
                    .bind(value);
            }
            q.execute(&mut *$tx).await.map_err(err($what))?;
        }
    };
}

/// PostgreSQL: one upsert of every row, its five columns bound as five arrays (`UNNEST`).
macro_rules! upsert_unnest {
    ($tx:ident, $store:ident, $journeys:ident, $what:ident, $sql:ident, $rows:ident) => {
        if !$rows.is_empty() {
            let (head, conflict) = $sql;
            let sql = format!(
                "{} SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bytea[]) {}",
                head.trim_end().trim_end_matches("VALUES"),
                conflict
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(vec![$store.instance.as_str(); $rows.len()])
                .bind($rows.iter().map(|r| $journeys[r.0].as_str()).collect::<Vec<_>>())
                .bind($rows.iter().map(|r| r.1).collect::<Vec<i64>>())
                .bind($rows.iter().map(|r| r.2).collect::<Vec<i64>>())
                .bind($rows.iter().map(|r| r.3.as_slice()).collect::<Vec<&[u8]>>())
                .execute(&mut *$tx)
                .await
                .map_err(err($what))?;
        }
    };
}

/// The body of [`SliStore::write`] for one typed pool (the same statements on both backends).
macro_rules! write_in {
    ($pool:expr, $upsert:ident, $store:expr, $pending:expr, $journeys:expr, $expire_before:expr, $legacy:expr) => {{
        let (store, pending, journeys) = ($store, $pending, $journeys);
        let mut tx = $pool.begin().await.map_err(err("begin a flush"))?;
        let mut written = Written::default();
        // Day blocks replace the hour blocks of the hours they hold.
        for (&(j, width, start), b) in &pending.counts {
            if width != DAY_MS {
                continue;
            }
            written.replaced += sqlx::query(
                "DELETE FROM sli_count_blocks WHERE instance = $1 AND journey = $2 AND width_ms = $3 \
                 AND block_ms >= $4 AND block_ms < $5",
            )
            .bind(&store.instance)
            .bind(&journeys[j])
            .bind(HOUR_MS)
            .bind(start)
            .bind(b.covers_to)
            .execute(&mut *tx)
            .await
            .map_err(err("delete rows a coarser bucket replaces"))?
            .rows_affected();
        }
        for (j, start_ms, width_ms) in coarse(&pending.latencies) {
            written.replaced += sqlx::query(
                "DELETE FROM sli_latency WHERE instance = $1 AND journey = $2 AND start_ms > $3 AND start_ms < $4",
            )
            .bind(&store.instance)
            .bind(&journeys[j])
            .bind(start_ms)
            .bind(start_ms.saturating_add(width_ms))
            .execute(&mut *tx)
            .await
            .map_err(err("delete rows a coarser bucket replaces"))?
            .rows_affected();
        }
        for journey in $legacy {
            written.moved += sqlx::query("DELETE FROM sli_counts WHERE instance = $1 AND journey = $2")
                .bind(&store.instance)
                .bind(journey)
                .execute(&mut *tx)
                .await
                .map_err(err("delete count rows moved into blocks"))?
                .rows_affected();
        }

        let blocks: Vec<_> = pending
            .counts
            .iter()
            .map(|(&(j, width, start), b)| (j, start, width, &b.data))
            .collect();
        let latencies: Vec<_> = pending
            .latencies
            .iter()
            .map(|(&(j, start), r)| (j, start, r.width_ms, &r.value))
            .collect();
        for (what, sql, rows) in [
            ("write count blocks", BLOCKS_UPSERT, &blocks),
            ("write latency buckets", LATENCY_UPSERT, &latencies),
        ] {
            $upsert!(tx, store, journeys, what, sql, rows);
        }
        written.count_rows = blocks.len() as u64;
        written.latency_rows = latencies.len() as u64;

        if let Some(horizon) = $expire_before {
            for sql in [
                "DELETE FROM sli_count_blocks WHERE instance = $1 AND block_ms + width_ms <= $2",
                "DELETE FROM sli_counts WHERE instance = $1 AND start_ms + width_ms <= $2",
                "DELETE FROM sli_latency WHERE instance = $1 AND start_ms + width_ms <= $2",
            ] {
                written.expired += sqlx::query(sql)
                    .bind(&store.instance)
                    .bind(horizon.unix_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(err("delete buckets past the retention"))?
                    .rows_affected();
            }
        }
        if let Some(stream) = &pending.stream {
            let now_ms = crate::receiver::wall_clock().unix_millis();
            for (part, seq, snapshot) in &stream.partitions {
                let fenced = sqlx::query(
                    "INSERT INTO jetstream_checkpoints (stream, part, seq, instance, updated_ms) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (stream, part) DO UPDATE \
                     SET seq = excluded.seq, updated_ms = excluded.updated_ms \
                     WHERE jetstream_checkpoints.instance = excluded.instance",
                )
                .bind(&stream.stream)
                .bind(i64::from(*part))
                .bind(i64::try_from(*seq).unwrap_or(i64::MAX))
                .bind(&store.instance)
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err(err("write jetstream checkpoints"))?
                .rows_affected();
                if fenced == 0 {
                    return Err(StoreError {
                        what: FENCED,
                        source: sqlx::Error::Protocol(format!(
                            "partition {part} of stream {} is consumed by another instance now",
                            stream.stream
                        )),
                    });
                }
                sqlx::query(
                    "INSERT INTO jetstream_open_traces (stream, part, instance, updated_ms, data) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (stream, part) DO UPDATE \
                     SET instance = excluded.instance, updated_ms = excluded.updated_ms, data = excluded.data",
                )
                .bind(&stream.stream)
                .bind(i64::from(*part))
                .bind(&store.instance)
                .bind(now_ms)
                .bind(snapshot.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(err("write jetstream open traces"))?;
                written.checkpoints += 1;
                written.snapshot_bytes += snapshot.len() as u64;
            }
        }
        tx.commit().await.map_err(err("commit a flush"))?;
        written
    }};
}

/// The SLI tables of one engine instance.
#[derive(Debug, Clone)]
pub struct SliStore {
    typed: Typed,
    instance: String,
    /// Journeys whose 0002 count rows were restored: the next successful write holds all their
    /// buckets as blocks (the restore marked them changed) and deletes those rows with it.
    legacy: Arc<Mutex<Vec<String>>>,
}

impl SliStore {
    pub fn new(db: &Db, instance: impl Into<String>) -> Self {
        SliStore {
            typed: db.typed.clone(),
            instance: instance.into(),
            legacy: Arc::default(),
        }
    }

    /// The name of this instance's rows.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Writes every waiting row in one transaction, and deletes rows ending at or before
    /// `expire_before` when given.
    pub async fn write(&self, pending: &Pending, expire_before: Option<Timestamp>) -> Result<Written, StoreError> {
        let journeys = &pending.journeys;
        let legacy: Vec<String> = self.legacy.lock().expect("legacy lock poisoned").clone();
        // Through the typed driver: the Any layer converts every bound value (~2,000 rows and
        // 10,000 values a flush).
        let written = match &self.typed {
            Typed::Sqlite(pool) => write_in!(pool, upsert_values, self, pending, journeys, expire_before, &legacy),
            Typed::Postgres(pool) => write_in!(pool, upsert_unnest, self, pending, journeys, expire_before, &legacy),
        };
        if !legacy.is_empty() {
            self.legacy
                .lock()
                .expect("legacy lock poisoned")
                .retain(|j| !legacy.contains(j));
        }
        Ok(written)
    }

    /// Takes partition `part` of `stream` for this instance (the caller holds it exclusively: a
    /// config or a cluster lock), so a flush of any instance that consumed it before fails from
    /// now on; returns its stored position (0: none) and open traces.
    pub async fn claim_partition(&self, stream: &str, part: u32) -> Result<(u64, Option<Vec<u8>>), StoreError> {
        let now_ms = crate::receiver::wall_clock().unix_millis();
        macro_rules! claim {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await.map_err(err("claim a partition"))?;
                sqlx::query(
                    "INSERT INTO jetstream_checkpoints (stream, part, seq, instance, updated_ms) \
                     VALUES ($1, $2, 0, $3, $4) ON CONFLICT (stream, part) DO UPDATE \
                     SET instance = excluded.instance, updated_ms = excluded.updated_ms",
                )
                .bind(stream)
                .bind(i64::from(part))
                .bind(&self.instance)
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err(err("claim a partition"))?;
                let seq: i64 = sqlx::query("SELECT seq FROM jetstream_checkpoints WHERE stream = $1 AND part = $2")
                    .bind(stream)
                    .bind(i64::from(part))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err("read a checkpoint"))?
                    .try_get(0)
                    .map_err(err("read a checkpoint"))?;
                let data: Option<Vec<u8>> =
                    sqlx::query("SELECT data FROM jetstream_open_traces WHERE stream = $1 AND part = $2")
                        .bind(stream)
                        .bind(i64::from(part))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(err("read open traces"))?
                        .map(|row| row.try_get(0))
                        .transpose()
                        .map_err(err("read open traces"))?;
                tx.commit().await.map_err(err("claim a partition"))?;
                (u64::try_from(seq).unwrap_or(0), data)
            }};
        }
        Ok(match &self.typed {
            Typed::Sqlite(pool) => claim!(pool),
            Typed::Postgres(pool) => claim!(pool),
        })
    }

    /// Rebuilds `pipeline`'s windows from this instance's rows, as of `now`.
    pub async fn restore(&self, pipeline: &mut Pipeline, now: Timestamp) -> Result<Restored, StoreError> {
        let names: Vec<String> = pipeline.journeys().0.iter().map(|j| j.name.clone()).collect();
        let series: Vec<Vec<String>> = (0..names.len()).map(|j| pipeline.series(j).to_vec()).collect();
        pipeline.begin_restore(now);
        let (out, legacy_journeys) = self.load(&self.instance, pipeline, &names, series).await?;
        let mut legacy = Vec::new();
        for j in legacy_journeys {
            pipeline.mark_counts_changed(j);
            legacy.push(names[j].clone());
        }
        *self.legacy.lock().expect("legacy lock poisoned") = legacy;
        pipeline.finish_restore(now);
        Ok(out)
    }

    /// The other instances with stored count rows, by name: a loose index scan (one index
    /// probe per instance, however many rows there are), so it doubles as the cheap check that
    /// there is nothing to merge.
    pub async fn other_instances(&self) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "WITH RECURSIVE i(name) AS ( \
             SELECT min(instance) FROM sli_count_blocks \
             UNION ALL \
             SELECT (SELECT min(instance) FROM sli_count_blocks WHERE instance > i.name) FROM i WHERE i.name IS NOT NULL \
           ) SELECT name FROM i WHERE name IS NOT NULL";
        let names: Result<Vec<String>, sqlx::Error> = match &self.typed {
            Typed::Sqlite(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await,
            Typed::Postgres(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await,
        };
        let mut names = names.map_err(err("list the instances"))?;
        names.retain(|n| *n != self.instance);
        Ok(names)
    }

    /// Reads instance `instance`'s rows into `windows` (one per journey, `names[j]` with the
    /// slots `series[j]`, empty and laid out like this instance's) as of `now`: what merged
    /// evaluation adds to this instance's own windows. Each table is read in one statement, so
    /// the counts are those of one of that instance's committed flushes.
    pub async fn read_instance(
        &self,
        instance: &str,
        windows: &mut [JourneyWindows],
        names: &[String],
        series: Vec<Vec<String>>,
        now: Timestamp,
    ) -> Result<Restored, StoreError> {
        for w in windows.iter_mut() {
            w.advance(now);
        }
        let (out, _) = self.load(instance, windows, names, series).await?;
        for w in windows.iter_mut() {
            w.advance(now);
        }
        Ok(out)
    }

    /// Adds the rows of `instance` to `target`: counts read and decoded by a task of their own
    /// while the histograms stream in. Returns what was found and the journeys with 0002 count
    /// rows.
    async fn load<T: Target + ?Sized>(
        &self,
        instance: &str,
        target: &mut T,
        names: &[String],
        series: Vec<Vec<String>>,
    ) -> Result<(Restored, Vec<usize>), StoreError> {
        let index: HashMap<String, usize> = names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
        let started = std::time::Instant::now();
        let widths: Vec<usize> = series.iter().map(Vec::len).collect();
        let reader = tokio::spawn(read_counts(
            self.typed.clone(),
            instance.to_owned(),
            Arc::new(index.clone()),
            Arc::new(series),
        ));
        let mut out = Restored::default();
        if let Err(e) = restore_latencies(&self.typed, instance, &index, target, &mut out).await {
            reader.abort();
            return Err(err("read latency buckets")(e));
        }
        out.latency_elapsed = started.elapsed();

        let counts = reader
            .await
            .map_err(|e| err("read count buckets")(sqlx::Error::Protocol(format!("the reader failed: {e}"))))?
            .map_err(err("read count buckets"))?;
        for &(j, start, width, at) in &counts.buckets {
            let n = widths[j];
            match target.restore_counts(j, ms(start), millis(width), &counts.counts[at..at + n]) {
                Recorded::Counted => out.count_rows += 1,
                Recorded::TooOld => out.too_old_rows += 1,
            }
        }
        out.count_blocks = counts.blocks;
        out.legacy_rows = counts.legacy_rows;
        out.unknown_journey_rows += counts.unknown_journey_rows;
        out.unknown_series += counts.unknown_series;
        out.corrupt.extend(counts.corrupt);
        out.counts_elapsed = started.elapsed();
        Ok((out, counts.legacy_journeys))
    }
}

/// Where read rows go: a pipeline's windows (a restore) or bare windows (the other instances').
trait Target {
    fn restore_counts(&mut self, journey: usize, start: Timestamp, width: Duration, counts: &[Counts]) -> Recorded;
    fn restore_latencies(
        &mut self,
        journey: usize,
        start: Timestamp,
        width: Duration,
        encoded: &[u8],
    ) -> Result<Recorded, RestoreError>;
}

impl Target for Pipeline {
    fn restore_counts(&mut self, journey: usize, start: Timestamp, width: Duration, counts: &[Counts]) -> Recorded {
        Pipeline::restore_counts(self, journey, start, width, counts)
    }
    fn restore_latencies(
        &mut self,
        journey: usize,
        start: Timestamp,
        width: Duration,
        encoded: &[u8],
    ) -> Result<Recorded, RestoreError> {
        Pipeline::restore_latencies(self, journey, start, width, encoded)
    }
}

impl Target for [JourneyWindows] {
    fn restore_counts(&mut self, journey: usize, start: Timestamp, width: Duration, counts: &[Counts]) -> Recorded {
        self[journey].restore_counts(start, width, counts)
    }
    fn restore_latencies(
        &mut self,
        journey: usize,
        start: Timestamp,
        width: Duration,
        encoded: &[u8],
    ) -> Result<Recorded, RestoreError> {
        self[journey].restore_latencies(start, width, encoded)
    }
}

/// Count buckets read and decoded, waiting to be restored.
#[derive(Debug, Default)]
struct DecodedCounts {
    /// (journey, start ms, width ms, offset of its counts in `counts`).
    buckets: Vec<(usize, i64, i64, usize)>,
    /// Per bucket, its journey's slot count of entries.
    counts: Vec<Counts>,
    blocks: u64,
    legacy_rows: u64,
    /// Journeys with 0002 rows.
    legacy_journeys: Vec<usize>,
    unknown_journey_rows: u64,
    unknown_series: u64,
    corrupt: Vec<String>,
}

/// Runs `$body` for every row of `$sql` (bound to `$instance`) through the typed pool.
macro_rules! for_each_row {
    ($typed:expr, $sql:expr, $instance:expr, |$row:ident| $body:block) => {
        match $typed {
            Typed::Sqlite(pool) => {
                let mut rows = sqlx::query($sql).bind($instance).fetch(pool);
                while let Some($row) = rows.try_next().await? $body
            }
            Typed::Postgres(pool) => {
                let mut rows = sqlx::query($sql).bind($instance).fetch(pool);
                while let Some($row) = rows.try_next().await? $body
            }
        }
    };
}

async fn read_counts(
    typed: Typed,
    instance: String,
    index: Arc<HashMap<String, usize>>,
    series: Arc<Vec<Vec<String>>>,
) -> Result<DecodedCounts, sqlx::Error> {
    let mut out = DecodedCounts::default();
    for_each_row!(
        &typed,
        "SELECT journey, block_ms, width_ms, data FROM sli_count_blocks WHERE instance = $1 \
         ORDER BY journey, block_ms, width_ms DESC",
        &instance,
        |row| {
            let journey: &str = row.try_get(0)?;
            let (block_ms, width_ms): (i64, i64) = (row.try_get(1)?, row.try_get(2)?);
            let data: &[u8] = row.try_get(3)?;
            out.blocks += 1;
            let Some(&j) = index.get(journey) else {
                out.unknown_journey_rows += 1;
                continue;
            };
            let DecodedCounts {
                buckets,
                counts,
                unknown_series,
                ..
            } = &mut out;
            if let Err(e) = block::decode(data, block_ms, width_ms, &series[j], unknown_series, |s, w, c| {
                buckets.push((j, s, w, counts.len()));
                counts.extend_from_slice(c);
            }) {
                out.corrupt
                    .push(format!("sli_count_blocks {journey} at {}: {e}", ms(block_ms)));
            }
        }
    );
    for_each_row!(
        &typed,
        "SELECT journey, start_ms, width_ms, counts FROM sli_counts WHERE instance = $1 ORDER BY journey, start_ms",
        &instance,
        |row| {
            let journey: &str = row.try_get(0)?;
            let (start_ms, width_ms): (i64, i64) = (row.try_get(1)?, row.try_get(2)?);
            let text: &str = row.try_get(3)?;
            let Some(&j) = index.get(journey) else {
                out.unknown_journey_rows += 1;
                continue;
            };
            out.legacy_rows += 1;
            if out.legacy_journeys.last() != Some(&j) {
                out.legacy_journeys.push(j);
            }
            match decode_counts(text, &series[j], &mut out.unknown_series) {
                Ok(c) => {
                    out.buckets.push((j, start_ms, width_ms, out.counts.len()));
                    out.counts.extend_from_slice(&c);
                }
                Err(e) => out
                    .corrupt
                    .push(format!("sli_counts {journey} at {}: {e}", ms(start_ms))),
            }
        }
    );
    Ok(out)
}

async fn restore_latencies<T: Target + ?Sized>(
    typed: &Typed,
    instance: &str,
    index: &HashMap<String, usize>,
    target: &mut T,
    out: &mut Restored,
) -> Result<(), sqlx::Error> {
    for_each_row!(
        typed,
        // In storage order: ascending starts are faster but not needed.
        "SELECT journey, start_ms, width_ms, histogram FROM sli_latency WHERE instance = $1",
        instance,
        |row| {
            let journey: &str = row.try_get(0)?;
            let (start_ms, width_ms): (i64, i64) = (row.try_get(1)?, row.try_get(2)?);
            let encoded: &[u8] = row.try_get(3)?;
            let Some(&j) = index.get(journey) else {
                out.unknown_journey_rows += 1;
                continue;
            };
            match target.restore_latencies(j, ms(start_ms), millis(width_ms), encoded) {
                Ok(Recorded::Counted) => out.latency_rows += 1,
                Ok(Recorded::TooOld) => out.too_old_rows += 1,
                Err(e) => out.corrupt.push(format!("sli_latency {journey}: {e}")),
            }
        }
    );
    Ok(())
}

/// (journey, start, width) of the rows wider than a minute.
fn coarse<T>(rows: &BTreeMap<(usize, i64), Row<T>>) -> Vec<(usize, i64, i64)> {
    rows.iter()
        .filter(|(_, r)| r.width_ms > MINUTE_MS)
        .map(|(&(j, s), r)| (j, s, r.width_ms))
        .collect()
}

/// (head, conflict clause) of the upserts: 5 values a row (instance, journey, start, width, value);
/// [`upsert_sql`] puts the rows in between.
const BLOCKS_UPSERT: (&str, &str) = (
    "INSERT INTO sli_count_blocks (instance, journey, block_ms, width_ms, data) VALUES ",
    " ON CONFLICT (instance, journey, block_ms, width_ms) DO UPDATE SET data = excluded.data",
);
const LATENCY_UPSERT: (&str, &str) = (
    "INSERT INTO sli_latency (instance, journey, start_ms, width_ms, histogram) VALUES ",
    " ON CONFLICT (instance, journey, start_ms) DO UPDATE SET width_ms = excluded.width_ms, \
     histogram = excluded.histogram",
);

/// A multi-row upsert of `rows` rows with anonymous parameters (`?`): sqlx binds a named SQLite
/// parameter by scanning all the statement's names, which made binding a 2,500-parameter
/// statement quadratic.
fn upsert_sql((head, conflict): (&str, &str), rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + conflict.len() + rows * 12);
    sql.push_str(head);
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?)");
    }
    sql.push_str(conflict);
    sql
}

fn ms(t: i64) -> Timestamp {
    Timestamp::from_unix_millis(t)
}

fn millis(d: i64) -> Duration {
    Duration::from_millis(d.max(0) as u64)
}

fn millis_of(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use slis::window::{JourneyWindows, RootSample, Sli, Window};

    use std::collections::BTreeSet;

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    /// The count blocks as a database keeps them: `Pending` merged flush after flush, never
    /// cleared, is exactly that (a block replaces its older version, a day block the hour blocks
    /// it covers). Under random traffic (late samples up to two days back, weights 0–2), clock
    /// jumps, coarsening and eviction, the blocks restore into windows that count every window
    /// exactly like the original, and no hour is stored twice.
    #[test]
    fn blocks_written_flush_after_flush_restore_every_count() {
        let slis = vec![
            Sli::Error,
            Sli::Latency {
                threshold_nanos: 1_000_000,
            },
        ];
        let series = vec![vec!["e (error)".to_owned(), "l (latency)".to_owned()]];
        let retention = 3 * DAY;
        for seed in 0..60 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut w = JourneyWindows::new(slis.clone(), retention);
            let mut db = Pending::default();
            let mut now = Timestamp::from_unix_secs(1_780_000_000);
            for step in 0..400 {
                now = now + Duration::from_secs(rng.random_range(0..5_400));
                w.advance(now);
                for _ in 0..rng.random_range(0..6) {
                    let back = if rng.random_bool(0.8) { 900 } else { 2 * 86_400 };
                    let _ = w.record_root(&RootSample {
                        at: now - Duration::from_secs(rng.random_range(0..back)),
                        latency_nanos: rng.random_range(0..2_000_000),
                        error: rng.random_bool(0.1),
                        weight: rng.random_range(0..3),
                    });
                }
                if rng.random_bool(0.5) || step == 399 {
                    let mut changes = Changes::default();
                    block::take_blocks(&mut w, &mut changes);
                    db.merge(vec![(0, changes)], &["checkout".to_owned()], &series);
                }
            }

            let mut r = JourneyWindows::new(slis.clone(), retention);
            r.advance(now);
            // An hour is stored once: as an hour bucket of a day block or as a minute block.
            let (mut coarse, mut fine) = (BTreeSet::new(), BTreeSet::new());
            for (&(_, width, start), b) in &db.counts {
                if width == HOUR_MS {
                    fine.insert(start);
                }
                block::decode(&b.data, start, width, &series[0], &mut 0, |s, bw, c| {
                    if width == DAY_MS {
                        coarse.insert(s);
                    }
                    let _ = r.restore_counts(ms(s), millis(bw), c);
                })
                .unwrap();
            }
            assert!(coarse.is_disjoint(&fine), "seed {seed}: {coarse:?} {fine:?}");
            r.advance(now);
            for window in [5 * 60, 3_600, 6 * 3_600, 86_400, 3 * 86_400, 5 * 86_400] {
                let window = Window::Last(Duration::from_secs(window));
                for slot in 0..2 {
                    assert_eq!(
                        r.counts(slot, window, now),
                        w.counts(slot, window, now),
                        "seed {seed}, slot {slot}, {window:?}"
                    );
                }
            }
        }
    }
}
