//! The notifiers against real servers: an HTTP server in this test process that records every
//! request and answers what the test asks, a real SMTP server (aiosmtpd, `smtp_sink.py`), and a
//! real Alertmanager process (`real_am`).
//!
//! Every secret in these tests contains `SECRET`; no delivery reason or `Debug` output may.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use tracebudget_alerting::config::{EmailConfig, ReceiverConfig, WebhookConfig};
use tracebudget_alerting::notify::webhook::{alertmanager as am_format, generic, pagerduty, slack, slack_report};
use tracebudget_alerting::notify::{
    Alert, AlertDetail, AlertStatus, AlertmanagerNotifier, Contributor, Delivery, EmailNotifier, Exemplar,
    Notification, Notifier, NotifierOptions, WebhookNotifier,
};
use tracebudget_alerting::report::{AlertRecord, Digest, SloDigest};

fn init_tls() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A firing page, with a label that needs HTML escaping.
fn page() -> Alert {
    Alert {
        fingerprint: "a1b2c3d4e5f60718".into(),
        labels: map(&[
            ("alertname", "SLOBurnRate"),
            ("slo", "checkout-latency"),
            ("severity", "page"),
            ("journey", "checkout"),
            ("team", "<pay&ments>"),
        ]),
        annotations: map(&[("summary", "checkout is slow"), ("description", "99.9% within 800ms")]),
        status: AlertStatus::Firing,
        starts_at: Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap(),
        ends_at: None,
        detail: AlertDetail {
            slo: "checkout-latency".into(),
            journey: "checkout".into(),
            objective: 0.999,
            severity: "page".into(),
            factor: 14.4,
            long_window: Duration::from_secs(3_600),
            short_window: Duration::from_secs(300),
            burn_long: 14.91,
            burn_short: 15.2,
            budget_remaining: 0.42,
            time_to_exhaustion: Some(Duration::from_secs(10_440)),
            exemplars: vec![Exemplar {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                url: Some("https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736".into()),
                latency: Duration::from_millis(2_500),
                error: true,
                at: Utc.with_ymd_and_hms(2025, 3, 1, 11, 58, 30).unwrap(),
            }],
            contributors: vec![Contributor {
                service: "payments".into(),
                operation: "POST /charge".into(),
                bad_events: 31,
                share: 0.62,
                reason: "error originated here".into(),
            }],
        },
    }
}

fn resolved(mut a: Alert) -> Alert {
    a.status = AlertStatus::Resolved;
    a.ends_at = Some(Utc.with_ymd_and_hms(2025, 3, 1, 13, 0, 0).unwrap());
    a.detail.burn_long = 0.8;
    a.detail.burn_short = 0.1;
    a
}

fn notification(id: &str, alerts: Vec<Alert>) -> Notification {
    Notification {
        id: id.into(),
        receiver: "oncall".into(),
        group_key: "{}/{slo=\"checkout-latency\"}".into(),
        group_labels: map(&[("slo", "checkout-latency")]),
        alerts,
        external_url: "http://127.0.0.1:8080".into(),
    }
}

/// A page firing and a ticket resolved.
fn group(id: &str) -> Notification {
    let mut ticket = resolved(page());
    ticket.fingerprint = "0f1e2d3c4b5a6978".into();
    ticket.labels.insert("severity".into(), "ticket".into());
    ticket.detail.severity = "ticket".into();
    notification(id, vec![page(), ticket])
}

fn reason(d: &Delivery) -> &str {
    match d {
        Delivery::Delivered => "",
        Delivery::Retry { reason, .. } | Delivery::GiveUp { reason } => reason,
    }
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains("SECRET"), "{what} leaks a secret: {text}");
}

// ---------------------------------------------------------------------------------------------
// A recording HTTP server.

mod recorder {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::http::{HeaderMap, Response};

    /// What the server answers to the next request.
    #[derive(Debug, Clone)]
    pub enum Reply {
        Status(u16, Vec<(&'static str, &'static str)>),
        /// Never answer.
        Hang,
    }

    #[derive(Debug, Clone)]
    pub struct Recorded {
        pub method: String,
        pub path: String,
        pub headers: HeaderMap,
        pub body: Vec<u8>,
    }

    impl Recorded {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).map(|v| v.to_str().unwrap())
        }
        pub fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap()
        }
    }

    #[derive(Debug, Clone, Default)]
    struct Shared {
        requests: Arc<Mutex<Vec<Recorded>>>,
        replies: Arc<Mutex<VecDeque<Reply>>>,
    }

    #[derive(Debug)]
    pub struct Server {
        pub base: String,
        shared: Shared,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Server {
        /// Starts on 127.0.0.1 with an ephemeral port; answers 200 unless told otherwise.
        pub async fn start() -> Server {
            let shared = Shared::default();
            let app = Router::new().fallback(record).with_state(shared.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let task = tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            });
            Server { base, shared, task }
        }

        /// Queues the answers to the next requests, in order.
        pub fn reply(&self, replies: impl IntoIterator<Item = Reply>) {
            self.shared.replies.lock().unwrap().extend(replies);
        }

        pub fn requests(&self) -> Vec<Recorded> {
            self.shared.requests.lock().unwrap().clone()
        }
    }

    async fn record(State(shared): State<Shared>, request: Request) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
        shared.requests.lock().unwrap().push(Recorded {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            headers: parts.headers,
            body,
        });
        let reply = shared.replies.lock().unwrap().pop_front();
        match reply.unwrap_or(Reply::Status(200, vec![])) {
            Reply::Status(status, headers) => {
                let mut response = Response::builder().status(status);
                for (k, v) in headers {
                    response = response.header(k, v);
                }
                response.body(Body::from("ok")).unwrap()
            }
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(3_600)).await;
                Response::new(Body::empty())
            }
        }
    }
}

use recorder::{Reply, Server};

fn webhook_config(url: &str, format: &str, extra: &str) -> WebhookConfig {
    toml::from_str(&format!("url = {url:?}\nformat = {format:?}\n{extra}")).unwrap()
}

const SECRETS: &str = r#"
bearer_token = "tok-SECRET-bearer"
routing_key = "SECRET-routing-key"
timeout = "2s"
[headers]
X-Team = "payments"
X-Api-Key = "SECRET-api-key"
"#;

#[tokio::test]
async fn each_webhook_format_arrives_with_its_headers_and_body() {
    init_tls();
    let server = Server::start().await;
    let n = group("n-1");
    type Payload = fn(&Notification) -> Value;
    let cases: [(&str, Payload); 3] = [
        ("generic", generic::payload),
        ("alertmanager", am_format::payload),
        ("slack", slack::payload),
    ];
    for (format, payload) in cases {
        let url = format!("{}/hook/{format}/SECRET-path", server.base);
        let notifier =
            WebhookNotifier::new(&webhook_config(&url, format, SECRETS), &NotifierOptions::default()).unwrap();
        assert_no_secret("Debug", &format!("{notifier:?}"));
        assert_eq!(notifier.send(&n).await, Delivery::Delivered, "{format}");

        let r = server.requests().pop().unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("/hook/{format}/SECRET-path"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("idempotency-key"), Some("n-1"));
        assert_eq!(r.header("authorization"), Some("Bearer tok-SECRET-bearer"));
        assert_eq!(r.header("x-team"), Some("payments"));
        assert_eq!(r.header("x-api-key"), Some("SECRET-api-key"));
        assert_eq!(
            r.header("user-agent"),
            Some(concat!("tracebudget/", env!("CARGO_PKG_VERSION")))
        );
        let body = r.json();
        assert_eq!(body, payload(&n), "{format}");
        match format {
            "generic" => {
                assert_eq!(body["version"], "1");
                assert_eq!(body["alerts"][0]["detail"]["burnLong"], 14.91);
            }
            "alertmanager" => {
                assert_eq!(body["version"], "4");
                assert_eq!(body["commonLabels"]["slo"], "checkout-latency");
                assert_eq!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
            }
            _ => assert_eq!(body["attachments"][0]["color"], "#d32f2f"),
        }
    }
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn pagerduty_gets_one_event_per_alert() {
    init_tls();
    let server = Server::start().await;
    server.reply([Reply::Status(202, vec![]), Reply::Status(202, vec![])]);
    let url = format!("{}/v2/enqueue", server.base);
    let notifier =
        WebhookNotifier::new(&webhook_config(&url, "pagerduty", SECRETS), &NotifierOptions::default()).unwrap();
    assert_no_secret("Debug", &format!("{notifier:?}"));
    let n = group("n-2");
    assert_eq!(notifier.send(&n).await, Delivery::Delivered);

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let expected = pagerduty::events(&n, "SECRET-routing-key");
    for ((r, want), (fingerprint, action)) in requests
        .iter()
        .zip(&expected)
        .zip([("a1b2c3d4e5f60718", "trigger"), ("0f1e2d3c4b5a6978", "resolve")])
    {
        assert_eq!(r.path, "/v2/enqueue");
        assert_eq!(r.header("idempotency-key"), Some(format!("n-2-{fingerprint}").as_str()));
        let body = r.json();
        assert_eq!(&body, want);
        assert_eq!(body["routing_key"], "SECRET-routing-key");
        assert_eq!(body["dedup_key"], fingerprint);
        assert_eq!(body["event_action"], action);
    }
    assert_eq!(requests[0].json()["payload"]["severity"], "critical");

    // A failed event makes the whole notification retried; the events are idempotent.
    server.reply([Reply::Status(202, vec![]), Reply::Status(503, vec![])]);
    assert_eq!(
        notifier.send(&n).await,
        Delivery::Retry {
            reason: "http 503".into(),
            after: None
        }
    );
}

#[tokio::test]
async fn http_failures_are_classified() {
    init_tls();
    let server = Server::start().await;
    let url = format!("{}/hook/SECRET-path", server.base);
    let config = webhook_config(&url, "generic", &SECRETS.replace("\"2s\"", "\"300ms\""));
    let notifier = WebhookNotifier::new(&config, &NotifierOptions::default()).unwrap();
    let n = group("n-3");

    let cases = [
        (
            Reply::Status(500, vec![]),
            Delivery::Retry {
                reason: "http 500".into(),
                after: None,
            },
        ),
        (
            Reply::Status(429, vec![("retry-after", "7")]),
            Delivery::Retry {
                reason: "http 429".into(),
                after: Some(Duration::from_secs(7)),
            },
        ),
        (
            Reply::Status(408, vec![]),
            Delivery::Retry {
                reason: "http 408".into(),
                after: None,
            },
        ),
        (
            Reply::Status(404, vec![]),
            Delivery::GiveUp {
                reason: "http 404".into(),
            },
        ),
        (
            Reply::Status(401, vec![]),
            Delivery::GiveUp {
                reason: "http 401".into(),
            },
        ),
        (
            Reply::Status(302, vec![("location", "http://127.0.0.1:1/")]),
            Delivery::GiveUp {
                reason: "http 302".into(),
            },
        ),
        (
            Reply::Hang,
            Delivery::Retry {
                reason: "timed out after 300ms".into(),
                after: None,
            },
        ),
        (Reply::Status(204, vec![]), Delivery::Delivered),
    ];
    let mut outcomes = vec![];
    for (reply, want) in cases {
        server.reply([reply.clone()]);
        let got = notifier.send(&n).await;
        assert_eq!(got, want, "{reply:?}");
        outcomes.push(got);
    }

    // Nothing listens on a port just released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}/hook/SECRET-path");
    let refused = WebhookNotifier::new(&webhook_config(&url, "slack", SECRETS), &NotifierOptions::default()).unwrap();
    let got = refused.send(&n).await;
    assert!(
        matches!(&got, Delivery::Retry { reason, after: None } if reason.starts_with("connect error")),
        "{got:?}"
    );
    outcomes.push(got);

    for d in &outcomes {
        assert_no_secret("reason", reason(d));
        assert_no_secret("Debug", &format!("{d:?}"));
    }
}

#[tokio::test]
async fn alertmanager_push_sends_postable_alerts() {
    init_tls();
    let server = Server::start().await;
    let receiver: ReceiverConfig =
        toml::from_str(&format!("name = \"am\"\n[alertmanager]\nurl = \"{}/\"\n", server.base)).unwrap();
    let options = NotifierOptions {
        resend_interval: Duration::from_secs(60),
        ..NotifierOptions::default()
    };
    let notifier = Notifier::from_config(&receiver, &options).unwrap();
    assert!(matches!(notifier, Notifier::Alertmanager(_)));
    let n = group("n-4");
    let before = Utc::now();
    assert_eq!(notifier.send(&n).await, Delivery::Delivered);
    let after = Utc::now();

    let r = server.requests().pop().unwrap();
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/api/v2/alerts"));
    assert_eq!(r.header("idempotency-key"), Some("n-4"));
    let body = r.json();
    let alerts = body.as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["labels"]["severity"], "page");
    assert_eq!(alerts[0]["startsAt"], "2025-03-01T12:00:00Z");
    assert_eq!(alerts[0]["generatorURL"], "http://127.0.0.1:8080/slos/checkout-latency");
    // Firing: ends 4 resend intervals from now, unless re-sent.
    let ends: chrono::DateTime<Utc> = alerts[0]["endsAt"].as_str().unwrap().parse().unwrap();
    let horizon = chrono::Duration::minutes(4);
    assert!(
        ends >= before + horizon - chrono::Duration::milliseconds(1) && ends <= after + horizon,
        "{ends}"
    );
    // Resolved: ends when it resolved.
    assert_eq!(alerts[1]["endsAt"], "2025-03-01T13:00:00Z");
    assert_eq!(alerts[1]["labels"]["severity"], "ticket");
    assert_eq!(
        alerts[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["annotations", "endsAt", "generatorURL", "labels", "startsAt"]
    );

    let direct = AlertmanagerNotifier::new(
        &toml::from_str(&format!("url = \"{}\"", server.base)).unwrap(),
        &NotifierOptions::default(),
    )
    .unwrap();
    server.reply([Reply::Status(400, vec![])]);
    assert_eq!(
        direct.send(&n).await,
        Delivery::GiveUp {
            reason: "http 400".into()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Email against aiosmtpd.

mod smtp {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    /// The Python with aiosmtpd: `TRACEBUDGET_PYTHON`, else `python3`. Missing, it fails the test
    /// under `CI=true` and skips it loudly otherwise.
    pub fn python() -> Option<String> {
        let py = std::env::var("TRACEBUDGET_PYTHON").unwrap_or_else(|_| "python3".into());
        let ok = Command::new(&py)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(py);
        }
        let msg = format!(
            "the email tests need a Python with aiosmtpd: {py:?} has none (set TRACEBUDGET_PYTHON to the venv's python)"
        );
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}");
        }
        // Straight to stderr: the test harness would swallow eprintln! of a passing test.
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "\n!!!!!!!!!! SKIPPED: {msg} !!!!!!!!!!\n");
        None
    }

    /// A fresh directory, removed on drop.
    #[derive(Debug)]
    pub struct TempDir(pub PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub fn temp_dir(what: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tracebudget-notify-{}-{what}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// A self-signed certificate for 127.0.0.1 and localhost: (cert PEM, cert path, key path).
    pub fn certificate(dir: &Path) -> (String, PathBuf, PathBuf) {
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let pem = ck.cert.pem();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &pem).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        (pem, cert, key)
    }

    #[derive(Debug)]
    pub struct Sink {
        child: Child,
        pub port: u16,
        dir: TempDir,
    }

    impl Drop for Sink {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Sink {
        /// Starts `smtp_sink.py` in `mode` (`plain`, `starttls`, `tls`), with AUTH for
        /// alice / SECRET-password when `auth`.
        pub fn start(py: &str, mode: &str, cert: Option<(&Path, &Path)>, auth: bool) -> Sink {
            let dir = temp_dir(mode);
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
            let mut cmd = Command::new(py);
            cmd.arg(script).arg("--dir").arg(&dir.0).args(["--mode", mode]);
            if let Some((c, k)) = cert {
                cmd.arg("--cert").arg(c).arg("--key").arg(k);
            }
            if auth {
                cmd.args(["--user", "alice", "--password", "SECRET-password"]);
            }
            let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let port = line
                .trim()
                .strip_prefix("ready ")
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("smtp_sink.py did not start: {line:?}"));
            Sink { child, port, dir }
        }

        /// The messages received so far: raw bytes and the envelope the sink recorded.
        pub fn messages(&self) -> Vec<(Vec<u8>, Value)> {
            let mut names: Vec<_> = std::fs::read_dir(&self.dir.0)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect();
            names.sort();
            names
                .into_iter()
                .map(|p| {
                    let meta = std::fs::read(p.with_extension("json")).unwrap();
                    (std::fs::read(&p).unwrap(), serde_json::from_slice(&meta).unwrap())
                })
                .collect()
        }
    }

    pub fn email_config(port: u16, tls: &str, auth: bool, to: &[&str]) -> EmailConfig {
        let mut s = format!(
            "to = {to:?}\nfrom = \"tracebudget@example.com\"\nsmarthost = \"127.0.0.1:{port}\"\ntls = \"{tls}\"\n"
        );
        if auth {
            s.push_str("username = \"alice\"\npassword = \"SECRET-password\"\n");
        }
        toml::from_str(&s).unwrap()
    }

    pub fn trusting(pem: &str) -> NotifierOptions {
        NotifierOptions {
            extra_root_pem: Some(pem.as_bytes().to_vec()),
            email_timeout: Duration::from_secs(10),
            ..NotifierOptions::default()
        }
    }

    /// Parses a received message and checks what every notification and report email must carry.
    pub fn check_message(raw: &[u8], id: &str, subject: &str) -> (String, String) {
        use mail_parser::{MessageParser, MimeHeaders};
        let msg = MessageParser::default().parse(raw).expect("a parsable message");
        assert_eq!(msg.message_id(), Some(format!("{id}@tracebudget").as_str()));
        assert_eq!(msg.subject(), Some(subject));
        let to: Vec<_> = msg
            .to()
            .unwrap()
            .iter()
            .map(|a| a.address().unwrap().to_owned())
            .collect();
        assert_eq!(to, ["oncall@example.com", "sre@example.com"]);
        assert_eq!(
            msg.from().unwrap().first().unwrap().address(),
            Some("tracebudget@example.com")
        );
        let types: Vec<String> = msg
            .parts
            .iter()
            .map(|p| {
                let ct = p.content_type().unwrap();
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default())
            })
            .collect();
        assert_eq!(types, ["multipart/alternative", "text/plain", "text/html"]);
        (
            msg.body_text(0).unwrap().into_owned(),
            msg.body_html(0).unwrap().into_owned(),
        )
    }
}

#[tokio::test]
async fn email_over_starttls_with_auth() {
    init_tls();
    let Some(py) = smtp::python() else { return };
    let certs = smtp::temp_dir("certs");
    let (pem, cert, key) = smtp::certificate(&certs.0);
    let sink = smtp::Sink::start(&py, "starttls", Some((&cert, &key)), true);
    let config = smtp::email_config(sink.port, "starttls", true, &["oncall@example.com", "sre@example.com"]);
    let notifier = EmailNotifier::new(&config, &smtp::trusting(&pem)).unwrap();
    assert_no_secret("Debug", &format!("{notifier:?}"));

    let firing = notification("n-10", vec![page()]);
    let resolved = notification("n-11", vec![resolved(page())]);
    assert_eq!(notifier.send(&firing).await, Delivery::Delivered);
    assert_eq!(notifier.send(&resolved).await, Delivery::Delivered);

    let messages = sink.messages();
    assert_eq!(messages.len(), 2);
    for (_, envelope) in &messages {
        assert_eq!(
            envelope,
            &json!({
                "mail_from": "tracebudget@example.com",
                "rcpt_tos": ["oncall@example.com", "sre@example.com"],
                "tls": true,
                "authenticated": true,
            })
        );
    }

    let (text, html) = smtp::check_message(
        &messages[0].0,
        &firing.id,
        "[PAGE FIRING] checkout-latency: burn 14.9× (1h) / 15.2× (5m) > 14.4",
    );
    for fact in [
        "Status:             firing since 2025-03-01T12:00:00Z",
        "Burn rate:          14.9× over 1h, 15.2× over 5m (threshold 14.4)",
        "Budget remaining:   42.0%",
        "Time to exhaustion: 2h54m",
        "Objective:          99.9%",
        "team=<pay&ments>",
        "4bf92f3577b34da6a3ce929d0e0e4736 (2.5s, error) https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736",
        "payments POST /charge: 62.0% of bad events (31), error originated here",
    ] {
        assert!(text.contains(fact), "text part lacks {fact:?}:\n{text}");
    }
    for fact in [
        "<th align=\"left\">Burn rate</th><td>14.9× over 1h, 15.2× over 5m (threshold 14.4)</td>",
        "<th align=\"left\">Budget remaining</th><td>42.0%</td>",
        "<th align=\"left\">Time to exhaustion</th><td>2h54m</td>",
        "team=&lt;pay&amp;ments&gt;",
        "<a href=\"https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736\">",
        "payments POST /charge: 62.0% of bad events (31), error originated here",
    ] {
        assert!(html.contains(fact), "html part lacks {fact:?}:\n{html}");
    }
    assert!(!html.contains("<pay&ments>"));

    let (text, html) = smtp::check_message(
        &messages[1].0,
        &resolved.id,
        "[PAGE RESOLVED] checkout-latency: burn 0.8× (1h) / 0.1× (5m), threshold 14.4",
    );
    let status = "resolved at 2025-03-01T13:00:00Z (firing since 2025-03-01T12:00:00Z)";
    assert!(text.contains(status), "{text}");
    assert!(html.contains(status), "{html}");
}

#[tokio::test]
async fn email_over_implicit_tls_with_auth() {
    init_tls();
    let Some(py) = smtp::python() else { return };
    let certs = smtp::temp_dir("certs");
    let (pem, cert, key) = smtp::certificate(&certs.0);
    let sink = smtp::Sink::start(&py, "tls", Some((&cert, &key)), true);
    let config = smtp::email_config(sink.port, "tls", true, &["oncall@example.com", "sre@example.com"]);
    let notifier = EmailNotifier::new(&config, &smtp::trusting(&pem)).unwrap();
    let n = notification("n-20", vec![page()]);
    assert_eq!(notifier.send(&n).await, Delivery::Delivered);

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].1["tls"], true);
    assert_eq!(messages[0].1["authenticated"], true);
    smtp::check_message(
        &messages[0].0,
        &n.id,
        "[PAGE FIRING] checkout-latency: burn 14.9× (1h) / 15.2× (5m) > 14.4",
    );
}

#[tokio::test]
async fn email_over_plain_smtp() {
    init_tls();
    let Some(py) = smtp::python() else { return };
    let sink = smtp::Sink::start(&py, "plain", None, false);
    let config = smtp::email_config(sink.port, "none", false, &["oncall@example.com", "sre@example.com"]);
    let notifier = EmailNotifier::new(&config, &NotifierOptions::default()).unwrap();
    let n = group("n-30");
    assert_eq!(notifier.send(&n).await, Delivery::Delivered);

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].1["tls"], false);
    assert_eq!(messages[0].1["authenticated"], false);
    let (text, _) = smtp::check_message(
        &messages[0].0,
        &n.id,
        "[PAGE FIRING] checkout-latency: burn 14.9× (1h) / 15.2× (5m) > 14.4 (+1 more)",
    );
    assert!(text.contains("== Alert 2 of 2: [TICKET RESOLVED]"), "{text}");
}

#[tokio::test]
async fn email_failures_are_classified() {
    init_tls();
    let Some(py) = smtp::python() else { return };
    let certs = smtp::temp_dir("certs");
    let (pem, cert, key) = smtp::certificate(&certs.0);
    let sink = smtp::Sink::start(&py, "starttls", Some((&cert, &key)), true);
    let plain = smtp::Sink::start(&py, "plain", None, false);
    let n = notification("n-40", vec![page()]);
    let mut outcomes = vec![];
    let mut attempt = async |config: EmailConfig, options: NotifierOptions| {
        let notifier = EmailNotifier::new(&config, &options).unwrap();
        assert_no_secret("Debug", &format!("{notifier:?}"));
        let d = notifier.send(&n).await;
        outcomes.push(d.clone());
        d
    };

    let mut wrong_password = smtp::email_config(sink.port, "starttls", true, &["oncall@example.com"]);
    wrong_password.password = Some("SECRET-wrong".into());
    assert_eq!(
        attempt(wrong_password, smtp::trusting(&pem)).await,
        Delivery::GiveUp {
            reason: "smtp 535 permanent".into()
        }
    );
    let temp = smtp::email_config(sink.port, "starttls", true, &["tempfail@example.com"]);
    assert_eq!(
        attempt(temp, smtp::trusting(&pem)).await,
        Delivery::Retry {
            reason: "smtp 451 transient".into(),
            after: None
        }
    );
    let reject = smtp::email_config(sink.port, "starttls", true, &["reject@example.com"]);
    assert_eq!(
        attempt(reject, smtp::trusting(&pem)).await,
        Delivery::GiveUp {
            reason: "smtp 550 permanent".into()
        }
    );
    // The test certificate is not trusted without the extra root.
    let untrusted = smtp::email_config(sink.port, "starttls", true, &["oncall@example.com"]);
    assert_eq!(
        attempt(untrusted, NotifierOptions::default()).await,
        Delivery::Retry {
            reason: "smtp connection error: invalid peer certificate: UnknownIssuer".into(),
            after: None
        }
    );
    // STARTTLS is required: a server that does not offer it gets nothing, credentials least of all.
    let downgrade = smtp::email_config(plain.port, "starttls", true, &["oncall@example.com"]);
    assert_eq!(
        attempt(downgrade, smtp::trusting(&pem)).await,
        Delivery::GiveUp {
            reason: "smtp client error: STARTTLS is not supported on this server".into()
        }
    );
    // Nothing listens on a port just released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = smtp::email_config(closed, "none", true, &["oncall@example.com"]);
    assert_eq!(
        attempt(refused, NotifierOptions::default()).await,
        Delivery::Retry {
            reason: "smtp connection error: connection refused".into(),
            after: None
        }
    );

    // A server that accepts the connection and never says a word: the attempt's own deadline.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stalled = smtp::email_config(
        silent.local_addr().unwrap().port(),
        "none",
        true,
        &["oncall@example.com"],
    );
    let quick = NotifierOptions {
        email_timeout: Duration::from_millis(500),
        ..NotifierOptions::default()
    };
    assert_eq!(
        attempt(stalled, quick).await,
        Delivery::Retry {
            reason: "smtp timed out after 500ms".into(),
            after: None
        }
    );
    drop(silent);

    assert!(sink.messages().is_empty() && plain.messages().is_empty());
    for d in &outcomes {
        assert_no_secret("reason", reason(d));
        assert_no_secret("Debug", &format!("{d:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Report digests over the same real servers.

/// A weekly digest: one SLO overspent with a page in the period (its top contributor needs HTML
/// escaping), one burning slowly.
fn digest(id: &str) -> Digest {
    let at = |d, h, m| Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap();
    let contributor = |service: &str, operation: &str, bad_events, share, reason: &str| Contributor {
        service: service.into(),
        operation: operation.into(),
        bad_events,
        share,
        reason: reason.into(),
    };
    Digest {
        id: id.into(),
        report: "weekly-budget".into(),
        receiver: "sre".into(),
        from: at(16, 9, 0),
        to: at(23, 9, 0),
        external_url: "http://127.0.0.1:8080".into(),
        slos: vec![
            SloDigest {
                slo: "checkout-latency".into(),
                journey: "checkout".into(),
                sli: "latency".into(),
                objective: 0.999,
                period: "28d".into(),
                events: 40_000,
                bad: 50,
                budget_remaining: -0.25,
                current_burn: 1.2,
                time_to_exhaustion: None,
                no_data: false,
                alerts: vec![AlertRecord {
                    severity: "page".into(),
                    alertname: "SLOBurnRate".into(),
                    starts_at: at(20, 10, 0),
                    ends_at: Some(at(20, 11, 30)),
                }],
                top_contributors: vec![
                    contributor("<pay&ments>", "POST /charge", 31, 0.62, "error originated here"),
                    contributor("inventory", "reserve", 19, 0.38, "slowest child span"),
                ],
            },
            SloDigest {
                slo: "search-errors".into(),
                journey: "search".into(),
                sli: "error".into(),
                objective: 0.99,
                period: "28d".into(),
                events: 120_000,
                bad: 600,
                budget_remaining: 0.5,
                current_burn: 0.8,
                time_to_exhaustion: Some(Duration::from_secs(1_512_000)),
                no_data: false,
                alerts: vec![],
                top_contributors: vec![],
            },
        ],
    }
}

const REPORT_SUBJECT: &str =
    "[REPORT] weekly-budget: 2 SLOs, 1 budget exhausted, 1 alert (2026-11-16 09:00 → 2026-11-23 09:00 UTC)";

fn receiver(name: &str, body: &str) -> ReceiverConfig {
    toml::from_str(&format!("name = {name:?}\n{body}")).unwrap()
}

/// Issue 5 item 8: a digest reaches a generic webhook as the documented JSON, field by field.
#[tokio::test]
async fn report_digest_arrives_over_a_generic_webhook() {
    init_tls();
    let server = Server::start().await;
    let url = format!("{}/hook/report/SECRET-path", server.base);
    let notifier =
        WebhookNotifier::new(&webhook_config(&url, "generic", SECRETS), &NotifierOptions::default()).unwrap();
    let d = digest("report-weekly-budget-20261123T090000Z");
    assert_eq!(notifier.send_report(&d).await, Delivery::Delivered);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/hook/report/SECRET-path")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("idempotency-key"),
        Some("report-weekly-budget-20261123T090000Z")
    );
    assert_eq!(r.header("authorization"), Some("Bearer tok-SECRET-bearer"));
    assert_eq!(r.header("x-api-key"), Some("SECRET-api-key"));
    assert_eq!(
        r.json(),
        json!({
            "version": "1",
            "kind": "report",
            "id": "report-weekly-budget-20261123T090000Z",
            "report": "weekly-budget",
            "receiver": "sre",
            "from": "2026-11-16T09:00:00Z",
            "to": "2026-11-23T09:00:00Z",
            "externalURL": "http://127.0.0.1:8080",
            "slos": [
                {
                    "slo": "checkout-latency",
                    "journey": "checkout",
                    "sli": "latency",
                    "objective": 0.999,
                    "period": "28d",
                    "url": "http://127.0.0.1:8080/slos/checkout-latency",
                    "events": 40000,
                    "bad": 50,
                    "ratio": 0.99875,
                    "budgetRemaining": -0.25,
                    "currentBurn": 1.2,
                    "timeToExhaustionSeconds": null,
                    "noData": false,
                    "alerts": [{
                        "severity": "page",
                        "alertname": "SLOBurnRate",
                        "startsAt": "2026-11-20T10:00:00Z",
                        "endsAt": "2026-11-20T11:30:00Z"
                    }],
                    "topContributors": [
                        { "service": "<pay&ments>", "operation": "POST /charge", "badEvents": 31, "share": 0.62,
                          "reason": "error originated here" },
                        { "service": "inventory", "operation": "reserve", "badEvents": 19, "share": 0.38,
                          "reason": "slowest child span" }
                    ]
                },
                {
                    "slo": "search-errors",
                    "journey": "search",
                    "sli": "error",
                    "objective": 0.99,
                    "period": "28d",
                    "url": "http://127.0.0.1:8080/slos/search-errors",
                    "events": 120000,
                    "bad": 600,
                    "ratio": 0.995,
                    "budgetRemaining": 0.5,
                    "currentBurn": 0.8,
                    "timeToExhaustionSeconds": 1512000,
                    "noData": false,
                    "alerts": [],
                    "topContributors": []
                }
            ]
        })
    );

    // A failure is classified as for alerts; the retry carries the same key.
    server.reply([Reply::Status(503, vec![("retry-after", "30")])]);
    assert_eq!(
        notifier.send_report(&d).await,
        Delivery::Retry {
            reason: "http 503".into(),
            after: Some(Duration::from_secs(30))
        }
    );
    assert_eq!(notifier.send_report(&d).await, Delivery::Delivered);
    let keys: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["report-weekly-budget-20261123T090000Z"; 3]);
}

#[tokio::test]
async fn report_digest_arrives_over_a_slack_webhook() {
    init_tls();
    let server = Server::start().await;
    let url = format!("{}/services/T000/B000/SECRET", server.base);
    let notifier = Notifier::from_config(
        &receiver("slack", &format!("webhook = {{ url = {url:?}, format = \"slack\" }}")),
        &NotifierOptions::default(),
    )
    .unwrap();
    let d = digest("report-weekly-budget-20261123T090000Z");
    assert_eq!(notifier.send_report(&d).await, Delivery::Delivered);

    let r = server.requests().pop().unwrap();
    assert_eq!(
        r.header("idempotency-key"),
        Some("report-weekly-budget-20261123T090000Z")
    );
    let body = r.json();
    assert_eq!(body, slack_report::payload(&d));
    assert_eq!(body["text"], REPORT_SUBJECT);
    assert_eq!(
        body["blocks"][1]["text"]["text"],
        "```\n\
         SLO               Objective  SLI      Budget left  Burn (1h)  Alerts\n\
         checkout-latency  99.9%      99.875%  -25.0%       1.2×       1\n\
         search-errors     99%        99.5%    50.0%        0.8×       0\n\
         ```"
    );
    assert_eq!(
        body["blocks"][2]["text"]["text"],
        "*<http://127.0.0.1:8080/slos/checkout-latency|checkout-latency>*: budget left -25.0%, burn 1.2× (1h), exhaustion: already exhausted\n\
         • PAGE SLOBurnRate: 2026-11-20T10:00:00Z → 2026-11-20T11:30:00Z (1h30m)\n\
         • *&lt;pay&amp;ments&gt;* `POST /charge`: 62.0% of bad events (31), error originated here\n\
         • *inventory* `reserve`: 38.0% of bad events (19), slowest child span"
    );
}

/// Receivers whose payloads describe alerts give up on a digest without sending anything.
#[tokio::test]
async fn reports_to_alert_only_receivers_give_up_without_a_request() {
    init_tls();
    let server = Server::start().await;
    let url = format!("{}/SECRET-path", server.base);
    let cases = [
        (
            format!("webhook = {{ url = {url:?}, format = \"alertmanager\" }}"),
            "reports are not supported by webhook format alertmanager",
        ),
        (
            format!("webhook = {{ url = {url:?}, format = \"pagerduty\", routing_key = \"SECRET-key\" }}"),
            "reports are not supported by webhook format pagerduty",
        ),
        (
            format!("alertmanager = {{ url = \"{}\" }}", server.base),
            "reports are not supported by alertmanager",
        ),
    ];
    for (body, want) in cases {
        let notifier = Notifier::from_config(&receiver("r", &body), &NotifierOptions::default()).unwrap();
        let got = notifier.send_report(&digest("d-1")).await;
        assert_eq!(got, Delivery::GiveUp { reason: want.into() });
        assert_no_secret("reason", reason(&got));
    }
    assert!(server.requests().is_empty());
}

/// Issue 5 item 8: a digest by email through aiosmtpd, over STARTTLS with auth; the test parses
/// the message it received and reads the figures back from both parts.
#[tokio::test]
async fn report_digest_arrives_by_email() {
    init_tls();
    let Some(py) = smtp::python() else { return };
    let certs = smtp::temp_dir("certs");
    let (pem, cert, key) = smtp::certificate(&certs.0);
    let sink = smtp::Sink::start(&py, "starttls", Some((&cert, &key)), true);
    let config = smtp::email_config(sink.port, "starttls", true, &["oncall@example.com", "sre@example.com"]);
    let notifier = Notifier::Email(EmailNotifier::new(&config, &smtp::trusting(&pem)).unwrap());
    let d = digest("report-weekly-budget-20261123T090000Z");
    assert_eq!(notifier.send_report(&d).await, Delivery::Delivered);

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].1["tls"], true);
    assert_eq!(messages[0].1["authenticated"], true);
    let (text, html) = smtp::check_message(&messages[0].0, &d.id, REPORT_SUBJECT);
    // SMTP carries lines ending in CRLF.
    let (text, html) = (text.replace("\r\n", "\n"), html.replace("\r\n", "\n"));
    let table = "\
SLO               Objective  SLI      Budget left  Burn (1h)  Alerts
checkout-latency  99.9%      99.875%  -25.0%       1.2×       1
search-errors     99%        99.5%    50.0%        0.8×       0
";
    assert!(text.starts_with(&format!("{REPORT_SUBJECT}\n\n{table}\n")), "{text}");
    for fact in [
        "== checkout-latency ==\nJourney:            checkout\nSLI:                latency over 28d\n\
         Events:             40000, 50 bad\nTime to exhaustion: already exhausted\n",
        "  - PAGE SLOBurnRate: 2026-11-20T10:00:00Z → 2026-11-20T11:30:00Z (1h30m)\n",
        "  - <pay&ments> POST /charge: 62.0% of bad events (31), error originated here\n",
        "== search-errors ==\nJourney:            search\nSLI:                error over 28d\n\
         Events:             120000, 600 bad\nTime to exhaustion: 17d12h\n",
        "tracebudget http://127.0.0.1:8080 (report weekly-budget, digest report-weekly-budget-20261123T090000Z)",
    ] {
        assert!(text.contains(fact), "text part lacks {fact:?}:\n{text}");
    }
    for fact in [
        "<tr style=\"color: #d32f2f\"><td><a href=\"http://127.0.0.1:8080/slos/checkout-latency\">checkout-latency</a></td>\
         <td align=\"right\">99.9%</td><td align=\"right\">99.875%</td><td align=\"right\">-25.0%</td>\
         <td align=\"right\">1.2×</td><td align=\"right\">1</td></tr>",
        "<tr><td><a href=\"http://127.0.0.1:8080/slos/search-errors\">search-errors</a></td>\
         <td align=\"right\">99%</td><td align=\"right\">99.5%</td><td align=\"right\">50.0%</td>\
         <td align=\"right\">0.8×</td><td align=\"right\">0</td></tr>",
        "<tr><th align=\"left\">Time to exhaustion</th><td>17d12h</td></tr>",
        "<li>PAGE SLOBurnRate: 2026-11-20T10:00:00Z → 2026-11-20T11:30:00Z (1h30m)</li>",
        "<li>&lt;pay&amp;ments&gt; POST /charge: 62.0% of bad events (31), error originated here</li>",
    ] {
        assert!(html.contains(fact), "html part lacks {fact:?}:\n{html}");
    }
    assert!(!html.contains("<pay&ments>"));
}

// ---------------------------------------------------------------------------------------------
// Push to a real Alertmanager (Debian's prometheus-alertmanager, a process this test starts).

mod real_am {
    use super::*;
    use std::process::{Child, Command, Stdio};

    /// The Alertmanager binary: `TRACEBUDGET_ALERTMANAGER`, else `prometheus-alertmanager` or
    /// `alertmanager` on the PATH. Missing, it fails under `CI=true` (the test command installs it);
    /// on a developer's machine it runs `.ci/setup-alertmanager.sh`, and fails if that cannot
    /// install it. Never a skip.
    pub fn binary() -> String {
        let runs = |bin: &str| {
            Command::new(bin)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if let Ok(bin) = std::env::var("TRACEBUDGET_ALERTMANAGER") {
            assert!(
                runs(&bin),
                "TRACEBUDGET_ALERTMANAGER={bin:?} does not run (--version failed)"
            );
            return bin;
        }
        if let Some(bin) = ["prometheus-alertmanager", "alertmanager"]
            .into_iter()
            .find(|b| runs(b))
        {
            return bin.to_owned();
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .join(".ci/setup-alertmanager.sh");
        let msg = format!(
            "this test needs a real Alertmanager: none on the PATH (prometheus-alertmanager, alertmanager) and TRACEBUDGET_ALERTMANAGER unset; run `bash {}` (installs Debian's prometheus-alertmanager) or point TRACEBUDGET_ALERTMANAGER at a binary",
            script.display()
        );
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}");
        }
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("{msg}: running it failed: {e}"));
        let bin = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(out.status.success() && runs(&bin), "{msg}: it failed ({})", out.status);
        bin
    }

    /// A running Alertmanager with one `null` receiver, clustering off; killed on drop.
    #[derive(Debug)]
    pub struct Alertmanager {
        child: Child,
        pub base: String,
        dir: smtp::TempDir,
    }

    impl Drop for Alertmanager {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    const CONFIG: &str = "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n";

    impl Alertmanager {
        /// Starts it on a free loopback port and waits until `/-/ready` answers 200. A port taken
        /// between choosing and binding makes the process exit; it is then started again on another.
        pub async fn start(bin: &str) -> Alertmanager {
            let mut dir = smtp::temp_dir("alertmanager");
            let config = dir.0.join("alertmanager.yml");
            std::fs::write(&config, CONFIG).unwrap();
            let http = reqwest::Client::new();
            for _ in 0..3 {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let log = std::fs::File::create(dir.0.join("alertmanager.log")).unwrap();
                let child = Command::new(bin)
                    .arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.path={}", dir.0.join("data").display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .arg("--cluster.listen-address=")
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
                let mut am = Alertmanager {
                    child,
                    base: format!("http://127.0.0.1:{port}"),
                    dir,
                };
                // Up to 30 s for the process to answer; an exit ends the wait at once.
                for _ in 0..300 {
                    if am.child.try_wait().unwrap().is_some() {
                        break;
                    }
                    let ready = http.get(format!("{}/-/ready", am.base)).send().await;
                    if ready.is_ok_and(|r| r.status() == 200) {
                        return am;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let exited = am.child.try_wait().unwrap();
                eprintln!(
                    "alertmanager on {} did not become ready ({exited:?}):\n{}",
                    am.base,
                    am.log()
                );
                assert!(exited.is_some(), "alertmanager runs but never answered /-/ready");
                dir = std::mem::replace(&mut am.dir, smtp::TempDir(PathBuf::new()));
            }
            panic!("alertmanager did not start in three attempts");
        }

        pub fn log(&self) -> String {
            std::fs::read_to_string(self.dir.0.join("alertmanager.log")).unwrap_or_default()
        }

        /// `GET /api/v2/alerts{query}`: Alertmanager's own view of the alerts it holds.
        pub async fn alerts(&self, query: &str) -> Vec<Value> {
            let r = reqwest::get(format!("{}/api/v2/alerts{query}", self.base))
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            serde_json::from_str(&r.text().await.unwrap()).unwrap()
        }

        /// The sum of one metric's samples whose labels contain `label` (e.g. `status="resolved"`;
        /// empty: all of them). Panics when the metric has no sample at all.
        pub async fn metric(&self, name: &str, label: &str) -> f64 {
            let text = reqwest::get(format!("{}/metrics", self.base))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let samples: Vec<f64> = text
                .lines()
                .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
                .filter_map(|l| l.split_once("} "))
                .filter(|(labels, _)| label.is_empty() || labels.split(',').any(|kv| kv == label))
                .map(|(_, v)| v.trim().parse::<f64>().unwrap())
                .collect();
            assert!(!samples.is_empty(), "alertmanager exports no {name}{{{label}}}");
            samples.iter().sum()
        }
    }
}

/// Issue 5: the `alertmanager` receiver's push, read back from a real Alertmanager's own API.
#[tokio::test]
async fn real_alertmanager_shows_the_pushed_alert_and_its_resolution() {
    init_tls();
    let bin = real_am::binary();
    let am = real_am::Alertmanager::start(&bin).await;
    let receiver: ReceiverConfig =
        toml::from_str(&format!("name = \"am\"\n[alertmanager]\nurl = \"{}\"\n", am.base)).unwrap();
    let notifier = Notifier::from_config(&receiver, &NotifierOptions::default()).unwrap();
    let ts = |s: &Value| -> chrono::DateTime<Utc> { s.as_str().unwrap().parse().unwrap() };

    // A page firing and a ticket that already resolved: only the page is an alert in Alertmanager.
    let before = Utc::now();
    let d = notifier.send(&group("am-1")).await;
    let after = Utc::now();
    assert_eq!(d, Delivery::Delivered, "{}", am.log());
    let alerts = am.alerts("").await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let got = &alerts[0];
    assert_eq!(
        got.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "annotations",
            "endsAt",
            "fingerprint",
            "generatorURL",
            "labels",
            "receivers",
            "startsAt",
            "status",
            "updatedAt"
        ]
    );
    assert_eq!(
        got["labels"],
        json!({
            "alertname": "SLOBurnRate", "slo": "checkout-latency", "severity": "page",
            "journey": "checkout", "team": "<pay&ments>"
        })
    );
    assert_eq!(
        got["annotations"],
        json!({"summary": "checkout is slow", "description": "99.9% within 800ms"})
    );
    assert_eq!(
        ts(&got["startsAt"]),
        Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()
    );
    assert_eq!(got["generatorURL"], "http://127.0.0.1:8080/slos/checkout-latency");
    assert_eq!(
        got["status"],
        json!({"state": "active", "silencedBy": [], "inhibitedBy": []})
    );
    assert_eq!(got["receivers"], json!([{"name": "null"}]));
    // Firing: Alertmanager keeps it until 4 resend intervals (default 1 min) from the push, which
    // it stores to the millisecond.
    let horizon = chrono::Duration::minutes(4);
    let ends = ts(&got["endsAt"]);
    assert!(
        ends >= before + horizon - chrono::Duration::milliseconds(1) && ends <= after + horizon,
        "endsAt {ends} not 4 min after the push ({before} .. {after})"
    );
    let fingerprint = got["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(am.metric("alertmanager_alerts", "state=\"active\"").await, 1.0);
    assert_eq!(
        am.metric("alertmanager_alerts_received_total", "status=\"firing\"")
            .await,
        1.0
    );
    assert_eq!(
        am.metric("alertmanager_alerts_received_total", "status=\"resolved\"")
            .await,
        1.0
    );
    assert_eq!(am.metric("alertmanager_alerts_invalid_total", "").await, 0.0);

    // Re-sent while it fires (as the caller must every resend interval): still the one alert.
    assert_eq!(
        notifier.send(&notification("am-2", vec![page()])).await,
        Delivery::Delivered
    );
    let alerts = am.alerts("?active=true").await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["fingerprint"], fingerprint.as_str());
    assert_eq!(
        ts(&alerts[0]["startsAt"]),
        Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()
    );

    // Resolved at 13:00: Alertmanager takes it as resolved (ended in the past), not merely gone.
    assert_eq!(
        notifier.send(&notification("am-3", vec![resolved(page())])).await,
        Delivery::Delivered
    );
    assert_eq!(am.alerts("?active=true").await, Vec::<Value>::new());
    assert_eq!(am.alerts("").await, Vec::<Value>::new());
    assert_eq!(am.metric("alertmanager_alerts", "state=\"active\"").await, 0.0);
    assert_eq!(
        am.metric("alertmanager_alerts_received_total", "status=\"firing\"")
            .await,
        2.0
    );
    assert_eq!(
        am.metric("alertmanager_alerts_received_total", "status=\"resolved\"")
            .await,
        2.0
    );
    assert_eq!(am.metric("alertmanager_alerts_invalid_total", "").await, 0.0);
}
