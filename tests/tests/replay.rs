//! `tracebudget replay` and `record` through the real binary (issue #8): the page of a scripted
//! incident at the time the SRE Workbook maths predicts, exact bad counts, replay and a live
//! `serve` agreeing on the same recorded requests, corrupt records reported and skipped, every
//! input format, gzip and stdin.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tracebudget_tests::{Json, Server, TempDir, bin, example_config, free_addrs, http_request, loadgen};

/// One journey, an error and a latency SLO at 99%, a page rule of 14.4× over 10m/1m, evaluated
/// every 10 s: after steady traffic a total outage pages 14.4 × 1% × 600 s = 86.4 s in.
fn fast_config(dir: &TempDir, name: &str, windows: &str) -> std::path::PathBuf {
    let db = dir.path().join(format!("{name}.db"));
    dir.write(
        name,
        &format!(
            r#"
[server]
listen = "127.0.0.1:0"

[ingest]
trace_idle = "5s"

[storage]
url = "sqlite://{db}"

[alerting]
eval_interval = "10s"

[[journeys]]
name = "checkout"
service = "frontend"
http_method = "POST"
http_route = "/api/checkout"
error_when = ["http.response.status_code >= 500"]
expected_services = ["frontend", "checkout", "payment", "catalog"]

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
objective = 0.99
period = "30d"
policy = "fast"

[[policies]]
name = "fast"
min_events = 1
windows = [{windows}]
"#,
            db = db.display()
        ),
    )
}

const PAGE_10M: &str = r#"{ long = "10m", short = "1m", factor = 14.4, severity = "page" }"#;
const PAGE_30M: &str = r#"{ long = "30m", short = "5m", factor = 6.0, severity = "page" }"#;

/// `tracebudget replay ARGS --format json`, its JSON and its stderr.
fn replay(args: &[&str], stdin: Option<&[u8]>) -> (Json, String) {
    let mut cmd = Command::new(bin());
    cmd.arg("replay")
        .args(args)
        .args(["--format", "json"])
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start replay");
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(data).expect("write stdin");
    }
    let out = child.wait_with_output().expect("replay ran");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "replay failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    (
        Json::parse(stdout.trim()).unwrap_or_else(|e| panic!("replay printed no JSON ({e}):\n{stdout}")),
        stderr,
    )
}

fn slo<'a>(report: &'a Json, config: usize, name: &str) -> &'a Json {
    report.at(&["configs"]).unwrap().as_array().unwrap()[config]
        .get("slos")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s.get("name").and_then(Json::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no SLO {name}"))
}

/// (at, in Unix ms; SLO; firing or resolved)
fn timeline(report: &Json, config: usize) -> Vec<(f64, String, String)> {
    report.at(&["configs"]).unwrap().as_array().unwrap()[config]
        .get("timeline")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let f = |k: &str| e.get(k).and_then(Json::as_str).unwrap_or("").to_owned();
            (e.num(&["at_unix_ms"]), f("slo"), f("event"))
        })
        .collect()
}

/// (a) loadgen writes 20 minutes of checkout traffic on a virtual clock, every root failing from
/// 15m for 2m; replay pages within one eval interval of the Workbook's 86.4 s, resolves after the
/// incident, and counts exactly the bad events loadgen tallied. A second config with a 30m/5m
/// rule is replayed side by side in the same pass.
#[test]
fn replayed_incident_pages_when_the_workbook_says_with_exact_counts() {
    let dir = TempDir::new("replay-incident");
    let fast = fast_config(&dir, "fast.toml", PAGE_10M);
    let slow = fast_config(&dir, "slow.toml", PAGE_30M);
    let file = dir.path().join("incident.pb");
    let tally = loadgen(
        &[
            "--config",
            fast.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
            "--gzip=false",
            "--rate",
            "80",
            "--spans-per-request",
            "64",
            "--duration",
            "20m",
            "--incident",
            "15m:2m:1.0",
            "--seed",
            "8",
        ],
        Duration::from_secs(120),
    );
    let start_ms = tally.num(&["virtual_start_unix_ms"]);
    let traces = tally.num(&["journeys", "checkout", "traces"]);
    let errors = tally.num(&["journeys", "checkout", "errors"]);
    assert!(errors > 0.0 && traces > 10_000.0, "{errors} of {traces}");

    let (report, _) = replay(
        &[
            "--config",
            fast.to_str().unwrap(),
            "--config",
            slow.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(report.num(&["corrupt", "count"]), 0.0);
    assert_eq!(report.num(&["spans"]), tally.num(&["sent", "spans"]));
    for config in [0, 1] {
        let availability = slo(&report, config, "checkout-availability");
        assert_eq!(availability.num(&["events"]), traces);
        assert_eq!(availability.num(&["bad_events"]), errors);
        let latency = slo(&report, config, "checkout-latency");
        assert_eq!(latency.num(&["events"]), traces);
        assert_eq!(
            latency.num(&["bad_events"]),
            tally.num(&["journeys", "checkout", "slow"])
        );
    }
    let events = timeline(&report, 0);
    assert_eq!(
        events.iter().map(|(_, s, e)| format!("{s} {e}")).collect::<Vec<_>>(),
        ["checkout-availability firing", "checkout-availability resolved"],
        "{events:?}"
    );
    let incident = start_ms + 15.0 * 60_000.0;
    let predicted = incident + 86_400.0;
    let fired = events[0].0;
    assert!(
        (fired - predicted).abs() <= 10_000.0,
        "paged {:.1}s after the incident began, the Workbook says 86.4s (eval interval 10s)",
        (fired - incident) / 1e3
    );
    let resolved = events[1].0;
    assert!(
        resolved > incident + 120_000.0,
        "resolved {:.1}s after the incident began, during it (it lasts 120s); virtual start {start_ms}, fired {:.1}s in\n{report:?}",
        (resolved - incident) / 1e3,
        (fired - incident) / 1e3
    );
    // Side by side: both configs paged; the comparison says which first and by how much.
    let slow_events = timeline(&report, 1);
    assert_eq!(slow_events[0].1, "checkout-availability");
    let comparison = report.at(&["comparison"]).unwrap().as_array().unwrap();
    assert_eq!(comparison.len(), 1);
    let firsts = comparison[0].get("first_firing").unwrap().as_array().unwrap();
    let after: Vec<f64> = firsts.iter().map(|f| f.num(&["after_earliest_seconds"])).collect();
    let slow_fired = slow_events[0].0;
    assert_eq!(
        after,
        [
            ((fired - slow_fired) / 1e3).max(0.0),
            ((slow_fired - fired) / 1e3).max(0.0)
        ]
    );
}

fn wait_listening(addr: SocketAddr, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "record exited early");
        assert!(Instant::now() < deadline, "record is not listening on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (b) Live traffic recorded by `record` (loadgen over OTLP/HTTP protobuf with gzip and over
/// OTLP/gRPC, written as OTLP JSON lines; a Zipkin request kept as its array), then the same
/// requests sent to a real `serve` and replayed: serve's
/// `/api/v1/slos` and replay's figures agree exactly for every SLO, and equal loadgen's tally.
#[test]
fn replay_and_serve_agree_on_the_same_recorded_requests() {
    let dir = TempDir::new("replay-serve");
    let [api, grpc, http, zipkin] = free_addrs(4)[..] else {
        unreachable!()
    };
    let config = example_config(&dir, api, grpc, http, zipkin);
    let file = dir.path().join("recorded.jsonl");
    let mut record = Command::new(bin())
        .args([
            "record",
            "--config",
            config.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start record");
    wait_listening(http, &mut record);
    // OTLP/HTTP protobuf (gzip), then OTLP/gRPC, then one Zipkin request of a journey-less service.
    let tallies: Vec<Json> = [("http", http, "21", "3s"), ("grpc", grpc, "22", "1s")]
        .into_iter()
        .map(|(protocol, addr, seed, duration)| {
            loadgen(
                &[
                    "--config",
                    config.to_str().unwrap(),
                    "--protocol",
                    protocol,
                    "--endpoint",
                    &format!("http://{addr}"),
                    "--rate",
                    "3000",
                    "--duration",
                    duration,
                    "--error-rate",
                    "0.05",
                    "--slow-rate",
                    "0.05",
                    "--incomplete-rate",
                    "0.05",
                    "--seed",
                    seed,
                ],
                Duration::from_secs(60),
            )
        })
        .collect();
    let tally = |path: &[&str]| tallies.iter().map(|t| t.num(path)).sum::<f64>();
    assert_eq!(tally(&["failed", "requests"]), 0.0);
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let zipkin_body = ZIPKIN_LINE.replace("TS", &now_us.to_string());
    let r = http_request(
        zipkin,
        "POST",
        "/api/v2/spans",
        &[("content-type", "application/json")],
        Some(&zipkin_body),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let status = Command::new("kill")
        .args(["-TERM", &record.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = record.wait_with_output().unwrap();
    assert!(out.status.success(), "record: {}", String::from_utf8_lossy(&out.stderr));

    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as f64, tally(&["accepted", "requests"]) + 1.0);
    assert_eq!(lines.last(), Some(&zipkin_body.as_str()), "zipkin is kept as it came");

    let mut server = Server::start(&config, api);
    for (i, line) in lines.iter().enumerate() {
        let (addr, path) = match line.starts_with('[') {
            true => (zipkin, "/api/v2/spans"),
            false => (http, "/v1/traces"),
        };
        let r = http_request(
            addr,
            "POST",
            path,
            &[("content-type", "application/json")],
            Some(line),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(matches!(r.status, 200 | 202), "line {}: {} {}", i + 1, r.status, r.body);
    }
    let (report, _) = replay(&["--config", config.to_str().unwrap(), file.to_str().unwrap()], None);
    assert_eq!(report.num(&["spans"]), tally(&["accepted", "spans"]) + 2.0);
    assert_eq!(report.num(&["corrupt", "count"]), 0.0);
    let journey_of = |name: &str| name.split('-').next().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let live = loop {
        server.assert_running();
        let body = server.get("/api/v1/slos").unwrap().body;
        let live = Json::parse(&body).unwrap();
        let slos = live.at(&["slos"]).unwrap().as_array().unwrap().to_vec();
        // Completeness is judged once the traces close (trace_idle 1 s).
        let closed = slos.iter().all(|s| {
            s.get("sli").and_then(Json::as_str) != Some("completeness")
                || s.num(&["period", "events"])
                    == tally(&[
                        "journeys",
                        &journey_of(s.get("name").unwrap().as_str().unwrap()),
                        "traces",
                    ])
        });
        if closed || Instant::now() > deadline {
            break slos;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(live.len(), 7);
    for s in &live {
        let name = s.get("name").unwrap().as_str().unwrap();
        let replayed = slo(&report, 0, name);
        let j = journey_of(name);
        let (events, bad) = (s.num(&["period", "events"]), s.num(&["period", "bad_events"]));
        assert_eq!(replayed.num(&["events"]), events, "{name} events");
        assert_eq!(replayed.num(&["bad_events"]), bad, "{name} bad events");
        assert_eq!(events, tally(&["journeys", &j, "traces"]), "{name}");
        let want_bad = match s.get("sli").and_then(Json::as_str).unwrap() {
            "error" => tally(&["journeys", &j, "errors"]),
            "completeness" => tally(&["journeys", &j, "incomplete"]),
            _ => tally(&["journeys", &j, "slow"]),
        };
        assert_eq!(bad, want_bad, "{name}");
        assert!(bad > 0.0, "{name}: the traffic had no bad events");
    }
    server.signal_and_wait("TERM", Duration::from_secs(30));
}

const ZIPKIN_LINE: &str = r#"[{"traceId":"00000000000000aa","id":"00000000000000a1","name":"get","timestamp":TS,"duration":1000,"localEndpoint":{"serviceName":"legacy"}},{"traceId":"00000000000000aa","id":"00000000000000a2","parentId":"00000000000000a1","name":"db","timestamp":TS,"duration":500,"localEndpoint":{"serviceName":"legacy"}}]"#;

/// (c) Corrupt lines and frames are reported with their line or byte offset, skipped and
/// counted, and the run completes with the rest counted exactly; OTLP JSON, protobuf, Zipkin,
/// gzip and stdin.
#[test]
fn corrupt_records_are_reported_skipped_and_counted_in_every_format() {
    let dir = TempDir::new("replay-corrupt");
    let config = fast_config(&dir, "c.toml", PAGE_10M);
    let c = config.to_str().unwrap();
    let generate = |file: &str, format: &str, gzip: bool| {
        let path = dir.path().join(file);
        let tally = loadgen(
            &[
                "--config",
                c,
                "--out",
                path.to_str().unwrap(),
                "--out-format",
                format,
                &format!("--gzip={gzip}"),
                "--rate",
                "400",
                "--spans-per-request",
                "64",
                "--duration",
                "60s",
                "--error-rate",
                "0.1",
            ],
            Duration::from_secs(60),
        );
        (path, tally)
    };
    let counts = |report: &Json| {
        let s = slo(report, 0, "checkout-availability");
        (s.num(&["events"]), s.num(&["bad_events"]))
    };
    let want = |tally: &Json| {
        (
            tally.num(&["journeys", "checkout", "traces"]),
            tally.num(&["journeys", "checkout", "errors"]),
        )
    };

    // OTLP JSON lines with a Zipkin line and two corrupt ones among them.
    let (json, tally) = generate("a.jsonl", "json", false);
    let text = std::fs::read_to_string(&json).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let ts = tally.num(&["virtual_start_unix_ms"]) as u64 * 1000 + 1_000_000;
    lines.insert(2, "garbage, not json".to_owned());
    lines.insert(4, lines[3][..lines[3].len() / 2].to_owned());
    lines.insert(6, ZIPKIN_LINE.replace("TS", &ts.to_string()));
    let mixed = dir.write("mixed.jsonl", &(lines.join("\n") + "\n"));
    let (report, stderr) = replay(&["--config", c, mixed.to_str().unwrap()], None);
    assert_eq!(counts(&report), want(&tally));
    assert_eq!(report.num(&["corrupt", "count"]), 2.0);
    let records = report.at(&["corrupt", "records"]).unwrap().as_array().unwrap();
    assert_eq!(records[0].num(&["line"]), 3.0);
    assert_eq!(
        records[0].get("reason").and_then(Json::as_str),
        Some("neither an OTLP JSON object ('{') nor a Zipkin JSON array ('[')")
    );
    assert_eq!(records[1].num(&["line"]), 5.0);
    let reason = records[1].get("reason").and_then(Json::as_str).unwrap();
    assert!(
        reason.starts_with("otlp_json: invalid json: EOF while parsing"),
        "{reason}"
    );
    assert!(
        stderr.contains(&format!(
            "replay: corrupt, skipped: {}: line 3: neither",
            mixed.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains(": line 5: otlp_json: invalid json"), "{stderr}");
    assert_eq!(report.num(&["spans"]), tally.num(&["sent", "spans"]) + 2.0);
    assert_eq!(report.num(&["requests"]), tally.num(&["sent", "requests"]) + 1.0);

    // The same JSON gzipped, read from stdin.
    let (gz, tally) = generate("b.jsonl.gz", "json", true);
    let bytes = std::fs::read(&gz).unwrap();
    assert_eq!(bytes[..2], [0x1f, 0x8b]);
    let (report, _) = replay(&["--config", c, "-"], Some(&bytes));
    assert_eq!(counts(&report), want(&tally));
    let input = &report.at(&["inputs"]).unwrap().as_array().unwrap()[0];
    assert_eq!(input.get("name").and_then(Json::as_str), Some("-"));
    assert_eq!(input.get("format").and_then(Json::as_str), Some("json lines"));
    assert!(matches!(input.get("gzip"), Some(Json::Bool(true))));

    // Protobuf frames, gzipped; and a copy cut short in its last frame.
    let (pb, tally) = generate("c.pb.gz", "proto", true);
    let (report, _) = replay(&["--config", c, pb.to_str().unwrap()], None);
    assert_eq!(counts(&report), want(&tally));
    assert_eq!(report.num(&["corrupt", "count"]), 0.0);
    let (raw, tally) = generate("d.pb", "proto", false);
    let mut bytes = std::fs::read(&raw).unwrap();
    let full = bytes.len();
    bytes.truncate(full - 10);
    let cut = dir.path().join("cut.pb");
    std::fs::write(&cut, &bytes).unwrap();
    let (report, _) = replay(&["--config", c, cut.to_str().unwrap()], None);
    assert_eq!(report.num(&["corrupt", "count"]), 1.0);
    let record = &report.at(&["corrupt", "records"]).unwrap().as_array().unwrap()[0];
    let reason = record.get("reason").and_then(Json::as_str).unwrap();
    assert!(reason.starts_with("truncated frame: "), "{reason}");
    assert!(record.num(&["offset"]) > 0.0 && record.num(&["offset"]) < full as f64);
    assert_eq!(
        report.num(&["requests"]),
        tally.num(&["sent", "requests"]) - 1.0,
        "every frame but the cut one"
    );
    // Several inputs in one run add up.
    let (report, _) = replay(&["--config", c, raw.to_str().unwrap(), pb.to_str().unwrap()], None);
    assert_eq!(report.num(&["spans"]), tally.num(&["sent", "spans"]) * 2.0);
}
