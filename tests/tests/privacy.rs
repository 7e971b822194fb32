//! No PII kept (issue 9, item 5), through the real binary: spans full of personal data — e-mail
//! addresses and a card number in span names, an `Authorization: Bearer …` header, a JWT, an IP
//! address, a customer id, `user.email` and `enduser.id` attributes, a service named by an
//! e-mail address — go through the real OTLP/HTTP receiver of `tracebudget serve` until an SLO
//! pages through a real webhook receiver. Then every byte of the database (the SQLite files; on
//! PostgreSQL every row of every table as text, bytea decoded), serve's whole output, every
//! webhook body, and the API's alerts, history, notifications, trace health, SLOs, journeys and
//! `/metrics` are searched: none holds any of the personal strings. The redacted forms and the
//! allowed `peer.service` value do appear where expected (so the search can fail), and
//! `tracebudget_redactions_total{rule}` says exactly what was removed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracebudget_tests::{Json, PgDatabase, Server, TempDir, WebhookSink, free_addrs, http_request, psql};

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const ERROR: i32 = 2;
const BAD_TRACES: u128 = 20;

/// Every personal string sent; none may be found anywhere the engine keeps or shows text.
const PII: &[&str] = &[
    "alice.pii@example.com",
    "bob.pii@example.org",
    "carol.pii@example.net",
    "eyJhbGciOiJIUzI1NiJ9",
    "eyJzdWIiOiJwaWkifQ",
    "s3cr3tT0kenValue",
    "4111 1111 1111 1111",
    "4111111111111111",
    "203.0.113.77",
    "198.51.100.23",
    "cust-000123",
    "enduser-7f3a9c",
    "+1-202-555-0147",
];

/// The error-origin operations as sent and as they must be shown.
const CHARGE: &str = "charge alice.pii@example.com card 4111 1111 1111 1111";
const CHARGE_SHOWN: &str = "charge [email] card [credit_card]";
const VERIFY: &str = "verify Bearer s3cr3tT0kenValue for 203.0.113.77 cust-000123";
const VERIFY_SHOWN: &str = "verify [bearer_token] for [ipv4] [customer]";

fn config(dir: &TempDir, ports: &[SocketAddr], hook: SocketAddr, storage: &str) -> PathBuf {
    let [api, grpc, http, zipkin] = ports[..] else {
        unreachable!()
    };
    dir.write(
        "privacy.toml",
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
url = "{storage}"
flush_interval = "1s"

[alerting]
eval_interval = "1s"

[privacy]
attribute_allow_list = ["peer.service"]
redact = ["email", "bearer_token", "ipv4", "credit_card"]

[[privacy.rules]]
name = "customer"
pattern = "cust-[0-9]{{4,}}"
replacement = "[customer]"

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
name = "hook"
webhook = {{ url = "http://{hook}/notify", format = "generic", timeout = "2s" }}

[route]
receiver = "hook"
group_by = ["slo"]
group_wait = "0s"
group_interval = "1s"
repeat_interval = "2s"
"#
        ),
    )
}

/// One span in OTLP/JSON terms.
struct S {
    trace: u128,
    id: u64,
    parent: Option<u64>,
    service: &'static str,
    name: &'static str,
    kind: i32,
    status: i32,
    attrs: Vec<(&'static str, &'static str)>,
}

fn span(trace: u128, id: u64, parent: Option<u64>, service: &'static str, name: &'static str) -> S {
    S {
        trace,
        id,
        parent,
        service,
        name,
        kind: SERVER,
        status: 0,
        attrs: Vec::new(),
    }
}

/// Attributes no allow-list names: their values must vanish at the door.
const PERSONAL_ATTRIBUTES: &[(&str, &str)] = &[
    ("user.email", "alice.pii@example.com"),
    ("enduser.id", "enduser-7f3a9c"),
    (
        "http.request.header.authorization",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwaWkifQ.c2lnbmF0dXJlX3BpaQ",
    ),
    ("payment.card", "4111 1111 1111 1111"),
    ("client.address", "198.51.100.23"),
    ("user.phone", "+1-202-555-0147"),
    ("customer.id", "cust-000123"),
];

/// The spans: `BAD_TRACES` failed checkouts (the error originates in payments in even traces,
/// in auth in odd ones), a call to `ledger-svc` that never reached it (a dangling call: trace
/// health names the boundary by the allowed `peer.service` value), the ledger's own trace, and
/// a service whose name is an e-mail address.
fn spans() -> Vec<S> {
    let mut out = Vec::new();
    for t in 0..BAD_TRACES {
        let trace = 0x5000 + t;
        let id = |k: u64| (t as u64) << 8 | k;
        let mut root = span(trace, id(1), None, "shop", "POST /checkout?user=alice.pii@example.com");
        root.status = ERROR;
        root.attrs = PERSONAL_ATTRIBUTES.to_vec();
        out.push(root);
        let mut origin = if t % 2 == 0 {
            span(trace, id(2), Some(id(1)), "payments", CHARGE)
        } else {
            span(trace, id(2), Some(id(1)), "auth", VERIFY)
        };
        origin.status = ERROR;
        origin.attrs = PERSONAL_ATTRIBUTES.to_vec();
        out.push(origin);
        if t == 0 {
            let mut call = span(trace, id(3), Some(id(1)), "shop", "call ledger");
            call.kind = CLIENT;
            call.attrs = vec![
                ("peer.service", "ledger-svc"),
                (
                    "db.statement",
                    "select * from users where email = 'carol.pii@example.net'",
                ),
            ];
            out.push(call);
            out.push(span(trace, id(4), Some(id(1)), "bob.pii@example.org", "notify"));
        }
    }
    out.push(span(0x6000, 1, None, "ledger-svc", "ledger write"));
    out
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

fn attributes(attrs: &[(&str, &str)]) -> String {
    attrs
        .iter()
        .map(|(k, v)| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#))
        .collect::<Vec<_>>()
        .join(",")
}

/// The spans as one OTLP/JSON request, one resource per service (each resource with personal
/// attributes of its own too), ending just now.
fn request(spans: &[S]) -> String {
    let base = now_ns() - 200_000_000;
    let mut services: Vec<&str> = spans.iter().map(|s| s.service).collect();
    services.sort_unstable();
    services.dedup();
    let resources: Vec<String> = services
        .iter()
        .map(|service| {
            let list: Vec<String> = spans
                .iter()
                .filter(|s| s.service == *service)
                .map(|s| {
                    let depth = if s.parent.is_some() { 10 } else { 0 };
                    format!(
                        r#"{{"traceId":"{:032x}","spanId":"{:016x}","parentSpanId":"{}","name":"{}","kind":{},"startTimeUnixNano":"{}","endTimeUnixNano":"{}","status":{{"code":{},"message":"card 4111 1111 1111 1111 declined for alice.pii@example.com"}},"attributes":[{}]}}"#,
                        s.trace,
                        s.id,
                        s.parent.map(|p| format!("{p:016x}")).unwrap_or_default(),
                        s.name,
                        s.kind,
                        base + depth * 1_000_000,
                        base + (100 - depth) * 1_000_000,
                        s.status,
                        attributes(&s.attrs)
                    )
                })
                .collect();
            let resource = attributes(&[
                ("service.name", service),
                ("host.ip", "203.0.113.77"),
                ("deployment.owner", "carol.pii@example.net"),
            ]);
            format!(
                r#"{{"resource":{{"attributes":[{resource}]}},"scopeSpans":[{{"spans":[{}]}}]}}"#,
                list.join(",")
            )
        })
        .collect();
    format!(r#"{{"resourceSpans":[{}]}}"#, resources.join(","))
}

fn json(server: &Server, path: &str) -> (String, Json) {
    let r = server.get(path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    let parsed = Json::parse(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", r.body));
    (r.body, parsed)
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

/// Fails naming the first personal string found in `text` (what `place` is).
fn assert_clean(place: &str, text: &str) {
    for pii in PII {
        if let Some(at) = text.find(pii) {
            let before: String = text[..at]
                .chars()
                .rev()
                .take(200)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let after: String = text[at..].chars().take(pii.len() + 200).collect();
            panic!("{place} holds {pii:?}: …{before}{after}…");
        }
    }
}

/// What the run left behind, to search.
struct Evidence {
    /// (place, text).
    places: Vec<(String, String)>,
}

impl Evidence {
    fn all_clean(&self) {
        for (place, text) in &self.places {
            assert_clean(place, text);
        }
    }

    fn get(&self, place: &str) -> &str {
        &self
            .places
            .iter()
            .find(|(p, _)| p == place)
            .unwrap_or_else(|| panic!("no {place}"))
            .1
    }
}

/// Sends the spans, waits for a page that names both contributors, and gathers everything.
/// `database` reads the stored bytes once serve has stopped.
fn run(tag: &str, storage: impl FnOnce(&TempDir) -> String, database: impl FnOnce(&TempDir) -> Vec<(String, String)>) {
    let dir = TempDir::new(tag);
    let ports = free_addrs(5);
    let hook = WebhookSink::start(ports[4]).expect("webhook sink");
    let url = storage(&dir);
    let config = config(&dir, &ports[..4], ports[4], &url);
    let mut server = Server::start(&config, ports[0]);

    let body = request(&spans());
    let r = http_request(ports[2], "POST", "/v1/traces", &[], Some(&body), Duration::from_secs(5)).expect("POST");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("rejected"), "{}", r.body);

    // The page fires on the roots at once; blame comes when the traces close (trace_idle 1 s),
    // and the repeats (repeat_interval 2 s) carry it to the webhook.
    wait_until("a page naming both contributors", Duration::from_secs(40), || {
        hook.received()
            .iter()
            .any(|r| r.body.contains(r#""service":"payments""#) && r.body.contains(r#""service":"auth""#))
    });
    // Every trace closed and judged.
    wait_until("trace health", Duration::from_secs(20), || {
        json(&server, "/api/v1/health/traces").1.num(&["traces"]) == BAD_TRACES as f64 + 1.0
    });

    let mut places: Vec<(String, String)> = Vec::new();
    for path in [
        "/api/v1/alerts",
        "/api/v1/alerts/history",
        "/api/v1/notifications",
        "/api/v1/health/traces",
        "/api/v1/slos",
        "/api/v1/slos/checkout-errors",
        "/api/v1/journeys",
    ] {
        places.push((format!("GET {path}"), json(&server, path).0));
    }
    let metrics_text = server.get("/metrics").expect("GET /metrics").body;
    places.push(("GET /metrics".to_owned(), metrics_text));
    let metrics = server.metrics();
    let log_then = server.output();
    let received = hook.received();
    assert!(!received.is_empty());
    for (i, r) in received.iter().enumerate() {
        places.push((format!("webhook body {i}"), r.body.clone()));
        places.push((format!("webhook headers {i}"), format!("{:?}", r.headers)));
    }

    // Stop serve (its last flush included), then read its whole output and the database.
    server.signal_and_wait("INT", Duration::from_secs(20));
    places.push(("serve's stdout and stderr".to_owned(), server.output()));
    places.extend(database(&dir));
    let evidence = Evidence { places };
    evidence.all_clean();

    // The search can fail: what is allowed or redacted is there.
    assert!(
        received
            .iter()
            .any(|r| r.body.contains(CHARGE_SHOWN) && r.body.contains(VERIFY_SHOWN)),
        "a page names both redacted contributors"
    );
    let alerts = evidence.get("GET /api/v1/alerts");
    assert!(
        alerts.contains(CHARGE_SHOWN) && alerts.contains(VERIFY_SHOWN),
        "{alerts}"
    );
    let (_, health) = json_of(evidence.get("GET /api/v1/health/traces"));
    let lost = health.get("lost_context").unwrap().as_array().unwrap();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(
        (
            lost[0].get("parent_service").unwrap().as_str(),
            lost[0].get("child_service").unwrap().as_str()
        ),
        (Some("shop"), Some("ledger-svc")),
        "the allowed peer.service names the callee"
    );
    let services: Vec<&str> = health
        .get("services")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.get("service").unwrap().as_str().unwrap())
        .collect();
    assert_eq!(services, ["[email]", "auth", "ledger-svc", "payments", "shop"]);
    // Keys are shown (their values are not): the cardinality sketches saw user.email.
    assert!(evidence.get("GET /api/v1/health/traces").contains("\"user.email\""));
    assert!(
        evidence.get("GET /metrics").contains(r#"service="[email]""#),
        "the service label is redacted too"
    );
    let db = evidence
        .places
        .iter()
        .filter(|(p, _)| p.starts_with("database"))
        .map(|(_, t)| t.as_str())
        .collect::<String>();
    assert!(
        db.contains(CHARGE_SHOWN) && db.contains(VERIFY_SHOWN),
        "the stored outbox and history hold the redacted contributors"
    );

    // Logs keep what names no person: the listen addresses on loopback.
    assert!(log_then.contains("127.0.0.1"), "{log_then}");
    // Exactly what was removed, each distinct string once: the two error origins (an e-mail and
    // a card number; a bearer token, an IP address and a customer id) and the service named by
    // an e-mail address. Nothing in the logs needed it.
    for (rule, n) in [
        ("email", 2.0),
        ("bearer_token", 1.0),
        ("ipv4", 1.0),
        ("credit_card", 1.0),
        ("customer", 1.0),
    ] {
        assert_eq!(
            metrics.get("tracebudget_redactions_total", &[("rule", rule)]),
            Some(n),
            "rule {rule}"
        );
    }
}

fn json_of(text: &str) -> (String, Json) {
    (text.to_owned(), Json::parse(text).expect("json"))
}

#[test]
fn no_pii_in_sqlite_logs_notifications_or_api() {
    run(
        "privacy_sqlite",
        |dir| format!("sqlite://{}", dir.path().join("tracebudget.db").display()),
        |dir| {
            // Every file of the database: the main file, the WAL and its index.
            let mut out = Vec::new();
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with("tracebudget.db") {
                    let bytes = std::fs::read(&path).unwrap();
                    out.push((
                        format!("database file {name}"),
                        String::from_utf8_lossy(&bytes).into_owned(),
                    ));
                }
            }
            assert!(!out.is_empty());
            out
        },
    );
}

#[test]
fn no_pii_in_postgres_logs_notifications_or_api() {
    let pg = PgDatabase::new("privacy");
    let url = pg.url.clone();
    run(
        "privacy_postgres",
        |_| url.clone(),
        |_| {
            let tables = psql(
                &pg.url,
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
            );
            let mut out = Vec::new();
            for table in tables.lines().filter(|t| !t.is_empty()) {
                // Every row as text, and every bytea column decoded as bytes.
                let mut text = psql(&pg.url, &format!("SELECT t::text FROM \"{table}\" t"));
                let blobs = psql(
                    &pg.url,
                    &format!(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{table}' AND data_type = 'bytea'"
                    ),
                );
                for column in blobs.lines().filter(|c| !c.is_empty()) {
                    text.push_str(&psql(
                        &pg.url,
                        &format!("SELECT encode(\"{column}\", 'escape') FROM \"{table}\""),
                    ));
                }
                out.push((format!("database table {table}"), text));
            }
            assert!(
                out.iter().any(|(p, _)| p == "database table outbox"),
                "{:?}",
                out.iter().map(|(p, _)| p).collect::<Vec<_>>()
            );
            out
        },
    );
}
