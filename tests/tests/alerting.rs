//! Alerting through the real binary (issue #5): pages fired by real traffic reach a real HTTP
//! receiver exactly once, in order per group, across a receiver outage of two minutes and a
//! restart of tracebudget in the middle of it.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tracebudget_tests::{Json, Server, TempDir, WebhookSink, bin, free_addrs};

/// Two journeys, an availability SLO each, a fast policy (2m/1m windows) so that real traffic
/// fires and resolves pages within minutes, evaluated every second, grouped by SLO.
fn config(
    dir: &TempDir,
    ports: &[std::net::SocketAddr],
    hook: std::net::SocketAddr,
    extra: &str,
) -> std::path::PathBuf {
    let [api, grpc, http, zipkin] = ports[..] else {
        unreachable!()
    };
    let db = dir.path().join("tracebudget.db");
    dir.write(
        "alerting.toml",
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
url = "sqlite://{db}"
flush_interval = "1s"

[alerting]
eval_interval = "1s"
trace_url = "https://tempo.test/trace/{{trace_id}}"

[[journeys]]
name = "checkout"
service = "frontend"
http_method = "POST"
http_route = "/api/checkout"
error_when = ["http.response.status_code >= 500"]
expected_services = ["frontend", "checkout", "payment", "catalog"]

[[journeys]]
name = "search"
service = "frontend"
http_method = "GET"
http_route = "/api/search"
error_when = ["http.response.status_code >= 500"]
expected_services = ["frontend", "catalog"]

[[slos]]
name = "checkout-availability"
journey = "checkout"
sli = "error"
objective = 0.99
period = "30d"
policy = "fast"

[[slos]]
name = "search-availability"
journey = "search"
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
{extra}
"#,
            db = db.display()
        ),
    )
}

fn json(server: &Server, path: &str) -> Json {
    let r = server.get(path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    Json::parse(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", r.body))
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// (state, count) of the outbox rows.
fn outbox(server: &Server) -> BTreeMap<String, usize> {
    let mut states = BTreeMap::new();
    for n in json(server, "/api/v1/notifications?limit=1000")
        .get("notifications")
        .unwrap()
        .as_array()
        .unwrap()
    {
        *states
            .entry(n.get("state").unwrap().as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    states
}

#[test]
fn webhook_down_two_minutes_and_a_restart_every_notification_once_in_order() {
    let dir = TempDir::new("alerting");
    let ports = free_addrs(5);
    let hook = ports[4];
    let config = config(&dir, &ports[..4], hook, "");
    let api = ports[0];
    let mut server = Server::start(&config, api);

    // Traffic for 150 s, every root failing from 10 s to 100 s: both SLOs page, then resolve.
    let mut loadgen = Command::new(bin())
        .args(["loadgen", "--config", config.to_str().unwrap(), "--protocol", "http"])
        .args(["--endpoint", &format!("http://{}", ports[2])])
        .args([
            "--rate",
            "40",
            "--duration",
            "150s",
            "--incident",
            "10s:90s:1.0",
            "--seed",
            "11",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start loadgen");
    let down_until = Instant::now() + Duration::from_secs(120);

    // The receiver is down: both pages fire and wait in the outbox, retried.
    wait_until("two pages queued", Duration::from_secs(60), || {
        outbox(&server).get("pending").copied().unwrap_or(0) >= 2
    });
    // Blame comes when the failed traces close (trace_idle = 1 s), just after the roots fired.
    wait_until("contributors", Duration::from_secs(20), || {
        let alerts = json(&server, "/api/v1/alerts");
        let list = alerts.get("alerts").unwrap().as_array().unwrap();
        list.len() == 2
            && list.iter().all(|a| {
                !a.at(&["detail", "contributors"])
                    .unwrap()
                    .as_array()
                    .unwrap()
                    .is_empty()
            })
    });
    let alerts = json(&server, "/api/v1/alerts");
    let firing = alerts.get("alerts").unwrap().as_array().unwrap();
    assert_eq!(firing.len(), 2, "one page per SLO");
    for a in firing {
        assert_eq!(a.at(&["labels", "severity"]).unwrap().as_str(), Some("page"));
        assert_eq!(a.get("status").unwrap().as_str(), Some("firing"));
        // What only traces give: the failed traces, linked, and where the errors came from.
        let exemplars = a.at(&["detail", "exemplars"]).unwrap().as_array().unwrap();
        assert!(!exemplars.is_empty(), "exemplars in {a:?}");
        for e in exemplars {
            let id = e.get("trace_id").unwrap().as_str().unwrap();
            assert_eq!(id.len(), 32);
            assert_eq!(
                e.get("url").unwrap().as_str(),
                Some(format!("https://tempo.test/trace/{id}").as_str())
            );
            assert!(matches!(e.get("error"), Some(Json::Bool(true))), "{e:?}");
        }
        let contributors = a.at(&["detail", "contributors"]).unwrap().as_array().unwrap();
        assert!(!contributors.is_empty(), "contributors in {a:?}");
        assert_eq!(
            contributors[0].get("reason").unwrap().as_str(),
            Some("error originated here")
        );
    }

    // Restart in the middle of the outage: state and outbox come back, nothing is re-queued.
    std::thread::sleep(Duration::from_secs(20));
    let before = outbox(&server);
    let alerts_before = json(&server, "/api/v1/alerts");
    let status = server.signal_and_wait("TERM", Duration::from_secs(30));
    assert!(status.success(), "graceful stop: {status}\n{}", server.output_block());
    let server = Server::start(&config, api);
    let after = outbox(&server);
    assert_eq!(before, after, "the outbox survives the restart as it was");
    let fingerprints = |j: &Json| -> Vec<String> {
        let mut v: Vec<String> = j
            .get("alerts")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.get("fingerprint").unwrap().as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let restored = fingerprints(&json(&server, "/api/v1/alerts"));
    assert_eq!(
        restored,
        fingerprints(&alerts_before),
        "the alerts come back as they were"
    );
    assert_eq!(restored.len(), 2, "still firing: the incident lasts 90 s");

    // The receiver comes back after two minutes.
    std::thread::sleep(down_until.saturating_duration_since(Instant::now()));
    let sink = WebhookSink::start(hook).expect("bind the webhook sink");
    let _ = loadgen.wait();
    // Both pages resolve (1m window clean after the incident) and every notice is delivered.
    wait_until("both resolved notices delivered", Duration::from_secs(240), || {
        let states = outbox(&server);
        let received = sink.received();
        !states.contains_key("pending")
            && received
                .iter()
                .filter(|r| r.body.contains("\"status\":\"resolved\""))
                .count()
                >= 2
    });

    let received = sink.received();
    let states = outbox(&server);
    assert_eq!(states.get("given_up"), None, "{states:?}");
    let delivered = states["delivered"];
    assert_eq!(
        received.len(),
        delivered,
        "every delivered notification arrived exactly once"
    );
    let mut ids = BTreeMap::new();
    let mut per_group: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for r in &received {
        assert_eq!(r.path, "/notify");
        let body = Json::parse(&r.body).unwrap();
        let id = body.get("id").unwrap().as_str().unwrap().to_owned();
        assert_eq!(
            r.header("idempotency-key"),
            Some(id.as_str()),
            "the header carries the id"
        );
        *ids.entry(id.clone()).or_insert(0) += 1;
        let seq: u64 = id.rsplit_once('-').unwrap().1.parse().unwrap();
        let status = body.get("status").unwrap().as_str().unwrap().to_owned();
        per_group
            .entry(body.get("groupKey").unwrap().as_str().unwrap().to_owned())
            .or_default()
            .push((seq, status));
    }
    assert!(ids.values().all(|n| *n == 1), "no id twice: {ids:?}");
    assert_eq!(per_group.len(), 2, "{per_group:?}");
    // Issue 18: each page fired before the restart and resolved after it; its startsAt is the
    // same text in both notices (it was nanoseconds, then the store's milliseconds).
    let mut starts: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for r in &received {
        let body = Json::parse(&r.body).unwrap();
        for a in body.get("alerts").unwrap().as_array().unwrap() {
            let field = |k: &str| a.get(k).unwrap().as_str().unwrap().to_owned();
            starts
                .entry(field("fingerprint"))
                .or_default()
                .insert(field("status"), field("startsAt"));
        }
    }
    assert_eq!(starts.len(), 2, "{starts:?}");
    for (fingerprint, by_status) in &starts {
        assert_eq!(
            by_status.len(),
            2,
            "firing and resolved of {fingerprint}: {by_status:?}"
        );
        assert_eq!(by_status["firing"], by_status["resolved"], "{fingerprint}");
    }
    for (group, notes) in &per_group {
        // In order, none missing, none repeated: a firing page then its resolved notice.
        let want: Vec<(u64, String)> = vec![(1, "firing".into()), (2, "resolved".into())];
        assert_eq!(notes, &want, "group {group}");
    }
    let m = {
        let mut s = server;
        s.metrics()
    };
    assert_eq!(
        m.sum("tracebudget_notification_attempts_total", &[("outcome", "delivered")]),
        4.0
    );
    assert!(m.sum("tracebudget_notification_attempts_total", &[("outcome", "retry")]) >= 2.0);
}

#[test]
fn reports_go_out_on_their_cron_schedule_through_the_outbox() {
    let dir = TempDir::new("reports");
    let ports = free_addrs(5);
    let hook = ports[4];
    let sink = WebhookSink::start(hook).expect("bind the webhook sink");
    // Every 5 seconds (6 fields: seconds first), only the checkout SLO.
    let extra = r#"
[[reports]]
name = "digest"
schedule = "*/5 * * * * *"
receiver = "hook"
slos = ["checkout-availability"]
"#;
    let config = config(&dir, &ports[..4], hook, extra);
    let server = Server::start(&config, ports[0]);
    wait_until("two digests", Duration::from_secs(30), || sink.received().len() >= 2);
    drop(server);
    let received = sink.received();
    let mut tos = Vec::new();
    for r in &received {
        let body = Json::parse(&r.body).unwrap();
        assert_eq!(body.get("kind").unwrap().as_str(), Some("report"), "{}", r.body);
        let id = body.get("id").unwrap().as_str().unwrap();
        assert_eq!(r.header("idempotency-key"), Some(id));
        let to = body.get("to").unwrap().as_str().unwrap().to_owned();
        assert!(id.starts_with("report-digest-"), "{id}");
        let slos = body.get("slos").unwrap().as_array().unwrap();
        assert_eq!(slos.len(), 1);
        assert_eq!(slos[0].get("slo").unwrap().as_str(), Some("checkout-availability"));
        tos.push(to);
    }
    // Runs land on the schedule's instants (whole 5 s), each once.
    let mut unique = tos.clone();
    unique.dedup();
    assert_eq!(unique, tos, "no run twice");
    for to in &tos {
        let secs: u32 = to[17..19].parse().unwrap();
        assert_eq!(secs % 5, 0, "{to}");
    }
}

#[test]
fn silences_through_the_cli_and_the_api_with_a_token() {
    let dir = TempDir::new("silences");
    let ports = free_addrs(5);
    let config = config(&dir, &ports[..4], ports[4], "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("listen = \"{}\"", ports[0]),
        &format!("listen = \"{}\"\napi_token = \"s3cret-token\"", ports[0]),
    );
    std::fs::write(&config, text).unwrap();
    let server = Server::start(&config, ports[0]);
    let url = format!("http://{}", ports[0]);
    let cli = |args: &[&str], token: Option<&str>| {
        let mut c = Command::new(bin());
        c.arg("silence")
            .args(args)
            .args(["--url", &url])
            .env_remove("TRACEBUDGET_API_TOKEN");
        if let Some(t) = token {
            c.env("TRACEBUDGET_API_TOKEN", t);
        }
        c.output().unwrap()
    };
    let denied = cli(&["add", "slo = checkout-availability", "--comment", "drill"], None);
    assert!(!denied.status.success());
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(err.contains("401"), "{err}");
    let wrong = cli(
        &["add", "slo = checkout-availability", "--comment", "drill"],
        Some("nope"),
    );
    assert!(!wrong.status.success());
    let bad = cli(&["add", "slo checkout", "--comment", "drill"], Some("s3cret-token"));
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("400") && err.contains("invalid matcher"), "{err}");

    let added = cli(
        &[
            "add",
            "slo = checkout-availability",
            "severity =~ page|ticket",
            "--duration",
            "2h",
            "--comment",
            "failover drill",
            "--author",
            "ana",
        ],
        Some("s3cret-token"),
    );
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let id = String::from_utf8_lossy(&added.stdout).trim().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    let listed = cli(&["list"], None);
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(
        out.contains(&id) && out.contains("active") && out.contains("failover drill") && out.contains("ana"),
        "{out}"
    );
    let api = json(&server, "/api/v1/silences");
    let s = &api.get("silences").unwrap().as_array().unwrap()[0];
    assert_eq!(s.get("id").unwrap().as_str(), Some(id.as_str()));
    let matchers: Vec<_> = s
        .get("matchers")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(matchers, ["slo = checkout-availability", "severity =~ page|ticket"]);

    assert!(
        !cli(&["expire", &id], None).status.success(),
        "expiring needs the token too"
    );
    let expired = cli(&["expire", &id], Some("s3cret-token"));
    assert!(expired.status.success());
    let api = json(&server, "/api/v1/silences");
    assert_eq!(
        api.get("silences").unwrap().as_array().unwrap()[0]
            .get("state")
            .unwrap()
            .as_str(),
        Some("expired")
    );
    let again = cli(&["expire", &id], Some("s3cret-token"));
    assert!(String::from_utf8_lossy(&again.stderr).contains("404"));
    // The token never reaches the log.
    assert!(!server.output().contains("s3cret-token"));
}
