//! JetStream with exactly-once accounting (issue #7), against private nats-server processes
//! (`TRACEBUDGET_NATS_SERVER`, installed by `.ci/setup-nats.sh`) on SQLite and PostgreSQL:
//! loadgen → `tracebudget publish` → JetStream → `serve`, with `serve` killed with SIGKILL at
//! random moments, and with the nats-server restarted mid-run; the final counts equal loadgen's
//! tally exactly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracebudget_tests::{
    Json, Metrics, PgDatabase, Server, TempDir, example_config_with, free_addr, free_addrs, loadgen, psql, wait_for,
};

const JOURNEYS: [&str; 3] = ["checkout", "search", "login"];

/// The nats-server binary: `TRACEBUDGET_NATS_SERVER`, else Debian's. Missing fails the test.
fn nats_binary() -> PathBuf {
    let path = std::env::var_os("TRACEBUDGET_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"));
    assert!(
        path.exists(),
        "{} is missing: `bash .ci/setup-nats.sh` installs nats-server",
        path.display()
    );
    path
}

/// A private nats-server with JetStream on a free loopback port, its store in a temp dir.
pub(crate) struct Nats {
    child: Option<Child>,
    addr: SocketAddr,
    dir: TempDir,
}

impl Nats {
    pub(crate) fn start() -> Nats {
        let mut n = Nats {
            child: None,
            addr: free_addr(),
            dir: TempDir::new("nats"),
        };
        n.up();
        n
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Starts the server (again: same port, same store) and waits until it takes connections.
    fn up(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("nats.log")).unwrap();
        let child = Command::new(nats_binary())
            .args(["-js", "-a", "127.0.0.1", "-p", &self.addr.port().to_string(), "-sd"])
            .arg(self.dir.path().join("store"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {}", self.addr);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGTERM: it shuts down at once, JetStream's store stays on disk).
    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
            assert!(
                std::net::TcpStream::connect(self.addr).is_err(),
                "nats-server still answers on {}",
                self.addr
            );
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `tracebudget publish` on `config`, answering on `addr`.
pub(crate) struct Publisher(Child);

impl Publisher {
    pub(crate) fn start(config: &Path, addr: SocketAddr) -> Publisher {
        let log = std::fs::File::create(config.with_extension("publish.log")).unwrap();
        let child = Command::new(tracebudget_tests::bin())
            .args(["publish", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start publish");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "publish did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Publisher(child)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The example config with `[jetstream]` on `nats` (4 partitions) and a 1 s flush.
fn config(dir: &TempDir, ports: [SocketAddr; 4], storage: &str, nats: &str) -> PathBuf {
    let path = example_config_with(
        dir,
        ports,
        storage,
        &[("flush_interval = \"5s\"", "flush_interval = \"1s\"")],
    );
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[jetstream]\nurl = \"{nats}\"\npartitions = 4\nbatch = 50\nack_wait = \"10s\"\n"
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// Loadgen through publish, in a thread: `traces` traces at `rate` spans/s.
fn send(config: PathBuf, endpoint: SocketAddr, traces: u32, rate: u32, seed: u32) -> std::thread::JoinHandle<Json> {
    send_as(config, "http", endpoint, traces, rate, seed)
}

fn send_as(
    config: PathBuf,
    protocol: &'static str,
    endpoint: SocketAddr,
    traces: u32,
    rate: u32,
    seed: u32,
) -> std::thread::JoinHandle<Json> {
    std::thread::spawn(move || {
        loadgen(
            &[
                "--config",
                config.to_str().unwrap(),
                "--protocol",
                protocol,
                "--endpoint",
                &format!("http://{endpoint}"),
                "--traces",
                &traces.to_string(),
                "--rate",
                &rate.to_string(),
                "--spans-per-request",
                "64",
                "--error-rate",
                "0.05",
                "--slow-rate",
                "0.04",
                "--incomplete-rate",
                "0.03",
                "--max-retries",
                "50",
                "--seed",
                &seed.to_string(),
            ],
            Duration::from_secs(300),
        )
    })
}

/// Every SLO's totals equal the tally: availability = traces/errors, latency = traces/slow,
/// checkout completeness = traces/incomplete.
fn exact(m: &Metrics, sent: &Json) -> bool {
    exact_sum(m, std::slice::from_ref(sent))
}

/// The same for the sum of several loadgen runs.
fn exact_sum(m: &Metrics, runs: &[Json]) -> bool {
    let get = |name: &str, slo: String, j: &str| m.get(name, &[("slo", &slo), ("journey", j)]).unwrap_or(-1.0);
    let sent = |j: &str, what: &str| runs.iter().map(|r| r.num(&["journeys", j, what])).sum::<f64>();
    JOURNEYS.iter().all(|&j| {
        let traces = sent(j, "traces");
        let mut ok = get("tracebudget_slo_events_total", format!("{j}-availability"), j) == traces
            && get("tracebudget_slo_bad_events_total", format!("{j}-availability"), j) == sent(j, "errors")
            && get("tracebudget_slo_events_total", format!("{j}-latency"), j) == traces
            && get("tracebudget_slo_bad_events_total", format!("{j}-latency"), j) == sent(j, "slow");
        if j == "checkout" {
            ok &= get("tracebudget_slo_events_total", "checkout-completeness".into(), j) == traces
                && get("tracebudget_slo_bad_events_total", "checkout-completeness".into(), j) == sent(j, "incomplete");
        }
        ok
    })
}

fn backends(tag: &str) -> Vec<(String, Option<PgDatabase>, TempDir)> {
    let dir = TempDir::new(tag);
    let sqlite = format!("sqlite://{}", dir.path().join("tracebudget.db").display());
    let pg = PgDatabase::new(tag);
    vec![
        (sqlite, None, dir),
        (pg.url.clone(), Some(pg), TempDir::new(&format!("{tag}-pg"))),
    ]
}

/// Waits for the exact tally, then checks it holds after everything was consumed and acked.
fn assert_exact(server: &mut Server, sent: &Json, what: &str) -> Metrics {
    let m = wait_for(server, Duration::from_secs(120), |m| exact(m, sent));
    assert!(
        exact(&m, sent),
        "{what}: totals differ from loadgen's tally {sent:?}\n{}\n{}",
        m.lines_with_prefix("tracebudget_slo_"),
        m.lines_with_prefix("tracebudget_jetstream_")
    );
    // Nothing more arrives later (no double count once redeliveries come in).
    std::thread::sleep(Duration::from_secs(3));
    let again = server.metrics();
    assert!(
        exact(&again, sent),
        "{what}: {}",
        again.lines_with_prefix("tracebudget_slo_")
    );
    again
}

#[test]
fn kill_9_of_the_consumer_neither_loses_nor_double_counts_on_both_backends() {
    for (url, _db, dir) in backends("js_kill") {
        let nats = Nats::start();
        let ports: [_; 4] = free_addrs(4).try_into().unwrap();
        let serve_config = config(&dir, ports, &url, &nats.url());
        let pub_dir = TempDir::new("js-publish");
        let pub_ports: [_; 4] = free_addrs(4).try_into().unwrap();
        let pub_config = config(&pub_dir, pub_ports, &url, &nats.url());
        let _publisher = Publisher::start(&pub_config, pub_ports[2]);

        // ~12 s of traffic at 16,000 spans/s; serve is killed 6 times meanwhile.
        let sender = send(pub_config.clone(), pub_ports[2], 24_000, 16_000, 71);
        let mut server = Server::start(&serve_config, ports[0]);
        let mut kills = 0;
        let mut rng = 0x9e37_79b9_u64;
        while kills < 6 {
            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let wait = 500 + (rng >> 33) % 1_500;
            std::thread::sleep(Duration::from_millis(wait));
            let status = server.signal_and_wait("KILL", Duration::from_secs(10));
            assert!(!status.success());
            kills += 1;
            server = Server::start(&serve_config, ports[0]);
        }
        let sent = sender.join().unwrap();
        assert_eq!(sent.num(&["failed", "requests"]), 0.0, "{url}: {sent:?}");
        let m = assert_exact(&mut server, &sent, &url);
        // The kills made redeliveries, and every one was skipped.
        let skipped = m.sum(
            "tracebudget_jetstream_messages_total",
            &[("outcome", "skipped_committed")],
        ) + m.sum(
            "tracebudget_jetstream_messages_total",
            &[("outcome", "skipped_redelivered")],
        );
        let ingested = m.sum("tracebudget_jetstream_messages_total", &[("outcome", "ingested")]);
        assert!(ingested > 0.0, "{url}: the last run ingested");
        eprintln!("{url}: last run ingested {ingested} messages, skipped {skipped}");
        assert_eq!(
            m.sum("tracebudget_jetstream_messages_total", &[("outcome", "rejected")]),
            0.0
        );
    }
}

#[test]
fn a_nats_server_restart_mid_run_loses_nothing() {
    let dir = TempDir::new("js-nats-restart");
    let url = format!("sqlite://{}", dir.path().join("tracebudget.db").display());
    let mut nats = Nats::start();
    let ports: [_; 4] = free_addrs(4).try_into().unwrap();
    let serve_config = config(&dir, ports, &url, &nats.url());
    let pub_dir = TempDir::new("js-nats-publish");
    let pub_ports: [_; 4] = free_addrs(4).try_into().unwrap();
    let pub_config = config(&pub_dir, pub_ports, &url, &nats.url());
    let _publisher = Publisher::start(&pub_config, pub_ports[2]);
    let mut server = Server::start(&serve_config, ports[0]);

    let sender = send(pub_config.clone(), pub_ports[2], 12_000, 12_000, 72);
    std::thread::sleep(Duration::from_secs(3));
    nats.down();
    std::thread::sleep(Duration::from_secs(2));
    nats.up();
    let sent = sender.join().unwrap();
    assert_eq!(sent.num(&["failed", "requests"]), 0.0, "{sent:?}");
    // Publish held the requests of the outage until NATS was back (its client reconnects and
    // resends), or answered 503 and loadgen retried: either way nothing failed.
    eprintln!(
        "nats restart: {} retries, {} spans/s",
        sent.num(&["retries"]),
        sent.num(&["spans_per_sec"])
    );
    assert_exact(&mut server, &sent, "nats restart");
}

#[test]
fn publish_takes_otlp_json_and_grpc_and_refuses_like_the_receivers() {
    let dir = TempDir::new("js-publish-formats");
    let url = format!("sqlite://{}", dir.path().join("tracebudget.db").display());
    let nats = Nats::start();
    let ports: [_; 4] = free_addrs(4).try_into().unwrap();
    let serve_config = config(&dir, ports, &url, &nats.url());
    let pub_dir = TempDir::new("js-publish-formats-p");
    let pub_ports: [_; 4] = free_addrs(4).try_into().unwrap();
    let pub_config = config(&pub_dir, pub_ports, &url, &nats.url());
    let _publisher = Publisher::start(&pub_config, pub_ports[2]);
    let mut server = Server::start(&serve_config, ports[0]);

    let json = send_as(pub_config.clone(), "http-json", pub_ports[2], 400, 0, 81)
        .join()
        .unwrap();
    let grpc = send_as(pub_config.clone(), "grpc", pub_ports[1], 400, 0, 82)
        .join()
        .unwrap();
    let m = wait_for(&mut server, Duration::from_secs(60), |m| {
        exact_sum(m, &[json.clone(), grpc.clone()])
    });
    assert!(
        exact_sum(&m, &[json.clone(), grpc.clone()]),
        "{}",
        m.lines_with_prefix("tracebudget_slo_")
    );

    let bad = tracebudget_tests::http_request(
        pub_ports[2],
        "POST",
        "/v1/traces",
        &[],
        Some("{"),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.body,
        r#"{"code":3,"message":"invalid json: EOF while parsing an object at line 1 column 1"}"#
    );
    let text = tracebudget_tests::http_request(
        pub_ports[2],
        "POST",
        "/v1/traces",
        &[("Content-Type", "text/plain")],
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(text.status, 415);
    assert_eq!(
        text.body,
        r#"{"code":3,"message":"unsupported content type \"text/plain\": send application/x-protobuf or application/json"}"#
    );

    let scrape = tracebudget_tests::http_get(pub_ports[0], "/metrics", Duration::from_secs(5)).unwrap();
    let pm = Metrics::parse(&scrape.body).unwrap();
    let requests = |protocol: &str, outcome: &str| {
        pm.get(
            "tracebudget_publish_requests_total",
            &[("protocol", protocol), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(requests("http_json", "ok"), json.num(&["accepted", "requests"]));
    assert_eq!(requests("grpc", "ok"), grpc.num(&["accepted", "requests"]));
    assert_eq!(requests("http_json", "malformed"), 1.0);
    assert_eq!(requests("http_json", "unsupported_media_type"), 1.0);
    assert_eq!(
        pm.sum("tracebudget_publish_spans_total", &[]),
        json.num(&["accepted", "spans"]) + grpc.num(&["accepted", "spans"])
    );
}

#[test]
fn an_instance_whose_partition_was_taken_over_stops_without_storing_and_its_restart_is_exact() {
    let dir = TempDir::new("js-fenced");
    let pg = PgDatabase::new("js_fenced");
    let nats = Nats::start();
    let ports: [_; 4] = free_addrs(4).try_into().unwrap();
    let serve_config = config(&dir, ports, &pg.url, &nats.url());
    let pub_dir = TempDir::new("js-fenced-publish");
    let pub_ports: [_; 4] = free_addrs(4).try_into().unwrap();
    let pub_config = config(&pub_dir, pub_ports, &pg.url, &nats.url());
    let _publisher = Publisher::start(&pub_config, pub_ports[2]);
    let mut server = Server::start(&serve_config, ports[0]);

    let first = send(pub_config.clone(), pub_ports[2], 3_000, 8_000, 81).join().unwrap();
    assert_exact(&mut server, &first, "before the takeover");
    // Another instance claims partition 0 while this one still consumes it (as after this one
    // lost its lock session): the claim names the new owner in the checkpoint row.
    psql(
        &pg.url,
        "UPDATE jetstream_checkpoints SET instance = 'intruder' WHERE part = 0",
    );
    let second = send(pub_config.clone(), pub_ports[2], 2_000, 8_000, 82).join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = server.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve kept running after its partition was taken over"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "{status:?}");
    let log = server.output();
    assert!(
        log.contains("another instance took over a JetStream partition") && log.contains("partition taken over"),
        "{log}"
    );
    // Nothing of the waiting counts was stored: started again, it claims partition 0 back (its
    // lock is free), resumes from the stored positions, and counts everything exactly once.
    let mut server = Server::start(&serve_config, ports[0]);
    let runs = [first, second];
    let m = wait_for(&mut server, Duration::from_secs(120), |m| exact_sum(m, &runs));
    assert!(exact_sum(&m, &runs), "{}", m.lines_with_prefix("tracebudget_slo_"));
    assert_eq!(
        psql(
            &pg.url,
            "SELECT count(*) FROM jetstream_checkpoints WHERE instance <> ''"
        )
        .trim(),
        "0",
        "every partition is this instance's again"
    );
}
