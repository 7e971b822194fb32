//! Trace-pipeline health through the real binary (issue 10): each failure mode of the tracing
//! pipeline is injected through the real OTLP/HTTP receiver of `tracebudget serve` — a service
//! that drops `traceparent`, skewed clocks, late exports, an exporter that stops, and a tag with a
//! fresh UUID per span — and the exact figures are read back from `/api/v1/health/traces` and
//! `/metrics`; the fragmentation, clock-skew and export-lag SLOs page through a real webhook.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracebudget_tests::{Json, Server, TempDir, WebhookSink, free_addrs, http_request};

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
/// `[trace_health] volume_window`, in seconds.
const VOLUME_WINDOW: u64 = 2;

fn config(dir: &TempDir, ports: &[SocketAddr], hook: SocketAddr) -> std::path::PathBuf {
    let [api, grpc, http, zipkin] = ports[..] else {
        unreachable!()
    };
    let db = dir.path().join("tracebudget.db");
    dir.write(
        "trace_health.toml",
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

[trace_health]
skew_tolerance = "5ms"
volume_window = "{VOLUME_WINDOW}s"
volume_baseline = "6s"
volume_drop_ratio = 0.5
volume_min_spans = 10
window = "10m"
cardinality_limit = 50

[[journeys]]
name = "checkout"
service = "frontend"
span_name = "POST /checkout"

[[journeys]]
name = "search"
service = "frontend"
span_name = "GET /search"

[[journeys]]
name = "login"
service = "gateway"
span_name = "POST /login"

[[slos]]
name = "checkout-fragmentation"
journey = "checkout"
sli = "fragmentation"
objective = 0.99
period = "30d"
policy = "fast"

[[slos]]
name = "search-clock-skew"
journey = "search"
sli = "clock_skew"
objective = 0.99
period = "30d"
policy = "fast"

[[slos]]
name = "login-export-lag"
journey = "login"
sli = "export_lag"
threshold = "2s"
objective = 0.99
period = "30d"
policy = "fast"

[[policies]]
name = "fast"
min_events = 5
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
"#,
            db = db.display()
        ),
    )
}

/// One span to send, in OTLP/JSON terms.
struct S {
    trace: u128,
    id: u64,
    parent: Option<u64>,
    service: &'static str,
    name: &'static str,
    kind: i32,
    /// Start and end relative to `base`, in ms.
    start_ms: i64,
    end_ms: i64,
    attrs: Vec<(&'static str, String)>,
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace: u128,
    id: u64,
    parent: Option<u64>,
    service: &'static str,
    name: &'static str,
    kind: i32,
    start_ms: i64,
    end_ms: i64,
) -> S {
    S {
        trace,
        id,
        parent,
        service,
        name,
        kind,
        start_ms,
        end_ms,
        attrs: vec![],
    }
}

fn peer(mut s: S, service: &str) -> S {
    s.attrs.push(("peer.service", service.to_owned()));
    s
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// `spans` as one OTLP/JSON request (one resource per service), times relative to `base` (ns).
fn request(spans: &[S], base: i64) -> String {
    let services: BTreeSet<&str> = spans.iter().map(|s| s.service).collect();
    let resources: Vec<String> = services
        .iter()
        .map(|service| {
            let list: Vec<String> = spans
                .iter()
                .filter(|s| s.service == *service)
                .map(|s| {
                    let attrs: Vec<String> = s
                        .attrs
                        .iter()
                        .map(|(k, v)| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#))
                        .collect();
                    format!(
                        r#"{{"traceId":"{:032x}","spanId":"{:016x}","parentSpanId":"{}","name":"{}","kind":{},"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":[{}]}}"#,
                        s.trace,
                        s.id,
                        s.parent.map(|p| format!("{p:016x}")).unwrap_or_default(),
                        s.name,
                        s.kind,
                        base + s.start_ms * 1_000_000,
                        base + s.end_ms * 1_000_000,
                        attrs.join(",")
                    )
                })
                .collect();
            format!(
                r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}"#,
                list.join(",")
            )
        })
        .collect();
    format!(r#"{{"resourceSpans":[{}]}}"#, resources.join(","))
}

fn send(otlp: SocketAddr, spans: &[S], base: i64) {
    let body = request(spans, base);
    let r =
        http_request(otlp, "POST", "/v1/traces", &[], Some(&body), Duration::from_secs(5)).expect("POST /v1/traces");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("rejected"), "{}", r.body);
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
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn find<'a>(list: &'a Json, key: &str, value: &str) -> &'a Json {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x.get(key).and_then(Json::as_str) == Some(value))
        .unwrap_or_else(|| panic!("no {key} = {value:?} in {list:?}"))
}

/// Sleeps until `offset` into the next volume bucket (buckets start at multiples of the window).
fn sleep_into_next_bucket(offset: Duration) -> u64 {
    let window = Duration::from_secs(VOLUME_WINDOW);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let bucket = now.as_secs() / VOLUME_WINDOW + 1;
    let target = Duration::from_secs(bucket * VOLUME_WINDOW) + offset;
    std::thread::sleep(target - now);
    assert!(offset < window);
    bucket
}

#[test]
fn each_failure_mode_of_the_tracing_pipeline_is_measured_and_pages() {
    let dir = TempDir::new("trace_health");
    let ports = free_addrs(5);
    let hook = WebhookSink::start(ports[4]).expect("webhook sink");
    let config = config(&dir, &ports[..4], ports[4]);
    let mut server = Server::start(&config, ports[0]);
    let otlp = ports[2];
    let base = now_ns() - 1_000_000_000;

    // 1. checkout drops `traceparent` on its call to payment in 10 of 20 traces: payment starts a
    //    trace of its own, and checkout's client span is left without a child.
    let mut spans = Vec::new();
    for t in 0..20u128 {
        let trace = 0x1000 + t;
        let id = |k: u64| (t as u64) << 8 | k;
        spans.push(span(trace, id(1), None, "frontend", "POST /checkout", SERVER, 0, 100));
        spans.push(peer(
            span(trace, id(2), Some(id(1)), "frontend", "call checkout", CLIENT, 5, 95),
            "checkout",
        ));
        spans.push(span(trace, id(3), Some(id(2)), "checkout", "checkout", SERVER, 10, 90));
        spans.push(peer(
            span(trace, id(4), Some(id(3)), "checkout", "call payment", CLIENT, 20, 80),
            "payment",
        ));
        if t < 10 {
            spans.push(span(trace, id(5), Some(id(4)), "payment", "charge", SERVER, 25, 75));
        } else {
            spans.push(span(0x9000 + t, id(5), None, "payment", "charge", SERVER, 25, 75));
        }
    }
    // 2. Skewed clocks under search: 4 children start 50 ms before their parent, 4 end 30 ms
    //    after it, 1 ends before it starts, 2 are within the 5 ms tolerance.
    for t in 0..11u128 {
        let trace = 0x2000 + t;
        let id = |k: u64| (t as u64) << 8 | k;
        spans.push(span(trace, id(1), None, "frontend", "GET /search", SERVER, 0, 100));
        let (start, end) = match t {
            0..4 => (-50, 60),
            4..8 => (10, 130),
            8 => (60, 40),
            _ => (-3, 103),
        };
        spans.push(span(trace, id(2), Some(id(1)), "catalog", "query", SERVER, start, end));
    }
    // 3. A tag with a fresh UUID on each of 100 catalog spans (limit 50).
    for t in 0..100u128 {
        let mut s = span(0x3000 + t, 1, None, "catalog", "reindex", SERVER, 0, 10);
        s.attrs.push((
            "request.uuid",
            format!("{:08x}-4e5f-4a6b-9c7d-{:012x}", t * 7919, t * 104_729 + 17),
        ));
        s.attrs.push(("http.request.method", "GET".to_owned()));
        spans.push(s);
    }
    send(otlp, &spans, base);
    // 4. Login spans exported 3 s after they ended (threshold 2 s).
    let late = now_ns() - 3_000_000_000;
    let login: Vec<S> = (0..10u128)
        .map(|t| span(0x4000 + t, 1, None, "gateway", "POST /login", SERVER, 0, 20))
        .collect();
    send(otlp, &login, late - 20_000_000);

    // Fragmentation, skew and lag are judged when the traces close (trace_idle = 1 s).
    wait_until("every trace closed", Duration::from_secs(20), || {
        json(&server, "/api/v1/health/traces").num(&["traces"]) == 20.0 + 10.0 + 11.0 + 100.0 + 10.0
    });
    let h = json(&server, "/api/v1/health/traces");
    let checkout = find(h.get("journeys").unwrap(), "journey", "checkout");
    assert_eq!(
        (
            checkout.num(&["traces"]),
            checkout.num(&["fragmented"]),
            checkout.num(&["fragmentation_ratio"])
        ),
        (20.0, 10.0, 0.5)
    );
    let lost = h.get("lost_context").unwrap().as_array().unwrap();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(
        (
            lost[0].get("parent_service").unwrap().as_str(),
            lost[0].get("child_service").unwrap().as_str(),
            lost[0].num(&["traces"])
        ),
        (Some("checkout"), Some("payment"), 10.0),
        "the boundary that dropped traceparent is named"
    );
    let service = |name: &str| find(h.get("services").unwrap(), "service", name).clone();
    assert_eq!(service("checkout").num(&["fragmented_traces"]), 10.0);
    assert_eq!(
        service("payment").num(&["traces"]),
        20.0,
        "10 inside checkout's traces, 10 of its own"
    );

    let search = find(h.get("journeys").unwrap(), "journey", "search");
    assert_eq!((search.num(&["traces"]), search.num(&["skewed"])), (11.0, 9.0));
    let skew: Vec<(String, String, String, f64)> = h
        .get("clock_skew")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let s = |f: &str| k.get(f).unwrap().as_str().unwrap().to_owned();
            (s("parent_service"), s("child_service"), s("kind"), k.num(&["spans"]))
        })
        .collect();
    let pair = |kind: &str, n: f64| ("frontend".to_owned(), "catalog".to_owned(), kind.to_owned(), n);
    assert_eq!(
        skew,
        [
            pair("starts_before_parent", 4.0),
            pair("ends_after_parent", 4.0),
            pair("negative_duration", 1.0)
        ]
    );

    let catalog = service("catalog");
    let uuid = find(catalog.get("attributes").unwrap(), "key", "request.uuid");
    assert_eq!(
        (uuid.num(&["estimate"]), uuid.get("over_limit").unwrap().as_bool()),
        (100.0, Some(true))
    );
    let method = find(catalog.get("attributes").unwrap(), "key", "http.request.method");
    assert_eq!(
        (method.num(&["estimate"]), method.get("over_limit").unwrap().as_bool()),
        (1.0, Some(false))
    );

    let lag = service("gateway");
    let (p50, p99) = (
        lag.num(&["export_lag", "p50_seconds"]),
        lag.num(&["export_lag", "p99_seconds"]),
    );
    assert_eq!(lag.num(&["export_lag", "count"]), 10.0);
    // 3 s plus the time the request took; HDR keeps 2 significant figures (within 1%).
    assert!((3.0..3.2).contains(&p50) && (3.0..3.2).contains(&p99), "{p50} {p99}");

    let m = server.metrics();
    assert_eq!(
        m.get(
            "tracebudget_trace_health_fragmented_traces_total",
            &[("journey", "checkout")]
        ),
        Some(10.0)
    );
    assert_eq!(
        m.get(
            "tracebudget_trace_health_fragmentation_ratio",
            &[("journey", "checkout")]
        ),
        Some(0.5)
    );
    assert_eq!(
        m.get(
            "tracebudget_trace_health_lost_context_total",
            &[("parent_service", "checkout"), ("child_service", "payment")]
        ),
        Some(10.0)
    );
    assert_eq!(
        m.get(
            "tracebudget_trace_health_clock_skew_spans_total",
            &[
                ("parent_service", "frontend"),
                ("child_service", "catalog"),
                ("kind", "starts_before_parent")
            ]
        ),
        Some(4.0)
    );
    assert_eq!(
        m.get(
            "tracebudget_trace_health_attribute_cardinality",
            &[("service", "catalog"), ("key", "request.uuid")]
        ),
        Some(100.0)
    );
    assert_eq!(
        m.get(
            "tracebudget_trace_health_high_cardinality_keys",
            &[("service", "catalog")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get("tracebudget_trace_health_dropped_total", &[("reason", "key_limit")]),
        Some(0.0)
    );

    // The three SLOs page through the webhook: 50% fragmented, 9/11 skewed, 10/10 late, each
    // far above 5× a 1% budget.
    let want = ["checkout-fragmentation", "login-export-lag", "search-clock-skew"];
    wait_until("three pages", Duration::from_secs(30), || {
        let firing: BTreeSet<String> = hook
            .received()
            .iter()
            .filter_map(|r| Json::parse(&r.body).ok())
            .filter(|b| b.get("status").and_then(Json::as_str) == Some("firing"))
            .filter_map(|b| b.at(&["groupLabels", "slo"]).and_then(Json::as_str).map(str::to_owned))
            .collect();
        firing == want.iter().map(|s| s.to_string()).collect()
    });
    let alerts = json(&server, "/api/v1/alerts");
    for slo in want {
        let a = alerts
            .get("alerts")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a.at(&["labels", "slo"]).and_then(Json::as_str) == Some(slo))
            .unwrap_or_else(|| panic!("no alert of {slo}"));
        assert_eq!(a.get("status").unwrap().as_str(), Some("firing"), "{slo}");
        assert_eq!(a.at(&["labels", "severity"]).unwrap().as_str(), Some("page"), "{slo}");
    }
    // The page names who lost the context.
    let fragmentation = alerts
        .get("alerts")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a.at(&["labels", "slo"]).and_then(Json::as_str) == Some("checkout-fragmentation"))
        .unwrap()
        .clone();
    let contributors = fragmentation
        .at(&["detail", "contributors"])
        .unwrap()
        .as_array()
        .unwrap();
    assert_eq!(contributors[0].get("service").unwrap().as_str(), Some("checkout"));
    assert_eq!(
        contributors[0].get("operation").unwrap().as_str(),
        Some("checkout → payment")
    );
    assert_eq!(contributors[0].num(&["bad_events"]), 10.0);

    // 5. An exporter that stops: inventory sends 40 spans in the middle of each of 4 volume
    //    buckets, then nothing.
    let inventory = |bucket: u64| -> Vec<S> {
        (0..40u128)
            .map(|i| {
                span(
                    0x5000 + (bucket as u128) * 100 + i,
                    1,
                    None,
                    "inventory",
                    "reserve",
                    SERVER,
                    0,
                    5,
                )
            })
            .collect()
    };
    let first = sleep_into_next_bucket(Duration::from_millis(1_000));
    for k in 0..4 {
        if k > 0 {
            assert_eq!(sleep_into_next_bucket(Duration::from_millis(1_000)), first + k);
        }
        send(otlp, &inventory(first + k), now_ns() - 10_000_000);
    }
    // In bucket first + 4: the newest complete bucket (first + 3) holds 40, as did the baseline.
    sleep_into_next_bucket(Duration::from_millis(300));
    let volume = |server: &Server| {
        let h = json(server, "/api/v1/health/traces");
        let v = find(h.get("services").unwrap(), "service", "inventory")
            .get("volume")
            .unwrap()
            .clone();
        (
            v.num(&["newest"]),
            v.num(&["baseline"]),
            v.get("drop").unwrap().as_bool().unwrap(),
        )
    };
    assert_eq!(volume(&server), (40.0, 40.0, false));
    // In bucket first + 5: the newest complete bucket is empty against a baseline of 40.
    sleep_into_next_bucket(Duration::from_millis(300));
    assert_eq!(volume(&server), (0.0, 40.0, true));
    let m = server.metrics();
    assert_eq!(
        m.get("tracebudget_trace_health_volume_drop", &[("service", "inventory")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("tracebudget_trace_health_volume_drop", &[("service", "catalog")]),
        Some(0.0)
    );
    assert_eq!(
        m.get(
            "tracebudget_trace_health_service_spans_total",
            &[("service", "inventory")]
        ),
        Some(160.0)
    );
}

/// The services, traces and rows the floods of [`issue_18_floods_of_names_keep_trace_health_bounded`]
/// send: `FLOOD` traces of each kind.
const FLOOD: u64 = 20_000;

/// One OTLP span for the floods: `service`'s span `id` of trace `trace`, from `start_ms` to
/// `end_ms` relative to `base` (ns).
fn flood_span(
    service: String,
    trace: u64,
    id: u64,
    parent: Option<u64>,
    base: u64,
    (start_ms, end_ms): (i64, i64),
) -> opentelemetry_proto::tonic::trace::v1::ResourceSpans {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let at = |ms: i64| base.saturating_add_signed(ms * 1_000_000);
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(service)),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id: [trace.to_be_bytes(), 0x18_u64.to_be_bytes()].concat(),
                span_id: id.to_be_bytes().to_vec(),
                parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
                name: "op".into(),
                kind: SERVER,
                start_time_unix_nano: at(start_ms),
                end_time_unix_nano: at(end_ms),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Issue 18: a flood of distinct service names — `FLOOD` traces each with an orphan span from a
/// service of its own, and `FLOOD` clock-skewed parent/child pairs of services of their own —
/// sent over OTLP to the real `serve` with the default `[trace_health]` caps, leaves `/metrics`
/// and `GET /api/v1/health/traces` under 1 MB: every map holds its cap and one `__overflow__`
/// row, and what went there is counted exactly per reason.
#[test]
fn issue_18_floods_of_names_keep_trace_health_bounded() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    let dir = TempDir::new("trace-health-flood");
    let [api, http] = free_addrs(2)[..] else { unreachable!() };
    let db = dir.path().join("tracebudget.db");
    let config = dir.write(
        "flood.toml",
        &format!(
            r#"
[server]
listen = "{api}"

[ingest]
otlp_http = "{http}"
trace_idle = "1s"

[storage]
url = "sqlite://{db}"

[[journeys]]
name = "checkout"
service = "frontend"
span_name = "POST /checkout"
"#,
            db = db.display()
        ),
    );
    let server = Server::start(&config, api);
    let send = |resource_spans| {
        let body = ExportTraceServiceRequest { resource_spans }.encode_to_vec();
        let r = tracebudget_tests::http_send(
            http,
            "POST",
            "/v1/traces",
            &[("Content-Type", "application/x-protobuf")],
            Some(&body),
            Duration::from_secs(30),
        )
        .expect("POST /v1/traces");
        assert_eq!(r.status, 200, "{}", r.body);
    };
    let base = now_ns() as u64 - 1_000_000_000;
    // Trace t: a frontend root and an orphan span of service orphan-t (its parent is not in
    // the trace): the boundary unknown → orphan-t lost the context. The first request holds
    // one trace, so frontend has a row whatever the order within a request.
    let orphans = |ts: std::ops::Range<u64>| {
        ts.flat_map(|t| {
            [
                flood_span("frontend".into(), t, 1, None, base, (0, 100)),
                flood_span(format!("orphan-{t:05}"), t, 2, Some(99), base, (10, 90)),
            ]
        })
        .collect::<Vec<_>>()
    };
    send(orphans(0..1));
    for from in (1..FLOOD).step_by(2_000) {
        send(orphans(from..(from + 2_000).min(FLOOD)));
    }
    // Trace FLOOD + t: parent-t's root and child-t's span starting 50 ms before it and ending
    // 50 ms after it (skew_tolerance 1 ms): two skew rows per pair.
    for from in (0..FLOOD).step_by(2_000) {
        send(
            (from..from + 2_000)
                .flat_map(|t| {
                    [
                        flood_span(format!("parent-{t:05}"), FLOOD + t, 1, None, base, (0, 100)),
                        flood_span(format!("child-{t:05}"), FLOOD + t, 2, Some(1), base, (-50, 150)),
                    ]
                })
                .collect(),
        );
    }
    wait_until("every trace closed", Duration::from_secs(60), || {
        json(&server, "/api/v1/health/traces").num(&["traces"]) == (2 * FLOOD) as f64
    });

    let scrape = server.get("/metrics").expect("GET /metrics");
    let health = server.get("/api/v1/health/traces").expect("GET /api/v1/health/traces");
    assert!(
        scrape.body.len() < 1_000_000,
        "/metrics is {} bytes, over 1 MB",
        scrape.body.len()
    );
    assert!(
        health.body.len() < 1_000_000,
        "/api/v1/health/traces is {} bytes, over 1 MB",
        health.body.len()
    );
    let m = tracebudget_tests::Metrics::parse(&scrape.body).unwrap();
    let h = Json::parse(&health.body).unwrap();
    let (services, lost, skew) = (FLOOD, FLOOD, 2 * FLOOD); // distinct names, boundaries, skew rows
    // Defaults: max_services 500, max_lost_context_rows 1000, max_clock_skew_rows 1000. Of the
    // orphan-* services 499 fit beside frontend; parent-* and child-* all overflow.
    let overflow_spans = (services - 499) + 2 * FLOOD;
    let dropped = [
        ("service_limit", overflow_spans),
        ("key_limit", 0),
        ("lost_context_limit", lost - 1_000),
        ("clock_skew_limit", skew - 1_000),
    ];
    for (reason, n) in dropped {
        assert_eq!(
            m.get("tracebudget_trace_health_dropped_total", &[("reason", reason)]),
            Some(n as f64),
            "{reason}"
        );
        assert_eq!(h.num(&["dropped", reason]), n as f64, "{reason}");
    }
    for (map, rows) in [
        ("service", 501),
        ("attribute_key", 0),
        ("lost_context", 1_001),
        ("clock_skew", 1_002),
    ] {
        assert_eq!(
            m.get("tracebudget_trace_health_rows", &[("map", map)]),
            Some(rows as f64),
            "{map}"
        );
        assert_eq!(
            m.get(
                "tracebudget_trace_health_evicted_total",
                &[("map", map), ("reason", "idle")]
            ),
            Some(0.0),
            "{map}"
        );
    }
    let series = |name: &str| m.matching(name, &[]).count();
    assert_eq!(series("tracebudget_trace_health_service_spans_total"), 501);
    assert_eq!(series("tracebudget_trace_health_lost_context_total"), 1_001);
    assert_eq!(series("tracebudget_trace_health_clock_skew_spans_total"), 1_002);
    let overflow = [("service", "__overflow__")];
    assert_eq!(
        (
            m.get("tracebudget_trace_health_service_spans_total", &overflow),
            m.get("tracebudget_trace_health_service_traces_total", &overflow),
            m.get("tracebudget_trace_health_service_fragmented_traces_total", &overflow),
        ),
        (
            Some(overflow_spans as f64),
            // Once per trace: the orphan traces of the overflowing orphan-*, every skew trace.
            Some(((services - 499) + FLOOD) as f64),
            Some((services - 499) as f64)
        )
    );
    assert_eq!(
        m.get(
            "tracebudget_trace_health_service_spans_total",
            &[("service", "frontend")]
        ),
        Some(FLOOD as f64)
    );
    let both = [("parent_service", "__overflow__"), ("child_service", "__overflow__")];
    assert_eq!(
        m.get("tracebudget_trace_health_lost_context_total", &both),
        Some((lost - 1_000) as f64)
    );
    for kind in ["starts_before_parent", "ends_after_parent"] {
        let labels = [both[0], both[1], ("kind", kind)];
        assert_eq!(
            m.get("tracebudget_trace_health_clock_skew_spans_total", &labels),
            Some(((skew - 1_000) / 2) as f64),
            "{kind}"
        );
    }
    let len = |key: &str| h.get(key).and_then(Json::as_array).map(<[Json]>::len);
    assert_eq!(
        (len("services"), len("lost_context"), len("clock_skew")),
        (Some(501), Some(1_001), Some(1_002))
    );
    println!(
        "/metrics {} bytes, /api/v1/health/traces {} bytes",
        scrape.body.len(),
        health.body.len()
    );
}
