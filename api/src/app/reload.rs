//! Config reload: `POST /api/v1/config/reload` and SIGHUP. The file the running config came from
//! is read again and validated whole; an invalid file, or one that changes what only a restart
//! can change, is refused with every error and the running config stays in force. A valid one is
//! applied at once and recorded in `config_versions`:
//!
//! - journeys and SLOs: [`Pipeline::reconfigure`](tracebudget_engine::pipeline::Pipeline::reconfigure) keeps
//!   the windows, exemplars and blame of every kept SLO (same journey, name and SLI);
//! - alerting: [`Alerter::reconfigure`](tracebudget_alerting::alerter::Alerter::reconfigure) keeps alerts,
//!   groups and silences; receivers get new notifiers; policies, routes, inhibit rules, reports
//!   apply from the next evaluation cycle;
//! - `[server]` tokens, `protect_reads` and `allowed_hosts` apply to the next request.
//!
//! Restart-only: `[server] listen`, `external_url`, `tls`, the timeouts and `max_connections`, `[storage]`, `[ingest]`, `[trace_health]`, `[privacy]`, and `[alerting]`
//! `eval_interval` and `give_up_after`.
//!
//! A reload holds [`AlertRuntime::reconfig`](crate::app::alerts::AlertRuntime) exclusively (it waits
//! for a running evaluation cycle), then the alerter and the pipeline, and swaps the pipeline's
//! journeys and the live config ([`Live`]) under the pipeline lock.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tracebudget_engine::pipeline::Pipeline;
use tracebudget_engine::receiver::wall_clock;
use tracebudget_engine::store::Db;
use tracebudget_engine::store::db::ConfigVersion;

use crate::app::alerts::AlertRuntime;
use crate::app::config::{Config, LoadError};
use crate::app::state::Live;

/// What a reload reads and swaps, borrowed from the running server (the route in
/// `http/reload.rs` and SIGHUP both hold it).
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// Reconfigured in place.
    pub pipeline: &'a Mutex<Pipeline>,
    /// Replaced by the new config.
    pub live: &'a Live,
    /// The alerter reconfigured, the notifiers replaced.
    pub alerts: &'a AlertRuntime,
    /// Where the applied config is recorded.
    pub db: &'a Db,
    /// Where the outcome is counted.
    pub metrics: &'a ReloadMetrics,
}

/// A reload that took effect (or found the file unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reloaded {
    /// Always true (the body of `200`).
    pub reloaded: bool,
    /// The SHA-256 of the config in force.
    pub sha256: String,
    /// False when the file's content is the running one (nothing was done).
    pub changed: bool,
    /// How many journeys the config in force has.
    pub journeys: usize,
    /// How many SLOs the config in force has.
    pub slos: usize,
    /// The SLOs the reload added, by name.
    pub added_slos: Vec<String>,
    /// The SLOs the reload removed, by name.
    pub removed_slos: Vec<String>,
}

/// A refused reload: the running config stays in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Why, as counted.
    pub reason: Reason,
    /// What was refused, in one sentence.
    pub error: String,
    /// Every problem found, in the order of the file.
    pub errors: Vec<Problem>,
}

/// Why a reload was refused: the `outcome` of `tracebudget_config_reloads_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The file cannot be read.
    Unreadable,
    /// The file is not a valid config, or a receiver of it cannot be built.
    Invalid,
    /// The file changes a setting that only a restart applies.
    RestartRequired,
    /// The database did not record the new config.
    StoreFailed,
}

impl Reason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unreadable => "unreadable",
            Reason::Invalid => "invalid",
            Reason::RestartRequired => "restart_required",
            Reason::StoreFailed => "store_failed",
        }
    }
}

/// One reason a reload was refused, with its place in the file when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong.
    pub message: String,
    /// Its line in the file, from 1.
    pub line: Option<usize>,
    /// Its column in the line, from 1.
    pub column: Option<usize>,
}

impl Problem {
    fn plain(message: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            line: None,
            column: None,
        }
    }
}

/// Reload outcomes, in /metrics: `tracebudget_config_reloads_total{outcome}` and whether the last
/// reload applied (`tracebudget_config_last_reload_successful`, 1 until a reload fails).
#[derive(Debug)]
pub struct ReloadMetrics {
    /// Reloads by outcome.
    pub reloads: Family<OutcomeLabels, Counter>,
    /// 1 when the last reload applied, 0 when it was refused.
    pub last_successful: Gauge,
    /// When the config in force was loaded, in Unix seconds.
    pub last_success_seconds: Gauge,
}

/// The labels of a reload counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `applied`, `unchanged` or a [`Reason`].
    pub outcome: &'static str,
}

impl Default for ReloadMetrics {
    fn default() -> Self {
        let m = ReloadMetrics {
            reloads: Family::default(),
            last_successful: Gauge::default(),
            last_success_seconds: Gauge::default(),
        };
        m.last_successful.set(1);
        m.last_success_seconds.set(wall_clock().unix_secs());
        m
    }
}

impl ReloadMetrics {
    /// Registers the three families.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "config_reloads",
            "Config reloads by outcome (applied, unchanged, invalid, restart_required, unreadable, store_failed)",
            self.reloads.clone(),
        );
        registry.register(
            "config_last_reload_successful",
            "Whether the last config reload applied (1) or was refused (0)",
            self.last_successful.clone(),
        );
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the running config was loaded (start-up or the last applied reload), in Unix seconds",
            self.last_success_seconds.clone(),
        );
    }

    fn count(&self, outcome: &'static str) {
        self.reloads.get_or_create(&OutcomeLabels { outcome }).inc();
    }
}

/// Reads the running config's file again and applies it, or says why not. Logs and counts the
/// outcome.
pub async fn reload(state: Target<'_>) -> Result<Reloaded, Refused> {
    let _exclusive = state.alerts.reconfig.write().await;
    let result = apply(state).await;
    let metrics = state.metrics;
    match &result {
        Ok(r) if !r.changed => {
            metrics.count("unchanged");
            metrics.last_successful.set(1);
            tracing::info!(sha256 = %r.sha256, "config reload: the file is unchanged");
        }
        Ok(r) => {
            metrics.count("applied");
            metrics.last_successful.set(1);
            metrics.last_success_seconds.set(wall_clock().unix_secs());
            tracing::info!(
                sha256 = %r.sha256,
                journeys = r.journeys,
                slos = r.slos,
                added = ?r.added_slos,
                removed = ?r.removed_slos,
                "config reloaded"
            );
        }
        Err(e) => {
            metrics.count(e.reason.as_str());
            metrics.last_successful.set(0);
            let problems: Vec<String> = e.errors.iter().map(|p| p.to_string()).collect();
            tracing::error!(error = %e.error, problems = ?problems, "config reload refused; the running config stays in force");
        }
    }
    result
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{l}:{c}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

async fn apply(state: Target<'_>) -> Result<Reloaded, Refused> {
    let current = state.live.get();
    let path = std::path::Path::new(&current.source.file);
    let refuse = |reason, error: String, errors| Refused { reason, error, errors };
    let next = match crate::app::config::load(path) {
        Ok(c) => c,
        Err(LoadError::Read { path, source }) => {
            return Err(refuse(
                Reason::Unreadable,
                format!("cannot read config {path}: {source}; the running config stays in force"),
                vec![],
            ));
        }
        Err(LoadError::Invalid(d)) => {
            let mut errors: Vec<(usize, Problem)> = d
                .errors
                .iter()
                .map(|e| match &e.span {
                    Some(span) => {
                        let (line, col) = d.line_col(span.start);
                        (
                            span.start,
                            Problem {
                                message: e.message.clone(),
                                line: Some(line),
                                column: Some(col),
                            },
                        )
                    }
                    None => (usize::MAX, Problem::plain(e.message.clone())),
                })
                .collect();
            errors.sort_by_key(|(at, _)| *at);
            let n = errors.len();
            return Err(refuse(
                Reason::Invalid,
                format!(
                    "{}: {n} error{} in the new config; the running config stays in force",
                    d.file,
                    if n == 1 { "" } else { "s" }
                ),
                errors.into_iter().map(|(_, p)| p).collect(),
            ));
        }
    };
    if next.source.sha256 == current.source.sha256 {
        return Ok(summary(&current, &current, false));
    }
    let restart = restart_only_changes(&current, &next);
    if !restart.is_empty() {
        return Err(refuse(
            Reason::RestartRequired,
            "the new config changes settings that need a restart; the running config stays in force".into(),
            restart.into_iter().map(Problem::plain).collect(),
        ));
    }
    let notifiers = tracebudget_alerting::runtime::notifiers(&next.alerting).map_err(|e| {
        let e = anyhow::Error::new(e);
        refuse(
            Reason::Invalid,
            "a receiver of the new config cannot be built; the running config stays in force".into(),
            vec![Problem::plain(format!("{e:#}"))],
        )
    })?;
    let actor = tracebudget_engine::store::db::local_actor();
    let version = ConfigVersion {
        sha256: &next.source.sha256,
        applied_at_ms: wall_clock().unix_millis(),
        applied_by: &actor,
        source: &next.source.file,
        content: &next.source.text,
    };
    state.db.record_config(&version).await.map_err(|e| {
        refuse(
            Reason::StoreFailed,
            format!(
                "cannot record the new config in {}: {e}; the running config stays in force",
                state.db.url
            ),
            vec![],
        )
    })?;

    let next = Arc::new(next);
    let model = Arc::new(next.alerting.clone());
    let journeys: Vec<String> = next.journeys.0.iter().map(|j| j.name.clone()).collect();
    let mut alerter = state.alerts.alerter.lock().await;
    {
        let mut pipeline = state.pipeline.lock().expect("pipeline lock poisoned");
        let changed = pipeline.reconfigure(next.journeys.clone(), &next.alerting.slos);
        state.live.set(next.clone());
        drop(pipeline);
        tracing::info!(?changed, "journeys and SLOs reconfigured");
    }
    alerter.reconfigure(model, journeys);
    drop(alerter);
    *state.alerts.notifiers.write().expect("notifiers lock poisoned") = Arc::new(notifiers);
    // The other instances' windows were dropped with the old layout: read them again now.
    state.alerts.relayout.notify_one();
    Ok(summary(&current, &next, true))
}

fn summary(old: &Config, new: &Config, changed: bool) -> Reloaded {
    let names = |c: &Config| -> Vec<String> { c.alerting.slos.iter().map(|s| s.name.clone()).collect() };
    let (before, after) = (names(old), names(new));
    Reloaded {
        reloaded: true,
        sha256: new.source.sha256.clone(),
        changed,
        journeys: new.journeys.0.len(),
        slos: after.len(),
        added_slos: after.iter().filter(|n| !before.contains(n)).cloned().collect(),
        removed_slos: before.iter().filter(|n| !after.contains(n)).cloned().collect(),
    }
}

fn same_tokens(
    a: &Option<tracebudget_engine::config::AuthTokens>,
    b: &Option<tracebudget_engine::config::AuthTokens>,
) -> bool {
    let exposed = |t: &Option<tracebudget_engine::config::AuthTokens>| -> Vec<String> {
        t.iter()
            .flat_map(|t| t.0.iter().map(|s| s.expose().to_owned()))
            .collect()
    };
    exposed(a) == exposed(b)
}

/// What differs between two configs among the settings only a restart applies.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    // Compared by their parsed values (Debug), so reformatting the file is no change.
    fn differs<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
        format!("{a:?}") != format!("{b:?}")
    }
    let (a, b) = (&old.alerting.settings, &new.alerting.settings);
    [
        ("[server] listen", differs(&old.server.listen, &new.server.listen)),
        (
            "[server] external_url",
            differs(&old.server.external_url, &new.server.external_url),
        ),
        ("[storage]", differs(&old.storage, &new.storage)),
        ("[cluster]", differs(&old.cluster, &new.cluster)),
        // Tokens print redacted: compared by value.
        (
            "[ingest]",
            differs(&old.ingest, &new.ingest) || !same_tokens(&old.ingest.auth_token, &new.ingest.auth_token),
        ),
        ("[server.tls]", differs(&old.server.tls, &new.server.tls)),
        (
            "[server] header_read_timeout",
            differs(&old.server.header_read_timeout, &new.server.header_read_timeout),
        ),
        (
            "[server] body_read_timeout",
            differs(&old.server.body_read_timeout, &new.server.body_read_timeout),
        ),
        (
            "[server] max_connections",
            differs(&old.server.max_connections, &new.server.max_connections),
        ),
        ("[trace_health]", differs(&old.trace_health, &new.trace_health)),
        ("[privacy]", old.privacy != new.privacy),
        ("[alerting] eval_interval", differs(&a.eval_interval, &b.eval_interval)),
        ("[alerting] give_up_after", differs(&a.give_up_after, &b.give_up_after)),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(what, _)| format!("{what} changed: it applies only at a restart (tracebudget serve)"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[[journeys]]\nname = \"checkout\"\nservice = \"shop\"\n";

    fn parse(extra: &str) -> Config {
        crate::app::config::parse("t.toml", &format!("{BASE}{extra}")).expect("valid")
    }

    #[test]
    fn privacy_is_restart_only() {
        let default = parse("");
        let rule = |pattern: &str| parse(&format!("[[privacy.rules]]\nname = \"c\"\npattern = \"{pattern}\"\n"));
        assert!(restart_only_changes(&rule("cust-[0-9]+"), &rule("cust-[0-9]+")).is_empty());
        assert_eq!(
            restart_only_changes(&rule("cust-[0-9]+"), &rule("cust-[0-9]{4}")).len(),
            1,
            "same name, other pattern"
        );
        // The defaults written out are no change.
        let same =
            parse("[privacy]\nattribute_allow_list = [\"peer.service\"]\nredact = [\"email\", \"bearer_token\"]\n");
        assert!(restart_only_changes(&default, &same).is_empty());
        for changed in [
            "[privacy]\nredact = [\"email\"]\n",
            "[privacy]\nattribute_allow_list = []\n",
            "[[privacy.rules]]\nname = \"c\"\npattern = \"cust-[0-9]+\"\n",
        ] {
            assert_eq!(
                restart_only_changes(&default, &parse(changed)),
                ["[privacy] changed: it applies only at a restart (tracebudget serve)"],
                "{changed}"
            );
        }
    }
}
