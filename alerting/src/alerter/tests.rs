//! Scenario tests on an invented clock: real windows (`slis::window`), the real evaluation
//! (`slis::eval`), the alerter, the dispatcher and the muter — every cycle 15 s apart.

use std::sync::Arc;
use std::time::Duration;

use slis::Timestamp;
use slis::eval::evaluate;
use slis::policy::Policy;
use slis::slo::{Period, SliKind, Slo};
use slis::window::{JourneyWindows, RootSample, Sli};

use super::*;
use crate::alert::AlertStatus;
use crate::config::{AlertingConfig, PolicyAlerting, Route};
use crate::labels::LabelMatcher;
use crate::mute::InhibitRule;

const DAY: Duration = Duration::from_secs(86_400);
const EVAL: i64 = 15;

/// A whole minute, so that bucket alignment is the same as in `slis::eval`'s outage test.
const T0: i64 = 1_780_000_020;

fn model(keep_firing_for: Duration) -> Alerting {
    Alerting {
        settings: AlertingConfig {
            trace_url: Some("https://tempo.example/trace/{trace_id}".into()),
            ..AlertingConfig::default()
        },
        slos: vec![Slo {
            name: "checkout-availability".into(),
            journey: 0,
            sli: SliKind::Error,
            objective: 0.999,
            period: Period::Rolling(30 * DAY),
            policy: 0,
            labels: vec![("team".into(), "payments".into())],
        }],
        policies: vec![Policy::workbook()],
        receivers: vec![],
        route: Some(Route {
            receiver: "pager".into(),
            matchers: vec![],
            group_by: vec!["slo".into()],
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3_600),
            continue_matching: false,
            routes: vec![],
        }),
        reports: vec![],
        policy_alerting: vec![PolicyAlerting {
            keep_firing_for,
            exhaustion: vec![],
        }],
        inhibit: vec![InhibitRule::page_mutes_ticket()],
        descriptions: vec![None],
    }
}

/// One SLO on real windows, fed one request every `every` seconds, evaluated every 15 s.
struct Sim {
    windows: JourneyWindows,
    alerter: Alerter,
    now: i64,
    every: i64,
    n: u64,
    /// Every cycle's output, with its time (seconds since T0).
    log: Vec<(i64, Cycle)>,
}

impl Sim {
    /// Four days of good traffic before T0.
    fn new(model: Alerting, every: i64) -> Sim {
        let mut sim = Sim {
            windows: JourneyWindows::new(vec![Sli::Error], 31 * DAY),
            alerter: Alerter::new(Arc::new(model), vec!["checkout".into()], "http://tb:8080".into()),
            now: T0 - 4 * 86_400,
            every,
            n: 0,
            log: vec![],
        };
        sim.traffic_until(T0, |_| false);
        sim
    }

    fn traffic_until(&mut self, end: i64, bad: impl Fn(u64) -> bool) {
        while self.now < end {
            let at = Timestamp::from_unix_secs(self.now);
            let _ = self.windows.record_root(&RootSample {
                at,
                latency_nanos: 1_000_000,
                error: bad(self.n),
                weight: 1,
            });
            self.n += 1;
            self.now += self.every;
            if self.now % 60 == 0 {
                self.windows.advance(Timestamp::from_unix_secs(self.now));
            }
        }
    }

    /// Runs traffic and a cycle every 15 s until `until` (seconds since T0, exclusive).
    fn run(&mut self, until: i64, bad: impl Fn(i64, u64) -> bool) {
        let mut t = self.log.last().map_or(0, |(t, _)| t + EVAL);
        while t < until {
            let at = T0 + t;
            let every = self.every;
            while self.now <= at {
                let s = self.now - T0;
                let is_bad = bad(s, self.n);
                let _ = self.windows.record_root(&RootSample {
                    at: Timestamp::from_unix_secs(self.now),
                    latency_nanos: 1_000_000,
                    error: is_bad,
                    weight: 1,
                });
                self.n += 1;
                self.now += every;
            }
            let now = Timestamp::from_unix_secs(at);
            self.windows.advance(now);
            let model = Arc::clone(&self.alerter.model);
            let statuses: Vec<_> = model
                .slos
                .iter()
                .map(|slo| evaluate(slo, &model.policies[slo.policy], &self.windows, 0, now))
                .collect();
            let cycle = self.alerter.cycle(now, &statuses, &mut |_, _| Extras {
                exemplars: vec![Exemplar {
                    trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                    url: None,
                    latency: Duration::from_millis(1),
                    error: true,
                    at: datetime(now),
                }],
                contributors: vec![],
            });
            self.log.push((t, cycle));
            t += EVAL;
        }
    }

    /// (time, severity, firing?) of every transition.
    fn transitions(&self) -> Vec<(i64, String, bool)> {
        self.log
            .iter()
            .flat_map(|(t, c)| {
                c.transitions.iter().map(|tr| {
                    let sev = self.severity_of(&tr.fingerprint);
                    (*t, sev, tr.firing)
                })
            })
            .collect()
    }

    fn severity_of(&self, fp: &str) -> String {
        let defs = &self.alerter.defs[0];
        defs.iter()
            .find(|d| d.fingerprint == fp)
            .map(|d| d.severity.as_str().to_owned())
            .unwrap()
    }

    /// (time, [(severity, status)]) of every notification.
    fn notifications(&self) -> Vec<(i64, Vec<(String, AlertStatus)>)> {
        self.log
            .iter()
            .flat_map(|(t, c)| {
                c.notifications.iter().map(|n| {
                    let alerts = n
                        .alerts
                        .iter()
                        .map(|a| (a.labels["severity"].clone(), a.status))
                        .collect();
                    (*t, alerts)
                })
            })
            .collect()
    }
}

fn sev(s: &str, status: AlertStatus) -> (String, AlertStatus) {
    (s.to_owned(), status)
}

#[test]
fn a_total_outage_pages_at_the_workbook_time_within_one_eval_interval() {
    let mut sim = Sim::new(model(Duration::ZERO), 1);
    sim.run(5 * 60, |_, _| true);
    // The 14.4× 1h/5m rule crosses 51.84 s into a total outage at 99.9% (51 s with minute
    // buckets, see slis::eval); cycles run every 15 s from the outage's start: first at 60 s.
    let tr = sim.transitions();
    assert_eq!(tr[0], (60, "page".to_owned(), true));
    assert!(tr[0].0 as f64 - 51.84 < EVAL as f64 && tr[0].0 as f64 >= 51.0);
    // group_wait (30 s) later the page goes out, with its numbers and an exemplar link.
    let notes = sim.notifications();
    assert_eq!(notes[0], (90, vec![sev("page", AlertStatus::Firing)]));
    let (_, cycle) = sim.log.iter().find(|(t, _)| *t == 90).unwrap();
    let n = &cycle.notifications[0];
    assert_eq!(n.receiver, "pager");
    assert_eq!(n.group_key, "{}:{slo=\"checkout-availability\"}");
    let a = &n.alerts[0];
    assert_eq!(a.labels["alertname"], "SLOBurnRate");
    assert_eq!(a.labels["team"], "payments");
    assert_eq!(a.labels["journey"], "checkout");
    assert_eq!(a.detail.factor, 14.4);
    assert_eq!(a.detail.long_window, Duration::from_secs(3_600));
    assert_eq!(a.starts_at, datetime(Timestamp::from_unix_secs(T0 + 60)));
    assert!(a.detail.burn_long > 14.4 && a.detail.burn_short > 14.4);
    assert_eq!(
        a.detail.exemplars[0].url.as_deref(),
        Some("https://tempo.example/trace/4bf92f3577b34da6a3ce929d0e0e4736")
    );
    // The 6h/30m page rule also fires at 129 s: the same alert, no second page.
    assert!(tr.iter().filter(|(_, s, f)| s == "page" && *f).count() == 1);
    assert!(sim.notifications().iter().all(|(t, _)| *t == 90 || *t > 300));
}

#[test]
fn a_slow_burn_of_one_and_a_half_opens_a_ticket_and_no_page() {
    // One request every 10 s; every 667th fails: a burn rate of 1.499 at 99.9%.
    let mut sim = Sim::new(model(Duration::ZERO), 10);
    sim.run(3 * 86_400, |_, n| n % 667 == 0);
    let tr = sim.transitions();
    assert!(tr.iter().all(|(_, s, _)| s == "ticket"), "{tr:?}");
    assert_eq!(tr.len(), 1, "one ticket, never resolved: {tr:?}");
    // Four days of history are 34,560 requests, so the first bad one is request 34,684, 1,240 s
    // in, then one every 6,670 s. The 3d window holds 71 whole hours plus the current hour's
    // minutes (~25,800 requests, 25.8 allowed bad): the 26th bad request, at 1,240 + 25 × 6,670
    // = 168,000 s (46.7 h), burns it past 1×. The 6h window holds 3 or 4 bad of 2,160: > 1× too.
    assert_eq!(tr[0].0, 168_000);
    // group_wait after it, then again every repeat_interval (4 h) while it keeps firing.
    let notes = sim.notifications();
    let want: Vec<_> = (0..7)
        .map(|k| (168_030 + k * 14_400, vec![sev("ticket", AlertStatus::Firing)]))
        .collect();
    assert_eq!(notes, want);
}

#[test]
fn recovery_resolves_and_notifies_in_the_same_cycle() {
    let mut sim = Sim::new(model(Duration::ZERO), 1);
    // Ten minutes of total outage, then healthy again.
    sim.run(60 * 60, |s, _| s < 600);
    let tr: Vec<_> = sim.transitions().into_iter().filter(|(_, s, _)| s == "page").collect();
    assert_eq!(tr.len(), 2, "{tr:?}");
    let (resolved_at, _, firing) = tr[1];
    assert!(!firing);
    // The 1h/5m rule stops ~5 min after the outage, but the 6h/30m rule holds the page until its
    // 30m window is clean enough (< 0.6% bad). Recent windows start at the minute boundary at or
    // after now − 30 min, so the window leaves the outage's last minute (540..600 s) once
    // now − 1,800 > 540: the cycle at 2,355 s.
    assert_eq!(resolved_at, 2_355);
    let (_, cycle) = sim.log.iter().find(|(t, _)| *t == resolved_at).unwrap();
    let resolved: Vec<_> = cycle
        .notifications
        .iter()
        .flat_map(|n| &n.alerts)
        .filter(|a| a.labels["severity"] == "page")
        .map(|a| (a.status, a.ends_at))
        .collect();
    assert_eq!(
        resolved,
        [(
            AlertStatus::Resolved,
            Some(datetime(Timestamp::from_unix_secs(T0 + 2_355)))
        )],
        "the resolved notice leaves in the cycle that resolves, not after group_interval"
    );
    // The last notification before it was at 90 s; group_interval ticks fall on 390 + k × 300,
    // and 2,355 is not one of them.
    assert_ne!((resolved_at - 90) % 300, 0);
}

#[test]
fn a_flapping_sli_does_not_page_twice_within_repeat_interval() {
    // A three-minute total outage every 45 minutes for three hours: each burst fires the page,
    // which resolves about 30 minutes later (the 6h/30m rule's short window) and fires again at
    // the next burst.
    let flap = |s: i64, _: u64| s < 3 * 3_600 && s % 2_700 < 180;
    let pages = |sim: &Sim| {
        sim.notifications()
            .into_iter()
            .filter(|(_, a)| a.contains(&sev("page", AlertStatus::Firing)))
            .count()
    };
    let mut raw = Sim::new(model(Duration::ZERO), 1);
    raw.run(4 * 3_600, flap);
    assert_eq!(
        pages(&raw),
        4,
        "without keep_firing_for every burst pages: the scenario flaps"
    );
    // keep_firing_for = 20 min outlasts the 15 quiet minutes between a resolve and the next burst.
    let mut damped = Sim::new(model(Duration::from_secs(20 * 60)), 1);
    damped.run(4 * 3_600, flap);
    let page_tr: Vec<_> = damped
        .transitions()
        .into_iter()
        .filter(|(_, s, _)| s == "page")
        .collect();
    assert_eq!(page_tr.len(), 2, "fires once, resolves once: {page_tr:?}");
    assert_eq!(pages(&damped), 1);
    assert!(
        page_tr[1].0 > 8_100 + 1_800,
        "resolves only after the last burst: {page_tr:?}"
    );
}

#[test]
fn a_page_inhibits_the_ticket_of_its_slo_while_it_fires() {
    let mut sim = Sim::new(model(Duration::ZERO), 1);
    // Fifteen minutes of outage: the page fires at 60 s, the ticket (3d/6h, 1×) at ~256 s;
    // the page resolves about 5 minutes after the outage, the ticket burns on for hours.
    sim.run(600, |s, _| s < 900);
    // Both fire at 600 s: the API's reasons name the page as the ticket's inhibitor.
    let fp = |severity: &str| {
        sim.alerter
            .alerts
            .values()
            .find(|a| a.labels["severity"] == severity)
            .unwrap()
            .fingerprint
            .clone()
    };
    let now = Timestamp::from_unix_secs(T0 + 600);
    assert_eq!(
        sim.alerter.mute_reasons(now),
        BTreeMap::from([(fp("ticket"), MuteReason::Inhibited { source: fp("page") })])
    );
    sim.run(60 * 60, |s, _| s < 900);
    // The page resolved: nothing is muted.
    assert_eq!(
        sim.alerter.mute_reasons(Timestamp::from_unix_secs(T0 + 3_600)),
        BTreeMap::new()
    );
    let tr = sim.transitions();
    assert_eq!(tr[0], (60, "page".to_owned(), true));
    let ticket_at = tr.iter().find(|(_, s, f)| s == "ticket" && *f).unwrap().0;
    assert!((255..=270).contains(&ticket_at), "ticket fired at {ticket_at}");
    let page_resolved = tr.iter().find(|(_, s, f)| s == "page" && !*f).unwrap().0;
    let notes = sim.notifications();
    // While the page fires, notifications carry only the page; the ticket is muted.
    for (t, alerts) in &notes {
        if *t < page_resolved {
            assert_eq!(alerts, &vec![sev("page", AlertStatus::Firing)], "at {t}");
        }
    }
    let muted: Vec<_> = sim.log.iter().flat_map(|(_, c)| &c.muted).map(|(_, m)| *m).collect();
    assert!(muted.contains(&Muted::Inhibited));
    // When the page resolves, the same notification announces the ticket.
    let at_resolve = notes.iter().find(|(t, _)| *t == page_resolved).unwrap();
    assert_eq!(
        at_resolve.1,
        vec![sev("ticket", AlertStatus::Firing), sev("page", AlertStatus::Resolved)]
    );
}

#[test]
fn a_silence_mutes_and_its_expiry_unmutes() {
    let mut sim = Sim::new(model(Duration::ZERO), 1);
    sim.alerter.silences.push(Silence {
        id: "s1".into(),
        matchers: vec![LabelMatcher::parse("slo = checkout-availability").unwrap()],
        starts_at: Timestamp::from_unix_secs(T0 - 60),
        ends_at: Timestamp::from_unix_secs(T0 + 600),
        created_by: "ana".into(),
        comment: "planned failover".into(),
        created_at: Timestamp::from_unix_secs(T0 - 60),
    });
    sim.run(300, |_, _| true);
    let fp = |sim: &Sim, severity: &str| {
        sim.alerter
            .alerts
            .values()
            .find(|a| a.labels["severity"] == severity)
            .unwrap()
            .fingerprint
            .clone()
    };
    let silenced = MuteReason::Silenced {
        silences: vec!["s1".into()],
    };
    assert_eq!(
        sim.alerter.mute_reasons(Timestamp::from_unix_secs(T0 + 300)),
        BTreeMap::from([(fp(&sim, "page"), silenced.clone()), (fp(&sim, "ticket"), silenced)]),
        "the silence wins over inhibition"
    );
    sim.run(20 * 60, |_, _| true);
    assert_eq!(
        sim.alerter.mute_reasons(Timestamp::from_unix_secs(T0 + 20 * 60)),
        BTreeMap::from([(
            fp(&sim, "ticket"),
            MuteReason::Inhibited {
                source: fp(&sim, "page")
            }
        )]),
        "once the silence ended"
    );
    let notes = sim.notifications();
    // The group opens at 60 s; its flushes at 90, 390 are muted; the silence ends at 600 s and
    // the flush at 690 s announces page and ticket together (the ticket fired at ~256 s).
    assert_eq!(
        notes,
        vec![(690, vec![sev("page", AlertStatus::Firing)])],
        "the ticket stays inhibited by the page"
    );
    let silenced = sim
        .log
        .iter()
        .filter(|(t, c)| *t < 600 && c.muted.iter().any(|(_, m)| *m == Muted::Silenced))
        .count();
    assert_eq!(silenced, 2, "the flushes at 90 s and 390 s");
}

#[test]
fn budget_exhaustion_and_no_data_alerts() {
    // A policy with an exhaustion ticket (budget gone within 24 h at the 1 h burn) and
    // alert_on_no_data.
    let mut m = model(Duration::ZERO);
    m.policy_alerting[0].exhaustion = vec![(Duration::from_secs(24 * 3_600), Severity::Ticket)];
    m.settings.alert_on_no_data = true;
    let mut sim = Sim::new(m, 1);
    // 5% of requests fail for an hour: burn 50 over 1 h. Four days at 1/s with no error left the
    // 30-day budget at 345.6 allowed bad events; 5% of 3,600 = 180 spent in the hour, so
    // remaining ≈ (345.6 + 3.6 − 180) / 349.2 ≈ 0.48 and 0.48 × 30 d / 50 ≈ 7 h < 24 h.
    sim.run(3_600, |_, n| n % 20 == 0);
    let names: Vec<_> = sim
        .log
        .iter()
        .flat_map(|(t, c)| {
            c.transitions
                .iter()
                .map(move |tr| (*t, tr.alert.labels["alertname"].clone(), tr.firing))
        })
        .collect();
    let exhaustion = names
        .iter()
        .find(|(_, n, _)| n == "SLOBudgetExhaustion")
        .expect("exhaustion ticket fired");
    assert!(exhaustion.2);
    let first = sim
        .log
        .iter()
        .flat_map(|(_, c)| &c.transitions)
        .find(|tr| tr.alert.labels["alertname"] == "SLOBudgetExhaustion")
        .unwrap();
    let ttl = first.alert.detail.time_to_exhaustion.unwrap();
    assert!(ttl <= Duration::from_secs(24 * 3_600), "{ttl:?}");
    assert!(first.alert.annotations["summary"].contains("error budget gone in"));
    assert!(
        !names.iter().any(|(_, n, _)| n == "SLONoData"),
        "traffic flows: no no-data alert"
    );

    // Then traffic stops for four days: the 3d window empties and SLONoData fires; nothing pages.
    let mut quiet = Sim::new(model(Duration::ZERO), 1);
    let mut m = model(Duration::ZERO);
    m.settings.alert_on_no_data = true;
    quiet.alerter = Alerter::new(Arc::new(m), vec!["checkout".into()], "http://tb".into());
    quiet.every = 1_000_000; // one more request, then silence
    quiet.run(3 * 86_400 + 3_600, |_, _| false);
    let tr = quiet.transitions();
    let no_data: Vec<_> = quiet
        .log
        .iter()
        .flat_map(|(t, c)| {
            c.transitions
                .iter()
                .map(move |tr| (*t, tr.alert.labels["alertname"].clone()))
        })
        .collect();
    assert_eq!(no_data.len(), 1, "{no_data:?}");
    assert_eq!(no_data[0].1, "SLONoData");
    // The 3d window holds nothing once its start passes the last request (T0).
    assert!(
        no_data[0].0 > 3 * 86_400 - 3_600 && no_data[0].0 <= 3 * 86_400 + 60,
        "{tr:?}"
    );
}

#[test]
fn a_firing_page_is_not_resolved_by_silence() {
    // Ten minutes of total outage, then no traffic at all for 40 minutes: the short windows
    // empty (5m after 5 minutes, 30m after 30), the long ones still hold the outage. No data is
    // no evidence of recovery: the page keeps firing. Healthy traffic resumes at 50 min and
    // resolves it in the first cycle whose short windows hold good requests.
    let mut gap = Sim::new(model(Duration::ZERO), 1);
    gap.run(10 * 60, |_, _| true);
    gap.every = 1_000_000; // the next request is far away: silence
    gap.run(50 * 60, |_, _| false);
    let page: Vec<_> = gap.transitions().into_iter().filter(|(_, s, _)| s == "page").collect();
    assert_eq!(
        page,
        [(60, "page".to_owned(), true)],
        "still firing through the silence"
    );
    gap.every = 1;
    gap.now = T0 + 50 * 60;
    gap.run(60 * 60, |_, _| false);
    let page: Vec<_> = gap.transitions().into_iter().filter(|(_, s, _)| s == "page").collect();
    assert_eq!(page.len(), 2, "{page:?}");
    assert!(!page[1].2);
    assert!((3_000..=3_000 + 60).contains(&page[1].0), "resolved at {} s", page[1].0);
}

#[test]
fn a_reload_keeps_a_firing_page_and_resolves_the_alerts_of_a_removed_slo_with_a_notice() {
    let mut sim = Sim::new(model(Duration::ZERO), 1);
    sim.run(300, |_, _| true);
    assert_eq!(
        sim.notifications(),
        [(90, vec![sev("page", AlertStatus::Firing)])],
        "paged at 60 s, sent after group_wait"
    );
    let page = sim
        .log
        .iter()
        .flat_map(|(_, c)| &c.transitions)
        .next()
        .unwrap()
        .fingerprint
        .clone();

    // Reload 1: the same SLO with a stricter objective. Same labels, same alert: no second page.
    let mut m = model(Duration::ZERO);
    m.slos[0].objective = 0.9995;
    sim.alerter.reconfigure(Arc::new(m), vec!["checkout".into()]);
    sim.run(600, |_, _| true);
    assert_eq!(sim.notifications().len(), 1, "{:?}", sim.notifications());
    assert!(sim.alerter.alerts[&page].firing);

    // Reload 2: the SLO is renamed; the old page resolves at the next cycle, with a notice in the
    // same cycle, and the renamed SLO pages on its own (after its group_wait).
    let mut m = model(Duration::ZERO);
    m.slos[0].name = "checkout-errors".into();
    sim.alerter.reconfigure(Arc::new(m), vec!["checkout".into()]);
    sim.run(660, |_, _| true);
    let (t, cycle) = sim.log.iter().find(|(t, _)| *t == 600).unwrap();
    assert_eq!(*t, 600);
    let resolved: Vec<_> = cycle
        .notifications
        .iter()
        .flat_map(|n| &n.alerts)
        .map(|a| (a.labels["slo"].clone(), a.status))
        .collect();
    assert_eq!(resolved, [("checkout-availability".to_owned(), AlertStatus::Resolved)]);
    let firing: Vec<_> = sim.log[sim.log.len() - 4..]
        .iter()
        .flat_map(|(t, c)| {
            c.transitions.iter().map(move |tr| {
                let l = &tr.alert.labels;
                (*t, format!("{}/{}", l["slo"], l["severity"]), tr.firing)
            })
        })
        .collect();
    // The ticket fired too, inhibited by the page, so only the page was ever announced. (Alerts
    // of a removed SLO resolve in fingerprint order.)
    assert_eq!(
        firing,
        [
            (600, "checkout-availability/ticket".into(), false),
            (600, "checkout-availability/page".into(), false),
            (600, "checkout-errors/page".into(), true),
            (600, "checkout-errors/ticket".into(), true)
        ]
    );
    let sent: Vec<_> = sim
        .log
        .iter()
        .filter(|(t, _)| *t > 600)
        .flat_map(|(t, c)| {
            c.notifications
                .iter()
                .map(move |n| (*t, n.alerts[0].labels["slo"].clone()))
        })
        .collect();
    assert_eq!(sent, [(630, "checkout-errors".into())]);
}
