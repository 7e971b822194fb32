//! Two `serve` instances on one PostgreSQL database (issue 7), each receiving its own traces as
//! the OpenTelemetry Collector's `loadbalancing` exporter would send them: both show the merged
//! totals of every instance, one leads the evaluator, and when the leader is killed (`kill -9`)
//! the other takes over within two eval intervals, and every notification arrives exactly once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tracebudget_tests::{
    Json, PgDatabase, Server, TempDir, WebhookSink, bin, free_addrs, http_request, loadgen, wait_for,
};

const EVAL: Duration = Duration::from_secs(1);

/// One journey with an availability SLO, a fast page (2m/1m windows, factor 5 at 99%), evaluated
/// every second, on the shared database under `instance`.
pub(crate) fn config(
    dir: &TempDir,
    instance: &str,
    ports: &[SocketAddr],
    url: &str,
    hook: SocketAddr,
) -> std::path::PathBuf {
    let [api, grpc, http, zipkin] = ports[..] else {
        unreachable!()
    };
    dir.write(
        &format!("{instance}.toml"),
        &format!(
            r#"
[server]
listen = "{api}"

[ingest]
otlp_grpc = "{grpc}"
otlp_http = "{http}"
zipkin = "{zipkin}"
trace_idle = "1s"

[storage]
url = "{url}"
flush_interval = "1s"
instance = "{instance}"

[alerting]
eval_interval = "1s"

[[journeys]]
name = "checkout"
service = "frontend"
http_method = "POST"
http_route = "/api/checkout"
error_when = ["http.response.status_code >= 500"]

[[slos]]
name = "checkout-availability"
journey = "checkout"
sli = "error"
objective = 0.99
period = "30d"
policy = "fast"

[[policies]]
name = "fast"
min_events = 20
windows = [{{ long = "2m", short = "1m", factor = 5.0, severity = "page" }}]

[[receivers]]
name = "hook"
webhook = {{ url = "http://{hook}/notify", format = "generic", timeout = "2s" }}

[route]
receiver = "hook"
group_by = ["slo"]
group_wait = "0s"
group_interval = "1s"
repeat_interval = "1h"
"#
        ),
    )
}

pub(crate) fn json(server: &Server, path: &str) -> Json {
    let r = server.get(path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    Json::parse(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", r.body))
}

pub(crate) fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (events, bad events) of the SLO over its period, as `/api/v1/slos` shows them.
pub(crate) fn period(server: &Server) -> (f64, f64) {
    let slos = json(server, "/api/v1/slos");
    let slo = &slos.get("slos").unwrap().as_array().unwrap()[0];
    (slo.num(&["period", "events"]), slo.num(&["period", "bad_events"]))
}

fn send(config: &std::path::Path, http: SocketAddr, traces: u32, seed: u32) -> (f64, f64) {
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
            "0.02",
            "--seed",
            &seed.to_string(),
        ],
        Duration::from_secs(120),
    );
    assert_eq!(sent.num(&["accepted", "traces"]), f64::from(traces));
    (
        sent.num(&["journeys", "checkout", "traces"]),
        sent.num(&["journeys", "checkout", "errors"]),
    )
}

#[test]
fn two_instances_merge_their_counts_and_the_standby_takes_over_without_a_second_page() {
    let db = PgDatabase::new("cluster");
    let dir = TempDir::new("cluster");
    let ports = free_addrs(9);
    let hook = ports[8];
    let sink = WebhookSink::start(hook).expect("bind the webhook sink");
    let config_a = config(&dir, "a", &ports[..4], &db.url, hook);
    let config_b = config(&dir, "b", &ports[4..8], &db.url, hook);
    let mut a = Server::start(&config_a, ports[0]);
    // A takes the evaluator lock at its first tick, before B starts.
    wait_for(&mut a, Duration::from_secs(10), |m| {
        m.get("tracebudget_cluster_leader", &[]) == Some(1.0)
    });
    let mut b = Server::start(&config_b, ports[4]);
    let m = wait_for(&mut b, Duration::from_secs(5), |m| {
        m.sum("tracebudget_cluster_others_reads_total", &[]) >= 2.0
    });
    assert_eq!(m.get("tracebudget_cluster_leader", &[]), Some(0.0), "B stands by");

    // Different traces to each instance (a collector routes by trace id): both show the sum.
    let (traces_a, errors_a) = send(&config_a, ports[2], 1_000, 1);
    let (traces_b, errors_b) = send(&config_b, ports[6], 1_500, 2);
    let want = (traces_a + traces_b, errors_a + errors_b);
    assert!(errors_a > 0.0 && errors_b > 0.0, "faults were injected");
    for (name, server) in [("a", &a), ("b", &b)] {
        wait_until(
            &format!("{name} shows the merged totals"),
            Duration::from_secs(20),
            || period(server) == want,
        );
    }
    // /metrics says what the API says, on both instances, over the merged windows.
    for (name, server) in [("a", &mut a), ("b", &mut b)] {
        let slos = json(server, "/api/v1/slos");
        let slo = &slos.get("slos").unwrap().as_array().unwrap()[0];
        let m = server.metrics();
        let labels = [("slo", "checkout-availability"), ("journey", "checkout")];
        let period_labels = [labels[0], labels[1], ("window", "period")];
        assert_eq!(
            m.get("tracebudget_slo_sli_ratio", &period_labels),
            slo.get("sli_ratio").and_then(Json::as_f64),
            "{name}"
        );
        assert_eq!(
            m.get("tracebudget_slo_error_budget_remaining_ratio", &labels),
            slo.get("budget_remaining").and_then(Json::as_f64),
            "{name}"
        );
        assert_eq!(
            slo.num(&["sli_ratio"]),
            (want.0 - want.1) / want.0,
            "{name}: the ratio of the merged counts"
        );
        // The counters of what this instance itself counted stay its own.
        let own = if name == "a" { traces_a } else { traces_b };
        assert_eq!(m.get("tracebudget_slo_events_total", &labels), Some(own), "{name}");
        let journeys = json(server, "/api/v1/journeys");
        let j = &journeys.get("journeys").unwrap().as_array().unwrap()[0];
        assert_eq!((j.num(&["roots"]), j.num(&["error_roots"])), want, "{name}");
    }

    // A config reload drops the others' windows (laid out for the old config) and reads them
    // again at once: the merged figures come back without waiting for the next cycle's pace.
    let text = std::fs::read_to_string(&config_a).unwrap().replace(
        "name = \"checkout-availability\"\n",
        "name = \"checkout-availability\"\ndescription = \"Checkouts that succeed\"\n",
    );
    std::fs::write(&config_a, text).unwrap();
    let r = http_request(
        ports[0],
        "POST",
        "/api/v1/config/reload",
        &[],
        None,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until(
        "A shows the merged totals after the reload",
        Duration::from_secs(5),
        || period(&a) == want,
    );

    // An incident on B's traffic: A, the leader, sees it only through B's rows, and pages.
    let mut incident = Command::new(bin())
        .args(["loadgen", "--config", config_b.to_str().unwrap(), "--protocol", "http"])
        .args(["--endpoint", &format!("http://{}", ports[6])])
        .args([
            "--rate",
            "40",
            "--duration",
            "130s",
            "--incident",
            "5s:40s:1.0",
            "--seed",
            "3",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start loadgen");
    wait_until("the page from A", Duration::from_secs(60), || {
        sink.received().iter().any(|r| r.body.contains("\"status\":\"firing\""))
    });
    assert_eq!(b.metrics().get("tracebudget_cluster_leader", &[]), Some(0.0));
    // A marked it delivered (else the next leader sends it again, under the same key).
    wait_until("A stored the delivery", Duration::from_secs(10), || {
        let log = json(&a, "/api/v1/notifications");
        let list = log.get("notifications").unwrap().as_array().unwrap();
        !list.is_empty()
            && list
                .iter()
                .all(|n| n.get("state").and_then(Json::as_str) == Some("delivered"))
    });

    // The leader dies mid-incident: B leads within two eval intervals and pages nobody again.
    a.signal("KILL");
    let killed = Instant::now();
    let m = wait_for(&mut b, 4 * EVAL, |m| {
        m.get("tracebudget_cluster_leader", &[]) == Some(1.0)
    });
    let took = killed.elapsed();
    assert_eq!(
        m.get("tracebudget_cluster_leader", &[]),
        Some(1.0),
        "{}",
        b.output_block()
    );
    assert!(took <= 2 * EVAL, "B led {took:?} after the kill");
    assert_eq!(
        m.get("tracebudget_cluster_leadership_changes_total", &[("to", "leader")]),
        Some(1.0)
    );

    // The incident ends; B resolves the page on its own traffic and A's last rows.
    let _ = incident.wait();
    wait_until("the resolved notice from B", Duration::from_secs(120), || {
        sink.received()
            .iter()
            .any(|r| r.body.contains("\"status\":\"resolved\""))
    });
    std::thread::sleep(3 * EVAL);
    let received = sink.received();
    let mut ids = BTreeMap::new();
    let mut notes = Vec::new();
    for r in &received {
        let body = Json::parse(&r.body).unwrap();
        let id = body.get("id").unwrap().as_str().unwrap().to_owned();
        assert_eq!(r.header("idempotency-key"), Some(id.as_str()));
        *ids.entry(id.clone()).or_insert(0) += 1;
        let seq: u64 = id.rsplit_once('-').unwrap().1.parse().unwrap();
        notes.push((seq, body.get("status").unwrap().as_str().unwrap().to_owned()));
    }
    assert!(ids.values().all(|n| *n == 1), "no notification twice: {ids:?}");
    assert_eq!(
        notes,
        vec![(1, "firing".to_owned()), (2, "resolved".to_owned())],
        "one page, then its resolved notice\n{}",
        b.output_block()
    );
    let history = json(&b, "/api/v1/alerts/history");
    let events: Vec<&str> = history
        .get("events")
        .and_then(Json::as_array)
        .expect("events")
        .iter()
        .filter_map(|e| e.get("event").and_then(Json::as_str))
        .collect();
    assert_eq!(events.iter().filter(|e| **e == "firing").count(), 1, "{events:?}");
    drop(a);
}
