//! Nothing secret shown (issue 18, item 4), through the real binary: a config whose webhook URLs
//! keep their keys in the path and query (as Slack's and PagerDuty's do), with a bearer token,
//! a custom header, an API token and tokens in comments. `tracebudget check`'s output, and —
//! after a page whose delivery to an unreachable URL with a secret path failed — `GET
//! /api/v1/config`, `/metrics`, `/api/v1/notifications`, `/api/v1/alerts` and serve's whole log
//! are searched: none holds any secret, and the redacted forms are where they should be (so the
//! search can fail).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracebudget_tests::{Json, Server, TempDir, free_addrs, http_request, run};

/// Every secret in the config; none may be shown anywhere.
const SECRETS: &[&str] = &[
    "SECRETXYZ",
    "xoxb-SECRET2",
    "SECRET3",
    "SECRETDEAD",
    "SECRETQUERY",
    "SECRETHEADER",
    "SECRETBEARER",
    "SECRETAPI",
    "SECRETUSER",
];

/// Fails naming the first secret found in `text` (what `place` is).
fn assert_clean(place: &str, text: &str) {
    for secret in SECRETS {
        if let Some(at) = text.find(secret) {
            let from = text[..at].char_indices().rev().nth(200).map_or(0, |(i, _)| i);
            let to = text[at..].char_indices().nth(200).map_or(text.len(), |(i, _)| at + i);
            panic!("{place} shows {secret:?}: …{}…", &text[from..to]);
        }
    }
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// 20 failed checkout roots as one OTLP/JSON request, ending just now.
fn failed_checkouts() -> String {
    let end = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() - 100_000_000;
    let spans: Vec<String> = (0..20u128)
        .map(|t| {
            format!(
                r#"{{"traceId":"{:032x}","spanId":"{:016x}","name":"POST /checkout","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":"{end}","status":{{"code":2}}}}"#,
                0x7000 + t,
                t + 1,
                end - 50_000_000
            )
        })
        .collect();
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"shop"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    )
}

#[test]
fn no_secret_of_the_config_is_shown_by_check_the_api_metrics_or_the_log() {
    let dir = TempDir::new("secrets");
    let ports = free_addrs(5);
    let [api, grpc, http, zipkin, dead] = ports[..] else {
        unreachable!()
    };
    let storage = dir.path().join("tb.db");
    // Nothing listens on `dead`: every delivery fails with a connection refused.
    let config = dir.write(
        "secrets.toml",
        &format!(
            r#"# token xoxb-SECRET2
[server]
listen = "{api}"
api_token = "SECRETAPI" # the old one was SECRETAPI-0

[ingest]
otlp_grpc = "{grpc}"
otlp_http = "{http}"
zipkin = "{zipkin}"

[storage]
url = "sqlite://{storage}"

[alerting]
eval_interval = "1s"

[[journeys]]
name = "checkout"
service = "shop"

[[slos]]
name = "checkout-errors"
journey = "checkout"
sli = "error"
objective = 0.99
period = "30d"
policy = "fast"

[[policies]]
name = "fast"
min_events = 5
windows = [{{ long = "2m", short = "1m", factor = 5.0, severity = "page" }}]

[[receivers]]
name = "slack"
webhook = {{ url = "https://hooks.slack.com/services/T000/B000/SECRETXYZ", format = "slack" }}
# old url https://hooks.slack.com/services/T000/B000/SECRET3

[[receivers]]
name = "dead"
webhook = {{ url = "http://SECRETUSER@{dead}/services/T000/B000/SECRETDEAD?token=SECRETQUERY", headers = {{ "X-Api-Key" = "SECRETHEADER" }}, bearer_token = "SECRETBEARER", timeout = "1s" }}

[route]
receiver = "dead"
group_wait = "0s"
"#,
            storage = storage.display()
        ),
    );

    let check = run(&["check", config.to_str().unwrap()]);
    let check_out = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(check.status.code(), Some(0), "{check_out}");
    assert!(
        check_out.contains("  slack                    webhook (slack) https://hooks.slack.com/<redacted>\n"),
        "{check_out}"
    );
    assert!(
        check_out.contains(&format!(
            "  dead                     webhook (generic) http://<redacted>@{dead}/<redacted>\n"
        )),
        "{check_out}"
    );
    assert_clean("tracebudget check", &check_out);

    let mut server = Server::start(&config, api);
    let body = failed_checkouts();
    let r = http_request(http, "POST", "/v1/traces", &[], Some(&body), Duration::from_secs(5)).expect("POST");
    assert_eq!(r.status, 200, "{}", r.body);
    let get = |path: &str| {
        let r = server.get(path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        r.body
    };
    // The page fires and its delivery fails twice.
    wait_until("two failed deliveries", Duration::from_secs(40), || {
        let log = Json::parse(&get("/api/v1/notifications")).unwrap();
        log.get("notifications")
            .and_then(Json::as_array)
            .and_then(|n| n.first())
            .is_some_and(|n| n.num(&["attempts"]) >= 2.0)
    });

    let config_view = get("/api/v1/config");
    let text = Json::parse(&config_view)
        .unwrap()
        .get("text")
        .and_then(Json::as_str)
        .unwrap()
        .to_owned();
    for shown in [
        "# <redacted>\n[server]\n",
        "api_token = \"<redacted>\" # <redacted>\n",
        "webhook = { url = \"https://hooks.slack.com/<redacted>\", format = \"slack\" }\n# <redacted>\n",
        &format!(
            "webhook = {{ url = \"http://<redacted>@{dead}/<redacted>\", headers = {{ \"X-Api-Key\" = \"<redacted>\" }}, bearer_token = \"<redacted>\", timeout = \"1s\" }}\n"
        ),
    ] {
        assert!(text.contains(shown), "the config view lacks {shown:?}:\n{text}");
    }
    let notifications = get("/api/v1/notifications");
    assert!(
        notifications.contains(r#""last_error":"connect error: connection refused""#),
        "{notifications}"
    );
    let metrics = get("/metrics");
    let alerts = get("/api/v1/alerts");
    server.assert_running();
    let log = server.output();
    assert!(log.contains("delivery failed, will retry"), "{log}");
    for (place, text) in [
        ("GET /api/v1/config", &config_view),
        ("GET /api/v1/notifications", &notifications),
        ("GET /api/v1/alerts", &alerts),
        ("GET /metrics", &metrics),
        ("serve's log", &log),
    ] {
        assert_clean(place, text);
    }
}
