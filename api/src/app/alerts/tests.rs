//! The alert store against both real backends (a SQLite file and a fresh PostgreSQL database):
//! a restart restores exactly the alert state and groups, the outbox hands out a group's
//! notifications in order, silences round-trip, and a failed commit keeps its writes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use slis::Timestamp;
use slis::eval::{SloStatus, evaluate};
use slis::policy::Policy;
use slis::slo::{Period, SliKind, Slo};
use slis::window::{JourneyWindows, RootSample, Sli};
use tracebudget_alerting::alerter::{Alerter, Extras};
use tracebudget_alerting::config::{Alerting, AlertingConfig, PolicyAlerting, Route};
use tracebudget_alerting::labels::LabelMatcher;
use tracebudget_alerting::mute::{InhibitRule, Silence, SilenceState};
use tracebudget_alerting::notify::Notification;
use tracebudget_alerting::store::{AlertStore, Pending};
use tracebudget_engine::store::Db;
use tracebudget_engine::store::testing::Databases;

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
/// request failing from T0 until `outage_end`.
fn status_at(s: i64, outage_end: i64) -> SloStatus {
    let mut w = JourneyWindows::new(vec![Sli::Error], Duration::from_secs(31 * 86_400));
    for t in (T0 - 86_400)..=(T0 + s) {
        let _ = w.record_root(&RootSample {
            at: Timestamp::from_unix_secs(t),
            latency_nanos: 1_000,
            error: t >= T0 && t < T0 + outage_end,
            weight: 1,
        });
    }
    let now = Timestamp::from_unix_secs(T0 + s);
    w.advance(now);
    let m = model();
    evaluate(&m.slos[0], &m.policies[0], &w, 0, now)
}

fn alerter() -> Alerter {
    Alerter::new(Arc::new(model()), vec!["checkout".into()], "http://tb".into())
}

async fn cycle(a: &mut Alerter, store: &AlertStore, pending: &mut Pending, s: i64, outage_end: i64) -> usize {
    let now = Timestamp::from_unix_secs(T0 + s);
    let c = a.cycle(now, &[status_at(s, outage_end)], &mut |_, _| Extras::default());
    pending.add(&c, a, now);
    store.commit(pending, now).await.unwrap();
    c.notifications.len()
}

#[tokio::test]
async fn alert_state_outbox_and_silences_on_both_backends() {
    let dbs = Databases::new("alert_store").await;
    for url in dbs.urls() {
        let db = Db::open(&url).await.unwrap();
        db.migrate().await.unwrap();
        let store = AlertStore::new(db.pool.clone());
        let mut a = alerter();
        let mut pending = Pending::default();

        // A total outage: the page fires at 60 s (notification 1); 2 hours later it resolves
        // (notification 2) — the 6h/30m rule holds it until the 30m window is clean.
        assert_eq!(cycle(&mut a, &store, &mut pending, 45, 600).await, 0, "{url}");
        assert_eq!(cycle(&mut a, &store, &mut pending, 60, 600).await, 1, "{url}");

        // A restart here restores the same alerts and groups.
        let loaded = store.load(&["checkout-availability".into()]).await.unwrap();
        let mut b = alerter();
        b.restore(loaded.alerts, loaded.groups);
        assert_eq!(b.alerts, a.alerts, "{url}");
        assert_eq!(b.dispatcher.groups, a.dispatcher.groups, "{url}");
        assert_eq!(b.alerts.len(), 1);
        // ...and the restored alerter does not page again.
        let mut b_pending = Pending::default();
        assert_eq!(cycle(&mut b, &store, &mut b_pending, 75, 600).await, 0, "{url}");

        // Two hours on, the page resolves and the 3d/6h ticket fires: one notification carries
        // both (the ticket was never inhibited, as it had not fired while the page did).
        assert_eq!(
            cycle(&mut b, &store, &mut b_pending, 7_200, 600).await,
            1,
            "resolved, {url}"
        );
        let left: Vec<_> = b
            .alerts
            .values()
            .map(|a| (a.labels["severity"].as_str(), a.firing))
            .collect();
        assert_eq!(left, [("ticket", true)]);
        let stored = store.load(&["checkout-availability".into()]).await.unwrap().alerts;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0], b.alerts.values().next().unwrap().clone());

        // The outbox hands out the group's head only, in order.
        let later = Timestamp::from_unix_secs(T0 + 8_000);
        let due = store.due(later, 10).await.unwrap();
        assert_eq!(due.len(), 1, "{url}");
        assert!(due[0].id.ends_with("-1"));
        store
            .retry_at(due[0].seq, 1, "http 503", later + Duration::from_secs(30))
            .await
            .unwrap();
        assert!(
            store.due(later, 10).await.unwrap().is_empty(),
            "the head waits, so does its group"
        );
        let retry = store.due(later + Duration::from_secs(30), 10).await.unwrap();
        assert_eq!((retry[0].seq, retry[0].attempts), (due[0].seq, 1));
        store.finish(due[0].seq, "delivered", 2, None, later).await.unwrap();
        let next = store.due(later + Duration::from_secs(30), 10).await.unwrap();
        assert_eq!(next.len(), 1);
        assert!(next[0].id.ends_with("-2"), "{}", next[0].id);
        assert_eq!(store.pending_count().await.unwrap(), 1);
        let log = store.log(10).await.unwrap();
        assert_eq!(
            log.iter().map(|r| (r.state.as_str(), r.attempts)).collect::<Vec<_>>(),
            [("pending", 0), ("delivered", 2)]
        );
        // History: fired, resolved.
        let history = store.history(Timestamp::from_unix_secs(T0), 10).await.unwrap();
        let events: Vec<_> = history
            .iter()
            .map(|h| (h.severity.as_str(), h.event, h.at.unix_secs() - T0))
            .collect();
        assert_eq!(
            events,
            [
                ("ticket", "firing", 7_200),
                ("page", "resolved", 7_200),
                ("page", "firing", 60)
            ]
        );

        // Silences round-trip and expire.
        let now = Timestamp::from_unix_secs(T0 + 100);
        let s = Silence {
            id: "0123456789abcdef0123456789abcdef".into(),
            matchers: vec![LabelMatcher::parse("slo = checkout-availability").unwrap()],
            starts_at: now,
            ends_at: now + Duration::from_secs(3_600),
            created_by: "ana@sre".into(),
            comment: "failover drill".into(),
            created_at: now,
        };
        store.add_silence(&s).await.unwrap();
        let listed = store.silences().await.unwrap();
        assert_eq!(listed.len(), 1);
        let got = &listed[0].silence;
        assert_eq!(
            (
                got.id.as_str(),
                got.matchers[0].as_str(),
                got.starts_at,
                got.ends_at,
                got.comment.as_str()
            ),
            (
                s.id.as_str(),
                "slo = checkout-availability",
                s.starts_at,
                s.ends_at,
                "failover drill"
            )
        );
        let t = now + Duration::from_secs(60);
        assert!(store.expire_silence(&s.id, t).await.unwrap());
        assert!(!store.expire_silence(&s.id, t).await.unwrap(), "already expired");
        assert!(!store.expire_silence("nope", t).await.unwrap());
        assert_eq!(
            store.silences().await.unwrap()[0].silence.state(t),
            SilenceState::Expired
        );

        // A commit against a closed pool fails and keeps every write for the next one.
        let mut c = alerter();
        let mut p = Pending::default();
        let now = Timestamp::from_unix_secs(T0 + 60);
        let out = c.cycle(now, &[status_at(60, 600)], &mut |_, _| Extras::default());
        p.add(&out, &c, now);
        let waiting = p.len();
        let closed = AlertStore::new({
            let db = Db::open(&url).await.unwrap();
            db.pool.close().await;
            db.pool
        });
        assert!(closed.commit(&mut p, now).await.is_err());
        assert_eq!(p.len(), waiting, "nothing lost");
        store.commit(&mut p, now).await.unwrap();
        assert!(p.is_empty());
        db.pool.close().await;
    }
    dbs.drop().await;
}

/// Issue 18: the firing notice carried the evaluation's nanoseconds and the resolved notice,
/// sent after a restart, the milliseconds the store keeps, so a receiver pairing an alert's
/// notices by fingerprint and start could not match them. The start now reads the same.
#[tokio::test]
async fn an_alert_starts_at_the_same_instant_in_every_notice_across_a_restart() {
    let dbs = Databases::new("alert_starts_at").await;
    for url in dbs.urls() {
        let db = Db::open(&url).await.unwrap();
        db.migrate().await.unwrap();
        let store = AlertStore::new(db.pool.clone());
        // Evaluations run on the wall clock, nanoseconds and all.
        async fn run(a: &mut Alerter, store: &AlertStore, s: i64) -> Vec<Notification> {
            let now = Timestamp::from_unix_secs(T0 + s) + Duration::from_nanos(123_456_789);
            let c = a.cycle(now, &[status_at(s, 600)], &mut |_, _| Extras::default());
            let mut pending = Pending::default();
            pending.add(&c, a, now);
            store.commit(&mut pending, now).await.unwrap();
            c.notifications
        }
        let page = |n: &Notification| {
            let i = n
                .alerts
                .iter()
                .position(|a| a.labels["severity"] == "page")
                .expect("the page");
            let am = &tracebudget_alerting::notify::webhook::alertmanager::payload(n)["alerts"][i];
            let generic = &tracebudget_alerting::notify::webhook::generic::payload(n)["alerts"][i];
            (
                am["status"].as_str().unwrap().to_owned(),
                am["startsAt"].as_str().unwrap().to_owned(),
                generic["startsAt"].as_str().unwrap().to_owned(),
            )
        };

        let mut a = alerter();
        assert!(run(&mut a, &store, 45).await.is_empty(), "{url}");
        let fired = run(&mut a, &store, 60).await;
        let start = "2026-05-28T20:28:00.123Z";
        assert_eq!(page(&fired[0]), ("firing".into(), start.into(), start.into()), "{url}");

        // A restart: the alert comes back from the store exactly as it was held.
        let loaded = store.load(&["checkout-availability".into()]).await.unwrap();
        let mut b = alerter();
        b.restore(loaded.alerts, loaded.groups);
        assert_eq!(b.alerts, a.alerts, "{url}");
        assert!(run(&mut b, &store, 75).await.is_empty(), "{url}");
        let resolved = run(&mut b, &store, 7_200).await;
        assert_eq!(
            page(&resolved[0]),
            ("resolved".into(), start.into(), start.into()),
            "{url}"
        );
        db.pool.close().await;
    }
    dbs.drop().await;
}

// Issue 6: rows as the version before it wrote them, durations as serde's `{"secs", "nanos"}`
// under `long_window`, `short_window`, `time_to_exhaustion`, `latency`. Each was serialized
// from the alerting crate's notification fixture (a firing page, a resolved ticket of
// checkout-latency) by that version's code, and is kept here verbatim.

/// An `alert_state.state` value: the firing page.
pub(crate) const ALERT_STATE_BEFORE_ISSUE_6: &str = r#"{"fingerprint":"a1b2c3d4e5f60718","slo":"checkout-latency","labels":{"alertname":"SLOBurnRate","journey":"checkout","severity":"page","slo":"checkout-latency","team":"payments"},"annotations":{"description":"99.9% of checkouts finish within 800ms","summary":"checkout-latency burns its error budget 14.9 times too fast"},"firing":true,"starts_at_ms":1740830400000,"ends_at_ms":null,"last_active_ms":1740830400000,"detail":{"slo":"checkout-latency","journey":"checkout","objective":0.999,"severity":"page","factor":14.4,"long_window":{"secs":3600,"nanos":0},"short_window":{"secs":300,"nanos":0},"burn_long":14.91,"burn_short":15.2,"budget_remaining":0.42,"time_to_exhaustion":{"secs":10440,"nanos":0},"exemplars":[{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","url":"https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736","latency":{"secs":2,"nanos":500000000},"error":true,"at":"2025-03-01T11:58:30Z"},{"trace_id":"00f067aa0ba902b700f067aa0ba902b7","url":null,"latency":{"secs":1,"nanos":250000000},"error":false,"at":"2025-03-01T11:59:00Z"}],"contributors":[{"service":"payments","operation":"POST /charge","bad_events":31,"share":0.62,"reason":"error originated here"},{"service":"inventory","operation":"reserve","bad_events":19,"share":0.38,"reason":"slowest child span"}]}}"#;

/// An `alert_history.alert` value: the resolved ticket.
pub(crate) const HISTORY_ROW_BEFORE_ISSUE_6: &str = r#"{"fingerprint":"0f1e2d3c4b5a6978","labels":{"alertname":"SLOBurnRate","journey":"checkout","severity":"ticket","slo":"checkout-latency","team":"payments"},"annotations":{"description":"99.9% of checkouts finish within 800ms","summary":"checkout-latency burned its error budget 1.2 times too fast"},"status":"resolved","starts_at":"2025-02-27T08:00:00Z","ends_at":"2025-03-01T11:30:00.250Z","detail":{"slo":"checkout-latency","journey":"checkout","objective":0.999,"severity":"ticket","factor":1.0,"long_window":{"secs":259200,"nanos":0},"short_window":{"secs":21600,"nanos":0},"burn_long":0.8,"burn_short":0.31,"budget_remaining":0.42,"time_to_exhaustion":null,"exemplars":[],"contributors":[]}}"#;

/// An `outbox.payload` value of kind `alerts`: both alerts.
pub(crate) const OUTBOX_PAYLOAD_BEFORE_ISSUE_6: &str = r#"{"id":"01JN6Q3Z8K4W2V5X7Y9A0B1C2D","receiver":"oncall","group_key":"{}/{slo=\"checkout-latency\"}","group_labels":{"slo":"checkout-latency"},"alerts":[{"fingerprint":"a1b2c3d4e5f60718","labels":{"alertname":"SLOBurnRate","journey":"checkout","severity":"page","slo":"checkout-latency","team":"payments"},"annotations":{"description":"99.9% of checkouts finish within 800ms","summary":"checkout-latency burns its error budget 14.9 times too fast"},"status":"firing","starts_at":"2025-03-01T12:00:00Z","ends_at":null,"detail":{"slo":"checkout-latency","journey":"checkout","objective":0.999,"severity":"page","factor":14.4,"long_window":{"secs":3600,"nanos":0},"short_window":{"secs":300,"nanos":0},"burn_long":14.91,"burn_short":15.2,"budget_remaining":0.42,"time_to_exhaustion":{"secs":10440,"nanos":0},"exemplars":[{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","url":"https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736","latency":{"secs":2,"nanos":500000000},"error":true,"at":"2025-03-01T11:58:30Z"},{"trace_id":"00f067aa0ba902b700f067aa0ba902b7","url":null,"latency":{"secs":1,"nanos":250000000},"error":false,"at":"2025-03-01T11:59:00Z"}],"contributors":[{"service":"payments","operation":"POST /charge","bad_events":31,"share":0.62,"reason":"error originated here"},{"service":"inventory","operation":"reserve","bad_events":19,"share":0.38,"reason":"slowest child span"}]}},{"fingerprint":"0f1e2d3c4b5a6978","labels":{"alertname":"SLOBurnRate","journey":"checkout","severity":"ticket","slo":"checkout-latency","team":"payments"},"annotations":{"description":"99.9% of checkouts finish within 800ms","summary":"checkout-latency burned its error budget 1.2 times too fast"},"status":"resolved","starts_at":"2025-02-27T08:00:00Z","ends_at":"2025-03-01T11:30:00.250Z","detail":{"slo":"checkout-latency","journey":"checkout","objective":0.999,"severity":"ticket","factor":1.0,"long_window":{"secs":259200,"nanos":0},"short_window":{"secs":21600,"nanos":0},"burn_long":0.8,"burn_short":0.31,"budget_remaining":0.42,"time_to_exhaustion":null,"exemplars":[],"contributors":[]}}],"external_url":"http://127.0.0.1:8080"}"#;

#[tokio::test]
async fn rows_written_before_issue_6_still_load_on_both_backends() {
    let dbs = Databases::new("alert_store_v0").await;
    for url in dbs.urls() {
        let db = Db::open(&url).await.unwrap();
        db.migrate().await.unwrap();
        sqlx::query("INSERT INTO alert_state (fingerprint, slo, state, updated_at_ms) VALUES ($1, $2, $3, $4)")
            .bind("a1b2c3d4e5f60718")
            .bind("checkout-latency")
            .bind(ALERT_STATE_BEFORE_ISSUE_6)
            .bind(1_740_830_400_000_i64)
            .execute(&db.pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO alert_history (fingerprint, slo, severity, alertname, event, at_ms, alert) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind("0f1e2d3c4b5a6978")
        .bind("checkout-latency")
        .bind("ticket")
        .bind("SLOBurnRate")
        .bind("resolved")
        .bind(1_740_828_600_250_i64)
        .bind(HISTORY_ROW_BEFORE_ISSUE_6)
        .execute(&db.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO outbox (id, receiver, group_key, kind, payload, created_at_ms, state, attempts, \
             next_attempt_ms) VALUES ($1, $2, $3, 'alerts', $4, $5, 'pending', 0, $5)",
        )
        .bind("01JN6Q3Z8K4W2V5X7Y9A0B1C2D")
        .bind("oncall")
        .bind("{}/{slo=\"checkout-latency\"}")
        .bind(OUTBOX_PAYLOAD_BEFORE_ISSUE_6)
        .bind(1_740_830_400_000_i64)
        .execute(&db.pool)
        .await
        .unwrap();
        let store = AlertStore::new(db.pool.clone());

        // The alert state: the firing page, its numbers intact.
        let loaded = store.load(&["checkout-latency".into()]).await.unwrap();
        assert_eq!(loaded.alerts.len(), 1, "{url}");
        let page = &loaded.alerts[0];
        assert_eq!(
            (page.fingerprint.as_str(), page.firing, page.slo),
            ("a1b2c3d4e5f60718", true, 0)
        );
        let d = &page.detail;
        assert_eq!(
            (d.long_window, d.short_window, d.time_to_exhaustion),
            (
                Duration::from_secs(3_600),
                Duration::from_secs(300),
                Some(Duration::from_secs(10_440))
            ),
            "{url}"
        );
        let latencies: Vec<Duration> = d.exemplars.iter().map(|e| e.latency).collect();
        assert_eq!(latencies, [Duration::from_millis(2_500), Duration::from_millis(1_250)]);
        // As the API writes it now.
        let v = serde_json::to_value(page.to_alert()).unwrap();
        assert_eq!(
            (
                &v["detail"]["long_window_seconds"],
                &v["detail"]["short_window_seconds"],
                &v["detail"]["time_to_exhaustion_seconds"],
                &v["detail"]["exemplars"][0]["latency_seconds"]
            ),
            (&json!(3_600.0), &json!(300.0), &json!(10_440.0), &json!(2.5))
        );

        // The history: the resolved ticket.
        let history = store.history(Timestamp::from_unix_secs(0), 10).await.unwrap();
        assert_eq!(history.len(), 1, "{url}");
        let ticket = &history[0].alert.detail;
        assert_eq!(
            (ticket.long_window, ticket.short_window, ticket.time_to_exhaustion),
            (Duration::from_secs(259_200), Duration::from_secs(21_600), None)
        );

        // The outbox: the deliverer reads the queued notification (as `deliver` parses it).
        let due = store.due(Timestamp::from_unix_secs(1_740_830_400), 10).await.unwrap();
        assert_eq!(due.len(), 1, "{url}");
        let n: Notification = serde_json::from_str(&due[0].payload).unwrap();
        assert_eq!(n.alerts.len(), 2);
        assert_eq!(n.alerts[0].detail, page.detail, "{url}");
        assert_eq!(n.alerts[1].detail, *ticket, "{url}");
        db.pool.close().await;
    }
    dbs.drop().await;
}

/// Issue 7, two instances on PostgreSQL: a silence made through the standby's API (stored, and
/// added to the standby's alerter) is in force at the leader's next cycle, a silence the
/// leader's API added after the leader read the silences is kept, and a standby syncing from
/// the store sees what the leader stored.
#[tokio::test]
async fn a_silence_made_on_a_standby_reaches_the_leader() {
    use std::sync::Mutex;

    use slis::journey::{Journey, Journeys, RootMatcher};
    use tracebudget_alerting::deliver::AlertingMetrics;
    use tracebudget_engine::pipeline::Pipeline;

    let dbs = Databases::new("standby_silence").await;
    let [_, url] = dbs.urls();
    let db = Db::open(&url).await.unwrap();
    db.migrate().await.unwrap();
    let journeys = Journeys(vec![Journey {
        name: "checkout".into(),
        root: RootMatcher {
            service: Some("frontend".into()),
            ..Default::default()
        },
        status_error: true,
        error_rules: vec![],
        expected_services: vec![],
        labels: vec![],
    }]);
    let runtime = || {
        crate::app::alerts::start(
            Arc::new(model()),
            vec!["checkout".into()],
            "http://tb".into(),
            AlertStore::new(db.pool.clone()),
            Arc::new(AlertingMetrics::default()),
        )
    };
    let (leader, standby) = (runtime().await.unwrap(), runtime().await.unwrap());
    let source = crate::app::alerts::PipelineSource {
        pipeline: Arc::new(Mutex::new(Pipeline::new(
            journeys,
            &model().slos,
            &tracebudget_engine::config::IngestConfig::default(),
            Arc::default(),
        ))),
        others: Some(crate::app::cluster::Others {
            store: tracebudget_engine::store::SliStore::new(&db, "a"),
            metrics: tracebudget_engine::cluster::ClusterMetrics::default(),
        }),
    };
    let others = source.others.as_ref().expect("several instances");
    let now = Timestamp::from_unix_secs(T0);
    let silence = |id: &str| Silence {
        id: id.into(),
        matchers: vec![LabelMatcher::parse("slo = checkout-availability").unwrap()],
        starts_at: now,
        ends_at: now + Duration::from_secs(3_600),
        created_by: "ana@sre".into(),
        comment: "failover drill".into(),
        created_at: now,
    };
    // The standby's API: stored, and in its own alerter.
    let on_standby = silence("0123456789abcdef0123456789abcdef");
    standby.store.add_silence(&on_standby).await.unwrap();
    standby.alerter.lock().await.silences.push(on_standby.clone());
    // The leader's API, stored only after the leader's next read: kept in force meanwhile.
    let on_leader = silence("fedcba9876543210fedcba9876543210");
    leader.alerter.lock().await.silences.push(on_leader.clone());

    let mut pending = Pending::default();
    leader.cycle(&source, &mut pending, now).await;
    let ids = |a: &tracebudget_alerting::alerter::Alerter| a.silences.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&*leader.alerter.lock().await),
        [on_standby.id.clone(), on_leader.id.clone()]
    );
    assert_eq!(
        others
            .metrics
            .others_reads
            .get_or_create(&tracebudget_engine::cluster::OutcomeLabels { outcome: "none" })
            .get(),
        1,
        "no other instance's rows: nothing read"
    );

    // The standby syncs from the store: what is stored (newest first, then by id).
    leader.store.add_silence(&on_leader).await.unwrap();
    standby.sync_from_store().await;
    assert_eq!(
        ids(&*standby.alerter.lock().await),
        [on_standby.id.clone(), on_leader.id.clone()]
    );
    db.close().await;
    dbs.drop().await;
}
