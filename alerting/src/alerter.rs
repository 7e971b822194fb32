//! The decision step of every evaluation cycle, pure and clock-driven: each SLO's status
//! ([`slis::eval::SloStatus`]) becomes alerts (one per SLO and severity, so the 1 h and 6 h page
//! rules never page twice for one incident), the alerts move through their lifecycle
//! (inactive → firing → resolved), and the dispatcher turns them into notifications, muted by
//! silences and inhibition. No I/O: the caller persists what [`Cycle`] says changed and queues
//! its notifications in the outbox.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use slis::Timestamp;
use slis::budget::Exhaustion;
use slis::eval::{EXHAUSTION_BURN_WINDOW, SloStatus};
use slis::policy::Severity;

use crate::alert::{Alert, AlertDetail, AlertStatus, Contributor, Exemplar, Notification};
use crate::config::Alerting;
use crate::dispatch::{Dispatcher, Flush, Group, Routable};
use crate::labels::{Labels, fingerprint};
use crate::mute::{InhibitRule, MuteReason, Muted, Muter, Silence};

/// How often firing alerts are re-pushed to an `alertmanager` receiver (each push says the alert
/// ends 4 minutes later unless pushed again; see `notify::alertmanager`).
pub const ALERTMANAGER_RESEND: Duration = Duration::from_secs(60);

/// For this long after it starts firing, an alert without exemplars or contributors looks again
/// every cycle (blame arrives when the traces close, after the roots that fired it).
pub const EXTRAS_REFRESH_FOR: Duration = Duration::from_secs(300);

/// What kind of condition an alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// Burn rate above a rule's factor over both windows, for any rule of this severity.
    BurnRate(Severity),
    /// Budget gone within a policy's `exhaustion[i].within` at the current burn.
    Exhaustion(usize),
    /// No events at all in the policy's longest window (`alert_on_no_data`).
    NoData,
}

impl AlertKind {
    pub fn alertname(self) -> &'static str {
        match self {
            AlertKind::BurnRate(_) => "SLOBurnRate",
            AlertKind::Exhaustion(_) => "SLOBudgetExhaustion",
            AlertKind::NoData => "SLONoData",
        }
    }
}

/// One alert's state.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertState {
    pub fingerprint: String,
    /// Index of its SLO in the config.
    pub slo: usize,
    pub labels: Labels,
    pub annotations: Labels,
    pub firing: bool,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    /// The last cycle its condition held (for `keep_firing_for`).
    pub last_active: Timestamp,
    pub detail: AlertDetail,
}

impl Routable for AlertState {
    fn labels(&self) -> &Labels {
        &self.labels
    }
    fn is_firing(&self) -> bool {
        self.firing
    }
}

impl AlertState {
    /// Its start or end (by its current state) at `now`, for the history.
    fn transition(&self, now: Timestamp) -> Transition {
        Transition {
            fingerprint: self.fingerprint.clone(),
            firing: self.firing,
            at: now,
            alert: self.to_alert(),
        }
    }

    /// The alert as notifiers see it.
    pub fn to_alert(&self) -> Alert {
        Alert {
            fingerprint: self.fingerprint.clone(),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            status: if self.firing {
                AlertStatus::Firing
            } else {
                AlertStatus::Resolved
            },
            starts_at: datetime(self.starts_at),
            ends_at: self.ends_at.map(datetime),
            detail: self.detail.clone(),
        }
    }
}

/// The muter of a cycle at `now`: inhibition sources are the firing alerts.
fn muter<'a>(
    silences: &'a [Silence],
    rules: &'a [InhibitRule],
    alerts: &'a BTreeMap<String, AlertState>,
    now: Timestamp,
) -> Muter<'a> {
    let firing = alerts
        .values()
        .filter(|a| a.firing)
        .map(|a| (a.fingerprint.as_str(), &a.labels));
    Muter::new(silences, rules, firing, now)
}

pub fn datetime(t: Timestamp) -> DateTime<Utc> {
    Utc.timestamp_nanos(t.unix_nanos())
}

/// What only traces can add to a firing alert, fetched when it starts firing and when it resolves.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    pub exemplars: Vec<Exemplar>,
    pub contributors: Vec<Contributor>,
}

/// An alert starting or ending, for the alert history and the transition counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub fingerprint: String,
    pub firing: bool,
    pub at: Timestamp,
    /// The alert as it was at that moment.
    pub alert: Alert,
}

/// What one cycle did.
#[derive(Debug, Default)]
pub struct Cycle {
    pub notifications: Vec<Notification>,
    pub transitions: Vec<Transition>,
    /// Alerts to persist (new or changed state), by fingerprint.
    pub changed_alerts: BTreeSet<String>,
    /// Alerts that ended and were notified (or needed no notice): delete from the state.
    pub removed_alerts: Vec<String>,
    pub changed_groups: BTreeSet<String>,
    pub removed_groups: Vec<String>,
    /// Alerts held back from a due notification, by reason.
    pub muted: Vec<(String, Muted)>,
}

#[derive(Debug)]
struct Def {
    kind: AlertKind,
    severity: Severity,
    labels: Labels,
    fingerprint: String,
}

/// The alert state machine of every SLO.
#[derive(Debug)]
pub struct Alerter {
    model: Arc<Alerting>,
    journeys: Vec<String>,
    external_url: String,
    /// Per SLO, the alerts it can raise.
    defs: Vec<Vec<Def>>,
    /// Every def's fingerprint: a restored alert outside it belongs to an older config.
    known: std::collections::HashSet<String>,
    pub alerts: BTreeMap<String, AlertState>,
    pub dispatcher: Dispatcher,
    pub silences: Vec<Silence>,
}

impl Alerter {
    /// `journeys[j]` names journey `j`; `external_url` is the UI's base URL for links.
    pub fn new(model: Arc<Alerting>, journeys: Vec<String>, external_url: String) -> Self {
        let defs: Vec<Vec<Def>> = model
            .slos
            .iter()
            .map(|slo| {
                let policy = &model.policies[slo.policy];
                let extra = &model.policy_alerting[slo.policy];
                let mut kinds: Vec<(AlertKind, Severity)> = Vec::new();
                for sev in [Severity::Page, Severity::Ticket] {
                    if policy.rules.iter().any(|r| r.severity == sev) {
                        kinds.push((AlertKind::BurnRate(sev), sev));
                    }
                }
                for (i, (_, sev)) in extra.exhaustion.iter().enumerate() {
                    kinds.push((AlertKind::Exhaustion(i), *sev));
                }
                if model.settings.alert_on_no_data {
                    kinds.push((AlertKind::NoData, Severity::Ticket));
                }
                kinds
                    .into_iter()
                    .map(|(kind, severity)| {
                        let mut labels: Labels = slo.labels.iter().cloned().collect();
                        if let AlertKind::Exhaustion(i) = kind {
                            // Two exhaustion rules of one severity are two alerts.
                            let within = extra.exhaustion[i].0;
                            labels.insert("within".into(), slis::format_exact(within).to_string());
                        }
                        labels.insert("journey".into(), journeys[slo.journey].clone());
                        labels.insert("slo".into(), slo.name.clone());
                        labels.insert("severity".into(), severity.as_str().into());
                        labels.insert("alertname".into(), kind.alertname().into());
                        let fingerprint = fingerprint(&labels);
                        Def {
                            kind,
                            severity,
                            labels,
                            fingerprint,
                        }
                    })
                    .collect()
            })
            .collect();
        let resend = model
            .receivers
            .iter()
            .filter(|r| r.alertmanager.is_some())
            .map(|r| (r.name.get_ref().clone(), ALERTMANAGER_RESEND))
            .collect();
        let known = defs.iter().flatten().map(|d: &Def| d.fingerprint.clone()).collect();
        Alerter {
            model,
            journeys,
            external_url,
            defs,
            known,
            alerts: BTreeMap::new(),
            dispatcher: Dispatcher {
                groups: BTreeMap::new(),
                resend,
            },
            silences: Vec::new(),
        }
    }

    /// The alerter of a reloaded config: alerts, groups and silences carry over, so a kept alert
    /// neither pages again nor forgets when it was last sent; an alert the new config no longer
    /// raises resolves at the next cycle, with its resolved notice (see [`cycle`](Self::cycle)).
    pub fn reconfigure(&mut self, model: Arc<Alerting>, journeys: Vec<String>) {
        use std::mem::take;
        let mut next = Alerter::new(model, journeys, take(&mut self.external_url));
        next.restore(
            take(&mut self.alerts).into_values().collect(),
            take(&mut self.dispatcher.groups).into_values().collect(),
        );
        next.silences = take(&mut self.silences);
        *self = next;
    }

    /// `journeys[j]` names journey `j` of the model.
    pub fn journeys(&self) -> &[String] {
        &self.journeys
    }

    pub fn model(&self) -> &Alerting {
        &self.model
    }

    pub fn model_arc(&self) -> &Arc<Alerting> {
        &self.model
    }

    /// Puts back alerts and groups read from the database (alerts of SLOs that no longer exist
    /// are dropped by the next cycle's dispatcher).
    pub fn restore(&mut self, alerts: Vec<AlertState>, groups: Vec<Group>) {
        self.alerts = alerts.into_iter().map(|a| (a.fingerprint.clone(), a)).collect();
        self.dispatcher.groups = groups.into_iter().map(|g| (g.id(), g)).collect();
        for g in self.dispatcher.groups.values_mut() {
            if let Some(r) = self.dispatcher.resend.get(&g.receiver) {
                g.repeat_interval = g.repeat_interval.min(*r);
            }
        }
    }

    /// One cycle at `now`: `statuses[i]` is SLO `i`'s status; `extras(slo, since)` fetches the
    /// exemplars and contributors of SLO `slo` since an instant, called only for alerts that
    /// start or stop firing.
    pub fn cycle(
        &mut self,
        now: Timestamp,
        statuses: &[SloStatus],
        extras: &mut dyn FnMut(usize, Timestamp) -> Extras,
    ) -> Cycle {
        // Every instant an alert keeps (start, end, last activity, group timers, history) is
        // stored as whole milliseconds: taken whole here, what is held is what a restart
        // restores, and an alert's start reads the same in every notice it is ever in.
        let now = Timestamp::from_unix_millis(now.unix_millis());
        let mut out = Cycle::default();
        let model = Arc::clone(&self.model);
        // Alerts restored from an older config that this one no longer raises (a label, a rule or
        // the SLO changed): they end now, so their receivers get the resolved notice.
        for a in self
            .alerts
            .values_mut()
            .filter(|a| a.firing && !self.known.contains(&a.fingerprint))
        {
            a.firing = false;
            a.ends_at = Some(now);
            out.changed_alerts.insert(a.fingerprint.clone());
            out.transitions.push(a.transition(now));
        }
        for (i, (slo, status)) in model.slos.iter().zip(statuses).enumerate() {
            let policy = &model.policies[slo.policy];
            let extra = &model.policy_alerting[slo.policy];
            for def in &self.defs[i] {
                let (holds, detail) = condition(def, slo, status, policy.min_events, extra, &self.journeys);
                // No evidence either way: every short window of its rules is empty while a long
                // window still has traffic (a quiet minute, a restart across a bucket boundary).
                // A firing alert is not resolved on silence.
                let silent = matches!(def.kind, AlertKind::BurnRate(_)) && {
                    let mut rules = status.rules.iter().filter(|r| r.rule.severity == def.severity);
                    rules.clone().all(|r| r.short_burn.no_data)
                        && rules.any(|r| r.long.total >= policy.min_events.max(1))
                };
                let existing = self.alerts.get_mut(&def.fingerprint);
                match existing {
                    Some(a) if a.firing => {
                        let keep = !holds && (silent || now < a.last_active + extra.keep_firing_for);
                        if holds || keep {
                            if holds {
                                a.last_active = now;
                                // Stored, so keep_firing_for holds across a restart too.
                                if !extra.keep_firing_for.is_zero() {
                                    out.changed_alerts.insert(def.fingerprint.clone());
                                }
                            }
                            a.detail = AlertDetail {
                                exemplars: std::mem::take(&mut a.detail.exemplars),
                                contributors: std::mem::take(&mut a.detail.contributors),
                                ..detail
                            };
                            a.annotations = annotations(def, &a.detail, model.descriptions[i].as_deref(), slo);
                        } else {
                            let more = extras(i, a.starts_at);
                            a.firing = false;
                            a.ends_at = Some(now);
                            a.detail = with_extras(&model.settings, detail, more);
                            a.annotations = annotations(def, &a.detail, model.descriptions[i].as_deref(), slo);
                            out.changed_alerts.insert(def.fingerprint.clone());
                            out.transitions.push(a.transition(now));
                        }
                    }
                    _ if holds => {
                        let since = now - detail.long_window;
                        let detail = with_extras(&model.settings, detail, extras(i, since));
                        let state = AlertState {
                            fingerprint: def.fingerprint.clone(),
                            slo: i,
                            labels: def.labels.clone(),
                            annotations: annotations(def, &detail, model.descriptions[i].as_deref(), slo),
                            firing: true,
                            starts_at: now,
                            ends_at: None,
                            last_active: now,
                            detail,
                        };
                        out.transitions.push(state.transition(now));
                        self.alerts.insert(def.fingerprint.clone(), state);
                        out.changed_alerts.insert(def.fingerprint.clone());
                    }
                    _ => {}
                }
            }
        }

        let muter = muter(&self.silences, &model.inhibit, &self.alerts, now);
        let dispatched = match &model.route {
            Some(route) => self.dispatcher.cycle(route, &self.alerts, &muter, now),
            None => Default::default(),
        };
        drop(muter);
        // Blame needs closed traces, which come after the roots that fired the alert: refresh
        // what traces tell for the alerts about to be sent, and for young alerts still without it.
        let in_flush: BTreeSet<&String> = dispatched.flushes.iter().flat_map(|f| f.firing.iter()).collect();
        for a in self.alerts.values_mut().filter(|a| a.firing) {
            let young = now < a.starts_at + EXTRAS_REFRESH_FOR;
            let missing = a.detail.contributors.is_empty() || a.detail.exemplars.is_empty();
            if in_flush.contains(&a.fingerprint) || (young && missing) {
                let more = extras(a.slo, a.starts_at - a.detail.long_window);
                if !more.exemplars.is_empty() || !more.contributors.is_empty() {
                    a.detail = with_extras(&model.settings, a.detail.clone(), more);
                    out.changed_alerts.insert(a.fingerprint.clone());
                }
            }
        }
        out.notifications = dispatched.flushes.iter().map(|f| self.notification(f)).collect();
        out.changed_groups = dispatched.changed;
        out.removed_groups = dispatched.removed;
        out.muted = dispatched.muted;

        // A resolved alert stays only while a group still has to tell its receiver.
        let in_groups: BTreeSet<&String> = self.dispatcher.groups.values().flat_map(|g| &g.alerts).collect();
        let done: Vec<String> = self
            .alerts
            .values()
            .filter(|a| !a.firing && !in_groups.contains(&a.fingerprint))
            .map(|a| a.fingerprint.clone())
            .collect();
        for fp in done {
            self.alerts.remove(&fp);
            out.changed_alerts.remove(&fp);
            out.removed_alerts.push(fp);
        }
        out
    }

    /// Why each firing alert's notifications are held back at `now`, decided by the same
    /// [`Muter`] as the dispatcher's (silences, then inhibition by the firing alerts); alerts
    /// not muted, and resolved ones, are absent.
    pub fn mute_reasons(&self, now: Timestamp) -> BTreeMap<String, MuteReason> {
        let muter = muter(&self.silences, &self.model.inhibit, &self.alerts, now);
        self.alerts
            .values()
            .filter(|a| a.firing)
            .filter_map(|a| Some((a.fingerprint.clone(), muter.reason(&a.fingerprint, &a.labels)?)))
            .collect()
    }

    fn notification(&self, f: &Flush) -> Notification {
        let alerts = f
            .firing
            .iter()
            .chain(&f.resolved)
            .filter_map(|fp| self.alerts.get(fp))
            .map(AlertState::to_alert)
            .collect();
        Notification {
            id: f.id.clone(),
            receiver: f.receiver.clone(),
            group_key: f.group_key.clone(),
            group_labels: f.group_labels.clone(),
            alerts,
            external_url: self.external_url.clone(),
        }
    }
}

fn with_extras(settings: &crate::config::AlertingConfig, detail: AlertDetail, extras: Extras) -> AlertDetail {
    let template = settings.trace_url.as_deref();
    let exemplars = extras
        .exemplars
        .into_iter()
        .take(settings.exemplars)
        .map(|mut e| {
            e.url = template.map(|t| t.replace("{trace_id}", &e.trace_id));
            e
        })
        .collect();
    let contributors = extras.contributors.into_iter().take(settings.contributors).collect();
    AlertDetail {
        exemplars,
        contributors,
        ..detail
    }
}

/// Whether a def's condition holds, and the numbers behind it.
fn condition(
    def: &Def,
    slo: &slis::slo::Slo,
    status: &SloStatus,
    min_events: u64,
    extra: &crate::config::PolicyAlerting,
    journeys: &[String],
) -> (bool, AlertDetail) {
    let current = status.current_burn.rate;
    let base = |factor: f64, long: Duration, short: Duration, burn_long: f64, burn_short: f64| AlertDetail {
        slo: slo.name.clone(),
        journey: journeys[slo.journey].clone(),
        objective: slo.objective,
        severity: def.severity.as_str().into(),
        factor,
        long_window: long,
        short_window: short,
        burn_long,
        burn_short,
        budget_remaining: status.budget.remaining,
        time_to_exhaustion: match status.exhaustion {
            Exhaustion::In(d) => Some(d),
            Exhaustion::Exhausted => Some(Duration::ZERO),
            Exhaustion::Never => None,
        },
        exemplars: Vec::new(),
        contributors: Vec::new(),
    };
    match def.kind {
        AlertKind::BurnRate(sev) => {
            let rules = status.rules.iter().filter(|r| r.rule.severity == sev);
            // The firing rule with the highest factor, else the one closest to firing.
            let lead = rules
                .clone()
                .filter(|r| r.firing)
                .max_by(|a, b| a.rule.factor.total_cmp(&b.rule.factor))
                .or_else(|| {
                    rules.clone().max_by(|a, b| {
                        let closeness =
                            |r: &&slis::eval::RuleStatus| r.long_burn.rate.min(r.short_burn.rate) / r.rule.factor;
                        closeness(a).total_cmp(&closeness(b))
                    })
                });
            let holds = rules.clone().any(|r| r.firing);
            let detail = match lead {
                Some(r) => base(
                    r.rule.factor,
                    r.rule.long,
                    r.rule.short,
                    r.long_burn.rate,
                    r.short_burn.rate,
                ),
                None => base(0.0, Duration::ZERO, Duration::ZERO, 0.0, 0.0),
            };
            (holds, detail)
        }
        AlertKind::Exhaustion(i) => {
            let (within, _) = extra.exhaustion[i];
            let enough = status.period.total >= min_events.max(1);
            let holds = enough
                && match status.exhaustion {
                    Exhaustion::In(d) => d <= within,
                    Exhaustion::Exhausted => current > 0.0,
                    Exhaustion::Never => false,
                };
            let w = EXHAUSTION_BURN_WINDOW;
            (holds, base(0.0, w, w, current, current))
        }
        AlertKind::NoData => {
            let longest = status.rules.iter().max_by_key(|r| r.rule.long);
            let (holds, long) = match longest {
                Some(r) => (r.long.total == 0, r.rule.long),
                None => (status.period.total == 0, slo.period.nominal()),
            };
            (holds, base(0.0, long, long, 0.0, 0.0))
        }
    }
}

fn annotations(def: &Def, d: &AlertDetail, description: Option<&str>, slo: &slis::slo::Slo) -> Labels {
    let f = slis::format_duration;
    let window = slis::format_exact;
    let summary = match def.kind {
        AlertKind::BurnRate(_) => format!(
            "{} burns its error budget {:.1}× over {} and {:.1}× over {} (threshold {}×)",
            d.slo,
            d.burn_long,
            window(d.long_window),
            d.burn_short,
            window(d.short_window),
            d.factor
        ),
        AlertKind::Exhaustion(_) => match d.time_to_exhaustion {
            Some(t) if t.is_zero() => format!("{}: error budget exhausted, still burning {:.1}×", d.slo, d.burn_long),
            Some(t) => format!(
                "{}: error budget gone in {} at the current burn rate {:.1}×",
                d.slo,
                f(Duration::from_secs(t.as_secs())),
                d.burn_long
            ),
            None => format!("{}: error budget no longer at risk", d.slo),
        },
        AlertKind::NoData => format!("{}: no events in the last {}", d.slo, window(d.long_window)),
    };
    let description = description.map(str::to_owned).unwrap_or_else(|| {
        format!(
            "{}% of {} events good over {} ({} SLI); {:.1}% of the error budget left",
            trim_percent(slo.objective),
            d.journey,
            slo.period,
            slo.sli.name(),
            d.budget_remaining * 100.0
        )
    });
    Labels::from([("summary".to_owned(), summary), ("description".to_owned(), description)])
}

/// 0.999 → "99.9".
fn trim_percent(objective: f64) -> String {
    let s = format!("{:.6}", objective * 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests;
