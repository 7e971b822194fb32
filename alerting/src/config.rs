//! The alerting config sections: `[alerting]`, `[[slos]]`, `[[policies]]`, `[[receivers]]`,
//! `[route]` and `[[reports]]`. Parsed with their spans, then validated into domain types by
//! [`build`], which collects every error rather than stopping at the first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::Deserialize;
use slis::config::{ConfigError, HumanDuration, Objective};
use slis::journey::Journeys;
use slis::policy::{Policy, Severity, WindowRule};
use slis::slo::{Period, SliKind, Slo};
use toml::Spanned;

use crate::labels::LabelMatcher;
use crate::mute::InhibitRule;
pub use crate::notify::alertmanager::config::AlertmanagerConfig;
use crate::notify::delivery::unsupported_reason;
pub use crate::notify::email::config::{EmailConfig, TlsMode};
pub use crate::notify::http::HttpUrl;
pub use crate::notify::webhook::config::{WebhookConfig, WebhookFormat, unsupported_format};
use crate::schedule::CronSchedule;

/// `[alerting]`: the evaluator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// How often every SLO is evaluated against its policy.
    pub eval_interval: HumanDuration,
    /// Link to a trace in your tracing UI; `{trace_id}` is replaced, e.g.
    /// `"https://jaeger.example.com/trace/{trace_id}"`.
    pub trace_url: Option<String>,
    /// Fire a ticket when an SLO's long windows hold no events at all.
    pub alert_on_no_data: bool,
    /// Exemplar traces attached to a firing alert.
    pub exemplars: usize,
    /// Top contributing services/operations attached to a firing alert.
    pub contributors: usize,
    /// A notification still undelivered this long after it was queued is given up (counted).
    pub give_up_after: HumanDuration,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            eval_interval: Duration::from_secs(15).into(),
            trace_url: None,
            alert_on_no_data: false,
            exemplars: 5,
            contributors: 5,
            give_up_after: Duration::from_secs(24 * 3_600).into(),
        }
    }
}

/// The SLI kinds as written in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SliName {
    Latency,
    Error,
    Completeness,
    Fragmentation,
    ExportLag,
    ClockSkew,
}

impl SliName {
    pub fn as_str(self) -> &'static str {
        match self {
            SliName::Latency => "latency",
            SliName::Error => "error",
            SliName::Completeness => "completeness",
            SliName::Fragmentation => "fragmentation",
            SliName::ExportLag => "export_lag",
            SliName::ClockSkew => "clock_skew",
        }
    }

    /// Whether this SLI takes a `threshold` (and needs one).
    fn has_threshold(self) -> bool {
        matches!(self, SliName::Latency | SliName::ExportLag)
    }
}

/// `[[slos]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    /// Unique name; the `slo` label of its alerts.
    pub name: Spanned<String>,
    /// What it is for, shown on dashboards and in pages.
    pub description: Option<String>,
    /// The journey whose events it counts.
    pub journey: Spanned<String>,
    /// `latency` (needs `threshold`), `error`, `completeness`, or a trace-health SLI:
    /// `fragmentation`, `export_lag` (needs `threshold`), `clock_skew`.
    pub sli: Spanned<SliName>,
    /// For `latency`: a root span slower than this is bad, e.g. `"800ms"`. For `export_lag`: a
    /// trace with a span received more than this after its end is bad, e.g. `"30s"`.
    pub threshold: Option<Spanned<HumanDuration>>,
    /// Share of good events, strictly between 0 and 1, e.g. `0.999`.
    pub objective: Objective,
    /// `"7d"`, `"28d"`, `"30d"` (any rolling length from 1h to 90d) or `"calendar_month"`.
    pub period: Spanned<String>,
    /// Alert policy by name; the SRE Workbook default when absent.
    pub policy: Option<Spanned<String>>,
    /// Labels copied onto its alerts (over the journey's).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `[[policies]]`: a table of burn-rate rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Unique name. A policy named `default` replaces the built-in SRE Workbook one.
    pub name: Spanned<String>,
    /// The period the windows are written for; SLOs of other periods scale them. Default `30d`.
    #[serde(default = "thirty_days")]
    pub reference_period: HumanDuration,
    /// No alert fires while the long window holds fewer events than this.
    #[serde(default = "default_min_events")]
    pub min_events: u64,
    /// The rules, each firing on burn above `factor` over both windows.
    pub windows: Vec<WindowConfig>,
    /// An alert stays firing this long after its rule stops holding, so an SLI flapping around
    /// the threshold pages once (Prometheus' `keep_firing_for`). Default 0: resolve at once.
    #[serde(default = "zero")]
    pub keep_firing_for: HumanDuration,
    /// Budget-exhaustion alerts: fire when the budget runs out within `within` at the current
    /// (1 h) burn rate.
    #[serde(default)]
    pub exhaustion: Vec<ExhaustionConfig>,
}

/// `[[policies.exhaustion]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExhaustionConfig {
    /// Fire when the budget is gone within this long, e.g. `"24h"`.
    pub within: Spanned<HumanDuration>,
    /// `page` or `ticket`.
    pub severity: SeverityName,
}

/// `[[inhibit_rules]]`: while a firing alert matches `source_matchers`, alerts matching
/// `target_matchers` with equal values of the `equal` labels are not notified. Default, when the
/// section is absent: `severity = page` mutes `severity = ticket` of the same `slo`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    pub source_matchers: Vec<Spanned<String>>,
    pub target_matchers: Vec<Spanned<String>>,
    #[serde(default)]
    pub equal: Vec<String>,
}

fn thirty_days() -> HumanDuration {
    slis::policy::WORKBOOK_PERIOD.into()
}

fn zero() -> HumanDuration {
    Duration::ZERO.into()
}

fn default_min_events() -> u64 {
    slis::policy::DEFAULT_MIN_EVENTS
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    pub long: HumanDuration,
    /// Must be shorter than `long`.
    pub short: Spanned<HumanDuration>,
    /// Burn rate to exceed over both windows, e.g. 14.4.
    pub factor: Spanned<f64>,
    /// `page` or `ticket`.
    pub severity: SeverityName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeverityName {
    Page,
    Ticket,
}

impl From<SeverityName> for Severity {
    fn from(s: SeverityName) -> Self {
        match s {
            SeverityName::Page => Severity::Page,
            SeverityName::Ticket => Severity::Ticket,
        }
    }
}

/// `[[receivers]]`: where notifications go. Exactly one of `webhook`, `email`, `alertmanager`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Unique name, referenced by routes and reports.
    pub name: Spanned<String>,
    pub webhook: Option<WebhookConfig>,
    pub email: Option<EmailConfig>,
    pub alertmanager: Option<AlertmanagerConfig>,
}

/// Why a receiver cannot take reports: the kind that cannot (`"webhook format alertmanager"`,
/// `"webhook format pagerduty"`, `"alertmanager"`), or `None` when it can. Alertmanager's payloads
/// and PagerDuty's events describe alerts; a digest is not one.
pub fn unsupported_by(receiver: &ReceiverConfig) -> Option<&'static str> {
    if let Some(w) = &receiver.webhook {
        unsupported_format(w.format)
    } else if receiver.alertmanager.is_some() {
        Some("alertmanager")
    } else {
        None
    }
}

/// `[route]`: a tree matching alert labels to receivers. Children inherit unset fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Required on the root route.
    pub receiver: Option<Spanned<String>>,
    /// Label matchers, all of which must hold, e.g. `["severity = page", "team =~ pay.*"]`.
    #[serde(default)]
    pub matchers: Vec<Spanned<String>>,
    /// Labels that split alerts into notification groups. Default `["slo"]`.
    pub group_by: Option<Vec<String>>,
    /// Wait before the first notification of a new group. Default 30s.
    pub group_wait: Option<HumanDuration>,
    /// Wait before notifying a group about new alerts. Default 5m.
    pub group_interval: Option<HumanDuration>,
    /// Re-send a still-firing group after this. Default 4h.
    pub repeat_interval: Option<HumanDuration>,
    /// Keep matching siblings after this route matched.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// `[[reports]]`: a periodic summary (budget, burn, incidents) sent to a receiver.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    pub name: Spanned<String>,
    /// Unix cron `"0 9 * * 1"` (Mondays 09:00 UTC), or 6/7 fields with seconds first.
    pub schedule: CronSchedule,
    pub receiver: Spanned<String>,
    /// SLOs to include; all when empty.
    #[serde(default)]
    pub slos: Vec<Spanned<String>>,
}

/// The raw alerting sections of one config file.
#[derive(Debug, Default)]
pub struct Sections {
    pub alerting: AlertingConfig,
    pub slos: Vec<SloConfig>,
    pub policies: Vec<PolicyConfig>,
    pub receivers: Vec<ReceiverConfig>,
    pub route: Option<Spanned<RouteConfig>>,
    pub reports: Vec<ReportConfig>,
    pub inhibit_rules: Option<Vec<InhibitRuleConfig>>,
}

/// A route with inherited fields resolved.
#[derive(Debug, Clone)]
pub struct Route {
    pub receiver: String,
    pub matchers: Vec<LabelMatcher>,
    pub group_by: Vec<String>,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub continue_matching: bool,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub schedule: CronSchedule,
    pub receiver: String,
    /// Indices into the SLO list; empty = all.
    pub slos: Vec<usize>,
}

/// The validated alerting model.
#[derive(Debug, Clone)]
pub struct Alerting {
    pub settings: AlertingConfig,
    pub slos: Vec<Slo>,
    /// The built-in default first unless the config replaces it.
    pub policies: Vec<Policy>,
    pub receivers: Vec<ReceiverConfig>,
    pub route: Option<Route>,
    pub reports: Vec<Report>,
    /// Per policy (same order as `policies`): what alerting adds to the burn-rate table.
    pub policy_alerting: Vec<PolicyAlerting>,
    pub inhibit: Vec<InhibitRule>,
    /// Per SLO (same order as `slos`): its description, if any.
    pub descriptions: Vec<Option<String>>,
}

/// The alerting side of a policy.
#[derive(Debug, Clone, Default)]
pub struct PolicyAlerting {
    pub keep_firing_for: Duration,
    /// (within, severity)
    pub exhaustion: Vec<(Duration, Severity)>,
}

/// Rolling periods outside this range are refused: the windows keep `max` of history.
pub const MIN_PERIOD: Duration = Duration::from_secs(3_600);
pub const MAX_PERIOD: Duration = Duration::from_secs(90 * 86_400);

fn parse_period(text: &str) -> Result<Period, String> {
    if text == "calendar_month" {
        return Ok(Period::CalendarMonth);
    }
    let d = slis::parse_duration(text)
        .map_err(|e| format!("{e}; a period is a duration such as \"28d\" or \"calendar_month\""))?;
    if !(MIN_PERIOD..=MAX_PERIOD).contains(&d) {
        return Err(format!("period {text:?} is outside 1h..90d"));
    }
    Ok(Period::Rolling(d))
}

/// Checks that every name in a list is unique, reporting each repeat at its own place.
fn unique<'a>(kind: &str, names: impl Iterator<Item = &'a Spanned<String>>, errors: &mut Vec<ConfigError>) {
    let mut seen = HashSet::new();
    for n in names {
        if !seen.insert(n.get_ref().as_str()) {
            errors.push(ConfigError::at(
                n.span(),
                format!("duplicate {kind} name {:?}", n.get_ref()),
            ));
        }
    }
}

fn unknown(kind: &str, name: &Spanned<String>, known: impl Iterator<Item = String>) -> ConfigError {
    let mut known: Vec<String> = known.collect();
    known.sort();
    let hint = if known.is_empty() {
        format!("no {kind}s are defined")
    } else {
        format!("defined: {}", known.join(", "))
    };
    ConfigError::at(name.span(), format!("unknown {kind} {:?} ({hint})", name.get_ref()))
}

/// Validates the alerting sections against the journeys, collecting every error.
pub fn build(s: Sections, journeys: &Journeys) -> Result<Alerting, Vec<ConfigError>> {
    let mut errors = Vec::new();

    unique("policy", s.policies.iter().map(|p| &p.name), &mut errors);
    let mut policies = Vec::with_capacity(s.policies.len() + 1);
    let mut policy_alerting = Vec::with_capacity(s.policies.len() + 1);
    if !s.policies.iter().any(|p| p.name.get_ref() == Policy::DEFAULT_NAME) {
        policies.push(Policy::workbook());
        policy_alerting.push(PolicyAlerting::default());
    }
    for p in s.policies {
        let mut rules = Vec::with_capacity(p.windows.len());
        if p.windows.is_empty() {
            errors.push(ConfigError::at(
                p.name.span(),
                format!("policy {:?} has no windows", p.name.get_ref()),
            ));
        }
        for w in p.windows {
            if w.short.get_ref().0 >= w.long.0 {
                errors.push(ConfigError::at(
                    w.short.span(),
                    format!(
                        "short window {} is not shorter than its long window {}",
                        w.short.get_ref(),
                        w.long
                    ),
                ));
            }
            let factor = *w.factor.get_ref();
            if !(factor > 0.0 && factor.is_finite()) {
                errors.push(ConfigError::at(
                    w.factor.span(),
                    format!("burn factor {factor} must be a positive number"),
                ));
            }
            rules.push(WindowRule {
                long: w.long.0,
                short: w.short.into_inner().0,
                factor,
                severity: w.severity.into(),
            });
        }
        let mut exhaustion = Vec::with_capacity(p.exhaustion.len());
        for e in p.exhaustion {
            if e.within.get_ref().0.is_zero() {
                errors.push(ConfigError::at(e.within.span(), "exhaustion `within` must be above 0"));
            }
            exhaustion.push((e.within.into_inner().0, e.severity.into()));
        }
        policy_alerting.push(PolicyAlerting {
            keep_firing_for: p.keep_firing_for.0,
            exhaustion,
        });
        policies.push(Policy {
            name: p.name.into_inner(),
            reference_period: p.reference_period.0,
            min_events: p.min_events,
            rules,
        });
    }

    unique("SLO", s.slos.iter().map(|x| &x.name), &mut errors);
    let mut slos = Vec::with_capacity(s.slos.len());
    for c in &s.slos {
        let journey = journeys.by_name(c.journey.get_ref());
        if journey.is_none() {
            errors.push(unknown(
                "journey",
                &c.journey,
                journeys.0.iter().map(|j| j.name.clone()),
            ));
        }
        let sli = match (*c.sli.get_ref(), &c.threshold) {
            (name, Some(t)) if name.has_threshold() && t.get_ref().0.is_zero() => {
                errors.push(ConfigError::at(
                    t.span(),
                    format!("{} threshold must be above 0", name.as_str().replace('_', " ")),
                ));
                None
            }
            (SliName::Latency, Some(t)) => Some(SliKind::Latency {
                threshold: t.get_ref().0,
            }),
            (SliName::ExportLag, Some(t)) => Some(SliKind::ExportLag {
                threshold: t.get_ref().0,
            }),
            (name, None) if name.has_threshold() => {
                let example = if name == SliName::Latency { "800ms" } else { "30s" };
                errors.push(ConfigError::at(
                    c.sli.span(),
                    format!(
                        "SLO {:?}: a{} {} SLI needs a threshold, e.g. threshold = \"{example}\"",
                        c.name.get_ref(),
                        if name == SliName::ExportLag { "n" } else { "" },
                        name.as_str()
                    ),
                ));
                None
            }
            (other, Some(t)) => {
                errors.push(ConfigError::at(
                    t.span(),
                    format!(
                        "SLO {:?}: threshold applies only to latency and export_lag SLIs, not {}",
                        c.name.get_ref(),
                        other.as_str()
                    ),
                ));
                None
            }
            (SliName::Error, None) => Some(SliKind::Error),
            (SliName::Completeness, None) => Some(SliKind::Completeness),
            (SliName::Fragmentation, None) => Some(SliKind::Fragmentation),
            (SliName::ClockSkew, None) => Some(SliKind::ClockSkew),
            (SliName::Latency | SliName::ExportLag, None) => unreachable!("handled above"),
        };
        if let (Some(j), SliName::Completeness) = (journey, c.sli.get_ref())
            && journeys.0[j].expected_services.is_empty()
        {
            errors.push(ConfigError::at(
                c.sli.span(),
                format!(
                    "SLO {:?}: a completeness SLI needs expected_services on journey {:?}",
                    c.name.get_ref(),
                    c.journey.get_ref()
                ),
            ));
        }
        let period = parse_period(c.period.get_ref())
            .map_err(|e| errors.push(ConfigError::at(c.period.span(), e)))
            .ok();
        let policy_name = c.policy.as_ref().map_or(Policy::DEFAULT_NAME, |p| p.get_ref().as_str());
        let policy = policies.iter().position(|p| p.name == policy_name);
        if let (None, Some(p)) = (policy, &c.policy) {
            errors.push(unknown("policy", p, policies.iter().map(|p| p.name.clone())));
        }
        if let (Some(journey), Some(sli), Some(period), Some(policy)) = (journey, sli, period, policy) {
            let mut labels: BTreeMap<String, String> = journeys.0[journey].labels.iter().cloned().collect();
            labels.extend(c.labels.clone());
            slos.push(Slo {
                name: c.name.get_ref().clone(),
                journey,
                sli,
                objective: c.objective.0,
                period,
                policy,
                labels: labels.into_iter().collect(),
            });
        }
    }

    unique("receiver", s.receivers.iter().map(|r| &r.name), &mut errors);
    for r in &s.receivers {
        let kinds = [r.webhook.is_some(), r.email.is_some(), r.alertmanager.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            errors.push(ConfigError::at(
                r.name.span(),
                format!(
                    "receiver {:?} must set exactly one of webhook, email, alertmanager",
                    r.name.get_ref()
                ),
            ));
        }
        if let Some(e) = &r.email
            && e.username.is_some() != e.password.is_some()
        {
            errors.push(ConfigError::at(
                r.name.span(),
                format!(
                    "receiver {:?}: email username and password must be set together",
                    r.name.get_ref()
                ),
            ));
        }
        if let Some(e) = &r.email
            && e.to.is_empty()
        {
            errors.push(ConfigError::at(
                r.name.span(),
                format!("receiver {:?}: email.to is empty", r.name.get_ref()),
            ));
        }
        if let Some(w) = &r.webhook
            && w.format == WebhookFormat::Pagerduty
            && w.routing_key.is_none()
        {
            errors.push(ConfigError::at(
                r.name.span(),
                format!(
                    "receiver {:?}: the pagerduty format needs webhook.routing_key",
                    r.name.get_ref()
                ),
            ));
        }
    }
    let receiver_names: HashMap<&str, ()> = s.receivers.iter().map(|r| (r.name.get_ref().as_str(), ())).collect();
    let check_receiver = |name: &Spanned<String>, errors: &mut Vec<ConfigError>| {
        if !receiver_names.contains_key(name.get_ref().as_str()) {
            errors.push(unknown(
                "receiver",
                name,
                s.receivers.iter().map(|r| r.name.get_ref().clone()),
            ));
        }
    };

    let route = match &s.route {
        Some(root) => {
            if root.get_ref().receiver.is_none() {
                errors.push(ConfigError::at(root.span(), "the root [route] needs a receiver"));
            }
            let defaults = Route {
                receiver: String::new(),
                matchers: vec![],
                group_by: vec!["slo".to_owned()],
                group_wait: Duration::from_secs(30),
                group_interval: Duration::from_secs(300),
                repeat_interval: Duration::from_secs(4 * 3_600),
                continue_matching: false,
                routes: vec![],
            };
            Some(build_route(
                root.get_ref(),
                &defaults,
                &mut |n, e| check_receiver(n, e),
                &mut errors,
            ))
        }
        None if !s.receivers.is_empty() => {
            errors.push(ConfigError::unplaced(
                "receivers are defined but no [route] sends anything to them",
            ));
            None
        }
        None => None,
    };

    let inhibit = match s.inhibit_rules {
        None => vec![InhibitRule::page_mutes_ticket()],
        Some(rules) => rules
            .into_iter()
            .map(|r| {
                let mut parse = |list: Vec<Spanned<String>>| -> Vec<LabelMatcher> {
                    list.iter()
                        .filter_map(|m| {
                            LabelMatcher::parse(m.get_ref())
                                .map_err(|e| errors.push(ConfigError::at(m.span(), e.to_string())))
                                .ok()
                        })
                        .collect()
                };
                InhibitRule {
                    source: parse(r.source_matchers),
                    target: parse(r.target_matchers),
                    equal: r.equal,
                }
            })
            .collect(),
    };
    let descriptions = s.slos.iter().map(|c| c.description.clone()).collect();

    unique("report", s.reports.iter().map(|r| &r.name), &mut errors);
    let mut reports = Vec::with_capacity(s.reports.len());
    for r in s.reports {
        check_receiver(&r.receiver, &mut errors);
        let target = s.receivers.iter().find(|x| x.name.get_ref() == r.receiver.get_ref());
        if let Some(kind) = target.and_then(unsupported_by) {
            errors.push(ConfigError::at(
                r.receiver.span(),
                format!(
                    "report {:?}: receiver {:?} cannot take it: {}; use a webhook in format generic or slack, or email",
                    r.name.get_ref(),
                    r.receiver.get_ref(),
                    unsupported_reason(kind)
                ),
            ));
        }
        let mut indices = Vec::new();
        for name in &r.slos {
            match slos.iter().position(|x| x.name == *name.get_ref()) {
                Some(i) => indices.push(i),
                None if s.slos.iter().any(|x| x.name.get_ref() == name.get_ref()) => {} // invalid SLO, reported
                None => errors.push(unknown("SLO", name, s.slos.iter().map(|x| x.name.get_ref().clone()))),
            }
        }
        reports.push(Report {
            name: r.name.into_inner(),
            schedule: r.schedule,
            receiver: r.receiver.into_inner(),
            slos: indices,
        });
    }

    if errors.is_empty() {
        Ok(Alerting {
            settings: s.alerting,
            slos,
            policies,
            receivers: s.receivers,
            route,
            reports,
            policy_alerting,
            inhibit,
            descriptions,
        })
    } else {
        Err(errors)
    }
}

fn build_route(
    c: &RouteConfig,
    parent: &Route,
    check_receiver: &mut dyn FnMut(&Spanned<String>, &mut Vec<ConfigError>),
    errors: &mut Vec<ConfigError>,
) -> Route {
    if let Some(r) = &c.receiver {
        check_receiver(r, errors);
    }
    let matchers = c
        .matchers
        .iter()
        .filter_map(|m| {
            LabelMatcher::parse(m.get_ref())
                .map_err(|e| errors.push(ConfigError::at(m.span(), e.to_string())))
                .ok()
        })
        .collect();
    let mut route = Route {
        receiver: c
            .receiver
            .as_ref()
            .map_or_else(|| parent.receiver.clone(), |r| r.get_ref().clone()),
        matchers,
        group_by: c.group_by.clone().unwrap_or_else(|| parent.group_by.clone()),
        group_wait: c.group_wait.map_or(parent.group_wait, |d| d.0),
        group_interval: c.group_interval.map_or(parent.group_interval, |d| d.0),
        repeat_interval: c.repeat_interval.map_or(parent.repeat_interval, |d| d.0),
        continue_matching: c.continue_matching,
        routes: vec![],
    };
    route.routes = c
        .routes
        .iter()
        .map(|child| build_route(child, &route, check_receiver, errors))
        .collect();
    route
}
