//! `tracebudget demo`: the engine on a fresh SQLite file with the demo config
//! (`examples/demo.toml`, built in: the example shop with alert windows twelve times shorter),
//! driven in-process by the load generator: steady traffic on every journey and, every
//! `--incident-every`, a scripted incident on one journey (`--healthy` of good traffic, then
//! `--incident-length` with `--incident-error-rate` of its roots failing). Burn rates climb, a
//! page fires within seconds, and it resolves about a minute after the incident ends.
//!
//! It prints where to look, then one line per phase and per alert that fires or resolves (read
//! from its own `/api/v1/alerts/history`). Ctrl-C (or SIGTERM) stops it like `serve`: the
//! traffic stops first, then the engine flushes and exits.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracebudget_engine::config::StorageUrl;

use super::{loadgen, serve};
use crate::app::config::{self, Config};

/// The demo config, embedded so `tracebudget demo` runs from any directory.
const DEMO_CONFIG: &str = include_str!("../../../examples/demo.toml");
const DEMO_CONFIG_NAME: &str = "examples/demo.toml (built in)";

/// Command-line arguments of `tracebudget demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run this config instead of the built-in demo config (its journeys and SLOs; the listen
    /// addresses and the database are the demo's).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Where the dashboards, the API and /metrics listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the OTLP/HTTP receiver listens (the demo's traffic goes there; you can send your own).
    #[arg(long, default_value = "127.0.0.1:4318")]
    pub otlp_http: SocketAddr,
    /// The SQLite file. [default: a new file in the system's temporary directory]
    #[arg(long)]
    pub database: Option<PathBuf>,
    /// Spans per second over all journeys.
    #[arg(long, default_value_t = 600.0)]
    pub rate: f64,
    /// The journey the incidents hit.
    #[arg(long, default_value = "checkout")]
    pub journey: String,
    /// An incident starts this often (the first after `--healthy`).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub incident_every: Duration,
    /// Healthy traffic before each incident.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub healthy: Duration,
    /// How long each incident lasts.
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    pub incident_length: Duration,
    /// Share of the journey's roots that fail during an incident.
    #[arg(long, default_value_t = 0.2)]
    pub incident_error_rate: f64,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    slis::parse_duration(text).map_err(|e| e.to_string())
}

/// Background slow roots: a few, so latency burn rates are not flat zero between incidents,
/// and too few to fire a ticket by chance (errors have none: a single one among the first
/// hundred events would).
const BACKGROUND_SLOW_RATE: f64 = 0.000_5;
/// How far ahead the incidents are scheduled (the demo runs until Ctrl-C).
const SCHEDULE: Duration = Duration::from_secs(7 * 86_400);

/// The config the demo runs: `--config` or the built-in one, on the demo's addresses and database.
fn demo_config(args: &Args, database: &std::path::Path) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => config::load(path)?,
        None => config::parse(DEMO_CONFIG_NAME, DEMO_CONFIG).map_err(|d| anyhow::anyhow!("{d}"))?,
    };
    config.server.listen = args.listen;
    config.ingest.otlp_http = Some(args.otlp_http);
    config.ingest.otlp_grpc = None;
    config.ingest.zipkin = None;
    config.storage.url = StorageUrl(format!("sqlite://{}", database.display()));
    anyhow::ensure!(
        config.journeys.by_name(&args.journey).is_some(),
        "--journey {:?} is not a journey of the config; it has {:?}",
        args.journey,
        config.journeys.0.iter().map(|j| &j.name).collect::<Vec<_>>()
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.incident_error_rate),
        "--incident-error-rate must be between 0 and 1, got {}",
        args.incident_error_rate
    );
    anyhow::ensure!(
        args.healthy + args.incident_length < args.incident_every,
        "--healthy ({}) + --incident-length ({}) must be shorter than --incident-every ({}), or nothing recovers",
        slis::format_duration(args.healthy),
        slis::format_duration(args.incident_length),
        slis::format_duration(args.incident_every)
    );
    anyhow::ensure!(args.rate > 0.0, "--rate must be above 0");
    Ok(config)
}

/// `loadgen` arguments for one stream of the demo's traffic.
fn loadgen_args(extra: &[String]) -> anyhow::Result<loadgen::Args> {
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: loadgen::Args,
    }
    // The journeys come from the demo's config (`execute_on`); `--journeys-default` only
    // satisfies the parser.
    let argv = ["loadgen", "--journeys-default"]
        .into_iter()
        .map(String::from)
        .chain(extra.iter().cloned());
    Ok(Cli::try_parse_from(argv).context("demo traffic arguments")?.args)
}

/// The incidents of the schedule, as `--incident START:DURATION:RATE` arguments.
fn incidents(args: &Args) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = args.healthy;
    while start < SCHEDULE {
        out.push("--incident".to_owned());
        out.push(format!(
            "{}ms:{}ms:{}",
            start.as_millis(),
            args.incident_length.as_millis(),
            args.incident_error_rate
        ));
        start += args.incident_every;
    }
    out
}

/// `tracebudget demo`: until Ctrl-C or SIGTERM, then the traffic stops and the engine flushes.
pub fn run(args: Args) -> anyhow::Result<()> {
    let database = match &args.database {
        Some(p) => p.clone(),
        None => std::env::temp_dir().join(format!("tracebudget-demo-{}.db", std::process::id())),
    };
    let config = demo_config(&args, &database)?;
    // The load generator's copy (the engine takes its own).
    let traffic_config = std::sync::Arc::new(demo_config(&args, &database)?);
    serve::init_logging("warn");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(demo(args, config, traffic_config, database))
}

async fn demo(
    args: Args,
    config: Config,
    traffic_config: std::sync::Arc<Config>,
    database: PathBuf,
) -> anyhow::Result<()> {
    let listen = args.listen;
    let source = config.source.file.clone();
    let journeys: Vec<String> = config.journeys.0.iter().map(|j| j.name.clone()).collect();
    // The engine stops when `stop` is cancelled: after the traffic, at Ctrl-C or SIGTERM.
    let stop = CancellationToken::new();
    let mut server = tokio::spawn(serve::serve(config, stop.clone().cancelled_owned()));
    wait_listening(listen, &mut server).await?;

    let pct = |r: f64| format!("{}%", r * 100.0);
    let url = format!("http://{listen}");
    println!("tracebudget demo");
    println!("  dashboards  {url}/");
    println!("  API         {url}/api/v1/slos   {url}/api/v1/alerts");
    println!("  metrics     {url}/metrics");
    println!("  OTLP/HTTP   http://{}/v1/traces", args.otlp_http);
    println!("  database    {} (SQLite)", database.display());
    println!("  config      {source}");
    println!();
    println!(
        "Traffic: {} spans/s over {}. Every {}: {} healthy, then {} with {} of {} failing, then recovery.",
        args.rate,
        journeys.join(", "),
        slis::format_duration(args.incident_every),
        slis::format_duration(args.healthy),
        slis::format_duration(args.incident_length),
        pct(args.incident_error_rate),
        args.journey
    );
    println!(
        "Watch: the burn rates of {0}'s SLOs climb on the dashboards; a page fires within seconds of the\n\
         incident and resolves about a minute after it ends. Ctrl-C stops.",
        args.journey
    );
    println!();

    // Two streams: the incident's journey alone, and every other journey, each at its share.
    let share = args.rate / journeys.len() as f64;
    let common = |rate: f64| {
        [
            "--endpoint".to_owned(),
            format!("http://{}", args.otlp_http),
            "--rate".to_owned(),
            rate.to_string(),
            "--duration".to_owned(),
            format!("{}s", SCHEDULE.as_secs()),
            "--spans-per-request".to_owned(),
            "64".to_owned(),
            "--slow-rate".to_owned(),
            BACKGROUND_SLOW_RATE.to_string(),
        ]
        .to_vec()
    };
    let mut target = common(share);
    let mut others = common(args.rate - share);
    for j in &journeys {
        let other = j != &args.journey;
        let list = if other { &mut target } else { &mut others };
        list.extend(["--mix".to_owned(), format!("{j}=0")]);
    }
    target.extend(incidents(&args));
    target.extend(["--seed".to_owned(), std::process::id().to_string()]);
    others.extend(["--seed".to_owned(), (u64::from(std::process::id()) + 1).to_string()]);
    let mut traffic = JoinSet::new();
    let mut streams = vec![loadgen_args(&target)?];
    if journeys.len() > 1 {
        streams.push(loadgen_args(&others)?);
    }
    for stream in streams {
        let config = traffic_config.clone();
        traffic.spawn(async move { loadgen::execute_on(&config, stream, false, false).await.map(|_| ()) });
    }
    traffic.spawn(timeline(
        args.healthy,
        args.incident_length,
        args.incident_every,
        args.journey.clone(),
    ));
    traffic.spawn(watch_alerts(listen));

    // Ctrl-C or SIGTERM stops the traffic first, then the engine.
    let traffic_ended = tokio::select! {
        _ = serve::shutdown_signal() => false,
        result = &mut server => return finished(result).and_then(|()| anyhow::bail!("the engine stopped")),
        Some(result) = traffic.join_next() => {
            result.context("the demo traffic panicked")?.context("the demo traffic failed")?;
            true
        }
    };
    traffic.shutdown().await;
    if traffic_ended {
        // The schedule ran out: the engine serves on until Ctrl-C or SIGTERM.
        tokio::select! {
            _ = serve::shutdown_signal() => {}
            result = &mut server => return finished(result).and_then(|()| anyhow::bail!("the engine stopped")),
        }
    }
    stop.cancel();
    finished(server.await)?;
    println!("demo stopped; the data stays in {}", database.display());
    Ok(())
}

fn finished(result: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    result.context("the engine panicked")?
}

/// Waits until the API accepts connections, or fails with the engine's start-up error.
async fn wait_listening(
    addr: SocketAddr,
    server: &mut tokio::task::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if server.is_finished() {
            finished(server.await)?;
            anyhow::bail!("the engine stopped while starting");
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the engine did not listen on {addr} within a minute"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One line when each incident starts and ends.
async fn timeline(healthy: Duration, length: Duration, every: Duration, journey: String) -> anyhow::Result<()> {
    let start = tokio::time::Instant::now();
    let mut next = healthy;
    loop {
        tokio::time::sleep_until(start + next).await;
        println!(
            "[{}] incident: {journey} starts failing for {}",
            clock(),
            slis::format_duration(length)
        );
        tokio::time::sleep_until(start + next + length).await;
        println!("[{}] incident over: {journey} recovers", clock());
        next += every;
    }
}

/// The wall clock, UTC, as the alert history writes it.
fn clock() -> String {
    chrono::Utc::now().format("%H:%M:%S").to_string()
}

/// Prints each alert transition as it appears in the engine's history.
async fn watch_alerts(addr: SocketAddr) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("an HTTP client")?;
    let url = format!("http://{addr}/api/v1/alerts/history?since=1h");
    let mut seen = HashSet::new();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let Ok(r) = client.get(&url).send().await else { continue };
        let Ok(body) = r.json::<serde_json::Value>().await else {
            continue;
        };
        let mut events: Vec<&serde_json::Value> = body["events"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        events.sort_by_key(|e| e["at"].as_str().unwrap_or("").to_owned());
        for e in events {
            let field = |k: &str| e[k].as_str().unwrap_or("").to_owned();
            if seen.insert((field("fingerprint"), field("event"), field("at"))) {
                println!(
                    "[{}] {} {} {}",
                    field("at").get(11..19).unwrap_or(""),
                    field("severity"),
                    field("event"),
                    field("slo")
                );
            }
        }
    }
}
