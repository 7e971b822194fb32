#!/usr/bin/env python3
"""Trace-health floods (issue 18): not a CI test, a measurement anyone reruns.

Runs the release `tracebudget serve` with the example config (its ports, a fresh SQLite file and
`trace_idle` = --trace-idle changed) and measures what floods of client-chosen names cost:

1. idle: RSS once started;
2. OTLP request latency (one small checkout trace per request, over one keep-alive connection,
   --requests requests): median and P99, first alone, then while another process scrapes
   `/metrics` back to back, then (the control: the same CPU contention, no pipeline lock) while
   it fetches `/api/v1/openapi.json` back to back;
3. the orphan flood: --traces traces, each a frontend root and an orphan span of a service of
   its own (so a lost-context boundary `unknown → orphan-N` of its own), sent 1,000 traces a
   request; once every trace closed: RSS, `/metrics` size and series, `/api/v1/health/traces` size;
4. the skew flood: --traces traces, each a parent-N root and a child-N span starting 50 ms before
   it and ending 50 ms after it; the same figures;
5. step 2 again, with every trace-health map full.

    cargo build --release -p tracebudget
    python3 tests/soak/trace_health_flood.py [--traces 100000] [--requests 2000] [--out flood-out]

Prints one line per figure and writes OUT/summary.json and OUT/serve.log. Exit status 1 when a
target of the issue is missed: RSS after the floods within 64 MiB of idle, `/metrics` under 1 MB,
the median latency while scraping within 2x of without. Everything listens on 127.0.0.1 only;
only the standard library is needed.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MIB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=60):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def span(trace, span_id, parent, name, start_ns, end_ns, attrs=()):
    return {
        "traceId": f"{trace:032x}",
        "spanId": f"{span_id:016x}",
        "parentSpanId": f"{parent:016x}" if parent else "",
        "name": name,
        "kind": 2,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(end_ns),
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs],
    }


def body(resources):
    """[(service, [span, …]), …] → an OTLP/JSON request body."""
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": s}}]},
                    "scopeSpans": [{"spans": spans}],
                }
                for s, spans in resources
            ]
        }
    ).encode()


def post(conn, data):
    conn.request("POST", "/v1/traces", body=data, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    text = r.read()
    if r.status != 200:
        raise RuntimeError(f"POST /v1/traces: {r.status} {text[:200]!r}")


def scrape_loop(api, path, stop, count):
    while not stop.is_set():
        get(f"http://{api}{path}")
        with count.get_lock():
            count.value += 1


def latency(otlp, api, requests, scrape, first_trace):
    """Median and P99 OTLP request latency in ms (and scrapes done meanwhile) while another
    process GETs `scrape` back to back (None: nothing)."""
    stop = multiprocessing.Event()
    count = multiprocessing.Value("i", 0)
    scraper = None
    if scrape:
        scraper = multiprocessing.Process(target=scrape_loop, args=(api, scrape, stop, count), daemon=True)
        scraper.start()
        while count.value == 0:
            time.sleep(0.01)
    conn = http.client.HTTPConnection(*otlp, timeout=30)
    times = []
    for i in range(requests):
        now = time.time_ns()
        data = body(
            [
                (
                    "frontend",
                    [
                        span(
                            first_trace + i,
                            1,
                            None,
                            "POST /api/checkout",
                            now - 20_000_000,
                            now,
                            [("http.request.method", "POST"), ("http.route", "/api/checkout")],
                        )
                    ],
                )
            ]
        )
        t = time.perf_counter()
        post(conn, data)
        times.append((time.perf_counter() - t) * 1000)
    conn.close()
    if scraper:
        stop.set()
        scraper.join()
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 3),
        "p99_ms": round(times[int(len(times) * 0.99) - 1], 3),
        "scrapes": count.value,
    }


def closed_traces(api):
    return json.loads(get(f"http://{api}/api/v1/health/traces"))["traces"]


def flood(otlp, api, pid, traces, make, first_trace, label):
    """Sends `traces` traces built by make(t) → [(service, span)], 1,000 a request, waits until
    every one closed, and measures."""
    before = closed_traces(api)
    conn = http.client.HTTPConnection(*otlp, timeout=60)
    started = time.time()
    for start in range(0, traces, 1_000):
        resources = []
        for t in range(start, min(start + 1_000, traces)):
            resources.extend((s, [sp]) for s, sp in make(first_trace + t, t))
        post(conn, body(resources))
    conn.close()
    sent = time.time() - started
    deadline = time.time() + 300
    while closed_traces(api) < before + traces:
        if time.time() > deadline:
            raise RuntimeError(f"{label}: traces did not close within 300 s")
        time.sleep(0.5)
    time.sleep(2)
    scrape = get(f"http://{api}/metrics")
    health = get(f"http://{api}/api/v1/health/traces")
    lines = [l for l in scrape.decode().splitlines() if l and not l.startswith("#")]
    out = {
        "sent_seconds": round(sent, 1),
        "rss_mib": round(rss(pid) / MIB, 1),
        "metrics_bytes": len(scrape),
        "metrics_series": len(lines),
        "trace_health_series": sum(1 for l in lines if l.startswith("tracebudget_trace_health_")),
        "health_json_bytes": len(health),
    }
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "tracebudget"))
    ap.add_argument("--traces", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=2_000)
    ap.add_argument("--trace-idle", default="1s")
    ap.add_argument("--out", default="flood-out")
    ap.add_argument(
        "--same-names",
        action="store_true",
        help="the control: the same traffic with one orphan, one parent and one child service",
    )
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="tracebudget-flood-")
    api = ("127.0.0.1", free_port())
    otlp = ("127.0.0.1", free_port())
    api_s = f"{api[0]}:{api[1]}"
    with open(os.path.join(ROOT, "examples", "tracebudget.toml")) as f:
        text = f.read()
    for old, new in [
        ('listen = "127.0.0.1:8080"', f'listen = "{api_s}"'),
        ('otlp_grpc = "0.0.0.0:4317"', f'otlp_grpc = "127.0.0.1:{free_port()}"'),
        ('otlp_http = "0.0.0.0:4318"', f'otlp_http = "{otlp[0]}:{otlp[1]}"'),
        ('zipkin = "0.0.0.0:9411"', f'zipkin = "127.0.0.1:{free_port()}"'),
        ('trace_idle = "30s"', f'trace_idle = "{args.trace_idle}"'),
        ('url = "sqlite://tracebudget.db"', f'url = "sqlite://{work}/tracebudget.db"'),
    ]:
        assert old in text, f"the example config has no {old!r}"
        text = text.replace(old, new)
    config = os.path.join(work, "tracebudget.toml")
    with open(config, "w") as f:
        f.write(text)
    log = open(os.path.join(args.out, "serve.log"), "w")
    serve = subprocess.Popen([args.bin, "serve", "--config", config], stdout=log, stderr=log)
    try:
        for _ in range(300):
            try:
                get(f"http://{api_s}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(3)
        summary = {
            "bin": args.bin,
            "traces": args.traces,
            "trace_idle": args.trace_idle,
            "same_names": args.same_names,
        }
        summary["idle_rss_mib"] = round(rss(serve.pid) / MIB, 1)
        next_trace = 1 << 64
        # The control loop reads a static document of similar size: the same CPU contention on
        # the machine, no pipeline lock.
        phases = [("", None), ("_scraping", "/metrics"), ("_control_loop", "/api/v1/openapi.json")]
        for suffix, path in phases:
            summary["latency_before" + suffix] = latency(otlp, api_s, args.requests, path, next_trace)
            next_trace += args.requests

        def name(prefix, t):
            return prefix if args.same_names else f"{prefix}-{t:06}"

        def orphans(trace, t):
            now = time.time_ns()
            return [
                ("frontend", span(trace, 1, None, "GET /", now - 100_000_000, now)),
                (name("orphan", t), span(trace, 2, 0x99, "op", now - 90_000_000, now - 10_000_000)),
            ]

        def skewed(trace, t):
            now = time.time_ns()
            return [
                (name("parent", t), span(trace, 1, None, "op", now - 150_000_000, now - 50_000_000)),
                (name("child", t), span(trace, 2, 1, "op", now - 200_000_000, now)),
            ]

        summary["orphan_flood"] = flood(otlp, api_s, serve.pid, args.traces, orphans, next_trace, "orphans")
        next_trace += args.traces
        summary["skew_flood"] = flood(otlp, api_s, serve.pid, args.traces, skewed, next_trace, "skew")
        next_trace += args.traces
        for suffix, path in phases:
            summary["latency_after" + suffix] = latency(otlp, api_s, args.requests, path, next_trace)
            next_trace += args.requests
        summary["final_rss_mib"] = round(rss(serve.pid) / MIB, 1)
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        log.close()

    worst = max(summary["orphan_flood"]["rss_mib"], summary["skew_flood"]["rss_mib"], summary["final_rss_mib"])
    largest = max(summary["orphan_flood"]["metrics_bytes"], summary["skew_flood"]["metrics_bytes"])
    slowdown = summary["latency_after_scraping"]["median_ms"] / summary["latency_after"]["median_ms"]
    summary["targets"] = {
        "rss_over_idle_mib": round(worst - summary["idle_rss_mib"], 1),
        "largest_metrics_bytes": largest,
        "median_latency_scraping_over_not": round(slowdown, 2),
    }
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    failed = []
    if worst - summary["idle_rss_mib"] > 64:
        failed.append(f"RSS {worst} MiB is more than 64 MiB over idle {summary['idle_rss_mib']} MiB")
    if largest >= 1_000_000:
        failed.append(f"/metrics reached {largest} bytes, 1 MB or more")
    if slowdown > 2:
        failed.append(f"the median OTLP latency while scraping is {slowdown:.2f}x that without")
    for f in failed:
        print("FAILED:", f, file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
