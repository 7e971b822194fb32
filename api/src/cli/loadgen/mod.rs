//! `tracebudget loadgen`: sends realistic traces over OTLP for benchmarks, demos and capacity
//! tests, and prints what it sent so a test can compare the engine's counts with it.
//!
//! Traces come from [`tracebudget_synth`], shaped by the journeys of a config file (`--config`) or
//! of the example shop config built into the binary (`--journeys-default`). Slow roots are judged
//! per journey against its tightest latency SLO threshold (800 ms without one) unless
//! `--slow-threshold` sets one for all.
//!
//! One task generates requests and paces them by a token schedule ([`Pacer`]; it and the scripted
//! outages, [`Incident`], come from the same crate), up to `--concurrency` requests are in flight,
//! each encoded, gzipped and retried on its own task ([`send`]). The run stops by itself after `--duration` or `--traces`, or at Ctrl-C, waits for
//! the requests in flight, and prints one JSON object on stdout (see [`Summary::to_json`]).
//! Progress goes to stderr every 5 s. Only the given endpoint is ever contacted: use loopback for
//! tests.

mod send;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::{Value, json};
use slis::Timestamp;
use slis::slo::SliKind;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracebudget_synth::incident::{Incident, error_rate_at, parse_rate};
use tracebudget_synth::pace::{Pacer, per_sec};
use tracebudget_synth::{Batch, Generator, Latency, Rates, Shape, ShapeDefaults, Tally};

use self::send::{Outcome, Protocol, Sender, backoff};
use crate::app::config::Config;

/// The example shop config, whose journeys `--journeys-default` uses.
const DEFAULT_CONFIG: &str = include_str!("../../../../examples/tracebudget.toml");
const DEFAULT_CONFIG_NAME: &str = "examples/tracebudget.toml (built in)";

/// How far behind its schedule the sender may catch up in a burst.
const MAX_LAG: Duration = Duration::from_secs(1);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
const DEFAULT_DURATION: Duration = Duration::from_secs(60);
const DEFAULT_SLOW_THRESHOLD: Duration = Duration::from_millis(800);

/// Command-line arguments of `tracebudget loadgen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Take the journeys, and their latency SLO thresholds, from this tracebudget config.
    #[arg(
        long,
        short,
        required_unless_present = "journeys_default",
        conflicts_with = "journeys_default"
    )]
    pub config: Option<PathBuf>,
    /// Use the journeys of the example shop config (examples/tracebudget.toml, built in) instead of --config.
    #[arg(long)]
    pub journeys_default: bool,
    #[command(flatten)]
    pub delivery: Box<Delivery>,
    #[command(flatten)]
    pub traffic: Box<Traffic>,
}

/// Where, how fast and for how long.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Delivery")]
pub struct Delivery {
    /// Where to send; only this endpoint is ever contacted (use loopback for tests). For HTTP, a base URL
    /// (`/v1/traces` is appended unless present). [default: http://127.0.0.1:4318, or http://127.0.0.1:4317 for grpc]
    #[arg(long)]
    pub endpoint: Option<String>,
    #[arg(long, value_enum, default_value_t = Protocol::Http)]
    pub protocol: Protocol,
    /// Target rate in spans per second; 0 sends as fast as the receiver answers.
    #[arg(long, default_value_t = 10_000.0)]
    pub rate: f64,
    /// Stop after this long, e.g. 60s or 5m. [default: 60s unless --traces is given]
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many traces (and after --duration, if given, whichever comes first).
    #[arg(long)]
    pub traces: Option<u64>,
    /// Spans per request: whole traces are added until a request holds at least this many. At low rates,
    /// fewer make smoother traffic (a request goes when the rate has paid for the previous one).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    pub spans_per_request: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,
    /// Gzip request bodies; `--gzip=false` sends them uncompressed.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub gzip: bool,
    /// Retries of a request refused with 429/502/503/504, RESOURCE_EXHAUSTED/UNAVAILABLE or no
    /// connection, before it counts as failed.
    #[arg(long, default_value_t = 10)]
    pub max_retries: u32,
    /// Write the traffic to this file instead of sending it, on a virtual clock from now (no
    /// sleeping: an hour of traffic takes seconds), in the format `tracebudget replay` reads;
    /// `--gzip` compresses it. Incidents and the schedule are in virtual time.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The format of `--out`.
    #[arg(long, value_enum, default_value_t = crate::cli::record::FileFormat::Proto)]
    pub out_format: crate::cli::record::FileFormat,
}

/// What the traces look like and what goes wrong in them.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Traffic")]
pub struct Traffic {
    /// Spans per complete trace (raised per journey to what its services need).
    #[arg(long, default_value_t = 8)]
    pub spans_per_trace: usize,
    /// Share of traces whose root fails (status ERROR, HTTP 5xx).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub error_rate: f64,
    /// Share of traces whose root is slower than the slow threshold.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub slow_rate: f64,
    /// A root slower than this is slow, for every journey. [default: each journey's tightest latency SLO
    /// threshold, else 800ms]
    #[arg(long, value_parser = parse_duration)]
    pub slow_threshold: Option<Duration>,
    /// Share of traces sent incomplete (one expected service missing, or an orphaned span).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub incomplete_rate: f64,
    /// Median root latency. [default: the slow threshold / 8]
    #[arg(long, value_parser = parse_duration, requires = "latency_p99")]
    pub latency_median: Option<Duration>,
    /// 99th percentile of root latency, above the median. [default: the slow threshold / 2]
    #[arg(long, value_parser = parse_duration, requires = "latency_median")]
    pub latency_p99: Option<Duration>,
    /// Journey weight as NAME=WEIGHT, repeatable; journeys not named weigh 1.
    #[arg(long = "mix", value_name = "NAME=WEIGHT", value_parser = parse_weight)]
    pub mix: Vec<(String, f64)>,
    /// Seed of the trace generator: the same seed sends the same traces, trace ids included (timestamps
    /// aside), so give repeated runs against one engine different seeds.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A scripted outage, START:DURATION:ERROR_RATE from the start of the run, repeatable; e.g. 30s:2m:1.0
    /// makes every root an error for 2 minutes from 30 s in. Overlapping incidents: the highest rate.
    #[arg(long = "incident", value_name = "START:DURATION:ERROR_RATE", value_parser = Incident::parse)]
    pub incidents: Vec<Incident>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    slis::parse_duration(text).map_err(|e| e.to_string())
}

fn parse_weight(text: &str) -> Result<(String, f64), String> {
    let (name, weight) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=WEIGHT, got {text:?}"))?;
    match weight.trim().parse::<f64>() {
        Ok(w) if w >= 0.0 && w.is_finite() => Ok((name.trim().to_owned(), w)),
        _ => Err(format!(
            "weight of {name:?} must be a number of at least 0, got {weight:?}"
        )),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime.block_on(execute(args, true))?;
    println!("{}", summary.to_json());
    Ok(())
}

/// The config whose journeys the traffic follows: `--config`, else the built-in example.
fn load_config(config: Option<&Path>) -> anyhow::Result<Config> {
    Ok(match config {
        Some(path) => crate::app::config::load(path)?,
        None => crate::app::config::parse(DEFAULT_CONFIG_NAME, DEFAULT_CONFIG).map_err(|d| anyhow::anyhow!("{d}"))?,
    })
}

/// The shape of the traffic: journeys from the config, thresholds from its latency SLOs.
fn shape(config: &Config, args: &Traffic) -> anyhow::Result<Shape> {
    let journeys = &config.journeys;
    let mut slow_thresholds = HashMap::new();
    if args.slow_threshold.is_none() {
        for slo in &config.alerting.slos {
            if let SliKind::Latency { threshold } = slo.sli {
                let name = journeys.0[slo.journey].name.clone();
                let t = slow_thresholds.entry(name).or_insert(threshold);
                *t = threshold.min(*t);
            }
        }
    }
    for (name, _) in &args.mix {
        if journeys.by_name(name).is_none() {
            let known: Vec<&str> = journeys.0.iter().map(|j| j.name.as_str()).collect();
            anyhow::bail!("--mix names unknown journey {name:?}; the journeys are {known:?}");
        }
    }
    let latency = match (args.latency_median, args.latency_p99) {
        (Some(median), Some(p99)) => Some(Latency { median, p99 }),
        _ => None,
    };
    let defaults = ShapeDefaults {
        spans_per_trace: args.spans_per_trace,
        latency,
        slow_threshold: args.slow_threshold.unwrap_or(DEFAULT_SLOW_THRESHOLD),
        slow_thresholds,
        rates: Rates {
            error: args.error_rate,
            slow: args.slow_rate,
            incomplete: args.incomplete_rate,
        },
        weights: args.mix.iter().cloned().collect(),
    };
    Ok(Shape::from_journeys(journeys, &defaults)?)
}

/// Counters shared by the sending tasks.
#[derive(Debug, Default)]
struct Stats {
    requests: AtomicU64,
    traces: AtomicU64,
    spans: AtomicU64,
    accepted_requests: AtomicU64,
    accepted_traces: AtomicU64,
    /// Spans of accepted requests minus those rejected by `partial_success`.
    accepted_spans: AtomicU64,
    rejected_spans: AtomicU64,
    retries: AtomicU64,
    failed_requests: AtomicU64,
    failed_spans: AtomicU64,
    /// Per journey, the traces of accepted requests.
    accepted_tally: Mutex<Vec<Tally>>,
    rejected_message: Mutex<Option<String>>,
    last_error: Mutex<Option<String>>,
}

impl Stats {
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// What one run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub protocol: Protocol,
    pub endpoint: String,
    pub seed: u64,
    pub elapsed: Duration,
    pub sent: Counts,
    pub accepted: Counts,
    pub rejected_spans: u64,
    pub rejected_message: Option<String>,
    pub retries: u64,
    pub failed_requests: u64,
    pub failed_spans: u64,
    pub last_error: Option<String>,
    /// Per journey: name, slow threshold, tally of the traces in accepted requests.
    pub journeys: Vec<(String, Duration, Tally)>,
    pub incidents: Vec<Incident>,
    /// `--out`: the virtual clock's start (the traffic's timestamps begin there).
    pub virtual_start: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub requests: u64,
    pub traces: u64,
    pub spans: u64,
}

impl Counts {
    fn to_json(self) -> Value {
        json!({ "requests": self.requests, "traces": self.traces, "spans": self.spans })
    }
}

impl Summary {
    /// The object printed at the end of a run:
    ///
    /// - `sent`: requests, traces and spans generated and sent (retries not counted again);
    /// - `accepted`: those the receiver took; `spans` excludes `rejected_spans`;
    /// - `rejected_spans`, `rejected_message`: from the receivers' `partial_success`;
    /// - `retries`: attempts repeated after 429/502/503/504, RESOURCE_EXHAUSTED/UNAVAILABLE or no
    ///   connection; `failed`: requests given up on (retries exhausted, or refused for good);
    /// - `spans_per_sec`: accepted spans over the whole run's wall time;
    /// - `journeys`: per journey, the [`Tally`] of the traces in accepted requests (what a correct
    ///   engine counts when nothing was rejected) and the slow threshold it was judged against;
    /// - `virtual_start_unix_ms` (`--out` only): the instant the virtual clock started from.
    pub fn to_json(&self) -> Value {
        let journeys: serde_json::Map<String, Value> = self
            .journeys
            .iter()
            .map(|(name, threshold, t)| {
                let v = json!({
                    "traces": t.traces,
                    "spans": t.spans,
                    "errors": t.errors,
                    "slow": t.slow,
                    "incomplete": t.incomplete,
                    "missing_service": t.missing_service,
                    "orphaned": t.orphaned,
                    "slow_threshold_ms": threshold.as_secs_f64() * 1e3,
                });
                (name.clone(), v)
            })
            .collect();
        let mut out = json!({
            "protocol": self.protocol.name(),
            "endpoint": self.endpoint,
            "seed": self.seed,
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "sent": self.sent.to_json(),
            "accepted": self.accepted.to_json(),
            "rejected_spans": self.rejected_spans,
            "rejected_message": self.rejected_message,
            "retries": self.retries,
            "failed": {
                "requests": self.failed_requests,
                "spans": self.failed_spans,
                "last_error": self.last_error,
            },
            "spans_per_sec": per_sec(self.accepted.spans, self.elapsed),
            "incidents": self.incidents.iter().map(|i| json!({
                "start_secs": i.start.as_secs_f64(),
                "duration_secs": i.duration.as_secs_f64(),
                "error_rate": i.error_rate,
            })).collect::<Vec<_>>(),
            "journeys": journeys,
        });
        // `--out` only: where the virtual clock started.
        if let Some(start) = self.virtual_start {
            out["virtual_start_unix_ms"] = json!(start.unix_millis());
        }
        out
    }
}

fn wall_clock() -> Timestamp {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Timestamp::from_unix_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
}

/// Runs the load until `--duration`, `--traces` or Ctrl-C (when `ctrl_c`), then waits for the
/// requests in flight.
pub(crate) async fn execute(args: Args, ctrl_c: bool) -> anyhow::Result<Summary> {
    let config = load_config(args.config.as_deref())?;
    execute_on(&config, args, ctrl_c, true).await
}

/// [`execute`] with the journeys of `config` (`args.config` is not read); `verbose` prints the
/// start, incidents and progress on stderr.
pub(crate) async fn execute_on(config: &Config, args: Args, ctrl_c: bool, verbose: bool) -> anyhow::Result<Summary> {
    let shape = shape(config, &args.traffic)?;
    let (delivery, traffic) = (*args.delivery, *args.traffic);
    let names: Vec<(String, Duration)> = shape
        .journeys
        .iter()
        .map(|j| (j.name.clone(), j.slow_threshold))
        .collect();
    let mut generator = Generator::new(shape, traffic.seed)?;
    let duration = match (delivery.duration, delivery.traces) {
        (None, None) => Some(DEFAULT_DURATION),
        (d, _) => d,
    };
    if let Some(out) = &delivery.out {
        return write_file(out, &delivery, traffic, generator, names, duration);
    }
    let endpoint = delivery.protocol.endpoint(delivery.endpoint.as_deref())?;
    let sender = Sender::new(delivery.protocol, endpoint.clone(), delivery.gzip)?;
    let stats = Arc::new(Stats {
        accepted_tally: Mutex::new(vec![Tally::default(); names.len()]),
        ..Stats::default()
    });
    let say = |line: String| {
        if verbose {
            eprintln!("{line}");
        }
    };
    say(format!(
        "loadgen: sending {} over {} to {endpoint} at {}, until {}",
        names.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
        delivery.protocol.name(),
        if delivery.rate > 0.0 {
            format!("{} spans/s", delivery.rate)
        } else {
            "full speed".to_owned()
        },
        match (duration, delivery.traces) {
            (Some(d), Some(n)) => format!("{} or {n} traces", slis::format_duration(d)),
            (Some(d), None) => slis::format_duration(d).to_string(),
            (None, Some(n)) => format!("{n} traces"),
            (None, None) => unreachable!("a duration is set when no trace count is"),
        },
    ));

    let start = Instant::now();
    let progress = tokio::spawn(progress(stats.clone(), start, verbose));
    let interrupted = async {
        if ctrl_c {
            let _ = tokio::signal::ctrl_c().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(interrupted);

    let permits = Arc::new(Semaphore::new(delivery.concurrency as usize));
    let mut pacer = Pacer::new(delivery.rate, MAX_LAG);
    let mut in_flight = JoinSet::new();
    let mut traces_left = delivery.traces.unwrap_or(u64::MAX);
    let mut incident_rate = None;
    while traces_left > 0 {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.context("semaphore closed")?,
            _ = &mut interrupted => break,
        };
        let due = pacer.next_due(start.elapsed());
        if duration.is_some_and(|d| due >= d) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(start + due) => {}
            _ = &mut interrupted => break,
        }
        let elapsed = start.elapsed();
        let rate = error_rate_at(&traffic.incidents, elapsed);
        if rate != incident_rate {
            match rate {
                Some(r) => say(format!(
                    "loadgen: {:.1}s: incident, error rate {r}",
                    elapsed.as_secs_f64()
                )),
                None => say(format!("loadgen: {:.1}s: incident over", elapsed.as_secs_f64())),
            }
            generator.set_error_rate(rate);
            incident_rate = rate;
        }
        let batch = generator.batch(wall_clock(), delivery.spans_per_request as usize, traces_left);
        traces_left -= batch.traces;
        pacer.sent(batch.spans);
        Stats::add(&stats.requests, 1);
        Stats::add(&stats.traces, batch.traces);
        Stats::add(&stats.spans, batch.spans);
        let (sender, stats, max_retries) = (sender.clone(), stats.clone(), delivery.max_retries);
        in_flight.spawn(async move {
            deliver(&sender, batch, max_retries, &stats).await;
            drop(permit);
        });
        // Reap finished tasks so the set stays small.
        while let Some(done) = in_flight.try_join_next() {
            done.context("a sending task panicked")?;
        }
    }
    while let Some(done) = in_flight.join_next().await {
        done.context("a sending task panicked")?;
    }
    let elapsed = start.elapsed();
    progress.abort();

    let s = &stats;
    let accepted_tally = s.accepted_tally.lock().expect("stats lock").clone();
    Ok(Summary {
        protocol: delivery.protocol,
        endpoint,
        seed: traffic.seed,
        elapsed,
        sent: Counts {
            requests: Stats::get(&s.requests),
            traces: Stats::get(&s.traces),
            spans: Stats::get(&s.spans),
        },
        accepted: Counts {
            requests: Stats::get(&s.accepted_requests),
            traces: Stats::get(&s.accepted_traces),
            spans: Stats::get(&s.accepted_spans),
        },
        rejected_spans: Stats::get(&s.rejected_spans),
        rejected_message: s.rejected_message.lock().expect("stats lock").clone(),
        retries: Stats::get(&s.retries),
        failed_requests: Stats::get(&s.failed_requests),
        failed_spans: Stats::get(&s.failed_spans),
        last_error: s.last_error.lock().expect("stats lock").clone(),
        journeys: names
            .into_iter()
            .zip(accepted_tally)
            .map(|((name, threshold), t)| (name, threshold, t))
            .collect(),
        incidents: traffic.incidents,
        virtual_start: None,
    })
}

/// `--out`: the same schedule, generator and incidents as a live run, on a virtual clock that
/// starts now and moves by the pacer's schedule, every request written to the file.
fn write_file(
    out: &Path,
    delivery: &Delivery,
    traffic: Traffic,
    mut generator: Generator,
    names: Vec<(String, Duration)>,
    duration: Option<Duration>,
) -> anyhow::Result<Summary> {
    anyhow::ensure!(
        delivery.rate > 0.0,
        "--out needs a --rate above 0 (the virtual clock follows it)"
    );
    let writer = tracebudget_engine::replay::Writer::create(out, delivery.out_format.into(), delivery.gzip)
        .with_context(|| format!("cannot create {}", out.display()))?;
    let started = std::time::Instant::now();
    let origin = wall_clock();
    let mut pacer = Pacer::new(delivery.rate, MAX_LAG);
    let mut traces_left = delivery.traces.unwrap_or(u64::MAX);
    let mut sent = Counts::default();
    let mut elapsed = Duration::ZERO;
    while traces_left > 0 {
        let due = pacer.next_due(elapsed);
        if duration.is_some_and(|d| due >= d) {
            break;
        }
        elapsed = due;
        generator.set_error_rate(error_rate_at(&traffic.incidents, elapsed));
        let batch = generator.batch(origin + elapsed, delivery.spans_per_request as usize, traces_left);
        traces_left -= batch.traces;
        pacer.sent(batch.spans);
        writer
            .write(tracebudget_engine::replay::Request::Otlp(&batch.request))
            .with_context(|| format!("cannot write {}", out.display()))?;
        sent.requests += 1;
        sent.traces += batch.traces;
        sent.spans += batch.spans;
    }
    Ok(Summary {
        protocol: delivery.protocol,
        endpoint: out.display().to_string(),
        seed: traffic.seed,
        elapsed: started.elapsed(),
        sent,
        accepted: sent,
        rejected_spans: 0,
        rejected_message: None,
        retries: 0,
        failed_requests: 0,
        failed_spans: 0,
        last_error: None,
        journeys: names
            .into_iter()
            .zip(generator.tally().iter().copied())
            .map(|((name, threshold), t)| (name, threshold, t))
            .collect(),
        incidents: traffic.incidents,
        virtual_start: Some(origin),
    })
}

/// Sends one batch, retrying as the receiver asks, and counts how it went.
async fn deliver(sender: &Sender, batch: Batch, max_retries: u32, stats: &Stats) {
    let Batch {
        request,
        traces,
        spans,
        tally,
    } = batch;
    let fail = |reason: String| {
        Stats::add(&stats.failed_requests, 1);
        Stats::add(&stats.failed_spans, spans);
        *stats.last_error.lock().expect("stats lock") = Some(reason);
    };
    let prepared = match sender.prepare(request) {
        Ok(p) => p,
        Err(e) => return fail(format!("{e:#}")),
    };
    let mut attempt = 0;
    loop {
        match sender.send(&prepared).await {
            Outcome::Accepted { rejected, message } => {
                Stats::add(&stats.accepted_requests, 1);
                Stats::add(&stats.accepted_traces, traces);
                Stats::add(&stats.accepted_spans, spans.saturating_sub(rejected));
                Stats::add(&stats.rejected_spans, rejected);
                if rejected > 0 || !message.is_empty() {
                    *stats.rejected_message.lock().expect("stats lock") = Some(message);
                }
                let mut sums = stats.accepted_tally.lock().expect("stats lock");
                for (sum, t) in sums.iter_mut().zip(&tally) {
                    *sum += t;
                }
                return;
            }
            Outcome::Retry { after, reason } if attempt < max_retries => {
                Stats::add(&stats.retries, 1);
                *stats.last_error.lock().expect("stats lock") = Some(reason);
                tokio::time::sleep(backoff(attempt, after)).await;
                attempt += 1;
            }
            Outcome::Retry { reason, .. } => return fail(format!("gave up after {attempt} retries: {reason}")),
            Outcome::Failed { reason } => return fail(reason),
        }
    }
}

/// A line on stderr every [`PROGRESS_EVERY`].
async fn progress(stats: Arc<Stats>, start: Instant, verbose: bool) {
    if !verbose {
        return;
    }
    let mut tick = tokio::time::interval_at(start + PROGRESS_EVERY, PROGRESS_EVERY);
    loop {
        tick.tick().await;
        let elapsed = start.elapsed();
        let spans = Stats::get(&stats.spans);
        eprintln!(
            "loadgen: {:.0}s: sent {} traces, {spans} spans ({:.0}/s); accepted {} spans; retries {}, rejected {}, failed {}",
            elapsed.as_secs_f64(),
            Stats::get(&stats.traces),
            per_sec(spans, elapsed),
            Stats::get(&stats.accepted_spans),
            Stats::get(&stats.retries),
            Stats::get(&stats.rejected_spans),
            Stats::get(&stats.failed_requests),
        );
    }
}
