//! `tracebudget demo` (issue #6): the real binary with short incident timings; through its own
//! API a page fires for the journey the incident hits, and later resolves; no other SLO pages;
//! Ctrl-C (SIGINT) stops it cleanly.

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracebudget_tests::{Json, TempDir, bin, free_addrs, http_get};

/// The demo process, killed on drop.
struct Demo {
    child: Child,
    out: std::path::PathBuf,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    fn output(&self) -> String {
        let err = std::fs::read_to_string(self.out.with_extension("err")).unwrap_or_default();
        format!(
            "--- demo stdout ---\n{}--- stderr ---\n{err}--- end ---",
            std::fs::read_to_string(&self.out).unwrap_or_default()
        )
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("poll the demo") {
            panic!("demo exited: {status}\n{}", self.output());
        }
    }
}

/// `(slo, severity, event)` of every alert history event, oldest first.
fn history(api: std::net::SocketAddr) -> Vec<(String, String, String)> {
    let Ok(r) = http_get(api, "/api/v1/alerts/history?since=1h", Duration::from_secs(5)) else {
        return vec![];
    };
    assert_eq!(r.status, 200, "{}", r.body);
    let j = Json::parse(&r.body).expect("history is JSON");
    let mut events: Vec<(String, String, String, String)> = j
        .get("events")
        .and_then(Json::as_array)
        .expect("events")
        .iter()
        .map(|e| {
            let f = |k: &str| e.get(k).and_then(Json::as_str).unwrap_or("").to_owned();
            (f("at"), f("slo"), f("severity"), f("event"))
        })
        .collect();
    events.sort();
    events.into_iter().map(|(_, s, v, e)| (s, v, e)).collect()
}

#[test]
fn demo_pages_on_its_incident_and_resolves_after_it() {
    let dir = TempDir::new("demo");
    let [api, otlp] = free_addrs(2)[..] else { unreachable!() };
    let out = dir.path().join("demo.out");
    let database = dir.path().join("demo.db");
    let child = Command::new(bin())
        .args(["demo", "--listen", &api.to_string(), "--otlp-http", &otlp.to_string()])
        .arg("--database")
        .arg(&database)
        .args([
            "--healthy",
            "10s",
            "--incident-length",
            "20s",
            "--incident-every",
            "30m",
        ])
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(out.with_extension("err")).unwrap())
        .spawn()
        .expect("start the demo");
    let mut demo = Demo { child, out };

    let page = |event: &str| ("checkout-availability".to_owned(), "page".to_owned(), event.to_owned());
    // Fires within seconds of the incident (10 s in), resolves at most a minute and an
    // evaluation after it ends (30 s in): the short window is the current minute's bucket.
    let deadline = Instant::now() + Duration::from_secs(180);
    let events = loop {
        demo.assert_running();
        let events = history(api);
        if events.contains(&page("resolved")) || Instant::now() >= deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let pages: Vec<_> = events.iter().filter(|(_, sev, _)| sev == "page").cloned().collect();
    assert_eq!(
        pages,
        [page("firing"), page("resolved")],
        "one page, for the journey the incident hit, fired and resolved\n{}",
        demo.output()
    );

    // The demo reads the same history every 2 s and prints each transition.
    let told =
        |s: &str| s.contains("page firing checkout-availability") && s.contains("page resolved checkout-availability");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stdout = std::fs::read_to_string(&demo.out).unwrap();
    while !told(&stdout) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        stdout = std::fs::read_to_string(&demo.out).unwrap();
    }
    assert!(stdout.contains(&format!("dashboards  http://{api}/")), "{stdout}");
    assert!(stdout.contains(&database.display().to_string()), "{stdout}");
    assert!(told(&stdout), "the demo tells what happens\n{stdout}");

    // Ctrl-C: the traffic stops, the engine flushes, exit 0.
    let kill = Command::new("kill")
        .args(["-INT", &demo.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = demo.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop on SIGINT\n{}",
            demo.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}\n{}", demo.output());
    let stdout = std::fs::read_to_string(&demo.out).unwrap();
    assert!(stdout.contains("demo stopped"), "{stdout}");
    assert!(database.exists());
}

#[test]
fn demo_refuses_timings_that_never_recover() {
    let out = Command::new(bin())
        .args([
            "demo",
            "--healthy",
            "1m",
            "--incident-length",
            "5m",
            "--incident-every",
            "5m",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: --healthy (1m) + --incident-length (5m) must be shorter than --incident-every (5m), or nothing recovers"
    );
}
