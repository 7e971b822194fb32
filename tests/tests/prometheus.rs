//! A real Prometheus (Debian's `prometheus`, a process this test starts) scrapes the real
//! binary's /metrics every second (issue #6), with the bearer token `protect_reads` asks for:
//! the target is up without a scrape error, and a PromQL query returns the example config's
//! objectives exactly.

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracebudget_tests::{Json, Server, TempDir, example_config_with, free_addrs, http_get, repo_root};

/// The Prometheus binary: `TRACEBUDGET_PROMETHEUS`, else `prometheus` on the PATH. Missing, it
/// fails under `CI=true` (the test command installs it); on a developer's machine it runs
/// `.ci/setup-prometheus.sh`, and fails if that cannot install it. Never a skip.
fn binary() -> String {
    let runs = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if let Ok(bin) = std::env::var("TRACEBUDGET_PROMETHEUS") {
        assert!(
            runs(&bin),
            "TRACEBUDGET_PROMETHEUS={bin:?} does not run (--version failed)"
        );
        return bin;
    }
    if runs("prometheus") {
        return "prometheus".to_owned();
    }
    let script = repo_root().join(".ci/setup-prometheus.sh");
    let msg = format!(
        "this test needs a real Prometheus: none on the PATH and TRACEBUDGET_PROMETHEUS unset; run `bash {}` (installs Debian's prometheus) or point TRACEBUDGET_PROMETHEUS at a binary",
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

/// A running Prometheus with its TSDB in a temporary directory; killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &TempDir, config: &Path, addr: SocketAddr) -> Prometheus {
        let log = dir.path().join("prometheus.log");
        let out = File::create(&log).expect("create the prometheus log");
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, addr, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` on Prometheus' API, parsed; `None` while it is not answering.
    fn api(&mut self, path: &str) -> Option<Json> {
        if let Some(status) = self.child.try_wait().expect("poll prometheus") {
            panic!("prometheus exited: {status}\n{}", self.output());
        }
        let r = http_get(self.addr, path, Duration::from_secs(5)).ok()?;
        (r.status == 200).then(|| Json::parse(&r.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", r.body)))
    }

    /// Polls `path` until `done` holds (up to `within`); returns the last answer.
    fn wait(&mut self, path: &str, within: Duration, done: impl Fn(&Json) -> bool) -> Json {
        let deadline = Instant::now() + within;
        loop {
            let got = self.api(path);
            match got {
                Some(j) if done(&j) => return j,
                Some(j) if Instant::now() >= deadline => return j,
                None if Instant::now() >= deadline => {
                    panic!("prometheus never answered {path}\n{}", self.output())
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

fn targets_up(j: &Json) -> bool {
    let targets = j.at(&["data", "activeTargets"]).and_then(Json::as_array).unwrap_or(&[]);
    !targets.is_empty()
        && targets.iter().all(|t| {
            t.get("health").and_then(Json::as_str) == Some("up")
                && t.get("lastError").and_then(Json::as_str) == Some("")
        })
}

#[test]
fn prometheus_scrapes_metrics_and_reads_the_objectives() {
    let dir = TempDir::new("prometheus");
    let [api, grpc, http, zipkin, prom] = free_addrs(5)[..] else {
        unreachable!()
    };
    let db = format!("sqlite://{}", dir.path().join("tracebudget.db").display());
    let config = example_config_with(
        &dir,
        [api, grpc, http, zipkin],
        &db,
        &[(
            "# api_token = \"…\"",
            "api_token = \"prom-scrape-token\"\nprotect_reads = true\n#",
        )],
    );
    let mut server = Server::start(&config, api);
    let denied = server.get("/metrics").unwrap();
    assert_eq!(denied.status, 401, "protect_reads guards /metrics: {}", denied.body);
    let scrape = dir.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: tracebudget\n    metrics_path: /metrics\n    \
             authorization:\n      credentials: prom-scrape-token\n    \
             static_configs:\n      - targets: ['{api}']\n"
        ),
    );
    let mut prometheus = Prometheus::start(&dir, &scrape, prom);

    let targets = prometheus.wait("/api/v1/targets", Duration::from_secs(60), targets_up);
    assert!(
        targets_up(&targets),
        "the scrape target is not up without error: {targets:?}\n{}",
        server.output_block()
    );

    let query = "/api/v1/query?query=tracebudget_slo_objective_ratio";
    let answer = prometheus.wait(query, Duration::from_secs(30), |j| {
        j.at(&["data", "result"])
            .and_then(Json::as_array)
            .is_some_and(|r| r.len() == 7)
    });
    assert_eq!(
        answer.get("status").and_then(Json::as_str),
        Some("success"),
        "{answer:?}"
    );
    let mut got: Vec<(String, String, String, String)> = answer
        .at(&["data", "result"])
        .and_then(Json::as_array)
        .expect("a result vector")
        .iter()
        .map(|r| {
            let label = |k: &str| r.at(&["metric", k]).and_then(Json::as_str).unwrap_or("").to_owned();
            let value = r.get("value").and_then(Json::as_array).expect("[time, value]");
            (
                label("slo"),
                label("journey"),
                label("job"),
                value[1].as_str().expect("a value string").to_owned(),
            )
        })
        .collect();
    got.sort();
    let want = [
        ("checkout-availability", "checkout", "0.999"),
        ("checkout-completeness", "checkout", "0.995"),
        ("checkout-latency", "checkout", "0.99"),
        ("login-availability", "login", "0.999"),
        ("login-latency", "login", "0.99"),
        ("search-availability", "search", "0.995"),
        ("search-latency", "search", "0.95"),
    ]
    .map(|(s, j, v)| (s.to_owned(), j.to_owned(), "tracebudget".to_owned(), v.to_owned()));
    assert_eq!(got, want);

    // The scrape itself: Prometheus' own `up` for the target is 1.
    let up = prometheus.wait("/api/v1/query?query=up", Duration::from_secs(10), |_| true);
    let result = up.at(&["data", "result"]).and_then(Json::as_array).expect("up");
    assert_eq!(result.len(), 1, "{up:?}");
    assert_eq!(
        result[0].get("value").and_then(Json::as_array).unwrap()[1].as_str(),
        Some("1")
    );
    server.assert_running();
}
