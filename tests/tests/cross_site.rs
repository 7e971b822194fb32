//! Issue 18: with the example config (no `api_token`, the API on loopback), a page of another
//! site open in a real Chromium cannot write to the API — neither with `fetch` (`text/plain`
//! without a preflight, JSON, DELETE) nor with an HTML form (`text/plain` shaped as JSON, and
//! urlencoded) — and a page whose name resolves to the server (DNS rebinding, made with
//! Chromium's `--host-resolver-rules`) reads nothing. The dashboards' own same-origin writes and
//! `tracebudget silence` keep working. Every refusal is counted by reason in `/metrics`.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use fantoccini::Client;
use serde_json::{Value, json};
use tracebudget_tests::{Server, TempDir, example_config, free_addrs, run};

use crate::dashboards::{Driver, browser_with};

/// The name the hostile pages are served under; Chromium resolves it to 127.0.0.1.
const EVIL: &str = "evil.test";

/// Serves `page` to every request on a free loopback port, from a thread of its own.
fn serve_page(page: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page server");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let mut first = String::new();
            // The request head; the page asks for nothing with a body.
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if first.is_empty() {
                    first = line.clone();
                }
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            let (status, body) = if first.starts_with("GET / ") {
                ("200 OK", page.as_str())
            } else {
                ("404 Not Found", "")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// The hostile page: `attack()` tries every write against `api` and reports what the browser
/// let it see of each.
fn attack_page(api: &str, silence_id: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>another site</title></head>
<body>
<iframe name="sink" id="sink"></iframe>
<form id="silence" method="post" action="{api}/api/v1/silences" enctype="text/plain" target="sink">
<input type="hidden" name='{{"matchers": ["slo =~ .*"], "duration": "8760h", "created_by": "evil", "comment": "x' value='"}}'>
</form>
<form id="reload" method="post" action="{api}/api/v1/config/reload" target="sink">
<input type="hidden" name="a" value="b">
</form>
<script>
const API = "{api}";
const MUTE = JSON.stringify({{matchers: ["slo =~ .*"], duration: "8760h", created_by: "evil", comment: "muted"}});
async function attempt(path, init) {{
  try {{
    const r = await fetch(API + path, init);
    return "status " + r.status;
  }} catch (e) {{
    return "failed: " + e.name;
  }}
}}
function submit(id) {{
  return new Promise(resolve => {{
    document.getElementById("sink").addEventListener("load", () => resolve("loaded"), {{once: true}});
    document.getElementById(id).submit();
  }});
}}
window.attack = async function () {{
  const r = {{}};
  r.fetch_text_plain = await attempt("/api/v1/silences",
    {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body: MUTE}});
  r.fetch_json = await attempt("/api/v1/silences",
    {{method: "POST", headers: {{"Content-Type": "application/json"}}, body: MUTE}});
  r.fetch_reload = await attempt("/api/v1/config/reload", {{method: "POST", mode: "no-cors"}});
  r.fetch_expire = await attempt("/api/v1/silences/{silence_id}", {{method: "DELETE"}});
  r.fetch_read = await attempt("/api/v1/config", {{}});
  r.form_silence = await submit("silence");
  r.form_reload = await submit("reload");
  return r;
}};
</script>
</body></html>"#
    )
}

/// Runs `script` (an async function body) in the current page and returns what it returns.
async fn run_async(c: &Client, script: &str) -> Value {
    let wrapped = format!(
        "const done = arguments[arguments.length - 1]; (async () => {{ {script} }})().then(done, e => done('thrown: ' + e));"
    );
    c.execute_async(&wrapped, vec![])
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

fn silences(server: &Server) -> Vec<Value> {
    let r = server.get("/api/v1/silences").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    v["silences"].as_array().unwrap().clone()
}

/// `tracebudget_api_requests_refused_total` of every reason, and the reloads of every outcome.
fn counters(server: &mut Server) -> (Vec<(String, f64)>, f64) {
    let m = server.metrics();
    let refused = [
        "content_type",
        "host",
        "origin",
        "silence_limit",
        "unauthorized",
        "writes_disabled",
    ]
    .iter()
    .map(|r| {
        let n = m
            .get("tracebudget_api_requests_refused_total", &[("reason", r)])
            .unwrap_or_else(|| panic!("no refused series for {r}"));
        ((*r).to_owned(), n)
    })
    .collect();
    (refused, m.sum("tracebudget_config_reloads_total", &[]))
}

fn refused(nonzero: &[(&str, f64)]) -> Vec<(String, f64)> {
    [
        "content_type",
        "host",
        "origin",
        "silence_limit",
        "unauthorized",
        "writes_disabled",
    ]
    .iter()
    .map(|r| {
        let n = nonzero.iter().find(|(x, _)| x == r).map_or(0.0, |(_, n)| *n);
        ((*r).to_owned(), n)
    })
    .collect()
}

fn cli(base: &str, args: &[&str]) -> String {
    let mut all = vec!["silence", "--url", base];
    all.extend_from_slice(args);
    let out = run(&all);
    assert!(
        out.status.success(),
        "tracebudget {all:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_page_of_another_site_cannot_write_or_read_through_the_browser() {
    let dir = TempDir::new("cross-site");
    let ports = free_addrs(4);
    let config = example_config(&dir, ports[0], ports[1], ports[2], ports[3]);
    let mut server = Server::start(&config, ports[0]);
    let api = ports[0];
    let base = format!("http://{api}");

    // A silence of our own, created and listed with the CLI (no Origin, JSON).
    let id = cli(
        &base,
        &[
            "add",
            "slo = checkout-latency",
            "--duration",
            "2h",
            "--comment",
            "failover drill",
            "--author",
            "ana",
        ],
    )
    .trim()
    .to_owned();
    assert_eq!(id.len(), 32, "{id}");
    assert!(cli(&base, &["list"]).contains(&id));
    let before = silences(&server);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0]["state"], "active");

    let page = serve_page(attack_page(&base, &id));
    let driver = Driver::start(&dir);
    let rules = format!("--host-resolver-rules=MAP {EVIL} 127.0.0.1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = rt.block_on(browser_with(
        &driver,
        &[
            &rules,
            "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable",
        ],
    ));

    // 1. The page of another site tries every write.
    let results = rt.block_on(async {
        c.goto(&format!("http://{EVIL}:{}/", page.port())).await.unwrap();
        run_async(&c, "return await window.attack();").await
    });
    assert_eq!(
        results,
        json!({
            // Sent (a simple request): the browser shows an opaque answer whatever it was.
            "fetch_text_plain": "status 0",
            "fetch_reload": "status 0",
            // Preflighted: the OPTIONS is refused, the request never sent.
            "fetch_json": "failed: TypeError",
            "fetch_expire": "failed: TypeError",
            // A cross-origin read: no CORS header, nothing to read.
            "fetch_read": "failed: TypeError",
            "form_silence": "loaded",
            "form_reload": "loaded",
        })
    );
    assert_eq!(silences(&server), before, "nothing created or expired");
    // Four writes and two preflights, each refused for its Origin; no reload ran.
    assert_eq!(counters(&mut server), (refused(&[("origin", 6.0)]), 0.0));

    // 2. DNS rebinding: a page whose own name resolves to the server reads nothing (403).
    let rebound = format!("http://{EVIL}:{}", api.port());
    let settled = rt.block_on(async {
        c.goto(&format!("{rebound}/")).await.unwrap();
        c.source().await.unwrap()
    });
    let host_error = format!(
        "host \\\"{EVIL}:{}\\\" is not one this server answers to: localhost, an IP address, the host of server.external_url or a name in server.allowed_hosts",
        api.port()
    );
    assert!(settled.contains(&host_error), "{settled}");
    assert!(!settled.contains("<script"), "the dashboards were served: {settled}");
    // The browser may still fetch /favicon.ico: wait until the count stops moving.
    let host_refusals = |server: &mut Server| counters(server).0[1].1;
    let mut last = host_refusals(&mut server);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = host_refusals(&mut server);
        if now == last {
            break;
        }
        assert!(Instant::now() < deadline, "the browser keeps requesting");
        last = now;
    }
    assert_eq!(last, 2.0, "the page and /favicon.ico");
    let reads = rt.block_on(run_async(
        &c,
        r#"const out = [];
        for (const path of ["/api/v1/config", "/api/v1/slos", "/metrics"]) {
          const r = await fetch(path);
          out.push([path, r.status, await r.text()]);
        }
        return out;"#,
    ));
    let error = json!({ "error": host_error.replace("\\\"", "\"") }).to_string();
    assert_eq!(
        reads,
        json!([
            ["/api/v1/config", 403, error],
            ["/api/v1/slos", 403, error],
            ["/metrics", 403, error],
        ])
    );
    assert_eq!(
        counters(&mut server),
        (refused(&[("origin", 6.0), ("host", last + 3.0)]), 0.0)
    );

    // 3. The dashboards' own writes (same origin, JSON, as dashboards/web/app.js sends them)
    // still go through, under either name of the server.
    for origin in [base.clone(), format!("http://localhost:{}", api.port())] {
        let done = rt.block_on(async {
            c.goto(&format!("{origin}/")).await.unwrap();
            run_async(
                &c,
                r#"const headers = {Accept: "application/json", "Content-Type": "application/json"};
                const body = JSON.stringify({matchers: ["slo = search-availability"], duration: "1h",
                  created_by: "dashboards", comment: "same origin"});
                const created = await fetch("/api/v1/silences", {method: "POST", headers, body, cache: "no-store"});
                const silence = await created.json();
                const expired = await fetch("/api/v1/silences/" + silence.id,
                  {method: "DELETE", headers: {Accept: "application/json"}, cache: "no-store"});
                const reload = await fetch("/api/v1/config/reload", {method: "POST", headers: {Accept: "application/json"}});
                return [created.status, expired.status, reload.status, (await reload.json()).changed];"#,
            )
            .await
        });
        assert_eq!(done, json!([201, 200, 200, false]), "{origin}");
    }
    let _ = rt.block_on(c.close());
    let after = silences(&server);
    assert_eq!(after.len(), 3);
    assert_eq!(after.iter().filter(|s| s["state"] == "active").count(), 1, "{after:?}");
    assert_eq!(
        counters(&mut server),
        (refused(&[("origin", 6.0), ("host", last + 3.0)]), 2.0)
    );

    // 4. The CLI ends our silence.
    assert_eq!(cli(&base, &["expire", &id]).trim(), format!("expired {id}"));
    assert!(silences(&server).iter().all(|s| s["state"] == "expired"));
    server.assert_running();
}
