//! The API through `app(state)`: exact numbers from spans fed to the real pipeline at a fixed
//! clock, every error status, auth, and every reply validated against `api/openapi.json`.

mod guard;
mod schema;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use slis::{Span, SpanId, SpanKind, StatusCode as SpanStatus, Timestamp, TraceId};
use tracebudget_alerting::store::Pending;
use tracebudget_engine::pipeline::{Pipeline, Source};

use super::testing::{Reply, TestApp};

/// A whole minute (2026-05-28T20:27:00Z); the clock reads 30 s later.
const M: i64 = 1_780_000_020;
const TOKEN: &str = "tok-API-7f3e";
const HOOK_SECRET: &str = "hook-SECRET-1";

fn now() -> Timestamp {
    Timestamp::from_unix_secs(M + 30)
}

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:8080"
api_token = "tok-API-7f3e"

[[journeys]]
name = "checkout"
service = "frontend"
span_name = "POST /checkout"
expected_services = ["frontend", "payment"]
labels = { team = "payments" }

[[journeys]]
name = "search"
service = "frontend"
span_name = "GET /search"

[[slos]]
name = "checkout-availability"
description = "Checkouts succeed"
journey = "checkout"
sli = "error"
objective = 0.95
period = "30d"

[[slos]]
name = "checkout-latency"
journey = "checkout"
sli = "latency"
threshold = "500ms"
objective = 0.9
period = "7d"
policy = "fast"

[[slos]]
name = "checkout-latency-strict"
journey = "checkout"
sli = "latency"
threshold = "50ms"
objective = 0.99
period = "7d"
policy = "fast"

[[slos]]
name = "search-availability"
journey = "search"
sli = "error"
objective = 0.999
period = "calendar_month"

[[policies]]
name = "fast"
reference_period = "7d"
min_events = 10
windows = [
  { long = "1h", short = "10m", factor = 2.0, severity = "page" },
  { long = "6h", short = "1h", factor = 1.0, severity = "ticket" },
]

[[receivers]]
name = "hook"
webhook = { url = "http://127.0.0.1:9/hook", headers = { Authorization = "Bearer hook-SECRET-1" } }

[route]
receiver = "hook"
group_wait = "0s"
"#;

fn root(id: u64, end: Timestamp, latency_ms: u64, error: bool) -> Span {
    let mut trace = [0u8; 16];
    trace[8..].copy_from_slice(&(id + 1).to_be_bytes());
    Span {
        trace_id: TraceId(trace),
        span_id: SpanId((id + 1).to_be_bytes()),
        parent_span_id: None,
        service: "frontend".into(),
        name: "POST /checkout".into(),
        kind: SpanKind::Server,
        start: end - Duration::from_millis(latency_ms),
        end,
        status: if error { SpanStatus::Error } else { SpanStatus::Unset },
        attributes: vec![],
        weight: 1,
    }
}

/// The traffic every test sees, all checkouts (fast = 100 ms, slow = 800 ms):
/// - two days ago, in one minute: 1,000 fast;
/// - in each of the 60 minutes before M, at second 15: 10, the last of them slow; in the
///   minutes M−20m … M−11m the first two are errors (20 errors);
/// - at M + 20 s: 10, five of them slow.
fn load(p: &mut Pipeline) {
    let mut id = 0;
    let ingest = |p: &mut Pipeline, spans: Vec<Span>, at: Timestamp| {
        let n = spans.len();
        let r = p.ingest(Source::OtlpHttp, spans, at).expect("no backpressure");
        assert_eq!((r.accepted, r.rejected), (n as u64, 0));
    };
    let old = Timestamp::from_unix_secs(M - 2 * 86_400 + 15);
    let spans = (0..1_000).map(|i| root(id + i, old, 100, false)).collect();
    id += 1_000;
    ingest(p, spans, old);
    for k in 0..60 {
        let at = Timestamp::from_unix_secs(M - 3_600 + k * 60 + 15);
        let spans = (0..10)
            .map(|i| {
                root(
                    id + i,
                    at,
                    if i == 9 { 800 } else { 100 },
                    (40..50).contains(&k) && i < 2,
                )
            })
            .collect();
        id += 10;
        ingest(p, spans, at);
    }
    let at = Timestamp::from_unix_secs(M + 20);
    let spans = (0..10)
        .map(|i| root(id + i, at, if i < 5 { 800 } else { 100 }, false))
        .collect();
    ingest(p, spans, at);
    p.tick(now());
    p.close_all();
}

/// An app over `config` with the traffic loaded.
async fn loaded(config: &str) -> TestApp {
    let t = TestApp::new(config, now).await;
    load(&mut t.state.pipeline.lock().unwrap());
    t
}

/// Sends a request and checks the reply against the OpenAPI document.
async fn call(t: &TestApp, method: Method, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
    let reply = t.request(method.clone(), path, token, body).await;
    schema::check(&schema::doc(), &method, path, &reply);
    reply
}

async fn get(t: &TestApp, path: &str) -> Reply {
    call(t, Method::GET, path, None, None).await
}

fn close(got: &Value, want: f64) -> bool {
    got.as_f64()
        .is_some_and(|g| (g - want).abs() <= 1e-12 * want.abs().max(1.0))
}

#[track_caller]
fn assert_close(got: &Value, want: f64, what: &str) {
    assert!(close(got, want), "{what}: got {got}, want {want}");
}

/// Within HDR's 1%.
#[track_caller]
fn assert_about(got: &Value, want: f64, what: &str) {
    let g = got.as_f64().unwrap_or_else(|| panic!("{what}: {got} is not a number"));
    assert!((g - want).abs() <= 0.01 * want, "{what}: got {g}, want {want} ± 1%");
}

fn burn(bad: f64, total: f64, objective: f64) -> f64 {
    bad / total / (1.0 - objective)
}

fn budget(bad: f64, total: f64, objective: f64) -> f64 {
    1.0 - bad / ((1.0 - objective) * total)
}

#[tokio::test]
async fn slos_report_exact_counts_budgets_burn_rates_and_status() {
    let t = loaded(CONFIG).await;
    let r = get(&t, "/api/v1/slos").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let slos = r.body["slos"].as_array().unwrap();
    let names: Vec<&str> = slos.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "checkout-availability",
            "checkout-latency",
            "checkout-latency-strict",
            "search-availability"
        ]
    );

    // Availability, 95% over 30 days, the Workbook's rules unscaled: 1,610 events, 20 errors.
    let a = &slos[0];
    assert_eq!(a["description"], "Checkouts succeed");
    assert_eq!(a["journey"], "checkout");
    assert_eq!(a["sli"], "error");
    assert_eq!(a["policy"], "default");
    assert_eq!(
        a["period"],
        json!({"label": "30d", "seconds": 2_592_000.0, "events": 1_610, "bad_events": 20})
    );
    assert_eq!(a["status"], "ok");
    assert_eq!(a["no_data"], false);
    assert_close(&a["sli_ratio"], 1_590.0 / 1_610.0, "sli_ratio");
    let remaining = budget(20.0, 1_610.0, 0.95);
    assert_close(&a["budget_remaining"], remaining, "budget_remaining");
    assert_close(&a["budget_consumed"], 1.0 - remaining, "budget_consumed");
    let current = burn(20.0, 600.0, 0.95);
    assert_close(&a["current_burn_rate"], current, "current burn");
    assert_close(
        &a["exhaustion_seconds"],
        remaining * 2_592_000.0 / current,
        "exhaustion",
    );
    // (severity, factor, long, short, long events, long bad, short events, short bad)
    let want = [
        ("page", 14.4, "1h", "5m", 600, 20, 50, 0),
        ("page", 6.0, "6h", "30m", 610, 20, 300, 20),
        ("ticket", 1.0, "3d", "6h", 1_610, 20, 610, 20),
    ];
    let rules = a["burn_rates"].as_array().unwrap();
    assert_eq!(rules.len(), want.len());
    for (r, (sev, factor, long, short, lt, lb, st, sb)) in rules.iter().zip(want) {
        assert_eq!(
            (&r["severity"], &r["factor"], &r["long_window"], &r["short_window"]),
            (&json!(sev), &json!(factor), &json!(long), &json!(short))
        );
        assert_eq!(
            [
                &r["long_events"],
                &r["long_bad_events"],
                &r["short_events"],
                &r["short_bad_events"]
            ],
            [&json!(lt), &json!(lb), &json!(st), &json!(sb)],
            "{long}/{short}"
        );
        assert_close(&r["long_burn_rate"], burn(lb as f64, lt as f64, 0.95), long);
        assert_close(&r["short_burn_rate"], burn(sb as f64, st as f64, 0.95), short);
        assert_eq!(r["firing"], false);
    }
    assert_eq!(a["burn_rates"][0]["long_window_seconds"], 3_600.0);
    assert_eq!(a["burn_rates"][0]["short_window_seconds"], 300.0);
    let lat = &a["latency"];
    assert_eq!(lat["count"], 1_610);
    assert_about(&lat["p50_seconds"], 0.1, "p50");
    assert_about(&lat["p95_seconds"], 0.1, "p95"); // 65 of 1,610 are slow: 4%
    assert_about(&lat["p99_seconds"], 0.8, "p99");
    assert_about(&lat["max_seconds"], 0.8, "max");

    // Latency ≤ 500 ms at 90% over 7 days: 65 slow. The 6h/1h ticket burns above 1 on both
    // windows while the budget is not spent: warning.
    let l = &slos[1];
    assert_eq!((&l["policy"], &l["status"]), (&json!("fast"), &json!("warning")));
    assert_eq!(l["period"]["events"], 1_610);
    assert_eq!(l["period"]["bad_events"], 65);
    assert_close(&l["budget_remaining"], budget(65.0, 1_610.0, 0.9), "latency budget");
    let rules = l["burn_rates"].as_array().unwrap();
    assert_eq!(rules[0]["firing"], false);
    assert_close(&rules[0]["long_burn_rate"], burn(64.0, 600.0, 0.9), "1h");
    assert_close(&rules[0]["short_burn_rate"], burn(14.0, 100.0, 0.9), "10m");
    assert_eq!(rules[1]["firing"], true);
    assert_close(&rules[1]["long_burn_rate"], burn(65.0, 610.0, 0.9), "6h");
    assert_close(&rules[1]["short_burn_rate"], burn(64.0, 600.0, 0.9), "1h");

    // Every checkout is slower than 50 ms: the page fires and the budget is overspent.
    let s = &slos[2];
    assert_eq!(s["status"], "critical");
    assert_eq!(s["burn_rates"][0]["firing"], true);
    assert_close(&s["budget_remaining"], budget(1_610.0, 1_610.0, 0.99), "strict budget");
    assert_eq!(s["exhaustion_seconds"], 0.0);

    // No search traffic: no data, never NaN.
    let q = &slos[3];
    assert_eq!(q["status"], "no_data");
    assert_eq!(
        q["period"],
        json!({"label": "calendar_month", "seconds": 2_678_400.0, "events": 0, "bad_events": 0})
    );
    assert_eq!(
        [
            &q["sli_ratio"],
            &q["budget_remaining"],
            &q["budget_consumed"],
            &q["exhaustion_seconds"],
            &q["latency"]
        ],
        [&Value::Null, &json!(1.0), &json!(0.0), &Value::Null, &Value::Null]
    );
    assert!(
        q["burn_rates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["long_burn_rate"] == 0.0)
    );

    // One SLO is the same object as in the list.
    for slo in slos {
        let one = get(&t, &format!("/api/v1/slos/{}", slo["name"].as_str().unwrap())).await;
        assert_eq!(one.status, StatusCode::OK);
        assert_eq!(&one.body, slo);
    }
    let missing = get(&t, "/api/v1/slos/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body, json!({"error": "unknown SLO \"nope\""}));
}

#[tokio::test]
async fn series_points_tile_the_range_with_exact_counts_budgets_and_burn_rates() {
    let t = loaded(CONFIG).await;
    // Six 10-minute steps over the hour before M, as unix seconds and as RFC 3339.
    let paths = [
        format!(
            "/api/v1/slos/checkout-availability/series?from={}&to={M}&step=10m",
            M - 3_600
        ),
        "/api/v1/slos/checkout-availability/series?from=2026-05-28T19:27:00Z&to=2026-05-28T21:27:00%2B01:00&step=600"
            .to_owned(),
    ];
    for path in paths {
        let r = get(&t, &path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        let b = &r.body;
        assert_eq!(
            (&b["slo"], &b["from"], &b["to"], &b["step_seconds"], &b["objective"]),
            (
                &json!("checkout-availability"),
                &json!("2026-05-28T19:27:00.000Z"),
                &json!("2026-05-28T20:27:00.000Z"),
                &json!(600.0),
                &json!(0.95)
            )
        );
        assert_eq!(b["windows"], json!(["5m", "30m", "1h", "6h", "3d"]));
        let points = b["points"].as_array().unwrap();
        let ts: Vec<&str> = points.iter().map(|p| p["t"].as_str().unwrap()).collect();
        assert_eq!(
            ts,
            [
                "2026-05-28T19:37:00.000Z",
                "2026-05-28T19:47:00.000Z",
                "2026-05-28T19:57:00.000Z",
                "2026-05-28T20:07:00.000Z",
                "2026-05-28T20:17:00.000Z",
                "2026-05-28T20:27:00.000Z"
            ]
        );
        // Each step holds its ten minutes: the bucket starting at t belongs to the next point,
        // so the 10 checkouts of the minute M are in none.
        let bad = [0, 0, 0, 0, 20, 0];
        for (k, (p, bad)) in points.iter().zip(bad).enumerate() {
            assert_eq!(
                (&p["events"], &p["bad_events"]),
                (&json!(100), &json!(bad)),
                "point {k}"
            );
            assert_close(&p["sli"], (100 - bad) as f64 / 100.0, "sli");
            assert_about(&p["p50_seconds"], 0.1, "p50");
            assert_about(&p["p95_seconds"], 0.8, "p95");
            assert_about(&p["p99_seconds"], 0.8, "p99");
            // The period (30 days) ending at t: the old thousand plus the minutes before t.
            let (events, bad_so_far) = (1_000.0 + 100.0 * (k + 1) as f64, if k >= 4 { 20.0 } else { 0.0 });
            assert_close(&p["budget_remaining"], budget(bad_so_far, events, 0.95), "budget");
        }
        let last = &points[5]["burn_rates"];
        assert_eq!(
            last.as_object().unwrap().keys().collect::<BTreeSet<_>>(),
            ["1h", "30m", "3d", "5m", "6h"]
                .iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<_>>()
                .iter()
                .collect()
        );
        assert_close(&last["5m"], 0.0, "5m");
        assert_close(&last["30m"], burn(20.0, 300.0, 0.95), "30m");
        assert_close(&last["1h"], burn(20.0, 600.0, 0.95), "1h");
        assert_close(&last["6h"], burn(20.0, 600.0, 0.95), "6h");
        assert_close(&last["3d"], burn(20.0, 1_600.0, 0.95), "3d");
        // Before the errors, every window burns 0.
        assert!(points[0]["burn_rates"].as_object().unwrap().values().all(|v| v == 0.0));
    }

    // The defaults: the last hour to now, a minute a step. The points tile (now − 1h, now], so
    // their events sum to the hour's, and the last point reads what /slos reads now.
    let slo = get(&t, "/api/v1/slos/checkout-availability").await.body;
    for path in [
        "/api/v1/slos/checkout-availability/series",
        "/api/v1/slos/checkout-availability/series?range=1h",
        "/api/v1/slos/checkout-availability/series?range=3600&step=1m",
    ] {
        let b = get(&t, path).await.body;
        assert_eq!(
            (&b["from"], &b["to"]),
            (&json!("2026-05-28T19:27:30.000Z"), &json!("2026-05-28T20:27:30.000Z"))
        );
        assert_eq!(b["step_seconds"], 60.0);
        let points = b["points"].as_array().unwrap();
        assert_eq!(points.len(), 60);
        let sum: u64 = points.iter().map(|p| p["events"].as_u64().unwrap()).sum();
        assert_eq!(sum, 600, "{path}");
        let last = &points[59];
        assert_eq!((&last["events"], &last["bad_events"]), (&json!(10), &json!(0)));
        assert_eq!(last["budget_remaining"], slo["budget_remaining"]);
        assert_eq!(last["burn_rates"]["1h"], slo["burn_rates"][0]["long_burn_rate"]);
        assert_eq!(last["burn_rates"]["5m"], slo["burn_rates"][0]["short_burn_rate"]);
        assert_eq!(last["burn_rates"]["30m"], slo["burn_rates"][1]["short_burn_rate"]);
    }
    // A 6-hour range defaults to 6-minute steps; exactly 1,440 points is allowed.
    let b = get(&t, "/api/v1/slos/checkout-latency/series?range=6h").await.body;
    assert_eq!(
        (&b["step_seconds"], b["points"].as_array().unwrap().len()),
        (&json!(360.0), 60)
    );
    assert_eq!(b["windows"], json!(["10m", "1h", "6h"]));
    let b = get(&t, "/api/v1/slos/search-availability/series?range=1d&step=1m")
        .await
        .body;
    let points = b["points"].as_array().unwrap();
    assert_eq!(points.len(), 1_440);
    // No traffic: SLI and percentiles null, budget whole, burn 0.
    assert_eq!(
        [
            &points[0]["sli"],
            &points[0]["p99_seconds"],
            &points[0]["budget_remaining"],
            &points[0]["burn_rates"]["5m"]
        ],
        [&Value::Null, &Value::Null, &json!(1.0), &json!(0.0)]
    );
}

#[tokio::test]
async fn series_parameters_are_refused_with_the_parameter_and_value_named() {
    let t = loaded(CONFIG).await;
    let base = "/api/v1/slos/checkout-availability/series";
    let rfc = "expected RFC 3339 (e.g. 2026-03-01T12:00:00Z) or unix seconds";
    let dur = "expected a duration such as 5m or 1h30m, or whole seconds";
    let cases = [
        (
            "from=yesterday".to_owned(),
            format!("from: invalid value \"yesterday\": {rfc}"),
        ),
        (
            "to=2026-13-01T00:00:00Z".to_owned(),
            format!("to: invalid value \"2026-13-01T00:00:00Z\": {rfc}"),
        ),
        (
            format!("from={M}&to={}", M - 60),
            format!("from: invalid value \"{M}\": must be before to (2026-05-28T20:26:00.000Z)"),
        ),
        (
            format!("from={M}&to={M}"),
            format!("from: invalid value \"{M}\": must be before to (2026-05-28T20:27:00.000Z)"),
        ),
        (
            "step=30s".to_owned(),
            "step: invalid value \"30s\": the smallest step is 1m".to_owned(),
        ),
        ("step=fast".to_owned(), format!("step: invalid value \"fast\": {dur}")),
        ("range=-1h".to_owned(), format!("range: invalid value \"-1h\": {dur}")),
        (
            "range=0s".to_owned(),
            "range: invalid value \"0s\": must be longer than 0".to_owned(),
        ),
        (
            "range=30s".to_owned(),
            "step: invalid value \"1m\": longer than the range (30s)".to_owned(),
        ),
        (
            "range=5m&step=10m".to_owned(),
            "step: invalid value \"10m\": longer than the range (5m)".to_owned(),
        ),
        (
            "range=2d&step=1m".to_owned(),
            "step: invalid value \"1m\": 2880 points over 2d, at most 1440".to_owned(),
        ),
        (format!("range=1h&from={M}"), "give from or range, not both".to_owned()),
    ];
    for (query, want) in cases {
        let r = get(&t, &format!("{base}?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
        assert_eq!(r.body, json!({ "error": want }), "{query}");
    }
    let r = get(&t, &format!("{base}?stpe=5m")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let e = r.body["error"].as_str().unwrap();
    assert!(
        e.starts_with("invalid query: ") && e.contains("unknown field `stpe`"),
        "{e}"
    );
    let r = get(&t, "/api/v1/slos/nope/series?step=5m").await;
    assert_eq!(
        (r.status, r.body),
        (StatusCode::NOT_FOUND, json!({"error": "unknown SLO \"nope\""}))
    );
}

#[tokio::test]
async fn journeys_list_matchers_slos_roots_and_last_hour_latency() {
    let t = loaded(CONFIG).await;
    let r = get(&t, "/api/v1/journeys").await;
    assert_eq!(r.status, StatusCode::OK);
    let j = r.body["journeys"].as_array().unwrap();
    assert_eq!(j.len(), 2);
    let c = &j[0];
    assert_eq!(
        (&c["name"], &c["root"], &c["expected_services"], &c["labels"]),
        (
            &json!("checkout"),
            &json!("service.name = \"frontend\" and span.name = \"POST /checkout\""),
            &json!(["frontend", "payment"]),
            &json!({"team": "payments"})
        )
    );
    assert_eq!(
        c["slos"],
        json!(["checkout-availability", "checkout-latency", "checkout-latency-strict"])
    );
    assert_eq!((&c["roots"], &c["error_roots"]), (&json!(1_610), &json!(20)));
    // The last hour at now (M + 30 s): the minute buckets M−59m … M.
    assert_eq!(c["latency"]["count"], 600);
    assert_about(&c["latency"]["p50_seconds"], 0.1, "p50");
    assert_about(&c["latency"]["p95_seconds"], 0.8, "p95"); // 64 of 600 slow
    assert_about(&c["latency"]["max_seconds"], 0.8, "max");
    let s = &j[1];
    assert_eq!(
        s,
        &json!({
            "name": "search",
            "root": "service.name = \"frontend\" and span.name = \"GET /search\"",
            "expected_services": [],
            "labels": {},
            "slos": ["search-availability"],
            "roots": 0,
            "error_roots": 0,
            "latency": null,
        })
    );
}

#[tokio::test]
async fn config_is_served_with_every_secret_redacted() {
    let t = TestApp::new(CONFIG, now).await;
    let r = get(&t, "/api/v1/config").await;
    assert_eq!(r.status, StatusCode::OK);
    let config = t.state.config();
    assert!(config.source.file.ends_with("/test.toml"));
    assert_eq!(r.body["sha256"], config.source.sha256.as_str());
    assert_eq!(
        (&r.body["file"], &r.body["journeys"], &r.body["slos"]),
        (&json!(config.source.file), &json!(2), &json!(4))
    );
    let text = r.body["text"].as_str().unwrap();
    assert!(text.contains("api_token = \"<redacted>\""), "{text}");
    assert!(text.contains("headers = { Authorization = \"<redacted>\" }"), "{text}");
    assert_eq!(text, crate::app::redact::redact(&config.source.text));
    for secret in [TOKEN, HOOK_SECRET] {
        assert!(config.source.text.contains(secret));
        assert!(!r.text.contains(secret), "{secret} leaked: {}", r.text);
    }
    // Everything else reads as written; of the webhook URL, its origin (issue 18: the path
    // is where Slack and PagerDuty keep their keys).
    assert_eq!(
        text.replace("\"<redacted>\"", "X"),
        config
            .source
            .text
            .replace(&format!("\"{TOKEN}\""), "X")
            .replace(&format!("\"Bearer {HOOK_SECRET}\""), "X")
            .replace("\"http://127.0.0.1:9/hook\"", "\"http://127.0.0.1:9/<redacted>\"")
    );
}

const SILENCE: &str =
    r#"{"matchers": ["slo = checkout-latency"], "duration": "2h", "created_by": "ana", "comment": "deploy"}"#;

#[tokio::test]
async fn writes_need_the_token_when_one_is_set() {
    let t = TestApp::new(CONFIG, now).await;
    for token in [None, Some("wrong"), Some("tok-API-7f3")] {
        let r = call(&t, Method::POST, "/api/v1/silences", token, Some(SILENCE)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(r.headers["www-authenticate"], "Bearer");
        assert_eq!(
            r.body,
            json!({"error": "this endpoint needs Authorization: Bearer <api_token>"})
        );
        let r = call(&t, Method::DELETE, "/api/v1/silences/abc", token, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token:?}");
    }
    // Bad bodies, with the token.
    let cases = [
        ("{", "invalid silence: EOF while parsing an object at line 1 column 1"),
        (
            r#"{"matchers": [], "duration": "1h", "created_by": "ana", "comment": "x"}"#,
            "a silence needs at least one matcher",
        ),
        (
            r#"{"matchers": ["slo = a"], "duration": "1h", "created_by": "ana", "comment": " "}"#,
            "comment must say why",
        ),
        (
            r#"{"matchers": ["slo = a"], "created_by": "ana", "comment": "x"}"#,
            "give ends_at or duration",
        ),
    ];
    for (body, want) in cases {
        let r = call(&t, Method::POST, "/api/v1/silences", Some(TOKEN), Some(body)).await;
        assert_eq!(
            (r.status, &r.body),
            (StatusCode::BAD_REQUEST, &json!({"error": want})),
            "{body}"
        );
    }
    let r = call(
        &t,
        Method::POST,
        "/api/v1/silences",
        Some(TOKEN),
        Some(r#"{"matchers": ["slo = a"], "bogus": 1}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid silence: unknown field `bogus`")
    );

    let created = call(&t, Method::POST, "/api/v1/silences", Some(TOKEN), Some(SILENCE)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            &created.body["starts_at"],
            &created.body["ends_at"],
            &created.body["state"]
        ),
        (
            &json!("2026-05-28T20:27:30.000Z"),
            &json!("2026-05-28T22:27:30.000Z"),
            &json!("active")
        )
    );
    let list = get(&t, "/api/v1/silences").await;
    assert_eq!(list.body["silences"], json!([created.body]));
    let gone = call(&t, Method::DELETE, &format!("/api/v1/silences/{id}"), Some(TOKEN), None).await;
    assert_eq!(
        (gone.status, &gone.body),
        (StatusCode::OK, &json!({"id": id, "state": "expired"}))
    );
    assert_eq!(
        get(&t, "/api/v1/silences").await.body["silences"][0]["state"],
        "expired"
    );
    let again = call(&t, Method::DELETE, &format!("/api/v1/silences/{id}"), Some(TOKEN), None).await;
    assert_eq!(
        (again.status, again.body),
        (
            StatusCode::NOT_FOUND,
            json!({"error": format!("no active or pending silence {id:?}")})
        )
    );
}

#[tokio::test]
async fn without_a_token_writes_are_open_on_loopback_only() {
    let no_token = CONFIG.replace("api_token = \"tok-API-7f3e\"\n", "");
    let local = TestApp::new(&no_token, now).await;
    let r = call(&local, Method::POST, "/api/v1/silences", None, Some(SILENCE)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let open = TestApp::new(&no_token.replace("127.0.0.1:8080", "0.0.0.0:8080"), now).await;
    let forbidden = json!({"error": "writes are disabled: set server.api_token"});
    let r = call(&open, Method::POST, "/api/v1/silences", None, Some(SILENCE)).await;
    assert_eq!((r.status, &r.body), (StatusCode::FORBIDDEN, &forbidden));
    let r = call(&open, Method::POST, "/api/v1/silences", Some("anything"), Some(SILENCE)).await;
    assert_eq!((r.status, &r.body), (StatusCode::FORBIDDEN, &forbidden));
    let r = call(&open, Method::DELETE, "/api/v1/silences/abc", None, None).await;
    assert_eq!((r.status, &r.body), (StatusCode::FORBIDDEN, &forbidden));
    // Reads stay open.
    assert_eq!(get(&open, "/api/v1/silences").await.status, StatusCode::OK);
}

/// Every GET of the document, with its path parameters filled in.
fn documented_gets() -> Vec<String> {
    let doc = schema::doc();
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, ops)| ops.get("get").is_some())
        .map(|(p, _)| p.replace("{name}", "checkout-availability"))
        .collect()
}

#[tokio::test]
async fn protect_reads_guards_the_api_and_metrics_but_not_health_or_the_document() {
    let t = loaded(&CONFIG.replace("[server]\n", "[server]\nprotect_reads = true\n")).await;
    let open = ["/healthz", "/readyz", "/api/v1/openapi.json"];
    let gets = documented_gets();
    assert!(gets.len() >= 12, "{gets:?}");
    for path in &gets {
        let anonymous = call(&t, Method::GET, path, None, None).await;
        let wrong = call(&t, Method::GET, path, Some("nope"), None).await;
        let with = call(&t, Method::GET, path, Some(TOKEN), None).await;
        assert_eq!(with.status, StatusCode::OK, "{path}: {}", with.text);
        if open.contains(&path.as_str()) {
            assert_eq!(anonymous.status, StatusCode::OK, "{path}");
            continue;
        }
        for r in [&anonymous, &wrong] {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(r.headers["www-authenticate"], "Bearer", "{path}");
        }
    }
    // Unknown API paths are guarded too (nothing to learn without the token).
    assert_eq!(get(&t, "/api/v1/nope").await.status, StatusCode::UNAUTHORIZED);

    // A reload that changes the token applies to the next request.
    let next = CONFIG
        .replace("[server]\n", "[server]\nprotect_reads = true\n")
        .replace(TOKEN, "tok-NEW")
        + &format!("\n[storage]\nurl = \"{}\"\n", t.state.config().storage.url.0);
    let config = crate::app::config::parse("test.toml", &next).unwrap();
    {
        let _pipeline = t.state.pipeline.lock().unwrap();
        t.state.live.set(Arc::new(config));
    }
    let old = call(&t, Method::GET, "/api/v1/slos", Some(TOKEN), None).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = call(&t, Method::GET, "/api/v1/slos", Some("tok-NEW"), None).await;
    assert_eq!(new.status, StatusCode::OK);
    let r = call(&t, Method::POST, "/api/v1/silences", Some("tok-NEW"), Some(SILENCE)).await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn alerts_history_and_notifications_after_an_evaluation() {
    let t = loaded(CONFIG).await;
    let mut pending = Pending::default();
    let source = crate::app::alerts::PipelineSource {
        pipeline: t.state.pipeline.clone(),
        others: None,
    };
    t.state.alerts.cycle(&source, &mut pending, now()).await;
    assert_eq!(pending.len(), 0, "everything stored");

    let alerts = get(&t, "/api/v1/alerts").await;
    assert_eq!(alerts.status, StatusCode::OK);
    let mut firing: Vec<(String, String, String)> = alerts.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["labels"]["slo"].as_str().unwrap().to_owned(),
                a["labels"]["severity"].as_str().unwrap().to_owned(),
                a["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    firing.sort();
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned(), "firing".to_owned());
    assert_eq!(
        firing,
        [
            s("checkout-latency", "ticket"),
            s("checkout-latency-strict", "page"),
            s("checkout-latency-strict", "ticket")
        ]
    );
    // Issue 6: durations in seconds, and whether each alert is muted (the strict page inhibits
    // the strict ticket, the default inhibit rule).
    let by = |body: &Value, slo: &str, severity: &str| -> Value {
        body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["slo"] == slo && a["labels"]["severity"] == severity)
            .unwrap_or_else(|| panic!("no {slo} {severity}"))
            .clone()
    };
    let strict_page = by(&alerts.body, "checkout-latency-strict", "page");
    let strict_ticket = by(&alerts.body, "checkout-latency-strict", "ticket");
    let ticket = by(&alerts.body, "checkout-latency", "ticket");
    // (alert, long window, short window) of the `fast` policy: page 1h/10m, ticket 6h/1h.
    for (a, long, short) in [
        (&strict_page, 3_600.0, 600.0),
        (&strict_ticket, 21_600.0, 3_600.0),
        (&ticket, 21_600.0, 3_600.0),
    ] {
        let d = &a["detail"];
        assert_eq!(
            (&d["long_window_seconds"], &d["short_window_seconds"]),
            (&json!(long), &json!(short)),
            "{}",
            a["fingerprint"]
        );
        assert!(d.get("long_window").is_none() && d.get("time_to_exhaustion").is_none());
    }
    // Every checkout is slower than 50 ms: the strict budget is spent, exhaustion is now.
    assert_eq!(strict_page["detail"]["time_to_exhaustion_seconds"], 0.0);
    assert_eq!(strict_page["muted"], Value::Null);
    assert_eq!(ticket["muted"], Value::Null);
    assert_eq!(
        strict_ticket["muted"],
        json!({"by": "inhibition", "source": strict_page["fingerprint"]})
    );

    // A silence of checkout-latency mutes its ticket; a silence wins over inhibition.
    let created = call(&t, Method::POST, "/api/v1/silences", Some(TOKEN), Some(SILENCE)).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let both = call(
        &t,
        Method::POST,
        "/api/v1/silences",
        Some(TOKEN),
        Some(r#"{"matchers": ["severity = ticket"], "duration": "1h", "created_by": "ana", "comment": "triage"}"#),
    )
    .await;
    let (a, b) = (created.body["id"].as_str().unwrap(), both.body["id"].as_str().unwrap());
    let mut ids = [a, b];
    ids.sort();
    let now_muted = get(&t, "/api/v1/alerts").await;
    assert_eq!(
        by(&now_muted.body, "checkout-latency", "ticket")["muted"],
        json!({"by": "silence", "silences": ids})
    );
    assert_eq!(
        by(&now_muted.body, "checkout-latency-strict", "ticket")["muted"],
        json!({"by": "silence", "silences": [b]})
    );
    assert_eq!(
        by(&now_muted.body, "checkout-latency-strict", "page")["muted"],
        Value::Null
    );
    // Expired, the silences mute nothing: the inhibition shows again.
    for id in [a, b] {
        let r = call(&t, Method::DELETE, &format!("/api/v1/silences/{id}"), Some(TOKEN), None).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let after = get(&t, "/api/v1/alerts").await;
    assert_eq!(by(&after.body, "checkout-latency", "ticket")["muted"], Value::Null);
    assert_eq!(
        by(&after.body, "checkout-latency-strict", "ticket")["muted"],
        strict_ticket["muted"]
    );

    let history = get(&t, "/api/v1/alerts/history").await;
    assert_eq!(history.status, StatusCode::OK);
    let events = history.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert!(
        events
            .iter()
            .all(|e| e["event"] == "firing" && e["at"] == "2026-05-28T20:27:30.000Z")
    );
    assert_eq!(
        get(&t, "/api/v1/alerts/history?since=1h&limit=1").await.body["events"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let notifications = get(&t, "/api/v1/notifications").await;
    assert_eq!(notifications.status, StatusCode::OK);
    let n = notifications.body["notifications"].as_array().unwrap();
    // One per group (the route groups by SLO), queued at once (group_wait 0s).
    let groups: BTreeSet<&str> = n.iter().map(|n| n["group_key"].as_str().unwrap()).collect();
    assert_eq!(
        groups,
        BTreeSet::from(["{}:{slo=\"checkout-latency\"}", "{}:{slo=\"checkout-latency-strict\"}"])
    );
    assert!(n.iter().all(|n| n["receiver"] == "hook"
        && n["state"] == "pending"
        && n["kind"] == "alerts"
        && n["attempts"] == 0
        && n["created_at"] == "2026-05-28T20:27:30.000Z"));

    for (path, want) in [(
        "/api/v1/alerts/history?since=forever",
        "since: invalid duration \"forever\": expected a number followed by a unit (ns, us, ms, s, m, h, d, w)",
    )] {
        let r = get(&t, path).await;
        assert_eq!(
            (r.status, &r.body),
            (StatusCode::BAD_REQUEST, &json!({"error": want})),
            "{path}"
        );
    }
    for path in [
        "/api/v1/alerts/history?limit=ten",
        "/api/v1/notifications?limit=1.5",
        "/api/v1/notifications?since=1h",
    ] {
        let r = get(&t, path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            r.body["error"].as_str().unwrap().starts_with("invalid query: "),
            "{path}: {}",
            r.text
        );
    }
}

/// Issue 6: a history row stored before durations became seconds is served in the new form.
#[tokio::test]
async fn history_written_before_issue_6_is_served_in_seconds() {
    let t = TestApp::new(CONFIG, now).await;
    sqlx::query(
        "INSERT INTO alert_history (fingerprint, slo, severity, alertname, event, at_ms, alert) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind("0f1e2d3c4b5a6978")
    .bind("checkout-latency")
    .bind("ticket")
    .bind("SLOBurnRate")
    .bind("resolved")
    .bind(now().unix_millis() - 60_000)
    .bind(crate::app::alerts::tests::HISTORY_ROW_BEFORE_ISSUE_6)
    .execute(&t.state.db.pool)
    .await
    .unwrap();
    let r = get(&t, "/api/v1/alerts/history?since=1h").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let d = &r.body["events"][0]["alert"]["detail"];
    assert_eq!(
        (
            &d["long_window_seconds"],
            &d["short_window_seconds"],
            &d["time_to_exhaustion_seconds"]
        ),
        (&json!(259_200.0), &json!(21_600.0), &Value::Null)
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let t = TestApp::new(CONFIG, now).await;
    let r = get(&t, "/api/v1/nope").await;
    assert_eq!(
        (r.status, r.body),
        (StatusCode::NOT_FOUND, json!({"error": "no route GET /api/v1/nope"}))
    );
    let r = call(&t, Method::PUT, "/api/v1/slos", None, None).await;
    assert_eq!(
        (r.status, r.body),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "/api/v1/slos does not take PUT"})
        )
    );
    let r = get(&t, "/healthz").await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "ok"));
    let r = get(&t, "/readyz").await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "ready"));
    let r = get(&t, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("tracebudget_"), "{}", r.text);
    let r = get(&t, "/api/v1/openapi.json").await;
    assert_eq!(r.body, schema::doc());
}

/// Routes the document describes that another change implements: each must be missing from
/// the router until then (remove it here once it lands).
const PENDING: &[(&str, &str)] = &[];

/// Whether the document must describe a path: the API, metrics and health; not the dashboards'
/// assets.
fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || ["/metrics", "/healthz", "/readyz"].contains(&path)
}

/// `(method, path)` of every `.route("path", get(..).post(..))` of an API path in this crate's
/// source (the load generator's receiver stub and these tests left out).
fn routes_in_source() -> BTreeSet<(String, String)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.ends_with("loadgen") || p.ends_with("http/tests") {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut routes = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find(".route(\"") {
            rest = &rest[i + 8..];
            let end = rest.find('"').unwrap();
            let path = rest[..end].to_owned();
            // The method router: up to the parenthesis closing `.route(`.
            let mut depth = 1;
            let mut stop = 0;
            for (j, c) in rest[end..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    stop = end + j;
                    break;
                }
            }
            let methods = &rest[end..stop];
            for m in ["get", "post", "put", "delete", "patch", "any"] {
                let called = methods.match_indices(&format!("{m}(")).any(|(k, _)| {
                    k == 0 || !methods.as_bytes()[k - 1].is_ascii_alphanumeric() && methods.as_bytes()[k - 1] != b'_'
                });
                if called && is_api(&path) {
                    routes.insert((m.to_owned(), path.clone()));
                }
            }
        }
    }
    routes
}

#[tokio::test]
async fn the_document_and_the_router_list_the_same_routes() {
    let doc = schema::doc();
    let mut in_source = routes_in_source();
    assert!(
        in_source.remove(&("any".to_owned(), "/api/v1/{*rest}".to_owned())),
        "the JSON 404 of unknown API paths"
    );
    let mut in_doc = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            in_doc.insert((method.clone(), path.clone()));
        }
    }
    for (m, p) in PENDING {
        let route = (m.to_string(), p.to_string());
        assert!(
            !in_source.contains(&route),
            "{m} {p} is routed now: drop it from PENDING so the test checks it"
        );
        assert!(in_doc.remove(&route), "{m} {p} is documented");
    }
    assert_eq!(
        in_source, in_doc,
        "routes in the router (left) and in api/openapi.json (right)"
    );

    // And each documented route answers through the app (not the router's 404 or 405).
    let t = TestApp::new(CONFIG, now).await;
    for (method, path) in &in_doc {
        let path = path
            .replace("{name}", "checkout-availability")
            .replace("{id}", &"0".repeat(32));
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let body = (method == Method::POST).then_some(SILENCE);
        let r = call(&t, method.clone(), &path, Some(TOKEN), body).await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !r.text.contains("no route"),
            "{method} {path} is documented but not routed"
        );
    }
}

#[test]
fn the_document_is_openapi_3_1_and_every_reference_resolves() {
    let doc = schema::doc();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 40);
    for r in all {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} is not local"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    // Every schema compiles; every operation documents JSON bodies for its 4xx answers, and
    // names the bearer scheme in its security.
    for (name, s) in doc["components"]["schemas"].as_object().unwrap() {
        schema::validate(&doc, s, &Value::Null).err();
        assert!(
            schema::validate(
                &doc,
                &json!({"$ref": format!("#/components/schemas/{name}")}),
                &json!(0)
            )
            .is_err_and(|e| !e.contains("does not compile")),
            "{name}"
        );
    }
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') {
                    assert!(
                        !response["content"]["application/json"]["schema"].is_null(),
                        "{method} {path} {status}"
                    );
                }
            }
            assert!(op["security"].is_array(), "{method} {path}");
        }
    }
}

#[tokio::test]
async fn the_oracle_rejects_what_the_document_does_not_allow() {
    let t = loaded(CONFIG).await;
    let doc = schema::doc();
    let slo = get(&t, "/api/v1/slos/checkout-availability").await.body;
    let schema = json!({"$ref": "#/components/schemas/Slo"});
    assert_eq!(schema::validate(&doc, &schema, &slo), Ok(()));
    let mut extra = slo.clone();
    extra["surprise"] = json!(1);
    let mut missing = slo.clone();
    missing.as_object_mut().unwrap().remove("status");
    let mut wrong_type = slo.clone();
    wrong_type["period"]["events"] = json!("1610");
    let mut bad_enum = slo.clone();
    bad_enum["status"] = json!("fine");
    let mut bad_time = slo.clone();
    bad_time["period"]["events"] = json!(-1);
    let mut nested = slo.clone();
    nested["burn_rates"][0]["firing"] = json!(null);
    for (what, body) in [
        ("extra", extra),
        ("missing", missing),
        ("type", wrong_type),
        ("enum", bad_enum),
        ("minimum", bad_time),
        ("nested", nested),
    ] {
        assert!(schema::validate(&doc, &schema, &body).is_err(), "{what}");
    }
    // Formats are checked: a timestamp must be RFC 3339.
    let mut series = get(&t, "/api/v1/slos/checkout-availability/series").await.body;
    let schema = json!({"$ref": "#/components/schemas/Series"});
    assert_eq!(schema::validate(&doc, &schema, &series), Ok(()));
    series["points"][3]["t"] = json!("yesterday");
    assert!(schema::validate(&doc, &schema, &series).is_err());
}

#[tokio::test]
async fn reload_refuses_an_invalid_file_with_its_lines_then_applies_a_valid_one() {
    let t = loaded(CONFIG).await;
    let file = t.state.config().source.file.clone();
    let text = std::fs::read_to_string(&file).unwrap();
    let before = get(&t, "/api/v1/slos/checkout-availability").await.body;
    let reload = |token| call(&t, Method::POST, "/api/v1/config/reload", token, None);

    let r = reload(None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = reload(Some(TOKEN)).await;
    assert_eq!((r.status, &r.body["changed"]), (StatusCode::OK, &json!(false)));

    // Two errors, each with its place; the running config keeps answering.
    let broken =
        text.replace("objective = 0.95", "objective = 0")
            .replacen("[[journeys]]", "[[journeys]]\nspeed = 3", 1);
    std::fs::write(&file, &broken).unwrap();
    let r = reload(Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let line = |needle: &str| broken.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let places: Vec<(u64, u64)> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["column"].as_u64().unwrap()))
        .collect();
    // The journey with the unknown key is not built, so the other SLOs naming it are errors too
    // (the first one's objective is its first error).
    let naming: Vec<(u64, u64)> = broken
        .lines()
        .enumerate()
        .filter(|(i, l)| *l == "journey = \"checkout\"" && i + 1 > line("objective = 0"))
        .map(|(i, _)| (i as u64 + 1, 11))
        .collect();
    assert_eq!(naming.len(), 2);
    let mut want = vec![(line("speed = 3") as u64, 1), (line("objective = 0") as u64, 13)];
    want.extend(naming);
    assert_eq!(places, want, "{}", r.text);
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `speed`")
    );
    assert_eq!(get(&t, "/api/v1/slos/checkout-availability").await.body, before);

    // A valid change: the objective moves, the counts stay.
    std::fs::write(&file, text.replace("objective = 0.95", "objective = 0.99")).unwrap();
    let r = reload(Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (&r.body["changed"], &r.body["added_slos"], &r.body["removed_slos"]),
        (&json!(true), &json!([]), &json!([]))
    );
    let after = get(&t, "/api/v1/slos/checkout-availability").await.body;
    assert_eq!(after["objective"], json!(0.99));
    assert_eq!(after["period"]["events"], before["period"]["events"]);
    assert_eq!(after["period"]["bad_events"], before["period"]["bad_events"]);
}

/// Issue 10: the trace-health figures of the loaded traffic (1,610 single-span traces of
/// frontend, all closed, none fragmented or skewed), validated against the document.
#[tokio::test]
async fn trace_health_reports_every_journey_and_service() {
    let t = loaded(CONFIG).await;
    let r = get(&t, "/api/v1/health/traces").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let b = &r.body;
    assert_eq!(
        (&b["traces"], &b["fragmented"], &b["skewed"], &b["fragmentation_ratio"]),
        (&json!(1_610), &json!(0), &json!(0), &json!(0.0))
    );
    assert_eq!(
        b["journeys"],
        json!([
            {"journey": "checkout", "traces": 1_610, "fragmented": 0, "skewed": 0, "fragmentation_ratio": 0.0},
            {"journey": "search", "traces": 0, "fragmented": 0, "skewed": 0, "fragmentation_ratio": null},
        ])
    );
    let frontend = &b["services"][0];
    assert_eq!(
        (&frontend["service"], &frontend["spans"], &frontend["traces"]),
        (&json!("frontend"), &json!(1_610), &json!(1_610))
    );
    // Every span was received the instant it ended (the loader's clock): lag 0, kept as 1 µs.
    assert_eq!(frontend["export_lag"]["p99_seconds"], json!(0.000001));
    assert_eq!((&b["lost_context"], &b["clock_skew"]), (&json!([]), &json!([])));
    assert_eq!(
        b["dropped"],
        json!({"service_limit": 0, "key_limit": 0, "lost_context_limit": 0, "clock_skew_limit": 0})
    );
    assert_eq!(
        b["evicted"],
        json!({"service": 0, "attribute_key": 0, "lost_context": 0, "clock_skew": 0})
    );
}
