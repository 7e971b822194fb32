//! The dashboards in a real headless Chromium (issue #6), driven over WebDriver (fantoccini and
//! Debian's chromedriver, started by the test on a free port). A known data set — `loadgen`'s
//! exact tally — goes through the real OTLP/HTTP receiver; a page fires. Then every figure each
//! page shows is compared with the API's JSON: the raw value in `data-value` exactly, the text by
//! the rounding rules of `dashboards/web/format.js`, mirrored here. The test clicks from the
//! executive page to an SLO's detail, creates a silence from the on-call page (through the token
//! prompt: the server has an API token) and expires it, checks each alert card's mute badge
//! ("Silenced (id …)", "Inhibited by …") against the API's `muted` before, during and after
//! that silence, checks that nothing the pages load comes
//! from another origin and that no page logs an error, and keeps a screenshot of each page in
//! `tests/artefacts/<page>.png`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tracebudget_tests::{Server, TempDir, chromedriver, free_addr, free_addrs, loadgen, repo_root};

const TOKEN: &str = "dash-e2e-token";
/// The browser window.
const WIDTH: u32 = 1400;
const HEIGHT: u32 = 1000;

/// Four journeys' worth of SLOs: one breached hard (its page fires), one with a ticket rule
/// that fires (warning), one healthy, one without traffic (no data, calendar month).
/// `server_extra` goes into `[server]`; `tag` names the file and its database.
fn config(dir: &TempDir, tag: &str, ports: &[SocketAddr], server_extra: &str) -> PathBuf {
    let [api, grpc, http, zipkin] = ports[..] else {
        unreachable!()
    };
    let db = dir.path().join(format!("{tag}.db"));
    dir.write(
        &format!("{tag}.toml"),
        &format!(
            r#"
[server]
listen = "{api}"
api_token = "{TOKEN}"
{server_extra}

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
labels = {{ team = "payments" }}

[[journeys]]
name = "search"
service = "frontend"
http_method = "GET"
http_route = "/api/search"
error_when = ["http.response.status_code >= 500"]
expected_services = ["frontend", "catalog"]
labels = {{ team = "discovery" }}

[[journeys]]
name = "login"
service = "frontend"
http_method = "POST"
http_route = "/api/login"
error_when = ["http.response.status_code >= 500"]
expected_services = ["frontend", "auth"]

[[slos]]
name = "search-availability"
journey = "search"
sli = "error"
objective = 0.9999
period = "30d"
policy = "fast"

[[slos]]
name = "checkout-availability"
journey = "checkout"
sli = "error"
objective = 0.99
period = "30d"
policy = "fast"

[[slos]]
name = "checkout-latency"
journey = "checkout"
sli = "latency"
threshold = "800ms"
objective = 0.95
period = "7d"
policy = "sensitive-tickets"

[[slos]]
name = "login-availability"
journey = "login"
sli = "error"
objective = 0.999
period = "calendar_month"
policy = "fast"

[[policies]]
name = "fast"
min_events = 20
windows = [
  {{ long = "1h", short = "5m", factor = 14.4, severity = "page" }},
  {{ long = "6h", short = "30m", factor = 6.0, severity = "ticket" }},
]

[[policies]]
name = "sensitive-tickets"
min_events = 20
windows = [{{ long = "6h", short = "30m", factor = 0.25, severity = "ticket" }}]

[[receivers]]
name = "nowhere"
webhook = {{ url = "http://127.0.0.1:9/notify", format = "generic", timeout = "1s" }}

[route]
receiver = "nowhere"
group_by = ["slo"]
group_wait = "0s"
group_interval = "1s"
repeat_interval = "1h"
"#,
            db = db.display()
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// The display rules of dashboards/web/format.js, in Rust.

/// ECMAScript's `Number.prototype.toFixed(digits)` for |x| < 1e21: the decimal nearest to the
/// exact binary value, a tie going to the larger magnitude (Rust's formatter breaks ties to
/// even, so ties are found on the exact expansion and rounded here).
fn to_fixed(x: f64, digits: usize) -> String {
    assert!(x.is_finite() && x.abs() < 1e21, "toFixed of {x}");
    let neg = x < 0.0;
    let exact = format!("{:.*}", digits + 1100, x.abs()); // every double's expansion fits
    let (int, frac) = exact.split_once('.').expect("a fraction");
    let (kept, rest) = frac.split_at(digits);
    let mut out: Vec<u8> = format!("{int}{kept}").into_bytes();
    let up = matches!(rest.as_bytes()[0], b'5'..=b'9');
    if up {
        let mut i = out.len();
        loop {
            if i == 0 {
                out.insert(0, b'1');
                break;
            }
            i -= 1;
            if out[i] == b'9' {
                out[i] = b'0';
            } else {
                out[i] += 1;
                break;
            }
        }
    }
    let digits_text = String::from_utf8(out).unwrap();
    let split = digits_text.len() - digits;
    let body = if digits == 0 {
        digits_text
    } else {
        format!("{}.{}", &digits_text[..split], &digits_text[split..])
    };
    // ECMAScript writes the sign of any x < 0, even when the digits are all zero.
    if neg { format!("-{body}") } else { body }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn ratio(v: &Value) -> String {
    format!("{} %", to_fixed(num(v) * 100.0, 1))
}

fn sli(v: &Value) -> String {
    if v.is_null() {
        "no data".into()
    } else {
        format!("{} %", to_fixed(num(v) * 100.0, 3))
    }
}

fn objective(v: &Value) -> String {
    let shortest: f64 = to_fixed(num(v) * 100.0, 4).parse().unwrap();
    format!("{shortest} %")
}

fn burn(v: &Value) -> String {
    format!("{}×", to_fixed(num(v), 2))
}

fn factor(v: &Value) -> String {
    format!("{}×", num(v))
}

fn latency(v: &Value) -> String {
    if v.is_null() {
        "—".into()
    } else {
        format!("{} ms", to_fixed(num(v) * 1000.0, 1))
    }
}

fn count(v: &Value) -> String {
    let digits = v.as_u64().unwrap_or_else(|| panic!("not a count: {v}")).to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn duration(seconds: u64) -> String {
    let mut rest = seconds;
    let parts: Vec<(u64, &str)> = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")]
        .into_iter()
        .map(|(size, unit)| {
            let v = rest / size;
            rest -= v * size;
            (v, unit)
        })
        .collect();
    let Some(first) = parts.iter().position(|(v, _)| *v != 0) else {
        return "0s".into();
    };
    parts[first..(first + 2).min(parts.len())]
        .iter()
        .filter(|(v, _)| *v != 0)
        .map(|(v, u)| format!("{v}{u}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn exhaustion(v: &Value) -> String {
    match v.as_f64() {
        None => "never".into(),
        Some(s) if s <= 0.0 => "exhausted".into(),
        Some(s) => duration(s.floor() as u64),
    }
}

#[test]
fn display_rules_match_ecmascript() {
    // (value, toFixed(1)) as Chromium prints them, ties included.
    let cases = [
        (0.25, 1, "0.3"),
        (0.35, 1, "0.3"), // 0.35 is 0.34999… in binary
        (-0.25, 1, "-0.3"),
        (97.23, 1, "97.2"),
        (-4726.368159203981, 1, "-4726.4"),
        (0.0, 1, "0.0"),
        (-0.01, 1, "-0.0"),
        (99.95, 1, "100.0"), // 99.95 is 99.9500000000000028…
        (1.005, 2, "1.00"),
        (2.5, 0, "3"),
        (9.995, 2, "9.99"),
    ];
    for (x, d, want) in cases {
        assert_eq!(to_fixed(x, d), want, "{x}.toFixed({d})");
    }
    assert_eq!(objective(&json!(0.999)), "99.9 %");
    assert_eq!(objective(&json!(0.9999)), "99.99 %");
    assert_eq!(objective(&json!(0.95)), "95 %");
    assert_eq!(count(&json!(1234567)), "1,234,567");
    assert_eq!(count(&json!(999)), "999");
    assert_eq!(duration(273_600 + 59), "3d 4h");
    assert_eq!(duration(7_200), "2h");
    assert_eq!(duration(310), "5m 10s");
    assert_eq!(exhaustion(&json!(0.0)), "exhausted");
    assert_eq!(exhaustion(&Value::Null), "never");
    assert_eq!(latency(&json!(0.1234)), "123.4 ms");
}

// ---------------------------------------------------------------------------------------------
// chromedriver and the browser.

/// A chromedriver process on a free loopback port, killed on drop.
pub(crate) struct Driver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Driver {
    pub(crate) fn start(dir: &TempDir) -> Driver {
        let path = chromedriver();
        let port = free_addr().port();
        let log = dir.path().join("chromedriver.log");
        let out = std::fs::File::create(&log).expect("chromedriver log");
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let mut driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}/"),
            log,
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = driver.child.try_wait().unwrap() {
                panic!("chromedriver exited: {status}\n{}", driver.output());
            }
            // chromedriver keeps connections alive: a started driver that accepts connections
            // is ready (the session request waits for it otherwise).
            if driver.output().contains("started successfully")
                && std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
            {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready in 30 s\n{}",
                driver.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver) -> Client {
    browser_with(driver, &[]).await
}

/// A headless Chromium session with `extra` command-line switches.
pub(crate) async fn browser_with(driver: &Driver, extra: &[&str]) -> Client {
    let mut args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        format!("--window-size={WIDTH},{HEIGHT}"),
        "--lang=en-US".to_owned(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let mut options = json!({ "args": args });
    if let Some(binary) = std::env::var_os("TRACEBUDGET_CHROMIUM") {
        options["binary"] = json!(binary.to_string_lossy());
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), options);
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("no Chromium session: {e}\n{}", driver.output()))
}

/// chromedriver's console log (`POST /session/{id}/se/log`, type `browser`): every entry since
/// the last read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// The console entries at level SEVERE since the last call.
async fn console_errors(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("read the browser log");
    log.as_array()
        .expect("log entries")
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// No script error (the page's own `window.__tbErrors`: errors, rejections, CSP violations) and
/// nothing at level SEVERE in the console but what `expected` names, each exactly once.
async fn assert_no_errors(c: &Client, page: &str, expected: &[&str]) {
    let caught = c.execute("return window.__tbErrors;", vec![]).await.unwrap();
    assert_eq!(caught, json!([]), "{page}: script errors");
    let console = console_errors(c).await;
    let unexpected: Vec<&String> = console
        .iter()
        .filter(|m| !expected.iter().any(|x| m.contains(x)))
        .collect();
    assert!(unexpected.is_empty(), "{page}: console errors {unexpected:#?}");
    for x in expected {
        assert_eq!(
            console.iter().filter(|m| m.contains(x)).count(),
            1,
            "{page}: the console shows {x:?} once: {console:#?}"
        );
    }
}

/// Everything the page loaded and every element that loads something is of this origin; links
/// elsewhere exist only inside exemplar items (a trace in the tracing UI, from the data).
/// Every loaded asset, fetched again, names no other origin either.
async fn assert_same_origin(c: &Client, server: &Server, page: &str) {
    let report = c
        .execute(
            r#"
            const out = { loaded: [], foreign: [] };
            const here = location.origin;
            for (const r of performance.getEntriesByType("resource")) {
              const u = new URL(r.name);
              if (u.origin === here) out.loaded.push(u.pathname); else out.foreign.push(r.name);
            }
            for (const e of document.querySelectorAll("script[src], link[href], img[src], iframe, object, embed, source, video, audio, use")) {
              const ref = e.getAttribute("src") ?? e.getAttribute("href") ?? e.getAttribute("data");
              if (ref !== null && new URL(ref, location.href).origin !== here) out.foreign.push(ref);
            }
            for (const a of document.querySelectorAll("a[href]")) {
              if (new URL(a.href).origin !== here && !a.closest('[data-testid="exemplar"]')) out.foreign.push(a.href);
            }
            return out;
            "#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(report["foreign"], json!([]), "{page}: references to other origins");
    let loaded: Vec<&str> = report["loaded"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|p| p.starts_with("/assets/"))
        .collect();
    for want in [
        "/assets/app.js",
        "/assets/chart.js",
        "/assets/format.js",
        "/assets/style.css",
    ] {
        assert!(loaded.contains(&want), "{page}: {want} not loaded ({loaded:?})");
    }
    for path in loaded {
        let r = server.get(path).unwrap();
        assert_eq!(r.status, 200, "{path}");
        let text = r.body.replace("http://www.w3.org/2000/svg", "");
        for bad in ["http://", "https://", "//cdn", "@import"] {
            assert!(!text.contains(bad), "{path} contains {bad:?}");
        }
    }
}

/// A PNG of the whole page (the window grown to the page's height, then restored).
async fn screenshot(c: &Client, page: &str) {
    let sizes = c
        .execute(
            "window.scrollTo(0, 0); return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight];",
            vec![],
        )
        .await
        .unwrap();
    let (height, frame) = (sizes[0].as_u64().unwrap() as u32, sizes[1].as_u64().unwrap() as u32);
    c.set_window_size(WIDTH, height.clamp(HEIGHT - frame, 4000) + frame)
        .await
        .unwrap();
    // Let the resize lay the page out before the capture.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = c.screenshot().await.expect("screenshot");
    c.set_window_size(WIDTH, HEIGHT).await.unwrap();
    let dir = repo_root().join("tests/artefacts");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{page}.png"));
    std::fs::write(&path, png).unwrap();
    println!("screenshot: {} (page height {height} px)", path.display());
}

/// Waits until the view shows `route`, rendered (`data-state="ready"`).
async fn wait_view(c: &Client, route: &str) -> Element {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&format!(
            r#"#view[data-state="ready"][data-route="{route}"]"#
        )))
        .await
        .unwrap_or_else(|e| panic!("the {route} view did not render: {e}"))
}

async fn find(scope: &Element, css: &str) -> Element {
    scope
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
}

async fn text(e: &Element) -> String {
    e.text().await.unwrap().trim().to_owned()
}

/// `data-<name>` of an element.
async fn data(e: &Element, name: &str) -> String {
    e.attr(&format!("data-{name}"))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no data-{name}"))
}

/// The element `[data-testid=testid]` in `scope` shows `want` and carries `raw` exactly.
async fn assert_figure(scope: &Element, testid: &str, raw: &Value, want: &str, what: &str) {
    let e = find(scope, &format!(r#"[data-testid="{testid}"]"#)).await;
    let value = data(&e, "value").await;
    match raw {
        Value::Null => assert_eq!(value, "null", "{what} {testid}: raw"),
        Value::Number(n) => assert_eq!(
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("{what} {testid}: {value:?}")),
            n.as_f64().unwrap(),
            "{what} {testid}: raw"
        ),
        Value::String(s) => assert_eq!(&value, s, "{what} {testid}: raw"),
        Value::Bool(b) => assert_eq!(value, b.to_string(), "{what} {testid}: raw"),
        other => panic!("{what} {testid}: unexpected raw {other}"),
    }
    assert_eq!(text(&e).await, want, "{what} {testid}: text");
}

fn api(server: &Server, path: &str) -> Value {
    let r = server.get(path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", r.body))
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

const STATUS_TEXT: [(&str, &str); 4] = [
    ("ok", "✓ OK"),
    ("warning", "▲ Warning"),
    ("critical", "✖ Critical"),
    ("no_data", "○ No data"),
];

fn status_text(status: &str) -> &'static str {
    STATUS_TEXT
        .iter()
        .find(|(s, _)| *s == status)
        .map(|(_, t)| *t)
        .expect("a known status")
}

// ---------------------------------------------------------------------------------------------

#[test]
fn dashboards_show_the_apis_figures_in_chromium() {
    let dir = TempDir::new("dashboards");
    let ports = free_addrs(4);
    let open = config(&dir, "open-reads", &ports, "");
    let mut server = Server::start(&open, ports[0]);
    let base = format!("http://{}", ports[0]);

    // The known data set: 2000 traces of checkout and search (login gets none), 0.5 % failing,
    // 3 % slow, at once. Search's 99.99 % objective pages; checkout-latency's sensitive ticket
    // rule fires; checkout-availability stays within budget; login has no data.
    let tally = loadgen(
        &[
            "--config",
            open.to_str().unwrap(),
            "--endpoint",
            &format!("http://{}", ports[2]),
            "--traces",
            "2000",
            "--rate",
            "0",
            "--mix",
            "login=0",
            "--incident",
            "0s:1h:0.005",
            "--slow-rate",
            "0.03",
            "--seed",
            "6",
        ],
        Duration::from_secs(60),
    );
    let journey = |name: &str, field: &str| {
        tally
            .at(&["journeys", name, field])
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
    };
    let (checkout, search) = (journey("checkout", "traces"), journey("search", "traces"));
    assert!(
        checkout > 0.0 && search > 0.0 && journey("login", "traces") == 0.0,
        "{tally:?}"
    );

    // Every trace recorded, the page firing with its exemplars and contributors.
    wait_until("every trace recorded", Duration::from_secs(30), || {
        let slos = api(&server, "/api/v1/slos");
        let events = |name: &str| {
            slos["slos"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == name)
                .map(|s| num(&s["period"]["events"]))
                .unwrap()
        };
        events("search-availability") == search && events("checkout-latency") == checkout
    });
    let slos = api(&server, "/api/v1/slos");
    let by_name = |name: &str| {
        slos["slos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        num(&by_name("search-availability")["period"]["bad_events"]),
        journey("search", "errors")
    );
    assert_eq!(
        num(&by_name("checkout-latency")["period"]["bad_events"]),
        journey("checkout", "slow")
    );
    // Three alerts fire (search's page and ticket, checkout-latency's ticket), each with the
    // blame of its closed traces; then nothing changes any more: the pages must show what the
    // API shows.
    let settled = |alerts: &Value| {
        let list = alerts["alerts"].as_array().unwrap();
        list.len() == 3
            && list
                .iter()
                .all(|a| a["status"] == "firing" && !a["detail"]["contributors"].as_array().unwrap().is_empty())
    };
    let mut last = Value::Null;
    wait_until(
        "three alerts with their contributors, unchanged for 2 s",
        Duration::from_secs(60),
        || {
            let now = api(&server, "/api/v1/alerts");
            let done = settled(&now) && now == last;
            last = now;
            if !done {
                std::thread::sleep(Duration::from_secs(2));
            }
            done
        },
    );
    server.assert_running();

    // A second server whose reads need the token too.
    let guarded_ports = free_addrs(4);
    let guarded_config = config(&dir, "guarded-reads", &guarded_ports, "protect_reads = true");
    let guarded = Server::start(&guarded_config, guarded_ports[0]);

    let driver = Driver::start(&dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&driver).await;
        executive(&c, &server, &base).await;
        detail(&c, &server).await;
        unknown_slo(&c, &base).await;
        oncall(&c, &server).await;
        opened_from_links(&c, &base).await;
        guarded_reads(&c, &guarded).await;
        let _ = c.close().await;
    });
    server.assert_running();
}

/// An SLO that does not exist: the API's 404 message in the view.
async fn unknown_slo(c: &Client, base: &str) {
    c.goto(&format!("{base}/?refresh=0#/slo/nope")).await.unwrap();
    let view = wait_view(c, "slo").await;
    let error = find(&view, r#"[data-testid="error"]"#).await;
    assert_eq!(
        text(&error).await,
        r#"Cannot load this view. GET /api/v1/slos/nope: 404 unknown SLO "nope""#
    );
    // The two requests the view makes (the SLO and its series) both answer 404.
    let console = console_errors(c).await;
    assert_eq!(console.len(), 2, "{console:#?}");
    assert!(
        console
            .iter()
            .all(|m| m.contains("/api/v1/slos/nope") && m.contains("status of 404")),
        "{console:#?}"
    );
    assert_no_errors(c, "unknown SLO", &[]).await;
}

/// Every view opened straight from a link, as a notification's or a bookmark's opens it: a new
/// document each time (not a hash change inside a loaded page), rendered without an error
/// (issue 18: `#/slo/<name>` showed "Cannot load this view" unless reached from another view).
/// The notification's own link, `/slos/<name>`, leads to the same view.
async fn opened_from_links(c: &Client, base: &str) {
    let name = "search-availability";
    let slo_title = r#"[data-testid="slo-title"]"#;
    let cases = [
        (
            format!("{base}/?refresh=0#/"),
            "executive",
            "h1",
            "Service level objectives",
        ),
        (format!("{base}/?refresh=0#/oncall"), "oncall", "h1", "On-call"),
        (format!("{base}/?refresh=0#/slo/{name}"), "slo", slo_title, name),
        (
            format!("{base}/?refresh=0#/slo/{name}?range=24h"),
            "slo",
            slo_title,
            name,
        ),
        (format!("{base}/slos/{name}"), "slo", slo_title, name),
        (format!("{base}/?refresh=0#/nowhere"), "notfound", "h1", "Not found"),
    ];
    for (url, route, title_css, title) in &cases {
        c.goto("about:blank").await.unwrap();
        c.goto(url).await.unwrap();
        let view = wait_view(c, route).await;
        let errors = view.find_all(Locator::Css(r#"[data-testid="error"]"#)).await.unwrap();
        assert!(errors.is_empty(), "{url}: {:?}", view.text().await.unwrap());
        assert_eq!(text(&find(&view, title_css).await).await, *title, "{url}");
        assert_no_errors(c, url, &[]).await;
    }
    // The range asked for in the link is the one shown; the notification's link lands on the
    // view's own address.
    c.goto("about:blank").await.unwrap();
    c.goto(&cases[3].0).await.unwrap();
    let view = wait_view(c, "slo").await;
    let current = find(&view, r#"[data-testid="range-24h"]"#).await;
    assert_eq!(current.attr("aria-current").await.unwrap().as_deref(), Some("page"));
    c.goto("about:blank").await.unwrap();
    c.goto(&cases[4].0).await.unwrap();
    wait_view(c, "slo").await;
    assert_eq!(c.current_url().await.unwrap().as_str(), format!("{base}/#/slo/{name}"));
}

/// With `protect_reads`, the first view answers 401: the page asks for the token, keeps it for
/// the tab and shows the view.
async fn guarded_reads(c: &Client, server: &Server) {
    let base = format!("http://{}", server.addr());
    assert_eq!(server.get("/api/v1/slos").unwrap().status, 401);
    // A new origin: nothing stored for it yet.
    c.goto(&format!("{base}/?refresh=0")).await.unwrap();
    let view = wait_view(c, "executive").await;
    let error = find(&view, r#"[data-testid="error"]"#).await;
    assert!(
        text(&error).await.contains("GET /api/v1/slos: 401"),
        "{}",
        text(&error).await
    );
    let form = find(
        &c.find(Locator::Css("#auth")).await.unwrap(),
        r#"[data-testid="token-form"]"#,
    )
    .await;
    assert_eq!(
        text(&find(&form, "p").await).await,
        "This server needs an API token. It is kept for this browser tab only."
    );
    assert_no_errors(
        c,
        "guarded",
        &["/api/v1/slos - Failed to load resource: the server responded with a status of 401"],
    )
    .await;
    find(&form, r#"[data-testid="token-input"]"#)
        .await
        .send_keys(TOKEN)
        .await
        .unwrap();
    find(&form, r#"button[type="submit"]"#).await.click().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(
            r#"#view[data-state="ready"][data-route="executive"] tr[data-testid="slo-row"]"#,
        ))
        .await
        .expect("the executive view once the token is given");
    let rows = c.find_all(Locator::Css(r#"tr[data-testid="slo-row"]"#)).await.unwrap();
    assert_eq!(rows.len(), 4);
    assert!(
        c.find(Locator::Css("#auth"))
            .await
            .unwrap()
            .attr("hidden")
            .await
            .unwrap()
            .is_some()
    );
    assert_no_errors(c, "guarded", &[]).await;
    screenshot(c, "guarded-token").await;
}

/// Every SLO's row against `GET /api/v1/slos`, and the click through to a detail.
async fn executive(c: &Client, server: &Server, base: &str) {
    // `?refresh=0`: the page does not reload itself while the test reads it.
    c.goto(&format!("{base}/?refresh=0#/")).await.unwrap();
    let view = wait_view(c, "executive").await;
    let slos = api(server, "/api/v1/slos");
    let slos = slos["slos"].as_array().unwrap();

    let rows = view
        .find_all(Locator::Css(r#"tr[data-testid="slo-row"]"#))
        .await
        .unwrap();
    assert_eq!(rows.len(), slos.len(), "one row per SLO");
    let mut statuses = std::collections::BTreeMap::new();
    for (row, s) in rows.iter().zip(slos) {
        let name = s["name"].as_str().unwrap();
        assert_eq!(data(row, "slo").await, name, "rows in config order");
        *statuses.entry(s["status"].as_str().unwrap().to_owned()).or_insert(0u64) += 1;
        let status = s["status"].as_str().unwrap();
        assert_figure(row, "status", &s["status"], status_text(status), name).await;
        assert_figure(row, "journey", &s["journey"], s["journey"].as_str().unwrap(), name).await;
        assert_figure(row, "objective", &s["objective"], &objective(&s["objective"]), name).await;
        assert_figure(
            row,
            "period",
            &s["period"]["label"],
            s["period"]["label"].as_str().unwrap(),
            name,
        )
        .await;
        assert_figure(row, "sli", &s["sli_ratio"], &sli(&s["sli_ratio"]), name).await;
        assert_figure(
            row,
            "budget-remaining",
            &s["budget_remaining"],
            &ratio(&s["budget_remaining"]),
            name,
        )
        .await;
        assert_figure(
            row,
            "budget-consumed",
            &s["budget_consumed"],
            &ratio(&s["budget_consumed"]),
            name,
        )
        .await;
        assert_figure(
            row,
            "events",
            &s["period"]["events"],
            &count(&s["period"]["events"]),
            name,
        )
        .await;
        assert_figure(
            row,
            "bad-events",
            &s["period"]["bad_events"],
            &count(&s["period"]["bad_events"]),
            name,
        )
        .await;
        assert_figure(
            row,
            "exhaustion",
            &s["exhaustion_seconds"],
            &exhaustion(&s["exhaustion_seconds"]),
            name,
        )
        .await;
        assert_eq!(text(&find(row, r#"[data-testid="slo-link"]"#).await).await, name);

        // The trend: budget remaining over the period, as the series answers it.
        let period = num(&s["period"]["seconds"]).round() as u64;
        let step = (period.div_ceil(48).div_ceil(60) * 60).max(60);
        let series = api(
            server,
            &format!("/api/v1/slos/{name}/series?range={}s&step={step}s", period.max(60)),
        );
        let points = series["points"].as_array().unwrap();
        let trend = find(row, r#"svg[data-testid="trend"]"#).await;
        assert_eq!(data(&trend, "points").await, points.len().to_string(), "{name} trend");
        assert_eq!(
            data(&trend, "last").await.parse::<f64>().unwrap(),
            num(&points.last().unwrap()["budget_remaining"]),
            "{name} trend"
        );
    }
    for (status, _) in STATUS_TEXT {
        let tile = find(&view, &format!(r#"[data-testid="count-{status}"]"#)).await;
        let n = statuses.get(status).copied().unwrap_or(0);
        assert_eq!(data(&tile, "value").await, n.to_string(), "{status} tile");
        assert_eq!(text(&tile).await, n.to_string(), "{status} tile");
    }
    // The data set gives every status.
    assert_eq!(
        statuses.keys().map(String::as_str).collect::<Vec<_>>(),
        ["critical", "no_data", "ok", "warning"],
        "{slos:?}"
    );
    assert_same_origin(c, server, "executive").await;
    assert_no_errors(c, "executive", &[]).await;
    screenshot(c, "executive").await;

    // Click through to the SLO that pages.
    let row = view
        .find(Locator::Css(r#"tr[data-slo="search-availability"]"#))
        .await
        .unwrap();
    find(&row, r#"[data-testid="slo-link"]"#).await.click().await.unwrap();
    wait_view(c, "slo").await;
    assert_eq!(
        c.current_url().await.unwrap().fragment(),
        Some("/slo/search-availability")
    );
}

/// The SLO detail against `GET /api/v1/slos/{name}` and its series.
async fn detail(c: &Client, server: &Server) {
    let view = wait_view(c, "slo").await;
    let name = "search-availability";
    let s = api(server, &format!("/api/v1/slos/{name}"));
    let series = api(server, &format!("/api/v1/slos/{name}/series?range=6h&step=5m"));
    assert_figure(&view, "slo-title", &s["name"], name, name).await;
    assert_figure(
        &view,
        "status",
        &s["status"],
        status_text(s["status"].as_str().unwrap()),
        name,
    )
    .await;
    assert_figure(&view, "journey", &s["journey"], "search", name).await;
    assert_figure(&view, "objective", &s["objective"], &objective(&s["objective"]), name).await;
    assert_figure(&view, "sli", &s["sli_ratio"], &sli(&s["sli_ratio"]), name).await;
    assert_figure(
        &view,
        "budget-remaining",
        &s["budget_remaining"],
        &ratio(&s["budget_remaining"]),
        name,
    )
    .await;
    assert_figure(
        &view,
        "budget-consumed",
        &s["budget_consumed"],
        &ratio(&s["budget_consumed"]),
        name,
    )
    .await;
    assert_figure(
        &view,
        "current-burn",
        &s["current_burn_rate"],
        &burn(&s["current_burn_rate"]),
        name,
    )
    .await;
    assert_figure(
        &view,
        "exhaustion",
        &s["exhaustion_seconds"],
        &exhaustion(&s["exhaustion_seconds"]),
        name,
    )
    .await;
    assert_figure(
        &view,
        "events",
        &s["period"]["events"],
        &count(&s["period"]["events"]),
        name,
    )
    .await;
    assert_figure(
        &view,
        "bad-events",
        &s["period"]["bad_events"],
        &count(&s["period"]["bad_events"]),
        name,
    )
    .await;
    for p in ["p50", "p95", "p99"] {
        let v = &s["latency"][format!("{p}_seconds")];
        assert!(v.is_number(), "{name} has latency: {s}");
        assert_figure(&view, p, v, &latency(v), name).await;
    }

    // The per-rule table.
    let rules = s["burn_rates"].as_array().unwrap();
    let rows = view
        .find_all(Locator::Css(r#"tr[data-testid="rule-row"]"#))
        .await
        .unwrap();
    assert_eq!(rows.len(), rules.len());
    assert!(rules.iter().any(|r| r["firing"] == true), "the page rule fires: {s}");
    for (row, r) in rows.iter().zip(rules) {
        let what = format!("{name} rule {}", r["long_window"]);
        assert_figure(
            row,
            "long-window",
            &r["long_window_seconds"],
            r["long_window"].as_str().unwrap(),
            &what,
        )
        .await;
        assert_figure(
            row,
            "short-window",
            &r["short_window_seconds"],
            r["short_window"].as_str().unwrap(),
            &what,
        )
        .await;
        assert_figure(row, "factor", &r["factor"], &factor(&r["factor"]), &what).await;
        assert_figure(
            row,
            "long-burn",
            &r["long_burn_rate"],
            &burn(&r["long_burn_rate"]),
            &what,
        )
        .await;
        assert_figure(
            row,
            "short-burn",
            &r["short_burn_rate"],
            &burn(&r["short_burn_rate"]),
            &what,
        )
        .await;
        let firing = if r["firing"] == true { "Firing" } else { "No" };
        assert_figure(row, "firing", &r["firing"], firing, &what).await;
    }

    // The charts end where the series ends: each rule's two windows against its factor, the
    // budget burndown, the percentiles.
    let points = series["points"].as_array().unwrap();
    let last = |f: &dyn Fn(&Value) -> Value| points.iter().rev().map(f).find(|v| !v.is_null()).unwrap_or(Value::Null);
    let present = |f: &dyn Fn(&Value) -> Value| points.iter().filter(|p| !f(p).is_null()).count().to_string();
    let check = async |chart: &str, label: &str, f: &dyn Fn(&Value) -> Value| {
        let path = find(
            &view,
            &format!(r#"svg[data-testid="{chart}"] path[data-series="{label}"]"#),
        )
        .await;
        assert_eq!(data(&path, "points").await, present(f), "{chart} {label}: points");
        let want = last(f);
        let got = data(&path, "last").await;
        assert_eq!(got.parse::<f64>().unwrap(), num(&want), "{chart} {label}: last value");
    };
    for (i, r) in rules.iter().enumerate() {
        let chart = format!("chart-burn-{i}");
        let threshold = find(&view, &format!(r#"svg[data-testid="{chart}"] [data-threshold]"#)).await;
        assert_eq!(
            data(&threshold, "threshold").await.parse::<f64>().unwrap(),
            num(&r["factor"])
        );
        for key in ["long_window", "short_window"] {
            let w = r[key].as_str().unwrap().to_owned();
            check(&chart, &format!("{w} window"), &|p: &Value| p["burn_rates"][&w].clone()).await;
        }
    }
    check("chart-budget", "budget remaining", &|p: &Value| {
        p["budget_remaining"].clone()
    })
    .await;
    check("chart-latency", "P50", &|p: &Value| p["p50_seconds"].clone()).await;
    check("chart-latency", "P95", &|p: &Value| p["p95_seconds"].clone()).await;
    check("chart-latency", "P99", &|p: &Value| p["p99_seconds"].clone()).await;

    assert_same_origin(c, server, "slo").await;
    assert_no_errors(c, "slo", &[]).await;
    screenshot(c, "slo").await;
}

/// The firing alerts against `GET /api/v1/alerts`; a silence created from the page (through
/// the token prompt) and expired again, each checked through `GET /api/v1/silences`.
async fn oncall(c: &Client, server: &Server) {
    // Through the navigation, as a person would.
    c.find(Locator::Css(r#"nav a[data-nav="oncall"]"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let view = wait_view(c, "oncall").await;
    let alerts = api(server, "/api/v1/alerts");
    let firing: Vec<&Value> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "firing")
        .collect();
    assert!(!firing.is_empty());
    // The data set's mute state (issue 6): search-availability's page inhibits its ticket (the
    // default inhibit rule); nothing else is muted.
    let fp_of = |slo: &str, severity: &str| {
        firing
            .iter()
            .find(|a| a["labels"]["slo"] == slo && a["labels"]["severity"] == severity)
            .unwrap_or_else(|| panic!("no firing {slo} {severity}"))["fingerprint"]
            .clone()
    };
    let search_page = fp_of("search-availability", "page");
    let search_ticket = fp_of("search-availability", "ticket");
    for a in &firing {
        let want = if a["fingerprint"] == search_ticket {
            json!({"by": "inhibition", "source": search_page})
        } else {
            Value::Null
        };
        assert_eq!(a["muted"], want, "muted of {}", a["fingerprint"]);
    }
    let shown = find(&view, r#"[data-testid="firing-count"]"#).await;
    assert_eq!(data(&shown, "value").await, firing.len().to_string());
    let cards = view
        .find_all(Locator::Css(r#"article[data-testid="alert"]"#))
        .await
        .unwrap();
    assert_eq!(cards.len(), firing.len());
    for a in &firing {
        let fp = a["fingerprint"].as_str().unwrap();
        let card = find(&view, &format!(r#"article[data-fingerprint="{fp}"]"#)).await;
        let d = &a["detail"];
        let what = format!("alert {}", a["labels"]["alertname"]);
        assert_figure(
            &card,
            "alert-severity",
            &d["severity"],
            if d["severity"] == "page" { "Page" } else { "Ticket" },
            &what,
        )
        .await;
        assert_figure(
            &card,
            "alert-since",
            &a["starts_at"],
            &instant(a["starts_at"].as_str().unwrap()),
            &what,
        )
        .await;
        assert_figure(&card, "alert-factor", &d["factor"], &factor(&d["factor"]), &what).await;
        assert_figure(&card, "burn-long", &d["burn_long"], &burn(&d["burn_long"]), &what).await;
        assert_figure(&card, "burn-short", &d["burn_short"], &burn(&d["burn_short"]), &what).await;
        assert_figure(
            &card,
            "alert-budget-remaining",
            &d["budget_remaining"],
            &ratio(&d["budget_remaining"]),
            &what,
        )
        .await;
        let tte = &d["time_to_exhaustion_seconds"];
        assert_figure(&card, "alert-exhaustion", tte, &exhaustion(tte), &what).await;
        assert_muted(&card, a, &alerts, &what).await;

        let exemplars = d["exemplars"].as_array().unwrap();
        let items = card
            .find_all(Locator::Css(r#"tr[data-testid="exemplar"]"#))
            .await
            .unwrap();
        assert_eq!(items.len(), exemplars.len(), "{what} exemplars");
        for (li, x) in items.iter().zip(exemplars) {
            let id = x["trace_id"].as_str().unwrap();
            assert_eq!(data(li, "value").await, id);
            let link = find(li, "a").await;
            assert_eq!(link.attr("href").await.unwrap().as_deref(), x["url"].as_str(), "{what}");
            assert_eq!(text(&link).await, id);
            let l = &x["latency_seconds"];
            assert_figure(li, "exemplar-latency", l, &latency(l), &what).await;
            let at = x["at"].as_str().unwrap();
            assert_figure(li, "exemplar-at", &x["at"], &instant(at)[11..19], &what).await;
        }
        let contributors = d["contributors"].as_array().unwrap();
        let rows = card
            .find_all(Locator::Css(r#"tr[data-testid="contributor"]"#))
            .await
            .unwrap();
        assert_eq!(rows.len(), contributors.len(), "{what} contributors");
        for (row, x) in rows.iter().zip(contributors) {
            assert_eq!(data(row, "service").await, x["service"].as_str().unwrap());
            assert_eq!(data(row, "operation").await, x["operation"].as_str().unwrap());
            assert_figure(row, "share", &x["share"], &ratio(&x["share"]), &what).await;
            assert_figure(
                row,
                "contributor-bad-events",
                &x["bad_events"],
                &count(&x["bad_events"]),
                &what,
            )
            .await;
        }
    }
    assert_same_origin(c, server, "oncall").await;
    assert_no_errors(c, "oncall", &[]).await;
    trace_health_panel(c, server).await;

    // Silence the page from its card.
    let page = firing.iter().find(|a| a["labels"]["severity"] == "page").unwrap();
    let fp = page["fingerprint"].as_str().unwrap();
    let card = find(&view, &format!(r#"article[data-fingerprint="{fp}"]"#)).await;
    find(&card, r#"[data-testid="silence-button"]"#)
        .await
        .click()
        .await
        .unwrap();
    let form = find(&card, r#"form[data-testid="silence-form"]"#).await;
    let want_matchers: Vec<String> = page["labels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {}", serde_json::to_string(v).unwrap()))
        .collect();
    let matchers = find(&form, r#"[name="matchers"]"#).await;
    assert_eq!(
        matchers.prop("value").await.unwrap().unwrap(),
        want_matchers.join("\n"),
        "prefilled from the labels"
    );
    let duration = find(&form, r#"[name="duration"]"#).await;
    duration.clear().await.unwrap();
    duration.send_keys("90m").await.unwrap();
    find(&form, r#"[name="created_by"]"#)
        .await
        .send_keys("dash-e2e")
        .await
        .unwrap();
    find(&form, r#"[name="comment"]"#)
        .await
        .send_keys("browser test: known incident")
        .await
        .unwrap();
    screenshot(c, "oncall-silence-form").await;
    find(&form, r#"[data-testid="silence-submit"]"#)
        .await
        .click()
        .await
        .unwrap();

    // No token yet: the server answers 401, the page asks for the token and keeps the form.
    let token_form = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(r#"#auth [data-testid="token-form"]"#))
        .await
        .expect("the token prompt after a 401");
    let message = find(&form, r#"[data-testid="silence-message"]"#).await;
    assert_eq!(
        text(&message).await,
        "This server needs an API token: enter it above, then create the silence again."
    );
    assert_eq!(
        api(server, "/api/v1/silences")["silences"],
        json!([]),
        "nothing created without the token"
    );
    find(&token_form, r#"[data-testid="token-input"]"#)
        .await
        .send_keys(TOKEN)
        .await
        .unwrap();
    find(&token_form, r#"button[type="submit"]"#)
        .await
        .click()
        .await
        .unwrap();
    let stored = c
        .execute(r#"return sessionStorage.getItem("tracebudget.token");"#, vec![])
        .await
        .unwrap();
    assert_eq!(stored, json!(TOKEN));
    find(&form, r#"[data-testid="silence-submit"]"#)
        .await
        .click()
        .await
        .unwrap();

    // Created: the list shows it, and so does the API.
    let row = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(
            r#"#view[data-state="ready"] tr[data-testid="silence-row"][data-state="active"]"#,
        ))
        .await
        .expect("the new silence in the list");
    let id = data(&row, "id").await;
    let silences = api(server, "/api/v1/silences");
    let listed = silences["silences"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{silences}");
    let s = &listed[0];
    assert_eq!(s["id"], json!(id));
    assert_eq!(s["matchers"], json!(want_matchers));
    assert_eq!(s["created_by"], "dash-e2e");
    assert_eq!(s["comment"], "browser test: known incident");
    assert_eq!(s["state"], "active");
    let at = |k: &str| epoch_millis(s[k].as_str().unwrap());
    assert_eq!(at("ends_at") - at("starts_at"), 90 * 60 * 1000, "{s}");
    assert_figure(&row, "silence-author", &s["created_by"], "dash-e2e", "silence").await;
    assert_figure(
        &row,
        "silence-ends",
        &s["ends_at"],
        &instant(s["ends_at"].as_str().unwrap()),
        "silence",
    )
    .await;
    // The page is silenced now, by this silence: its card says so, as the API does.
    let alerts = api(server, "/api/v1/alerts");
    let page_now = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["fingerprint"] == json!(fp))
        .unwrap();
    assert_eq!(page_now["muted"], json!({"by": "silence", "silences": [id]}));
    let view = wait_view(c, "oncall").await;
    for a in alerts["alerts"].as_array().unwrap() {
        let card = find(
            &view,
            &format!(r#"article[data-fingerprint="{}"]"#, a["fingerprint"].as_str().unwrap()),
        )
        .await;
        assert_muted(&card, a, &alerts, "after the silence").await;
    }
    // The only SEVERE console entry: the refused POST (which also shows the log is read).
    assert_no_errors(
        c,
        "oncall",
        &["/api/v1/silences - Failed to load resource: the server responded with a status of 401"],
    )
    .await;
    screenshot(c, "oncall").await;

    // Expire it from the list.
    find(&row, r#"[data-testid="expire-button"]"#)
        .await
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!(
            r#"#view[data-state="ready"] tr[data-testid="silence-row"][data-id="{id}"][data-state="expired"]"#
        )))
        .await
        .expect("the silence expired in the list");
    assert_eq!(api(server, "/api/v1/silences")["silences"][0]["state"], "expired");
    // Expired: the page is no longer muted, on the card as in the API.
    let alerts = api(server, "/api/v1/alerts");
    let view = wait_view(c, "oncall").await;
    for a in alerts["alerts"].as_array().unwrap() {
        let card = find(
            &view,
            &format!(r#"article[data-fingerprint="{}"]"#, a["fingerprint"].as_str().unwrap()),
        )
        .await;
        assert_muted(&card, a, &alerts, "after the expiry").await;
    }
    assert_eq!(
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| !a["muted"].is_null())
            .count(),
        1,
        "only the inhibited ticket"
    );
    assert_no_errors(c, "oncall", &[]).await;
}

/// An alert card's mute badge against the API's `muted` (issue 6): none when `null`; else its
/// One figure of the Trace health panel: (row, key, testid, raw, text), in page order. The row
/// is the journey, the service, `from>to>kind` of a boundary or skew row, or "" for a tile.
type HealthFigure = (String, String, String, Value, String);

/// The Trace health panel (issue 10) against `GET /api/v1/health/traces`: every figure's raw
/// value and text, in order. Volume buckets move with the clock, so a mismatch re-renders (the
/// header's Refresh) and compares with a fresh reply, three times at most.
async fn trace_health_panel(c: &Client, server: &Server) {
    const COLLECT: &str = r#"
        const panel = document.querySelector('[data-testid="trace-health"]');
        return [...panel.querySelectorAll("[data-value]")].map((e) => {
          const row = e.closest("tr");
          const d = row ? row.dataset : {};
          const key = d.journey ?? d.service ?? (d.from !== undefined ? `${d.from}>${d.to}>${d.kind ?? ""}` : "");
          return [key, e.closest("li")?.dataset.key ?? "", e.dataset.testid, e.dataset.value, e.textContent.trim()];
        });
    "#;
    for attempt in 1.. {
        wait_view(c, "oncall").await;
        let h = api(server, "/api/v1/health/traces");
        let shown = c.execute(COLLECT, vec![]).await.unwrap();
        let shown: Vec<(String, String, String, String, String)> = serde_json::from_value(shown).unwrap();
        let want = health_expected(&h);
        let raw_text = |v: &Value| match v {
            Value::Null => "null".to_owned(),
            other => other.to_string().trim_matches('"').to_owned(),
        };
        let same = shown.len() == want.len()
            && shown.iter().zip(&want).all(|(s, w)| {
                let raw = match &w.3 {
                    Value::Number(n) => s.3.parse::<f64>().ok() == n.as_f64(),
                    other => s.3 == raw_text(other),
                };
                (&s.0, &s.1, &s.2, &s.4) == (&w.0, &w.1, &w.2, &w.4) && raw
            });
        if same {
            assert!(num(&h["traces"]) > 0.0, "the panel shows closed traces: {h}");
            break;
        }
        assert!(
            attempt < 3,
            "the Trace health panel differs from the API:\nshown {shown:#?}\nwant {want:#?}"
        );
        c.find(Locator::Css("#refresh")).await.unwrap().click().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    screenshot(c, "oncall-trace-health").await;
}

/// What the Trace health panel must show for `h`, by the display rules of `format.js`.
fn health_expected(h: &Value) -> Vec<HealthFigure> {
    let fig = |row: &str, key: &str, testid: &str, raw: &Value, text: String| {
        (row.to_owned(), key.to_owned(), testid.to_owned(), raw.clone(), text)
    };
    let opt_ratio = |v: &Value| if v.is_null() { "no data".to_owned() } else { ratio(v) };
    let services = h["services"].as_array().unwrap();
    let drops = services.iter().filter(|s| s["volume"]["drop"] == true).count();
    let mut out = vec![
        fig("", "", "health-total-traces", &h["traces"], count(&h["traces"])),
        fig(
            "",
            "",
            "health-total-fragmentation",
            &h["fragmentation_ratio"],
            opt_ratio(&h["fragmentation_ratio"]),
        ),
        fig("", "", "health-total-skewed", &h["skewed"], count(&h["skewed"])),
        fig("", "", "health-drops", &json!(drops), count(&json!(drops))),
    ];
    for j in h["journeys"].as_array().unwrap() {
        let name = j["journey"].as_str().unwrap();
        out.push(fig(name, "", "health-traces", &j["traces"], count(&j["traces"])));
        out.push(fig(
            name,
            "",
            "health-fragmented",
            &j["fragmented"],
            count(&j["fragmented"]),
        ));
        let r = &j["fragmentation_ratio"];
        out.push(fig(name, "", "health-fragmentation", r, opt_ratio(r)));
        out.push(fig(name, "", "health-skewed", &j["skewed"], count(&j["skewed"])));
    }
    for s in services {
        let name = s["service"].as_str().unwrap();
        let v = &s["volume"];
        out.push(fig(name, "", "health-spans", &s["spans"], count(&s["spans"])));
        out.push(fig(name, "", "health-volume-newest", &v["newest"], count(&v["newest"])));
        let baseline = to_fixed(num(&v["baseline"]), 1);
        out.push(fig(name, "", "health-volume-baseline", &v["baseline"], baseline));
        let drop = if v["drop"] == true { "✖ Drop" } else { "✓ Steady" };
        out.push(fig(name, "", "health-volume-drop", &v["drop"], drop.to_owned()));
        let p50 = &s["export_lag"]["p50_seconds"];
        let p99 = &s["export_lag"]["p99_seconds"];
        out.push(fig(name, "", "health-lag-p50", p50, latency(p50)));
        out.push(fig(name, "", "health-lag-p99", p99, latency(p99)));
        let r = &s["fragmentation_ratio"];
        out.push(fig(name, "", "health-service-fragmentation", r, opt_ratio(r)));
        for k in s["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["over_limit"] == true)
        {
            let key = k["key"].as_str().unwrap();
            out.push(fig(
                name,
                key,
                "health-key-estimate",
                &k["estimate"],
                count(&k["estimate"]),
            ));
        }
    }
    for b in h["lost_context"].as_array().unwrap() {
        let row = format!(
            "{}>{}>",
            b["parent_service"].as_str().unwrap(),
            b["child_service"].as_str().unwrap()
        );
        out.push(fig(&row, "", "health-lost-traces", &b["traces"], count(&b["traces"])));
    }
    for k in h["clock_skew"].as_array().unwrap() {
        let row = format!(
            "{}>{}>{}",
            k["parent_service"].as_str().unwrap(),
            k["child_service"].as_str().unwrap(),
            k["kind"].as_str().unwrap()
        );
        out.push(fig(&row, "", "health-skew-spans", &k["spans"], count(&k["spans"])));
    }
    out
}

/// raw JSON in `data-value`, and "Silenced (id …)" or "Inhibited by <slo> <severity>" of the
/// inhibiting alert.
async fn assert_muted(card: &Element, alert: &Value, alerts: &Value, what: &str) {
    let badges = card
        .find_all(Locator::Css(r#"[data-testid="alert-muted"]"#))
        .await
        .unwrap();
    let muted = &alert["muted"];
    if muted.is_null() {
        assert!(
            badges.is_empty(),
            "{what}: a mute badge on an alert the API does not mute"
        );
        return;
    }
    assert_eq!(badges.len(), 1, "{what}: {muted}");
    let raw: Value = serde_json::from_str(&data(&badges[0], "value").await).unwrap();
    assert_eq!(&raw, muted, "{what}: raw");
    let want = match muted["by"].as_str().unwrap() {
        "silence" => format!(
            "Silenced (id {})",
            muted["silences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "inhibition" => {
            let source = alerts["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["fingerprint"] == muted["source"])
                .unwrap_or_else(|| panic!("{what}: the inhibiting alert {} is not listed", muted["source"]));
            format!(
                "Inhibited by {} {}",
                source["detail"]["slo"].as_str().unwrap(),
                source["detail"]["severity"].as_str().unwrap()
            )
        }
        other => panic!("{what}: unknown muted.by {other:?}"),
    };
    assert_eq!(text(&badges[0]).await, want, "{what}: text");
}

/// "YYYY-MM-DD HH:MM:SS UTC" of an RFC 3339 instant in UTC (`…Z`), as format.js writes it.
fn instant(rfc3339: &str) -> String {
    assert!(rfc3339.ends_with('Z'), "{rfc3339}");
    format!("{} {} UTC", &rfc3339[..10], &rfc3339[11..19])
}

/// Milliseconds since the epoch of an RFC 3339 UTC instant with millisecond precision
/// (`2026-01-02T03:04:05.678Z`), by the civil-from-days algorithm.
fn epoch_millis(t: &str) -> i64 {
    let n = |a: usize, b: usize| t[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (hh, mm, ss) = (n(11, 13), n(14, 16), n(17, 19));
    let ms = if t.as_bytes()[19] == b'.' { n(20, 23) } else { 0 };
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + hh * 3_600 + mm * 60 + ss) * 1_000) + ms
}
