//! `tracebudget loadgen` against `tracebudget serve` (issue #3): what loadgen says it sent is
//! exactly what the engine counts, over OTLP/gRPC and OTLP/HTTP; and a flood of a million trace
//! ids that never close keeps memory bounded, with every refusal counted.

use std::time::Duration;

use tracebudget_tests::{Server, TempDir, example_config, free_addrs, loadgen, wait_for};

fn counted_exactly(protocol: &str) {
    let dir = TempDir::new("load");
    let [api, grpc, http, zipkin] = free_addrs(4)[..] else {
        unreachable!()
    };
    let config = example_config(&dir, api, grpc, http, zipkin);
    let mut server = Server::start(&config, api);
    let endpoint = match protocol {
        "grpc" => format!("http://{grpc}"),
        _ => format!("http://{http}"),
    };
    let sent = loadgen(
        &[
            "--config",
            config.to_str().unwrap(),
            "--protocol",
            protocol,
            "--endpoint",
            &endpoint,
            "--traces",
            "3000",
            "--rate",
            "0",
            "--spans-per-request",
            "256",
            "--error-rate",
            "0.05",
            "--slow-rate",
            "0.04",
            "--incomplete-rate",
            "0.03",
            "--seed",
            "7",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(sent.num(&["accepted", "traces"]), 3000.0, "every request accepted");
    assert_eq!(sent.num(&["failed", "requests"]), 0.0);
    let m = wait_for(&mut server, Duration::from_secs(20), |m| {
        m.sum("tracebudget_traces_closed_total", &[]) >= 3000.0
    });
    assert_eq!(
        m.sum("tracebudget_traces_closed_total", &[]),
        3000.0,
        "{}",
        m.lines_with_prefix("tracebudget_traces")
    );
    assert_eq!(m.sum("tracebudget_spans_rejected_total", &[]), 0.0);
    assert_eq!(m.sum("tracebudget_late_spans_total", &[]), 0.0);
    let mut checked = 0;
    for journey in ["checkout", "search", "login"] {
        let tally = |k: &str| sent.num(&["journeys", journey, k]);
        let slo = |name: &str, which: &str| {
            m.get(which, &[("slo", &format!("{journey}-{name}")), ("journey", journey)])
                .unwrap_or_else(|| panic!("no {which} for {journey}-{name}"))
        };
        assert!(tally("traces") > 500.0, "{journey}: the mix reaches every journey");
        assert_eq!(
            m.get("tracebudget_root_spans_total", &[("journey", journey)]),
            Some(tally("traces")),
            "{journey}"
        );
        assert_eq!(
            slo("availability", "tracebudget_slo_events_total"),
            tally("traces"),
            "{journey}"
        );
        assert_eq!(
            slo("availability", "tracebudget_slo_bad_events_total"),
            tally("errors"),
            "{journey} errors"
        );
        assert_eq!(
            slo("latency", "tracebudget_slo_bad_events_total"),
            tally("slow"),
            "{journey} slow"
        );
        assert!(
            tally("errors") > 0.0 && tally("slow") > 0.0,
            "{journey}: faults were injected"
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
    let complete = |k: &str| sent.num(&["journeys", "checkout", k]);
    assert_eq!(
        m.get(
            "tracebudget_slo_events_total",
            &[("slo", "checkout-completeness"), ("journey", "checkout")]
        ),
        Some(complete("traces"))
    );
    assert_eq!(
        m.get(
            "tracebudget_slo_bad_events_total",
            &[("slo", "checkout-completeness"), ("journey", "checkout")]
        ),
        Some(complete("incomplete"))
    );
    let incomplete: f64 = ["checkout", "search", "login"]
        .iter()
        .map(|j| sent.num(&["journeys", j, "incomplete"]))
        .sum();
    assert_eq!(
        m.get("tracebudget_traces_closed_total", &[("result", "incomplete")])
            .unwrap_or(0.0),
        incomplete
    );
}

#[test]
fn loadgen_over_otlp_grpc_is_counted_exactly() {
    counted_exactly("grpc");
}

#[test]
fn loadgen_over_otlp_http_is_counted_exactly() {
    counted_exactly("http");
}

/// The bound this test holds the engine to: growth of the peak RSS over the idle process, per span
/// the assembler may buffer. Measured ~0.85 KiB for single-span traces (per-trace bookkeeping
/// dominates), plus in-flight request buffers.
const BYTES_PER_BUFFERED_SPAN: u64 = 2 * 1024;

#[test]
fn a_flood_of_a_million_trace_ids_that_never_close_keeps_memory_bounded() {
    const MAX_BUFFERED: u64 = 50_000;
    const TRACES: u64 = 1_000_000;
    let dir = TempDir::new("flood");
    let db = dir.path().join("tracebudget.db").display().to_string();
    let [api, grpc, http, zipkin] = free_addrs(4)[..] else {
        unreachable!()
    };
    let config = dir.write(
        "flood.toml",
        &format!(
            r#"
[server]
listen = "{api}"
[ingest]
otlp_grpc = "{grpc}"
otlp_http = "{http}"
zipkin = "{zipkin}"
trace_idle = "1h"
max_buffered_spans = {MAX_BUFFERED}
[storage]
url = "sqlite://{db}"
[[journeys]]
name = "ping"
service = "frontend"
http_method = "GET"
http_route = "/ping"
expected_services = ["frontend"]
[[slos]]
name = "ping-availability"
journey = "ping"
sli = "error"
objective = 0.999
period = "7d"
"#
        ),
    );
    let mut server = Server::start(&config, api);
    let idle_rss = server.proc_status_bytes("VmRSS");
    let sent = loadgen(
        &[
            "--config",
            config.to_str().unwrap(),
            "--endpoint",
            &format!("http://{http}"),
            "--traces",
            &TRACES.to_string(),
            "--spans-per-trace",
            "1",
            "--rate",
            "0",
            "--max-retries",
            "0",
            "--gzip=false",
        ],
        Duration::from_secs(300),
    );
    assert_eq!(sent.num(&["sent", "traces"]), TRACES as f64);
    let m = server.metrics();
    let peak = server.proc_status_bytes("VmHWM");
    let buffered = m.get("tracebudget_buffered_spans", &[]).unwrap();
    let accepted = m.sum("tracebudget_spans_accepted_total", &[]);
    let refused = m
        .get(
            "tracebudget_spans_rejected_total",
            &[("receiver", "otlp_http"), ("reason", "backpressure")],
        )
        .unwrap_or(0.0);
    let evicted = m.get("tracebudget_traces_evicted_total", &[]).unwrap();
    eprintln!(
        "flood: {TRACES} trace ids, {accepted} accepted, {refused} refused (429), {evicted} evicted, {buffered} buffered; \
         RSS idle {} MiB, peak {} MiB ({} bytes per buffered span)",
        idle_rss >> 20,
        peak >> 20,
        peak.saturating_sub(idle_rss) / MAX_BUFFERED
    );
    // Nothing vanished: every span was taken or refused with a 429 the client saw.
    assert_eq!(accepted + refused, TRACES as f64);
    assert_eq!(sent.num(&["accepted", "spans"]), accepted);
    assert_eq!(sent.num(&["failed", "spans"]), refused);
    assert!(buffered <= MAX_BUFFERED as f64, "buffered {buffered}");
    assert_eq!(accepted - evicted, buffered, "evicted traces are single spans");
    assert!(
        refused >= (TRACES - 2 * MAX_BUFFERED) as f64,
        "the engine pushed back: {refused}"
    );
    let bound = idle_rss + MAX_BUFFERED * BYTES_PER_BUFFERED_SPAN;
    assert!(
        peak <= bound,
        "peak RSS {} MiB over the bound {} MiB",
        peak >> 20,
        bound >> 20
    );
    server.assert_running();
}
