//! `tracebudget serve`: the receivers, the SLI pipeline, the flusher and the HTTP API.
//!
//! Start-up: open and migrate the database, record the config, rebuild the windows from the
//! stored buckets, then listen. Shutdown (when the future given to [`serve`] completes: SIGTERM or
//! Ctrl-C for this command, the demo's own signal for `demo`): stop listening, judge the traces
//! still open on what has arrived, and flush once more (retried for a while), so a graceful
//! restart loses nothing.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracebudget_alerting::deliver::AlertingMetrics;
use tracebudget_alerting::store::AlertStore;
use tracebudget_engine::collector::PipelineCollector;
use tracebudget_engine::decode::AttrKeys;
use tracebudget_engine::listen::{Listen, ListenMetrics};
use tracebudget_engine::metrics::EngineMetrics;
use tracebudget_engine::pipeline::Pipeline;
use tracebudget_engine::receiver::{self, Ingest, Intake, wall_clock};
use tracebudget_engine::store::db::ConfigVersion;
use tracebudget_engine::store::{Db, Flusher, SliStore, StorageMetrics};

use crate::app::alerts;
use crate::app::config::Config;
use crate::app::metrics::SloCollector;
use crate::app::reload::{self, ReloadMetrics};
use crate::http;

/// `tracebudget serve`: the config at `path`, logs through its redaction rules, served until
/// Ctrl-C or SIGTERM.
pub fn run(path: &Path) -> anyhow::Result<()> {
    let config = crate::app::config::load(path)?;
    // Every log line from here on goes through the config's redaction rules.
    crate::app::privacy::redact_logs(config.privacy.redactor.clone());
    init_logging("info");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(serve(config, shutdown_signal()))
}

/// `tracebudget migrate`: open the database, apply what is missing, say what was done.
pub fn migrate(path: &Path) -> anyhow::Result<()> {
    let config = crate::app::config::load(path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(async {
        let db = Db::open(&config.storage.url.0).await?;
        let applied = db.migrate().await?;
        if applied.is_empty() {
            println!("{}: up to date", db.url);
        } else {
            for m in &applied {
                println!("{}: applied {m}", db.url);
            }
        }
        Ok(())
    })
}

/// Opens and migrates the database, then records the config as applied (once per content).
async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let db = Db::open(&config.storage.url.0).await?;
    for m in db.migrate().await? {
        tracing::info!(database = %db.url, migration = %m, "applied");
    }
    let actor = tracebudget_engine::store::db::local_actor();
    let version = ConfigVersion {
        sha256: &config.source.sha256,
        applied_at_ms: wall_clock().unix_millis(),
        applied_by: &actor,
        source: &config.source.file,
        content: &config.source.text,
    };
    if db.record_config(&version).await? {
        tracing::info!(sha256 = %config.source.sha256, by = %actor, "recorded a new config version");
    }
    Ok(db)
}

/// Logs to stderr at `TRACEBUDGET_LOG`, else at `default` (e.g. `info`), each line through the
/// `[privacy]` redaction rules (`privacy::redact_logs`; the default rules until then).
pub(crate) fn init_logging(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TRACEBUDGET_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(crate::app::privacy::MakeRedactingWriter)
        .try_init();
}

/// How often idle traces are closed: a tenth of `trace_idle`, between 10 ms and 1 s.
pub(crate) fn tick_interval(trace_idle: Duration) -> Duration {
    (trace_idle / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Runs the server on `config` until `shutdown` completes or a part of it fails, then stops it
/// (see the module documentation).
pub async fn serve(config: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    // TLS for the notifiers (reqwest, lettre) runs on ring; without a provider reqwest panics.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = open_database(&config).await?;
    let metrics = Arc::new(EngineMetrics::default());
    let storage_metrics = Arc::new(StorageMetrics::default());
    let mut pipeline = Pipeline::new(
        config.journeys.clone(),
        &config.alerting.slos,
        &config.ingest,
        metrics.clone(),
    );
    // Several instances on one PostgreSQL database each write and restore their own rows.
    let store = SliStore::new(&db, config.storage.instance.0.clone());
    let started = std::time::Instant::now();
    let restored = store
        .restore(&mut pipeline, wall_clock())
        .await
        .with_context(|| format!("cannot restore the SLI windows from {}", db.url))?;
    for (outcome, n) in [
        ("restored", restored.count_rows + restored.latency_rows),
        ("unknown_journey", restored.unknown_journey_rows),
        ("too_old", restored.too_old_rows),
        ("corrupt", restored.corrupt.len() as u64),
    ] {
        storage_metrics
            .restored_rows
            .get_or_create(&tracebudget_engine::store::flusher::OutcomeLabels { outcome })
            .inc_by(n);
    }
    for problem in &restored.corrupt {
        tracing::error!(%problem, "skipped a stored bucket that does not decode");
    }
    tracing::info!(
        count_rows = restored.count_rows,
        latency_rows = restored.latency_rows,
        unknown_journey_rows = restored.unknown_journey_rows,
        unknown_series = restored.unknown_series,
        too_old_rows = restored.too_old_rows,
        elapsed = ?started.elapsed(),
        "restored the SLI windows"
    );
    if let Some(js) = &config.jetstream {
        pipeline.enable_stream(&js.stream, js.partitions);
    }
    pipeline.set_trace_health(config.trace_health.clone());
    pipeline.set_privacy(
        config.privacy.redactor.clone(),
        config.privacy.allows(slis::PEER_SERVICE),
    );
    let pipeline = Arc::new(Mutex::new(pipeline));
    let mut registry = Registry::with_prefix("tracebudget");
    let jetstream_metrics = Arc::new(tracebudget_engine::jetstream::JetStreamMetrics::default());
    if config.jetstream.is_some() {
        jetstream_metrics.register(&mut registry);
    }
    // Alerting metrics are registered below, with the alert state.
    metrics.register(&mut registry);
    storage_metrics.register(&mut registry);
    registry.register_collector(Box::new(PipelineCollector {
        pipeline: pipeline.clone(),
    }));
    registry.register_collector(Box::new(crate::app::privacy::RedactionCollector(
        config.privacy.redactor.clone(),
    )));
    registry.register_collector(Box::new(tracebudget_engine::health::collector::HealthCollector {
        pipeline: pipeline.clone(),
        clock: receiver::wall_clock,
    }));

    let ingest = Ingest {
        pipeline: pipeline.clone(),
        metrics: metrics.clone(),
        keys: attr_keys(&config),
        max_buffered_spans: config.ingest.max_buffered_spans,
    };
    let intake = Arc::new(Intake::new(
        &config.ingest,
        ingest,
        metrics.body_bytes_in_flight.clone(),
    ));

    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let listen_metrics = Arc::new(ListenMetrics::default());
    listen_metrics.register(&mut registry);
    let bound = receiver::start(&config.ingest, intake, listen_metrics.clone(), stop.clone(), &mut tasks).await?;
    for (source, addr) in &bound {
        tracing::info!(receiver = source.as_str(), %addr, tls = config.ingest.tls.is_some(), "listening");
    }

    let api_tls = match &config.server.tls {
        Some(tls) => Some(tls.load("server").map_err(|e| {
            let messages: Vec<String> = e.into_iter().map(|e| e.message).collect();
            anyhow::anyhow!("{}", messages.join("; "))
        })?),
        None => None,
    };
    listen_metrics.initialise("api", &["header", "body"], api_tls.is_some());
    let api_listen = Listen {
        name: "api",
        tls: api_tls,
        header_read_timeout: config.server.header_read_timeout.0,
        body_read_timeout: config.server.body_read_timeout.0,
        max_connections: config.server.max_connections.get(),
        metrics: listen_metrics.clone(),
    };
    let api_scheme = if api_listen.tls.is_some() { "https" } else { "http" };
    let api_listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen for the API on {}", config.server.listen))?;
    let api_addr: SocketAddr = api_listener.local_addr()?;
    tracing::info!(%api_addr, scheme = api_scheme, "API, /metrics and dashboards");
    let external_url = config
        .server
        .external_url
        .clone()
        .unwrap_or_else(|| format!("{api_scheme}://{api_addr}"));
    let alerting_metrics = Arc::new(AlertingMetrics::default());
    alerting_metrics.register(&mut registry);
    let alert_runtime = alerts::start(
        Arc::new(config.alerting.clone()),
        config.journeys.0.iter().map(|j| j.name.clone()).collect(),
        external_url,
        AlertStore::new(db.pool.clone()),
        alerting_metrics.clone(),
    )
    .await?;
    let sources: Vec<&'static str> = bound.iter().map(|(s, _)| s.as_str()).collect();
    let receivers: Vec<String> = config
        .alerting
        .receivers
        .iter()
        .map(|r| r.name.get_ref().clone())
        .collect();
    crate::app::metrics::initialise(&metrics, &storage_metrics, &alerting_metrics, &sources, &receivers);
    let config = Arc::new(config);
    let live = Arc::new(crate::app::state::Live::new(config.clone()));
    registry.register_collector(Box::new(SloCollector {
        pipeline: pipeline.clone(),
        live: live.clone(),
        firing: alert_runtime.firing_by_slo.clone(),
        clock: wall_clock,
    }));
    let reloads = Arc::new(ReloadMetrics::default());
    reloads.register(&mut registry);
    let guard = Arc::new(http::refusal::GuardMetrics::default());
    guard.register(&mut registry);
    let cluster_metrics = tracebudget_engine::cluster::ClusterMetrics::default();
    cluster_metrics.register(&mut registry);
    let state = http::state::AppState {
        registry: Arc::new(registry),
        pipeline: pipeline.clone(),
        live,
        alerts: alert_runtime.clone(),
        db: db.clone(),
        reloads,
        guard,
        clock: wall_clock,
    };
    let app = http::app(state.clone());
    #[cfg(unix)]
    tasks.spawn({
        let stop = stop.clone();
        let state = state.clone();
        async move {
            let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
            while stop.run_until_cancelled(hangup.recv()).await.flatten().is_some() {
                tracing::info!("SIGHUP: reloading the config");
                // The outcome is logged and counted by `reload`.
                let _ = reload::reload(state.reload_target()).await;
            }
            Ok(())
        }
    });
    // On PostgreSQL any number of instances may share the database: they compete for the
    // evaluator lock and merge each other's rows. SQLite serves one instance, always the leader.
    let (leader, others) = match db.backend {
        tracebudget_engine::store::Backend::Postgres => (
            tracebudget_engine::cluster::Leader::postgres(&config.storage.url.0, cluster_metrics.clone())
                .map_err(|e| anyhow::anyhow!("cannot set up the evaluator lock: {e}"))?,
            Some(crate::app::cluster::Others {
                store: store.clone(),
                metrics: cluster_metrics.clone(),
            }),
        ),
        tracebudget_engine::store::Backend::Sqlite => (
            tracebudget_engine::cluster::Leader::always(cluster_metrics.clone()),
            None,
        ),
    };
    tracing::info!(
        instance = %config.storage.instance.0,
        shared = leader.shared(),
        "evaluator: leads while it holds the lock (always on SQLite)"
    );
    alerts::spawn(
        alert_runtime,
        pipeline.clone(),
        config.alerting.settings.eval_interval.0,
        config.alerting.settings.give_up_after.0,
        leader,
        others,
        stop.clone(),
        &mut tasks,
    );
    tasks.spawn({
        let shutdown = stop.clone().cancelled_owned();
        tracebudget_engine::listen::serve_http(api_listener, app, api_listen, shutdown)
    });

    let tick = tick_interval(config.ingest.trace_idle.0);
    tasks.spawn({
        let stop = stop.clone();
        let pipeline = pipeline.clone();
        async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while stop.run_until_cancelled(interval.tick()).await.is_some() {
                pipeline.lock().expect("pipeline lock poisoned").tick(wall_clock());
            }
            Ok(())
        }
    });

    let flush_stop = CancellationToken::new();
    let flusher = Flusher::new(store.clone(), pipeline.clone(), storage_metrics);
    // The partitions to consume. On PostgreSQL several instances may share the stream: each
    // consumes the partitions whose advisory locks it holds (its `[cluster] partitions` first,
    // then any nobody holds: a dead instance's within one `lock_poll`). On SQLite (one
    // instance) all of them, or `consume`.
    let mut _owned = None;
    let mut _locks = None;
    if let Some(js) = &config.jetstream {
        let partitions = match db.backend {
            tracebudget_engine::store::Backend::Postgres => {
                let preferred: Vec<u32> = if config.cluster.partitions.is_empty() {
                    js.consumed().into_iter().collect()
                } else {
                    config.cluster.partitions.clone()
                };
                let (locks, task) = tracebudget_engine::cluster::PartitionLocks::spawn(
                    &config.storage.url.0,
                    &js.stream,
                    js.partitions,
                    &preferred,
                    config.cluster.lock_poll.0,
                    cluster_metrics.clone(),
                    stop.clone(),
                )
                .context("cannot hold the JetStream partition locks")?;
                let owned = locks.subscribe();
                _locks = Some((locks, task));
                owned
            }
            tracebudget_engine::store::Backend::Sqlite => {
                let (owned, partitions) = tokio::sync::watch::channel(js.consumed());
                _owned = Some(owned);
                partitions
            }
        };
        let consumer = tracebudget_engine::jetstream::Consumer {
            config: js.clone(),
            pipeline: pipeline.clone(),
            store,
            keys: attr_keys(&config),
            engine_metrics: metrics.clone(),
            metrics: jetstream_metrics,
            committed: flusher.committed(),
            flush: flusher.handle(),
        };
        tracing::info!(url = %tracebudget_engine::jetstream::config::shown_url(&js.url), stream = %js.stream, partitions = js.partitions, "consuming JetStream");
        tasks.spawn(consumer.run(partitions, stop.clone()));
    }
    let fenced = flusher.fenced();
    let flusher = tokio::spawn(flusher.run(config.storage.flush_interval.0, flush_stop.clone()));

    let mut failed = None;
    tokio::select! {
        _ = shutdown => tracing::info!("shutting down"),
        _ = fenced.cancelled() => {
            failed = Some(Err(anyhow::anyhow!(
                "another instance took over a JetStream partition whose counts were not stored yet \
                 (this instance lost its database session): stopping; start it again to resume from \
                 the stored positions"
            )));
        }
        Some(result) = tasks.join_next() => {
            failed = Some(result.context("a server task panicked").and_then(|r| r.context("a server stopped")));
        }
    }
    stop.cancel();
    while let Some(result) = tasks.join_next().await {
        if let Err(e) = result
            .context("a server task panicked")
            .and_then(|r| r.context("a server failed while stopping"))
        {
            failed.get_or_insert(Err(e));
        }
    }
    // Nothing arrives any more: judge the open traces on what they hold (those of JetStream
    // partitions stay open in their partition's snapshot), then store everything.
    pipeline
        .lock()
        .expect("pipeline lock poisoned")
        .close_all_but_consumed();
    flush_stop.cancel();
    let stored = flusher.await.context("the flusher panicked")?;
    if let Some(Err(e)) = failed {
        return Err(e);
    }
    anyhow::ensure!(stored, "stopped without storing the last counts (see the log)");
    tracing::info!("stopped; everything counted is stored");
    Ok(())
}

/// Completes at Ctrl-C or (on Unix) SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// The attribute keys the decoders keep, and whether they hash every value for the cardinality
/// sketches (`[trace_health] cardinality`).
fn attr_keys(config: &Config) -> AttrKeys {
    let mut keys = AttrKeys::from_journeys(&config.journeys);
    keys.watch_tags = config.trace_health.cardinality;
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_a_tenth_of_the_idle_time_within_bounds() {
        assert_eq!(tick_interval(Duration::from_secs(30)), Duration::from_secs(1));
        assert_eq!(tick_interval(Duration::from_secs(1)), Duration::from_millis(100));
        assert_eq!(tick_interval(Duration::from_millis(20)), Duration::from_millis(10));
    }
}
