//! State survives restarts (issue #4), on SQLite and on the real PostgreSQL: after a graceful
//! stop every number is back; after `kill -9` exactly what was flushed is back, and what was not
//! is what `/metrics` said was unflushed; PostgreSQL stopped for 30 s under load loses nothing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tracebudget_tests::{
    Json, Metrics, PgDatabase, PrivatePostgres, Server, TempDir, bin, example_config_with, free_addrs, loadgen,
    wait_for,
};

const JOURNEYS: [&str; 3] = ["checkout", "search", "login"];

/// What a reader sees: every SLO's lifetime counts and every journey's roots from /metrics, and
/// the whole of `GET /api/v1/slos` (burn per window, budget, exhaustion, percentiles).
fn snapshot(server: &mut Server) -> (Vec<String>, String) {
    let m = server.metrics();
    let mut lines: Vec<String> = [
        "tracebudget_slo_events_total",
        "tracebudget_slo_bad_events_total",
        "tracebudget_root_spans_total",
    ]
    .iter()
    .flat_map(|name| m.matching(name, &[]).map(|s| format!("{s:?}")).collect::<Vec<_>>())
    .collect();
    lines.sort();
    assert!(lines.len() >= 10, "{lines:?}");
    let api = server.get("/api/v1/slos").expect("GET /api/v1/slos");
    assert_eq!(api.status, 200, "{}", api.body);
    (lines, api.body)
}

fn send(config: &std::path::Path, http: std::net::SocketAddr, traces: u32, seed: u32) -> Json {
    let sent = loadgen(
        &[
            "--config",
            config.to_str().unwrap(),
            "--endpoint",
            &format!("http://{http}"),
            "--traces",
            &traces.to_string(),
            "--rate",
            "0",
            "--error-rate",
            "0.05",
            "--slow-rate",
            "0.04",
            "--incomplete-rate",
            "0.03",
            "--seed",
            &seed.to_string(),
        ],
        Duration::from_secs(120),
    );
    assert_eq!(sent.num(&["accepted", "traces"]), f64::from(traces));
    sent
}

/// Waits until `n` traces have closed (completeness judged).
fn closed(server: &mut Server, n: u32) -> Metrics {
    let m = wait_for(server, Duration::from_secs(30), |m| {
        m.sum("tracebudget_traces_closed_total", &[]) >= f64::from(n)
    });
    assert_eq!(m.sum("tracebudget_traces_closed_total", &[]), f64::from(n));
    m
}

fn events(m: &Metrics, slo: &str, journey: &str, name: &str) -> f64 {
    m.get(name, &[("slo", slo), ("journey", journey)])
        .unwrap_or_else(|| panic!("no {name} for {slo}"))
}

fn backends(tag: &str) -> Vec<(String, Option<PgDatabase>, TempDir)> {
    let dir = TempDir::new(tag);
    let sqlite = format!("sqlite://{}", dir.path().join("tracebudget.db").display());
    let pg = PgDatabase::new(tag);
    vec![
        (sqlite, None, dir),
        (pg.url.clone(), Some(pg), TempDir::new(&format!("{tag}-pg"))),
    ]
}

#[test]
fn a_graceful_restart_gives_back_every_number_on_both_backends() {
    for (url, _db, dir) in backends("graceful") {
        let ports: [_; 4] = free_addrs(4).try_into().unwrap();
        let config = example_config_with(&dir, ports, &url, &[]);
        let mut server = Server::start(&config, ports[0]);
        send(&config, ports[2], 2_000, 11);
        closed(&mut server, 2_000);
        let before = snapshot(&mut server);
        let status = server.signal_and_wait("TERM", Duration::from_secs(30));
        assert!(status.success(), "{url}: {status}\n{}", server.output_block());
        assert!(
            server.output().contains("everything counted is stored"),
            "{url}\n{}",
            server.output_block()
        );

        let mut again = Server::start(&config, ports[0]);
        let after = snapshot(&mut again);
        assert_eq!(after.0, before.0, "{url}: /metrics after the restart");
        assert_eq!(after.1, before.1, "{url}: /api/v1/slos after the restart");
        let m = again.metrics();
        assert!(m.sum("tracebudget_storage_restored_rows_total", &[("outcome", "restored")]) > 0.0);
        assert_eq!(
            m.sum("tracebudget_storage_restored_rows_total", &[("outcome", "corrupt")]),
            0.0
        );
    }
}

#[test]
fn after_kill_9_exactly_the_flushed_state_is_back_and_the_rest_was_reported_unflushed() {
    for (url, _db, dir) in backends("kill9") {
        let ports: [_; 4] = free_addrs(4).try_into().unwrap();
        // No timed flush during the test: only the graceful stop flushes.
        let config = example_config_with(
            &dir,
            ports,
            &url,
            &[("flush_interval = \"5s\"", "flush_interval = \"1h\"")],
        );
        let mut server = Server::start(&config, ports[0]);
        let first = send(&config, ports[2], 1_000, 21);
        closed(&mut server, 1_000);
        let flushed = server.metrics();
        assert!(server.signal_and_wait("TERM", Duration::from_secs(30)).success());

        let mut server = Server::start(&config, ports[0]);
        let m = server.metrics();
        for j in JOURNEYS {
            let slo = format!("{j}-availability");
            assert_eq!(
                events(&m, &slo, j, "tracebudget_slo_events_total"),
                first.num(&["journeys", j, "traces"]),
                "{url}: {slo} restored"
            );
            assert_eq!(events(&m, &slo, j, "tracebudget_storage_unflushed_events"), 0.0);
        }
        let second = send(&config, ports[2], 500, 22);
        let before_kill = closed(&mut server, 500);
        for j in JOURNEYS {
            let slo = format!("{j}-availability");
            let unflushed = |name: &str| events(&before_kill, &slo, j, name);
            assert_eq!(
                unflushed("tracebudget_storage_unflushed_events"),
                second.num(&["journeys", j, "traces"]),
                "{url}: {slo}: everything since the restart is unflushed"
            );
            assert_eq!(
                unflushed("tracebudget_storage_unflushed_bad_events"),
                second.num(&["journeys", j, "errors"]),
                "{url}: {slo}"
            );
        }
        let status = server.signal_and_wait("KILL", Duration::from_secs(10));
        assert!(!status.success());

        let mut server = Server::start(&config, ports[0]);
        let after = server.metrics();
        for s in before_kill.matching("tracebudget_slo_events_total", &[]) {
            let labels: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let unflushed = before_kill
                .get("tracebudget_storage_unflushed_events", &labels)
                .unwrap();
            let back = after.get("tracebudget_slo_events_total", &labels).unwrap();
            assert_eq!(back, s.value - unflushed, "{url}: {labels:?}");
            assert_eq!(
                Some(back),
                flushed.get("tracebudget_slo_events_total", &labels),
                "{url}: {labels:?}: the state of the last flush"
            );
            let bad_unflushed = before_kill
                .get("tracebudget_storage_unflushed_bad_events", &labels)
                .unwrap();
            assert_eq!(
                after.get("tracebudget_slo_bad_events_total", &labels).unwrap(),
                before_kill.get("tracebudget_slo_bad_events_total", &labels).unwrap() - bad_unflushed,
                "{url}: {labels:?}"
            );
        }
    }
}

#[test]
fn postgres_stopped_for_30_seconds_under_load_loses_nothing() {
    let pg = PrivatePostgres::start("outage");
    let dir = TempDir::new("outage");
    let ports: [_; 4] = free_addrs(4).try_into().unwrap();
    let config = example_config_with(
        &dir,
        ports,
        &pg.url(),
        &[("flush_interval = \"5s\"", "flush_interval = \"1s\"")],
    );
    let mut server = Server::start(&config, ports[0]);

    // About 50 s of steady traffic; the database goes away 8 s in, for 30 s.
    let load = Command::new(bin())
        .args(["loadgen", "--config", config.to_str().unwrap()])
        .args(["--endpoint", &format!("http://{}", ports[2])])
        .args(["--rate", "1500", "--duration", "50s", "--spans-per-request", "64"])
        .args([
            "--error-rate",
            "0.05",
            "--slow-rate",
            "0.04",
            "--incomplete-rate",
            "0.03",
            "--seed",
            "31",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loadgen");
    std::thread::sleep(Duration::from_secs(8));
    pg.down();
    let down_at = Instant::now();
    let accepted = |m: &Metrics| m.sum("tracebudget_spans_accepted_total", &[]);
    let at_stop = accepted(&server.metrics());
    std::thread::sleep(Duration::from_secs(30));
    let m = server.metrics();
    assert!(
        accepted(&m) > at_stop + 10_000.0,
        "ingest goes on while the database is down"
    );
    assert!(
        m.sum("tracebudget_storage_flush_failures_total", &[]) >= 3.0,
        "flushes failed and were retried"
    );
    assert!(m.sum("tracebudget_storage_pending_rows", &[]) > 0.0, "rows wait");
    assert!(m.sum("tracebudget_storage_unflushed_events", &[]) > 0.0);
    pg.up();
    eprintln!("PostgreSQL was down for {:?}", down_at.elapsed());

    let out = load.wait_with_output().expect("loadgen ran");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sent = Json::parse(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(sent.num(&["failed", "requests"]), 0.0);
    let traces = sent.num(&["accepted", "traces"]);
    assert!(traces > 5_000.0, "{traces}");
    let m = wait_for(&mut server, Duration::from_secs(60), |m| {
        m.sum("tracebudget_traces_closed_total", &[]) >= traces
            && m.sum("tracebudget_storage_unflushed_events", &[]) == 0.0
            && m.sum("tracebudget_storage_pending_rows", &[]) == 0.0
    });
    assert_eq!(m.sum("tracebudget_storage_unflushed_events", &[]), 0.0, "caught up");
    assert!(server.signal_and_wait("TERM", Duration::from_secs(30)).success());

    let mut server = Server::start(&config, ports[0]);
    let m = server.metrics();
    for j in JOURNEYS {
        let tally = |k: &str| sent.num(&["journeys", j, k]);
        let slo = |name: &str, which: &str| events(&m, &format!("{j}-{name}"), j, which);
        assert_eq!(
            slo("availability", "tracebudget_slo_events_total"),
            tally("traces"),
            "{j}"
        );
        assert_eq!(
            slo("availability", "tracebudget_slo_bad_events_total"),
            tally("errors"),
            "{j}"
        );
        assert_eq!(slo("latency", "tracebudget_slo_bad_events_total"), tally("slow"), "{j}");
        assert_eq!(
            m.get("tracebudget_root_spans_total", &[("journey", j)]),
            Some(tally("traces"))
        );
    }
    assert_eq!(
        events(
            &m,
            "checkout-completeness",
            "checkout",
            "tracebudget_slo_bad_events_total"
        ),
        sent.num(&["journeys", "checkout", "incomplete"])
    );
}
