//! Cron reports: the SLO digest a `[[reports]]` entry sends, and the schedule maths that says when.
//!
//! Pure: no clock, no I/O. The caller keeps, per report, the instant of its last run (durably),
//! asks [`due`] on every tick, builds a [`Digest`] over [`period_of`] that run, and hands it to the
//! outbox; [`crate::notify::Notifier::send_report`] delivers it. The digest is stored in the outbox
//! as JSON, hence its serde derives; the wire formats are written out by the renderers
//! (`notify/webhook/generic_report.rs`, `slack_report.rs`, `notify/email_report.rs`), never by
//! these derives.
//!
//! **When a report runs.** A run is due at the latest scheduled instant in `(last_run, now]`:
//! runs missed while the process was down collapse into one, never a burst. A report that has never
//! run has nothing due: the caller records the instant it first saw the report (the process start,
//! or the reload that added it) as its `last_run`, so the first digest goes out at the first
//! scheduled instant after that, not at start-up.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::Contributor;
use crate::schedule::CronSchedule;

/// One digest of one report for one run: what a receiver gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    /// Idempotency key, see [`digest_id`]: header `Idempotency-Key`, email `Message-ID`.
    pub id: String,
    /// The `[[reports]]` name.
    pub report: String,
    /// The receiver name.
    pub receiver: String,
    /// Start of the period the alerts are listed for: the scheduled instant before `to`.
    pub from: DateTime<Utc>,
    /// The scheduled instant of this run.
    pub to: DateTime<Utc>,
    /// Base URL of tracebudget's UI, e.g. `http://127.0.0.1:8080`.
    pub external_url: String,
    /// The report's SLOs (all when it names none), in config order.
    pub slos: Vec<SloDigest>,
}

impl Digest {
    /// Alerts of the period over all SLOs.
    pub fn alert_count(&self) -> usize {
        self.slos.iter().map(|s| s.alerts.len()).sum()
    }

    /// SLOs whose budget is spent (remaining ≤ 0) and that had events.
    pub fn exhausted_count(&self) -> usize {
        self.slos.iter().filter(|s| s.exhausted()).count()
    }
}

/// Where one SLO stands at the end of the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloDigest {
    /// SLO name.
    pub slo: String,
    /// Journey it measures.
    pub journey: String,
    /// `"latency"`, `"error"` or `"completeness"`.
    pub sli: String,
    /// e.g. `0.999`.
    pub objective: f64,
    /// The SLO's period as configured: `"28d"`, `"calendar_month"`.
    pub period: String,
    /// Events over the SLO's period.
    pub events: u64,
    /// Bad events over the SLO's period.
    pub bad: u64,
    /// Share of the period's error budget left: 1 untouched, 0 spent, negative overspent.
    pub budget_remaining: f64,
    /// Burn rate over the last hour.
    pub current_burn: f64,
    /// When the budget runs out at `current_burn`; `None` when it does not. Stored as
    /// `time_to_exhaustion_seconds`.
    #[serde(
        rename = "time_to_exhaustion_seconds",
        alias = "time_to_exhaustion",
        with = "crate::seconds::option"
    )]
    pub time_to_exhaustion: Option<Duration>,
    /// No events in the last hour: `current_burn` says nothing.
    pub no_data: bool,
    /// Alerts of this SLO that fired during the digest's period, oldest first.
    pub alerts: Vec<AlertRecord>,
    /// The services and operations behind the bad events, largest share first.
    pub top_contributors: Vec<Contributor>,
}

impl SloDigest {
    /// The SLI over the period, `(events − bad) / events`; `None` without events (never NaN).
    pub fn sli_ratio(&self) -> Option<f64> {
        (self.events > 0).then(|| (self.events - self.bad.min(self.events)) as f64 / self.events as f64)
    }

    /// Budget spent (remaining ≤ 0) with events to show for it.
    pub fn exhausted(&self) -> bool {
        self.events > 0 && self.budget_remaining <= 0.0
    }
}

/// An alert that fired during a digest's period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// `"page"` or `"ticket"`.
    pub severity: String,
    /// e.g. `SLOBurnRate`.
    pub alertname: String,
    /// When it started firing.
    pub starts_at: DateTime<Utc>,
    /// When it resolved; `None` while still firing at the end of the period.
    pub ends_at: Option<DateTime<Utc>>,
}

/// The idempotency key of a report's run: `report-<name>-<YYYYMMDDTHHMMSSZ>`, the name
/// percent-encoded to `[A-Za-z0-9-._~]`. The same run always gets the same id, so a digest
/// rebuilt after a crash is recognised as the one already sent.
pub fn digest_id(report: &str, run_at: DateTime<Utc>) -> String {
    let mut id = String::from("report-");
    for b in report.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            id.push(b as char);
        } else {
            let _ = write!(id, "%{b:02X}");
        }
    }
    let _ = write!(id, "-{}", run_at.format("%Y%m%dT%H%M%SZ"));
    id
}

/// The first scheduled instant strictly after `after`; `None` when the schedule has no more.
pub fn next_run(schedule: &CronSchedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule.schedule.after(&after).next()
}

/// The latest scheduled instant at or before `t`.
fn last_at_or_before(schedule: &CronSchedule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // The crate's backward step starts strictly before a whole second, and at the second of an
    // instant with a fraction: one nanosecond later makes it "at or before".
    schedule
        .schedule
        .after(&(t + chrono::Duration::nanoseconds(1)))
        .next_back()
}

/// The run due now: the latest scheduled instant in `(last_run, now]`, or `None`. Missed runs
/// collapse into the latest one. With no last run nothing is due: see the module docs.
pub fn due(schedule: &CronSchedule, last_run: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let last = last_run?;
    last_at_or_before(schedule, now).filter(|run| *run > last)
}

/// The digest's `(from, to)` for a run at `run_at`: from the scheduled instant before it. `None`
/// when the schedule has no earlier instant (a year field in the past).
pub fn period_of(schedule: &CronSchedule, run_at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let from = schedule.schedule.after(&run_at).next_back()?;
    Some((from, run_at))
}

/// One alert event of the history, as [`build`] reads it.
#[derive(Debug, Clone)]
pub struct AlertEvent {
    pub fingerprint: String,
    pub slo: String,
    pub severity: String,
    pub alertname: String,
    pub firing: bool,
    pub at: DateTime<Utc>,
}

/// Builds the digest of `report` run at `to` covering `(from, to]`: `statuses[i]` is SLO `i`'s
/// status at `to`, `events` the alert history (any order; events outside the period and of other
/// SLOs are ignored, an alert firing before `from` and resolving inside counts),
/// `contributors(slo)` its top contributors.
#[allow(clippy::too_many_arguments)]
pub fn build(
    report: &crate::config::Report,
    model: &crate::config::Alerting,
    journeys: &[String],
    statuses: &[slis::eval::SloStatus],
    events: &[AlertEvent],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    external_url: &str,
    contributors: &mut dyn FnMut(usize) -> Vec<Contributor>,
) -> Digest {
    let indices: Vec<usize> = if report.slos.is_empty() {
        (0..model.slos.len()).collect()
    } else {
        report.slos.clone()
    };
    let mut sorted: Vec<&AlertEvent> = events.iter().filter(|e| e.at <= to).collect();
    sorted.sort_by_key(|e| e.at);
    let slos = indices
        .into_iter()
        .map(|i| {
            let slo = &model.slos[i];
            let status = &statuses[i];
            // Per fingerprint: the open alert (started, not yet resolved) as the history runs.
            let mut open: BTreeMap<&str, AlertRecord> = BTreeMap::new();
            let mut alerts = Vec::new();
            for e in sorted.iter().filter(|e| e.slo == slo.name) {
                if e.firing {
                    open.insert(
                        &e.fingerprint,
                        AlertRecord {
                            severity: e.severity.clone(),
                            alertname: e.alertname.clone(),
                            starts_at: e.at,
                            ends_at: None,
                        },
                    );
                } else if let Some(mut a) = open.remove(e.fingerprint.as_str()) {
                    a.ends_at = Some(e.at);
                    if e.at > from {
                        alerts.push(a);
                    }
                }
            }
            alerts.extend(open.into_values());
            alerts.sort_by_key(|a| a.starts_at);
            SloDigest {
                slo: slo.name.clone(),
                journey: journeys[slo.journey].clone(),
                sli: slo.sli.name().to_owned(),
                objective: slo.objective,
                period: match slo.period {
                    slis::slo::Period::CalendarMonth => "calendar_month".to_owned(),
                    slis::slo::Period::Rolling(d) => slis::format_exact(d).to_string(),
                },
                events: status.period.total,
                bad: status.period.bad,
                budget_remaining: status.budget.remaining,
                current_burn: status.current_burn.rate,
                time_to_exhaustion: match status.exhaustion {
                    slis::budget::Exhaustion::In(d) => Some(d),
                    slis::budget::Exhaustion::Exhausted => Some(Duration::ZERO),
                    slis::budget::Exhaustion::Never => None,
                },
                no_data: status.current_burn.no_data,
                alerts,
                top_contributors: contributors(i),
            }
        })
        .collect();
    Digest {
        id: digest_id(&report.name, to),
        report: report.name.clone(),
        receiver: report.receiver.clone(),
        from,
        to,
        external_url: external_url.to_owned(),
        slos,
    }
}

#[cfg(test)]
pub(crate) mod fixture {
    //! The digest every report renderer's unit tests render: one SLO overspent with two alerts,
    //! one burning slowly, one without traffic.

    use chrono::TimeZone;

    use super::*;

    pub(crate) fn digest() -> Digest {
        let at = |d, h, m| Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap();
        Digest {
            id: "report-weekly-budget-20261123T090000Z".into(),
            report: "weekly-budget".into(),
            receiver: "sre".into(),
            from: at(16, 9, 0),
            to: at(23, 9, 0),
            external_url: "http://127.0.0.1:8080".into(),
            slos: vec![
                SloDigest {
                    slo: "checkout-latency".into(),
                    journey: "checkout".into(),
                    sli: "latency".into(),
                    objective: 0.999,
                    period: "28d".into(),
                    events: 40_000,
                    bad: 50,
                    budget_remaining: -0.25,
                    current_burn: 1.2,
                    time_to_exhaustion: None,
                    no_data: false,
                    alerts: vec![
                        AlertRecord {
                            severity: "page".into(),
                            alertname: "SLOBurnRate".into(),
                            starts_at: at(20, 10, 0),
                            ends_at: Some(at(20, 11, 30)),
                        },
                        AlertRecord {
                            severity: "ticket".into(),
                            alertname: "SLOBurnRate".into(),
                            starts_at: at(22, 8, 0),
                            ends_at: None,
                        },
                    ],
                    top_contributors: vec![
                        Contributor {
                            service: "payments".into(),
                            operation: "POST /charge".into(),
                            bad_events: 31,
                            share: 0.62,
                            reason: "error originated here".into(),
                        },
                        Contributor {
                            service: "inventory".into(),
                            operation: "reserve".into(),
                            bad_events: 19,
                            share: 0.38,
                            reason: "slowest child span".into(),
                        },
                    ],
                },
                SloDigest {
                    slo: "search-errors".into(),
                    journey: "search".into(),
                    sli: "error".into(),
                    objective: 0.99,
                    period: "28d".into(),
                    events: 120_000,
                    bad: 600,
                    budget_remaining: 0.5,
                    current_burn: 0.8,
                    time_to_exhaustion: Some(Duration::from_secs(1_512_000)),
                    no_data: false,
                    alerts: vec![],
                    top_contributors: vec![],
                },
                SloDigest {
                    slo: "login-completeness".into(),
                    journey: "login".into(),
                    sli: "completeness".into(),
                    objective: 0.995,
                    period: "7d".into(),
                    events: 0,
                    bad: 0,
                    budget_remaining: 1.0,
                    current_burn: 0.0,
                    time_to_exhaustion: None,
                    no_data: true,
                    alerts: vec![],
                    top_contributors: vec![],
                },
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, TimeZone, Weekday};

    use super::*;

    fn cron(text: &str) -> CronSchedule {
        CronSchedule::try_from(text.to_owned()).unwrap()
    }

    fn t(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, s).unwrap()
    }

    #[test]
    fn monday_nine_weekly() {
        let weekly = cron("0 9 * * 1");
        // 2026-11-23 and 2026-11-30 are Mondays.
        assert_eq!(t(23, 9, 0, 0).weekday(), Weekday::Mon);
        let cases = [
            // (after, next_run)
            (t(22, 12, 0, 0), t(23, 9, 0, 0)),
            (t(23, 8, 59, 59), t(23, 9, 0, 0)),
            (t(23, 9, 0, 0), t(30, 9, 0, 0)), // strictly after
            (t(23, 9, 0, 0) + chrono::Duration::milliseconds(500), t(30, 9, 0, 0)),
        ];
        for (after, want) in cases {
            assert_eq!(next_run(&weekly, after), Some(want), "after {after}");
        }
        assert_eq!(
            period_of(&weekly, t(23, 9, 0, 0)),
            Some((t(16, 9, 0, 0), t(23, 9, 0, 0)))
        );
        assert_eq!(
            period_of(&weekly, t(30, 9, 0, 0)),
            Some((t(23, 9, 0, 0), t(30, 9, 0, 0)))
        );
    }

    #[test]
    fn due_is_the_latest_instant_after_the_last_run() {
        let weekly = cron("0 9 * * 1");
        let cases = [
            // (last_run, now, due)
            (None, t(23, 9, 0, 0), None),
            (Some(t(22, 12, 0, 0)), t(23, 8, 59, 59), None),
            (Some(t(22, 12, 0, 0)), t(23, 9, 0, 0), Some(t(23, 9, 0, 0))), // exactly on time
            (Some(t(22, 12, 0, 0)), t(23, 9, 0, 15), Some(t(23, 9, 0, 0))), // a tick late
            (Some(t(23, 9, 0, 0)), t(23, 9, 0, 15), None),                 // already sent
            (Some(t(23, 9, 0, 0)), t(29, 23, 0, 0), None),
            // Down from the 10th to the 24th: the runs of the 16th and 23rd collapse into one.
            (Some(t(9, 9, 0, 0)), t(24, 7, 0, 0), Some(t(23, 9, 0, 0))),
        ];
        for (last, now, want) in cases {
            assert_eq!(due(&weekly, last, now), want, "last {last:?} now {now}");
        }
        // Once sent, recording the run as the last one makes nothing due until the next Monday.
        assert_eq!(due(&weekly, Some(t(23, 9, 0, 0)), t(30, 9, 0, 0)), Some(t(30, 9, 0, 0)));
    }

    #[test]
    fn other_schedules() {
        let hourly = cron("0 * * * *");
        assert_eq!(
            due(&hourly, Some(t(23, 9, 0, 0)), t(23, 11, 59, 59)),
            Some(t(23, 11, 0, 0))
        );
        assert_eq!(
            period_of(&hourly, t(23, 11, 0, 0)),
            Some((t(23, 10, 0, 0), t(23, 11, 0, 0)))
        );
        // Weekdays at 08:30: Monday's period starts on Friday.
        let weekdays = cron("30 8 * * 1-5");
        assert_eq!(
            period_of(&weekdays, t(23, 8, 30, 0)),
            Some((t(20, 8, 30, 0), t(23, 8, 30, 0)))
        );
        assert_eq!(next_run(&weekdays, t(27, 9, 0, 0)), Some(t(30, 8, 30, 0)));
        // First of the month: November's run covers October.
        let monthly = cron("0 8 1 * *");
        assert_eq!(
            period_of(&monthly, t(1, 8, 0, 0)),
            Some((Utc.with_ymd_and_hms(2026, 10, 1, 8, 0, 0).unwrap(), t(1, 8, 0, 0)))
        );
        assert_eq!(
            next_run(&monthly, t(1, 8, 0, 0)),
            Some(Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap())
        );
        // A 7-field schedule pinned to one year has no run after it, and nothing before its first.
        let once = cron("0 0 9 1 12 * 2026");
        assert_eq!(
            next_run(&once, Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()),
            None
        );
        assert_eq!(
            period_of(&once, Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()),
            None
        );
    }

    #[test]
    fn sli_ratio_is_none_without_events() {
        let d = fixture::digest();
        assert_eq!(d.slos[0].sli_ratio(), Some(0.99875));
        assert_eq!(d.slos[1].sli_ratio(), Some(0.995));
        assert_eq!(d.slos[2].sli_ratio(), None);
        assert_eq!((d.alert_count(), d.exhausted_count()), (2, 1));
    }

    #[test]
    fn digest_ids() {
        assert_eq!(
            digest_id("weekly-budget", t(23, 9, 0, 0)),
            "report-weekly-budget-20261123T090000Z"
        );
        assert_eq!(
            digest_id("SRE weekly/ü", t(23, 9, 0, 0)),
            "report-SRE%20weekly%2F%C3%BC-20261123T090000Z"
        );
    }

    #[test]
    fn survives_the_outbox_as_json() {
        let d = fixture::digest();
        let json = serde_json::to_string(&d).unwrap();
        let back: Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["from"], "2026-11-16T09:00:00Z");
        assert_eq!(v["slos"][1]["time_to_exhaustion_seconds"], 1_512_000.0);
        assert_eq!(v["slos"][0]["time_to_exhaustion_seconds"], serde_json::Value::Null);
    }

    /// Issue 6: a digest as stored in the outbox before durations became seconds,
    /// serialized from `fixture::digest()` by that version.
    const OUTBOX_DIGEST_BEFORE_ISSUE_6: &str = r#"{"id":"report-weekly-budget-20261123T090000Z","report":"weekly-budget","receiver":"sre","from":"2026-11-16T09:00:00Z","to":"2026-11-23T09:00:00Z","external_url":"http://127.0.0.1:8080","slos":[{"slo":"checkout-latency","journey":"checkout","sli":"latency","objective":0.999,"period":"28d","events":40000,"bad":50,"budget_remaining":-0.25,"current_burn":1.2,"time_to_exhaustion":null,"no_data":false,"alerts":[{"severity":"page","alertname":"SLOBurnRate","starts_at":"2026-11-20T10:00:00Z","ends_at":"2026-11-20T11:30:00Z"},{"severity":"ticket","alertname":"SLOBurnRate","starts_at":"2026-11-22T08:00:00Z","ends_at":null}],"top_contributors":[{"service":"payments","operation":"POST /charge","bad_events":31,"share":0.62,"reason":"error originated here"},{"service":"inventory","operation":"reserve","bad_events":19,"share":0.38,"reason":"slowest child span"}]},{"slo":"search-errors","journey":"search","sli":"error","objective":0.99,"period":"28d","events":120000,"bad":600,"budget_remaining":0.5,"current_burn":0.8,"time_to_exhaustion":{"secs":1512000,"nanos":0},"no_data":false,"alerts":[],"top_contributors":[]},{"slo":"login-completeness","journey":"login","sli":"completeness","objective":0.995,"period":"7d","events":0,"bad":0,"budget_remaining":1.0,"current_burn":0.0,"time_to_exhaustion":null,"no_data":true,"alerts":[],"top_contributors":[]}]}"#;

    #[test]
    fn reads_a_digest_stored_with_secs_and_nanos() {
        let old: Digest = serde_json::from_str(OUTBOX_DIGEST_BEFORE_ISSUE_6).unwrap();
        assert_eq!(old, fixture::digest());
    }

    #[test]
    fn receivers_that_cannot_take_reports() {
        use crate::config::{ReceiverConfig, unsupported_by};

        let receiver = |body: &str| -> ReceiverConfig { toml::from_str(&format!("name = \"r\"\n{body}")).unwrap() };
        let cases = [
            ("webhook = { url = \"http://h/x\" }", None),
            ("webhook = { url = \"http://h/x\", format = \"slack\" }", None),
            (
                "webhook = { url = \"http://h/x\", format = \"alertmanager\" }",
                Some("webhook format alertmanager"),
            ),
            (
                "webhook = { url = \"http://h/x\", format = \"pagerduty\", routing_key = \"k\" }",
                Some("webhook format pagerduty"),
            ),
            ("alertmanager = { url = \"http://h:9093\" }", Some("alertmanager")),
            (
                "email = { to = [\"a@b.c\"], from = \"t@b.c\", smarthost = \"h:25\" }",
                None,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(unsupported_by(&receiver(body)), want, "{body}");
        }
    }

    #[test]
    fn build_pairs_history_events_into_the_alerts_of_the_period() {
        use crate::config::{Alerting, AlertingConfig, PolicyAlerting, Report};
        use chrono::TimeZone;
        use slis::Timestamp;
        use slis::eval::evaluate;
        use slis::policy::Policy;
        use slis::slo::{Period, SliKind, Slo};
        use slis::window::{JourneyWindows, RootSample, Sli};

        let slo = Slo {
            name: "checkout-availability".into(),
            journey: 0,
            sli: SliKind::Error,
            objective: 0.99,
            period: Period::Rolling(Duration::from_secs(7 * 86_400)),
            policy: 0,
            labels: vec![],
        };
        let model = Alerting {
            settings: AlertingConfig::default(),
            slos: vec![slo.clone()],
            policies: vec![Policy::workbook()],
            receivers: vec![],
            route: None,
            reports: vec![],
            policy_alerting: vec![PolicyAlerting::default()],
            inhibit: vec![],
            descriptions: vec![None],
        };
        let at = |d, h| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
        let to = at(23, 9);
        let now = Timestamp::from_unix_secs(to.timestamp());
        let mut w = JourneyWindows::new(vec![Sli::Error], Duration::from_secs(8 * 86_400));
        for i in 0..1_000 {
            let _ = w.record_root(&RootSample {
                at: now - Duration::from_secs(600 + i),
                latency_nanos: 1,
                error: i < 30,
                weight: 1,
            });
        }
        w.advance(now);
        let status = evaluate(&slo, &model.policies[0], &w, 0, now);
        let ev = |fp: &str, firing, d, h| AlertEvent {
            fingerprint: fp.into(),
            slo: "checkout-availability".into(),
            severity: "page".into(),
            alertname: "SLOBurnRate".into(),
            firing,
            at: at(d, h),
        };
        let events = [
            ev("a", true, 10, 0), // before the period, resolved before it: left out
            ev("a", false, 10, 1),
            ev("b", true, 15, 23), // started before, resolved inside: in
            ev("b", false, 16, 10),
            ev("a", true, 20, 3), // inside, still firing at the end
        ];
        let report = Report {
            name: "weekly".into(),
            schedule: crate::schedule::CronSchedule::try_from("0 9 * * 1".to_owned()).unwrap(),
            receiver: "sre".into(),
            slos: vec![],
        };
        let d = build(
            &report,
            &model,
            &["checkout".into()],
            &[status],
            &events,
            at(16, 9),
            to,
            "http://tb",
            &mut |_| vec![],
        );
        assert_eq!(d.id, "report-weekly-20261123T090000Z");
        let s = &d.slos[0];
        assert_eq!((s.events, s.bad), (1_000, 30));
        assert_eq!(s.sli_ratio(), Some(0.97));
        // 30 bad of 10 allowed: 2 budgets overspent.
        assert!((s.budget_remaining - -2.0).abs() < 1e-9);
        let got: Vec<_> = s.alerts.iter().map(|a| (a.starts_at, a.ends_at)).collect();
        assert_eq!(got, [(at(15, 23), Some(at(16, 10))), (at(20, 3), None)]);
    }
}
