//! `tracebudget replay`: recorded spans through the same pipeline and the same alert runtime
//! as `serve` (its cycle, on a [`MemoryStore`]), on a virtual clock taken from the spans (see
//! [`tracebudget_engine::replay`]), for each `--config` side by side. Nothing is sent: the alerts
//! that would have fired and resolved are the output (`output.rs`: table, JSON or CSV), with each
//! SLO's final figures.
//!
//! One pass over the inputs, whatever their number and the number of configs: each request is
//! decoded once (with the attribute keys of every config) and handed to every config's pipeline.
//! Memory stays flat: one line or frame at a time, and the assembler's `max_buffered_spans`.

mod output;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use slis::Timestamp;
use tracebudget_alerting::alerter::Alerter;
use tracebudget_alerting::config::Alerting;
use tracebudget_alerting::runtime::memory::MemoryStore;
use tracebudget_alerting::runtime::{AlertRuntime, Notifiers};
use tracebudget_alerting::store::Pending;
use tracebudget_engine::decode::AttrKeys;
use tracebudget_engine::metrics::EngineMetrics;
use tracebudget_engine::pipeline::{Pipeline, Source};
use tracebudget_engine::replay::{Clock, Corrupt, Input, Item, Step, decode, newest_end};

use crate::app::alerts::{self, HeldPipeline};
use crate::app::config::Config;

pub use output::OutputFormat;

/// Command-line arguments of `tracebudget replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config whose journeys, SLOs and policies judge the data; repeat it to compare several
    /// configs side by side on the same data (one pass over the inputs).
    #[arg(long, short, required = true)]
    pub config: Vec<PathBuf>,
    /// How the timeline and the final figures are printed on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Recorded files: OTLP JSON lines, OTLP protobuf frames (the Collector's `file` exporter),
    /// Zipkin v2 JSON arrays one per line; gzip or not; detected by content. `-` reads stdin.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
}

/// How many corrupt records are printed on stderr (all are counted; the JSON output lists up to
/// [`output::CORRUPT_LISTED`]).
const CORRUPT_PRINTED: u64 = 100;

/// One alert starting or ending, on the virtual clock.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: Timestamp,
    pub firing: bool,
    pub alertname: String,
    pub slo: String,
    pub severity: String,
    pub factor: f64,
    pub long_window: Duration,
    pub short_window: Duration,
    pub burn_long: f64,
    pub burn_short: f64,
    pub budget_remaining: f64,
}

/// An SLO's figures at the end of the replay.
#[derive(Debug, Clone)]
pub struct SloFinal {
    pub name: String,
    pub journey: String,
    pub objective: f64,
    /// Events and bad events in the SLO's period at the end (what `/api/v1/slos` calls
    /// `period.events` / `period.bad_events`).
    pub events: u64,
    pub bad: u64,
    pub budget_remaining: f64,
    pub p95: Option<Duration>,
    pub p99: Option<Duration>,
}

impl SloFinal {
    /// Good over all events; `None` without events.
    pub fn sli(&self) -> Option<f64> {
        (self.events > 0).then(|| (self.events - self.bad.min(self.events)) as f64 / self.events as f64)
    }
}

/// One config's replay.
struct Run {
    name: String,
    model: Arc<Alerting>,
    pipeline: Pipeline,
    metrics: Arc<EngineMetrics>,
    alerts: Alerts,
    clock: Clock,
    /// The first instant the data gave.
    start: Option<Timestamp>,
    trace_idle: Duration,
    events: Vec<Event>,
    /// Notifications the route would have queued, per receiver (none is sent).
    notifications: BTreeMap<String, u64>,
    refused_spans: u64,
}

impl Run {
    fn new(name: String, config: Config) -> Run {
        let metrics = Arc::new(EngineMetrics::default());
        let mut pipeline = Pipeline::new(
            config.journeys.clone(),
            &config.alerting.slos,
            &config.ingest,
            metrics.clone(),
        );
        // The contributors replay prints go through the config's redaction rules, as serve's do.
        pipeline.set_privacy(
            config.privacy.redactor.clone(),
            config.privacy.allows(slis::PEER_SERVICE),
        );
        let model = Arc::new(config.alerting.clone());
        let journeys = config.journeys.0.iter().map(|j| j.name.clone()).collect();
        let alerter = Alerter::new(model.clone(), journeys, "replay".to_owned());
        let runtime = AlertRuntime::new(
            alerter,
            MemoryStore::default(),
            Arc::default(),
            "replay".to_owned(),
            Notifiers::new(),
        );
        Run {
            name,
            model,
            pipeline,
            metrics,
            alerts: Alerts {
                runtime,
                pending: Pending::default(),
                executor: tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("a current-thread executor builds"),
            },
            clock: Clock::new(
                crate::cli::serve::tick_interval(config.ingest.trace_idle.0),
                config.alerting.settings.eval_interval.0,
            ),
            start: None,
            trace_idle: config.ingest.trace_idle.0,
            events: Vec::new(),
            notifications: BTreeMap::new(),
            refused_spans: 0,
        }
    }

    fn step(pipeline: &mut Pipeline, state: &mut RunState<'_>, step: Step) {
        match step {
            Step::Tick(at) => pipeline.tick(at),
            Step::Eval(at) => evaluate(pipeline, state, at),
        }
    }

    fn advance(&mut self, to: Timestamp) -> Timestamp {
        let Run {
            pipeline,
            alerts,
            clock,
            events,
            notifications,
            ..
        } = self;
        let mut state = RunState {
            alerts,
            events,
            notifications,
        };
        clock.advance(to, |s| Run::step(pipeline, &mut state, s))
    }

    fn ingest(&mut self, spans: Vec<slis::Span>, now: Timestamp) {
        let n = spans.len() as u64;
        // Live, a full assembler makes the client retry later; here "later" is a tick at the
        // same instant (idle traces close, the assembler evicts over its bound).
        if self.pipeline.is_full() {
            self.pipeline.tick(now);
        }
        if self.pipeline.ingest(Source::Replay, spans, now).is_err() {
            self.refused_spans += n;
        }
    }

    /// The last evaluation: every trace closed and judged.
    fn finish(&mut self) -> Timestamp {
        let end = self.clock.now().unwrap_or(Timestamp::EPOCH);
        // Time enough for the open traces to go idle and close, as a live server would wait.
        let end = self.advance(end + self.trace_idle + Duration::from_secs(1));
        self.pipeline.tick(end);
        self.pipeline.close_all();
        let Run {
            pipeline,
            alerts,
            events,
            notifications,
            ..
        } = self;
        let mut state = RunState {
            alerts,
            events,
            notifications,
        };
        evaluate(pipeline, &mut state, end);
        end
    }

    fn finals(&self, now: Timestamp) -> Vec<SloFinal> {
        let statuses = alerts::statuses(&self.model, &self.pipeline, now);
        self.model
            .slos
            .iter()
            .zip(statuses)
            .map(|(slo, status)| {
                let windows = self.pipeline.merged(slo.journey);
                let pc = windows.percentiles(slo.period.window(now), now);
                SloFinal {
                    name: slo.name.clone(),
                    journey: self.pipeline.journeys().0[slo.journey].name.clone(),
                    objective: slo.objective,
                    events: status.period.total,
                    bad: status.period.bad,
                    budget_remaining: status.budget.remaining,
                    p95: pc.map(|p| p.p95),
                    p99: pc.map(|p| p.p99),
                }
            })
            .collect()
    }
}

/// One config's alert runtime: its state in memory, its cycles run to the end on the spot.
struct Alerts {
    runtime: AlertRuntime<MemoryStore>,
    /// Always emptied by the in-memory commit.
    pending: Pending,
    executor: tokio::runtime::Runtime,
}

struct RunState<'a> {
    alerts: &'a mut Alerts,
    events: &'a mut Vec<Event>,
    notifications: &'a mut BTreeMap<String, u64>,
}

/// One evaluation cycle at `at`: `serve`'s cycle on the pipeline as it is; transitions go to the
/// timeline, notifications are only counted (the in-memory outbox delivers nothing).
fn evaluate(pipeline: &Pipeline, state: &mut RunState<'_>, at: Timestamp) {
    let Alerts {
        runtime,
        pending,
        executor,
    } = &mut *state.alerts;
    let cycle = executor.block_on(runtime.cycle(&HeldPipeline(pipeline), pending, at));
    for t in cycle.transitions {
        let d = &t.alert.detail;
        state.events.push(Event {
            at: t.at,
            firing: t.firing,
            alertname: t.alert.labels.get("alertname").cloned().unwrap_or_default(),
            slo: d.slo.clone(),
            severity: d.severity.clone(),
            factor: d.factor,
            long_window: d.long_window,
            short_window: d.short_window,
            burn_long: d.burn_long,
            burn_short: d.burn_short,
            budget_remaining: d.budget_remaining,
        });
    }
    for n in cycle.notifications {
        *state.notifications.entry(n.receiver).or_default() += 1;
    }
}

/// What was read, over all inputs.
#[derive(Debug, Default, Clone)]
pub struct ReadStats {
    /// Per input: name, framing, gzip, raw bytes read, requests.
    pub inputs: Vec<InputStats>,
    pub requests: u64,
    pub spans: u64,
    /// Spans the decoders rejected (invalid ids).
    pub invalid_spans: u64,
    pub corrupt: u64,
    pub corrupt_listed: Vec<Corrupt>,
    pub elapsed: Duration,
    /// Where the time went: reading and framing (decompression included), decoding, and the
    /// pipelines with their ticks and evaluations.
    pub stages: Stages,
}

/// Time per stage of a replay, measured around each request.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stages {
    pub read: Duration,
    pub decode: Duration,
    pub engine: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct InputStats {
    pub name: String,
    pub framing: &'static str,
    pub gzip: bool,
    pub bytes: u64,
    pub requests: u64,
}

/// One config's results.
#[derive(Debug, Clone)]
pub struct ConfigResult {
    pub config: String,
    pub start: Option<Timestamp>,
    pub end: Timestamp,
    pub events: Vec<Event>,
    pub slos: Vec<SloFinal>,
    pub notifications: BTreeMap<String, u64>,
    /// Spans the pipeline refused, by reason (clock rules, backpressure).
    pub refused: BTreeMap<String, u64>,
    pub accepted_spans: u64,
}

/// Everything a replay found.
#[derive(Debug, Clone)]
pub struct Report {
    pub read: ReadStats,
    pub configs: Vec<ConfigResult>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut configs = Vec::new();
    for path in &args.config {
        configs.push((path.display().to_string(), crate::app::config::load(path)?));
    }
    let progress = std::io::stderr().is_terminal();
    let report = replay(configs, &args.inputs, progress)?;
    let mut out = std::io::stdout().lock();
    output::write(&report, args.format, &mut out).context("cannot write the output")?;
    Ok(())
}

/// Replays `inputs` through one pipeline and alerter per config.
pub fn replay(configs: Vec<(String, Config)>, inputs: &[String], progress: bool) -> anyhow::Result<Report> {
    anyhow::ensure!(!configs.is_empty(), "give at least one --config");
    anyhow::ensure!(
        inputs.iter().filter(|i| *i == "-").count() <= 1,
        "stdin (-) can be read once"
    );
    let mut keys = AttrKeys::merged(configs.iter().map(|(_, c)| AttrKeys::from_journeys(&c.journeys)));
    // A replay reports SLOs and alerts, not attribute cardinality: no value hashing.
    keys.watch_tags = false;
    let max = configs
        .iter()
        .map(|(_, c)| usize::try_from(c.ingest.max_body_size.0).unwrap_or(usize::MAX))
        .max()
        .unwrap_or(16 << 20);
    let mut runs: Vec<Run> = configs.into_iter().map(|(name, c)| Run::new(name, c)).collect();
    let total_bytes: Option<u64> = inputs
        .iter()
        .map(|i| (i != "-").then(|| std::fs::metadata(i).ok().map(|m| m.len())).flatten())
        .sum();
    let bar = progress::bar(progress, total_bytes);
    let started = Instant::now();
    let mut stats = ReadStats::default();
    let read = Arc::new(AtomicU64::new(0));
    for name in inputs {
        let before = read.load(Ordering::Relaxed);
        let mut input = Input::open(name, read.clone(), max).with_context(|| format!("cannot open {name}"))?;
        let mut this = InputStats {
            name: name.clone(),
            framing: input.framing(),
            gzip: input.is_gzip(),
            ..Default::default()
        };
        let mut mark = Instant::now();
        while let Some(item) = input.next_item() {
            let t = Instant::now();
            stats.stages.read += t - mark;
            mark = t;
            let (at, kind, body) = match item {
                Item::Request { at, kind, body } => (at, kind, body),
                Item::Corrupt(c) => {
                    corrupt(&mut stats, &bar, c);
                    continue;
                }
            };
            let decoded = decode(kind, body, &keys);
            let t = Instant::now();
            stats.stages.decode += t - mark;
            mark = t;
            let decoded = match decoded {
                Ok(d) => d,
                Err(e) => {
                    let c = Corrupt {
                        input: name.clone(),
                        at,
                        reason: format!("{}: {e}", kind.as_str()),
                    };
                    corrupt(&mut stats, &bar, c);
                    continue;
                }
            };
            this.requests += 1;
            stats.requests += 1;
            stats.spans += decoded.spans.len() as u64;
            stats.invalid_spans += decoded.rejected;
            let newest = newest_end(&decoded.spans);
            let mut spans = Some(decoded.spans);
            let last = runs.len() - 1;
            for (i, run) in runs.iter_mut().enumerate() {
                let now = match newest {
                    Some(t) => {
                        let now = run.advance(t);
                        run.start.get_or_insert(now);
                        now
                    }
                    None => run.clock.now().unwrap_or(Timestamp::EPOCH),
                };
                let batch = if i == last {
                    spans.take().unwrap_or_default()
                } else {
                    spans.clone().unwrap_or_default()
                };
                run.ingest(batch, now);
            }
            let t = Instant::now();
            stats.stages.engine += t - mark;
            mark = t;
            if stats.requests % 64 == 0 {
                progress::update(&bar, read.load(Ordering::Relaxed), stats.spans, started.elapsed());
            }
        }
        this.bytes = read.load(Ordering::Relaxed) - before;
        stats.inputs.push(this);
    }
    progress::update(&bar, read.load(Ordering::Relaxed), stats.spans, started.elapsed());
    bar.finish_and_clear();
    stats.elapsed = started.elapsed();
    if stats.corrupt > CORRUPT_PRINTED {
        eprintln!(
            "replay: {} more corrupt records not printed ({} in all)",
            stats.corrupt - CORRUPT_PRINTED,
            stats.corrupt
        );
    }
    let configs = runs
        .iter_mut()
        .map(|run| {
            let start = run.start;
            let end = run.finish();
            ConfigResult {
                config: run.name.clone(),
                start,
                end,
                events: std::mem::take(&mut run.events),
                slos: run.finals(end),
                notifications: std::mem::take(&mut run.notifications),
                refused: refused(&run.metrics, run.refused_spans),
                accepted_spans: run
                    .metrics
                    .spans_accepted
                    .get_or_create(&tracebudget_engine::metrics::ReceiverLabels {
                        receiver: Source::Replay.as_str(),
                    })
                    .get(),
            }
        })
        .collect();
    Ok(Report { read: stats, configs })
}

/// Per reason, the spans the pipeline refused (read from its metrics), and what was dropped,
/// evicted or judged late on the way.
fn refused(m: &EngineMetrics, backpressure_dropped: u64) -> BTreeMap<String, u64> {
    use tracebudget_engine::metrics::{ReasonLabels, RejectLabels};
    let receiver = Source::Replay.as_str();
    let mut out = BTreeMap::new();
    for reason in ["missing_timestamp", "future", "too_old"] {
        let n = m.spans_rejected.get_or_create(&RejectLabels { receiver, reason }).get();
        if n > 0 {
            out.insert(reason.to_owned(), n);
        }
    }
    let extra = [
        ("backpressure", backpressure_dropped),
        ("duplicate", m.duplicate_spans.get()),
        ("late", m.late_spans.get()),
        ("traces_evicted", m.traces_evicted.get()),
        (
            "outside_retention",
            m.samples_dropped
                .get_or_create(&ReasonLabels {
                    reason: "outside_retention",
                })
                .get(),
        ),
    ];
    for (reason, n) in extra {
        if n > 0 {
            out.insert(reason.to_owned(), n);
        }
    }
    out
}

fn corrupt(stats: &mut ReadStats, bar: &indicatif::ProgressBar, c: Corrupt) {
    stats.corrupt += 1;
    if stats.corrupt <= CORRUPT_PRINTED {
        bar.suspend(|| eprintln!("replay: corrupt, skipped: {c}"));
    }
    if stats.corrupt_listed.len() < output::CORRUPT_LISTED {
        stats.corrupt_listed.push(c);
    }
}

mod progress {
    use std::time::Duration;

    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

    /// Bytes read (of `total` when every input is a file), spans/s and ETA on stderr; hidden
    /// when stderr is not a terminal.
    pub fn bar(show: bool, total: Option<u64>) -> ProgressBar {
        if !show {
            return ProgressBar::hidden();
        }
        let bar = match total {
            Some(t) => ProgressBar::new(t).with_style(
                ProgressStyle::with_template(
                    "{bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg} ETA {eta}",
                )
                .expect("valid template"),
            ),
            None => ProgressBar::no_length().with_style(
                ProgressStyle::with_template("{spinner} {binary_bytes} {binary_bytes_per_sec} {msg}")
                    .expect("valid template"),
            ),
        };
        bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        bar
    }

    pub fn update(bar: &ProgressBar, bytes: u64, spans: u64, elapsed: Duration) {
        bar.set_position(bytes);
        let secs = elapsed.as_secs_f64().max(1e-9);
        bar.set_message(format!("{spans} spans, {:.0} spans/s", spans as f64 / secs));
    }
}
