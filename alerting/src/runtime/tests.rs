//! The runtime's cycle on a [`MemoryStore`] and a source of invented windows: what it commits,
//! counts and snapshots, and how the silences of several instances merge.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use slis::Timestamp;
use slis::eval::{SloStatus, evaluate};
use slis::policy::Policy;
use slis::slo::{Period, SliKind, Slo};
use slis::window::{JourneyWindows, RootSample, Sli};

use super::evaluate::merge_silences;
use super::memory::MemoryStore;
use super::{AlertRuntime, Notifiers, SloFiring, SloSource, StateStore};
use crate::alerter::{Alerter, Extras};
use crate::config::{Alerting, AlertingConfig, PolicyAlerting, Route};
use crate::deliver::{OutcomeLabels, SeverityLabels, TransitionLabels};
use crate::labels::LabelMatcher;
use crate::mute::{InhibitRule, Silence};
use crate::store::Pending;

/// A whole minute, so that bucket alignment is the same as in `slis::eval`'s outage test.
const T0: i64 = 1_780_000_020;

fn model() -> Alerting {
    Alerting {
        settings: AlertingConfig::default(),
        slos: vec![Slo {
            name: "checkout-availability".into(),
            journey: 0,
            sli: SliKind::Error,
            objective: 0.999,
            period: Period::Rolling(Duration::from_secs(30 * 86_400)),
            policy: 0,
            labels: vec![],
        }],
        policies: vec![Policy::workbook()],
        receivers: vec![],
        route: Some(Route {
            receiver: "hook".into(),
            matchers: vec![],
            group_by: vec!["slo".into()],
            group_wait: Duration::ZERO,
            group_interval: Duration::from_secs(60),
            repeat_interval: Duration::from_secs(3_600),
            continue_matching: false,
            routes: vec![],
        }),
        reports: vec![],
        policy_alerting: vec![PolicyAlerting::default()],
        inhibit: vec![InhibitRule::page_mutes_ticket()],
        descriptions: vec![None],
    }
}

/// The SLO's status `s` seconds after T0: a day of one good request a second, then every
/// request failing from T0 on.
fn status_at(s: i64) -> SloStatus {
    let mut w = JourneyWindows::new(vec![Sli::Error], Duration::from_secs(31 * 86_400));
    for t in (T0 - 86_400)..=(T0 + s) {
        let _ = w.record_root(&RootSample {
            at: Timestamp::from_unix_secs(t),
            latency_nanos: 1_000,
            error: t >= T0,
            weight: 1,
        });
    }
    let now = Timestamp::from_unix_secs(T0 + s);
    w.advance(now);
    let m = model();
    evaluate(&m.slos[0], &m.policies[0], &w, 0, now)
}

/// One status for the one SLO; with `others`, it counts the reads of other instances.
struct Fixed {
    status: SloStatus,
    others: bool,
    refreshed: AtomicUsize,
}

impl Fixed {
    fn at(s: i64, others: bool) -> Fixed {
        Fixed {
            status: status_at(s),
            others,
            refreshed: AtomicUsize::new(0),
        }
    }
}

impl SloSource for Fixed {
    fn statuses(&self, _: &Alerting, _: Timestamp) -> Vec<SloStatus> {
        vec![self.status.clone()]
    }

    fn extras(&self, _: usize, _: Timestamp, _: usize, _: usize) -> Extras {
        Extras::default()
    }

    fn merges_others(&self) -> bool {
        self.others
    }

    async fn refresh_others(&self, _: Timestamp) {
        self.refreshed.fetch_add(1, Ordering::SeqCst);
    }
}

fn runtime() -> AlertRuntime<MemoryStore> {
    let alerter = Alerter::new(Arc::new(model()), vec!["checkout".into()], "http://tb".into());
    AlertRuntime::new(
        alerter,
        MemoryStore::default(),
        Arc::default(),
        "http://tb".into(),
        Notifiers::new(),
    )
}

fn now(s: i64) -> Timestamp {
    Timestamp::from_unix_secs(T0 + s)
}

#[tokio::test]
async fn a_cycle_commits_state_history_and_outbox_and_counts_them() {
    let rt = runtime();
    let mut pending = Pending::default();
    // A total outage: nothing at 45 s, the page fires at 60 s.
    let quiet = rt.cycle(&Fixed::at(45, false), &mut pending, now(45)).await;
    assert!(quiet.transitions.is_empty() && quiet.notifications.is_empty());
    let fired = rt.cycle(&Fixed::at(60, false), &mut pending, now(60)).await;
    assert_eq!((fired.transitions.len(), fired.notifications.len()), (1, 1));
    assert!(pending.is_empty(), "the in-memory commit never fails");

    // Stored: the state a restart restores, the history row, the queued notification.
    let loaded = rt.store.load(&["checkout-availability".into()]).await.unwrap();
    let st = rt.alerter.lock().await;
    assert_eq!(loaded.alerts, st.alerts.values().cloned().collect::<Vec<_>>());
    assert_eq!(loaded.groups.len(), st.dispatcher.groups.len());
    drop(st);
    let history = rt.store.history(now(0), 10).await.unwrap();
    let events: Vec<_> = history.iter().map(|h| (h.severity.as_str(), h.event)).collect();
    assert_eq!(events, [("page", "firing")]);
    let outbox = rt.store.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!((outbox[0].receiver.as_str(), outbox[0].kind), ("hook", "alerts"));

    // Counted and snapshotted for `/metrics`.
    let m = &rt.metrics;
    let transitions = m.transitions.get_or_create(&TransitionLabels {
        severity: "page".into(),
        to: "firing",
    });
    assert_eq!(transitions.get(), 1);
    let firing = |severity: &str| {
        m.firing
            .get_or_create(&SeverityLabels {
                severity: severity.into(),
            })
            .get()
    };
    assert_eq!((firing("page"), firing("ticket")), (1, 0));
    assert_eq!(m.cycles.get_or_create(&OutcomeLabels { outcome: "ok" }).get(), 2);
    let slo = |severity, firing| SloFiring {
        slo: "checkout-availability".into(),
        severity,
        firing,
    };
    assert_eq!(rt.firing_by_slo.get(), [slo("page", 1), slo("ticket", 0)]);
}

fn silence(id: &str) -> Silence {
    Silence {
        id: id.into(),
        matchers: vec![LabelMatcher::parse("slo = checkout-availability").unwrap()],
        starts_at: now(0),
        ends_at: now(3_600),
        created_by: "ana@sre".into(),
        comment: "failover drill".into(),
        created_at: now(0),
    }
}

/// Several instances: a silence stored through another instance's API is in force at this
/// one's next cycle, and one this instance's API added after the read is kept.
#[tokio::test]
async fn with_other_instances_a_cycle_reads_them_and_the_stored_silences() {
    let rt = runtime();
    let on_standby = silence("0123456789abcdef0123456789abcdef");
    rt.store.add_silence(on_standby.clone());
    let on_leader = silence("fedcba9876543210fedcba9876543210");
    rt.alerter.lock().await.silences.push(on_leader.clone());

    let source = Fixed::at(45, true);
    rt.cycle(&source, &mut Pending::default(), now(45)).await;
    let ids: Vec<_> = rt.alerter.lock().await.silences.iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids, [on_standby.id, on_leader.id]);
    assert_eq!(source.refreshed.load(Ordering::SeqCst), 1);

    // Alone, nothing is read again.
    let alone = Fixed::at(45, false);
    rt.cycle(&alone, &mut Pending::default(), now(60)).await;
    assert_eq!(alone.refreshed.load(Ordering::SeqCst), 0);
}

#[test]
fn merging_silences_keeps_the_stored_then_the_newer_known() {
    let ids = |list: &[Silence]| list.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    // (known here, stored, in force after the merge)
    let cases: [(&[&str], &[&str], &[&str]); 4] = [
        (&[], &[], &[]),
        (&["a"], &["a"], &["a"]),
        (&["a", "new"], &["b", "a"], &["b", "a", "new"]),
        (&["new"], &[], &["new"]),
    ];
    for (known, stored, want) in cases {
        let mut k: Vec<Silence> = known.iter().map(|id| silence(id)).collect();
        merge_silences(&mut k, stored.iter().map(|id| silence(id)).collect());
        assert_eq!(ids(&k), want, "known {known:?}, stored {stored:?}");
    }
}

/// A report is seen at its first cycle, then queued (with its run) at the first cycle past its
/// next scheduled instant.
#[tokio::test]
async fn a_due_report_is_queued_with_its_run() {
    let mut m = model();
    m.reports = vec![crate::config::Report {
        name: "hourly".into(),
        schedule: crate::schedule::CronSchedule::try_from("0 * * * *".to_owned()).unwrap(),
        receiver: "hook".into(),
        slos: vec![],
    }];
    let alerter = Alerter::new(Arc::new(m), vec!["checkout".into()], "http://tb".into());
    let rt = AlertRuntime::new(
        alerter,
        MemoryStore::default(),
        Arc::default(),
        "http://tb".into(),
        Notifiers::new(),
    );
    let reports = |rt: &AlertRuntime<MemoryStore>| {
        let outbox = rt.store.outbox();
        outbox
            .iter()
            .filter(|o| o.kind == "report")
            .map(|o| (o.receiver.clone(), o.group_key.clone()))
            .collect::<Vec<_>>()
    };
    let mut pending = Pending::default();
    rt.cycle(&Fixed::at(0, false), &mut pending, now(0)).await;
    assert_eq!(rt.store.report_last_run("hourly").await.unwrap(), Some(now(0)));
    assert!(reports(&rt).is_empty(), "seen, not run");
    // T0 is 27 minutes past an hour: the next hour starts 33 minutes on.
    rt.cycle(&Fixed::at(1_800, false), &mut pending, now(1_800)).await;
    assert!(reports(&rt).is_empty());
    rt.cycle(&Fixed::at(2_400, false), &mut pending, now(2_400)).await;
    assert_eq!(reports(&rt), [("hook".to_owned(), "report/hourly".to_owned())]);
    assert_eq!(
        rt.store.report_last_run("hourly").await.unwrap(),
        Some(now(1_980)),
        "the scheduled instant"
    );
}
