#!/usr/bin/env python3
"""The soak (issue 9, item 6): not a CI test, a script anyone reruns.

Runs the release `tracebudget serve` on a fresh PostgreSQL database with the example config
(pages to a webhook sink in this script, tickets to a real SMTP server: aiosmtpd from the test
venv), drives it with `tracebudget loadgen` at a fixed rate for --minutes with a total checkout
outage every --incident-every minutes, and samples serve every --sample seconds: RSS, peak RSS,
CPU, spans accepted and rejected, requests by outcome, traces closed, open traces, notifications
delivered. At the end it checks that nothing was lost (every span loadgen had accepted is
counted, no span or request refused, every SLO's event count in the API equals loadgen's tally
of the traces it sent) and that memory is flat after warm-up, and prints the figures.

    cargo build --release -p tracebudget
    python3 tests/soak/soak.py [--minutes 30] [--rate 5000] [--out soak-out]

Needs PostgreSQL (TRACEBUDGET_TEST_POSTGRES, default postgres://postgres@127.0.0.1:5432/test),
psql, and the venv `.ci/setup-python.sh` makes (for aiosmtpd). Writes OUT/samples.csv,
OUT/summary.json, OUT/serve.log, OUT/webhook.jsonl and OUT/mail/. Exit status 1 when a check
fails. Everything listens on 127.0.0.1 only.
"""

import argparse
import csv
import http.server
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def metrics(api):
    """Prometheus text → {(name, frozenset(labels)): value}."""
    out = {}
    for line in get(f"http://{api}/metrics").splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)", line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def total(m, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in m.items() if n == name and want <= set(ls))


def proc(pid):
    """(VmRSS bytes, VmHWM bytes, CPU seconds) of a process."""
    status = open(f"/proc/{pid}/status").read()
    kib = lambda field: int(re.search(rf"^{field}:\s+(\d+)", status, re.M).group(1)) * 1024
    stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return kib("VmRSS"), kib("VmHWM"), (int(stat[11]) + int(stat[12])) / ticks


class Webhook(http.server.BaseHTTPRequestHandler):
    """Keeps every notification POSTed to it (one JSON line each) and answers 200."""

    received = []
    lock = threading.Lock()
    log = None

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        doc = json.loads(body)
        with Webhook.lock:
            Webhook.received.append({"at": time.time(), "doc": doc})
            Webhook.log.write(json.dumps(doc) + "\n")
            Webhook.log.flush()
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def psql(url, sql):
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-Atc", sql], check=True, capture_output=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--rate", type=int, default=5000, help="spans per second")
    p.add_argument("--incident-every", type=float, default=8, help="minutes between outages")
    p.add_argument("--incident", default="90s", help="length of each total outage")
    p.add_argument("--policies", choices=["demo", "example"], default="demo",
                   help="burn-rate windows: the demo's (12x shorter, pages resolve within minutes) or the example's (Workbook)")
    p.add_argument("--warmup", type=float, default=5, help="minutes excluded from the memory check")
    p.add_argument("--sample", type=float, default=10, help="seconds between samples")
    p.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "tracebudget"))
    p.add_argument("--out", default="soak-out")
    args = p.parse_args()

    os.makedirs(os.path.join(args.out, "mail"), exist_ok=True)
    admin = os.environ.get("TRACEBUDGET_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
    db = f"tracebudget_soak_{os.getpid()}"
    psql(admin, f"CREATE DATABASE {db}")
    storage = admin.rsplit("/", 1)[0] + "/" + db

    Webhook.log = open(os.path.join(args.out, "webhook.jsonl"), "w")
    hook_port = free_port()
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", hook_port), Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()

    venv_python = subprocess.run(
        ["bash", os.path.join(ROOT, ".ci", "setup-python.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    smtp = subprocess.Popen(
        [venv_python, os.path.join(ROOT, "alerting", "tests", "smtp_sink.py"), "--dir", os.path.join(args.out, "mail")],
        stdout=subprocess.PIPE,
        text=True,
    )
    smtp_port = int(smtp.stdout.readline().split()[1])

    api, grpc, http_port, zipkin = (f"127.0.0.1:{free_port()}" for _ in range(4))
    config = open(os.path.join(ROOT, "examples", "tracebudget.toml")).read()
    for old, new in [
        ('listen = "127.0.0.1:8080"', f'listen = "{api}"'),
        ('otlp_grpc = "0.0.0.0:4317"', f'otlp_grpc = "{grpc}"'),
        ('otlp_http = "0.0.0.0:4318"', f'otlp_http = "{http_port}"'),
        ('zipkin = "0.0.0.0:9411"', f'zipkin = "{zipkin}"'),
        ('url = "sqlite://tracebudget.db"', f'url = "{storage}"'),
        ("https://hooks.shop.example/tracebudget", f"http://127.0.0.1:{hook_port}/hook"),
        ('smarthost = "smtp.shop.example:587"\ntls = "starttls"', f'smarthost = "127.0.0.1:{smtp_port}"\ntls = "none"'),
    ]:
        assert old in config, f"the example config has no {old!r}"
        config = config.replace(old, new)
    if args.policies == "demo":
        # The demo's burn-rate windows (examples/demo.toml: the Workbook's, 12x shorter), so an
        # outage pages within seconds and resolves a minute or two after it ends, and each
        # outage of a 30-minute soak makes its own page and resolution.
        demo = open(os.path.join(ROOT, "examples", "demo.toml")).read()
        ours = demo[demo.index("[[policies]]"):demo.index("# No receivers")]
        start = config.index("[[policies]]")
        end = config.index("# ----", start)
        config = config[:start] + ours + config[end:]
    config_path = os.path.join(args.out, "tracebudget.toml")
    open(config_path, "w").write(config)

    log = open(os.path.join(args.out, "serve.log"), "w")
    serve = subprocess.Popen([args.bin, "serve", "--config", config_path], stdout=log, stderr=log)
    deadline = time.time() + 60
    while True:
        try:
            if get(f"http://{api}/readyz", timeout=2):
                break
        except OSError:
            pass
        if serve.poll() is not None or time.time() > deadline:
            sys.exit(f"serve did not start: see {log.name}")
        time.sleep(0.2)

    minutes = args.minutes
    incidents = []
    t = args.incident_every / 2
    while t + 4 < minutes:  # each outage gets time to page before the end (and resolves in the settling)
        incidents += ["--incident", f"{round(t * 60)}s:{args.incident}:1.0"]
        t += args.incident_every
    loadgen = subprocess.Popen(
        [args.bin, "loadgen", "--config", config_path, "--endpoint", f"http://{http_port}",
         "--rate", str(args.rate), "--duration", f"{minutes:g}m", "--seed", "42", *incidents],
        stdout=subprocess.PIPE,
        stderr=open(os.path.join(args.out, "loadgen.log"), "w"),
        text=True,
    )

    fields = ["t_s", "rss_mib", "peak_rss_mib", "cpu_s", "cpu_pct", "spans_accepted", "spans_rejected",
              "requests_ok", "requests_refused", "traces_closed", "open_traces", "buffered_spans",
              "notifications_delivered", "notification_retries", "webhook_posts", "emails"]
    rows = []
    writer = csv.DictWriter(open(os.path.join(args.out, "samples.csv"), "w", newline=""), fieldnames=fields)
    writer.writeheader()
    start, last_cpu = time.time(), 0.0

    def sample():
        nonlocal last_cpu
        m = metrics(api)
        rss, hwm, cpu = proc(serve.pid)
        t = time.time() - start
        row = {
            "t_s": round(t, 1),
            "rss_mib": round(rss / 2**20, 1),
            "peak_rss_mib": round(hwm / 2**20, 1),
            "cpu_s": round(cpu, 2),
            "cpu_pct": round(100 * (cpu - last_cpu) / args.sample, 1) if rows else 0.0,
            "spans_accepted": total(m, "tracebudget_spans_accepted_total"),
            "spans_rejected": total(m, "tracebudget_spans_rejected_total"),
            "requests_ok": total(m, "tracebudget_requests_total", outcome="ok"),
            "requests_refused": total(m, "tracebudget_requests_total")
            - total(m, "tracebudget_requests_total", outcome="ok"),
            "traces_closed": total(m, "tracebudget_traces_closed_total"),
            "open_traces": total(m, "tracebudget_open_traces"),
            "buffered_spans": total(m, "tracebudget_buffered_spans"),
            "notifications_delivered": total(m, "tracebudget_notification_attempts_total", outcome="delivered"),
            "notification_retries": total(m, "tracebudget_notification_attempts_total", outcome="retry"),
            "webhook_posts": len(Webhook.received),
            "emails": len([f for f in os.listdir(os.path.join(args.out, "mail")) if f.endswith(".eml")]),
        }
        last_cpu = cpu
        rows.append(row)
        writer.writerow(row)
        return row

    while loadgen.poll() is None:
        row = sample()
        print(f"{row['t_s']:7.0f}s rss {row['rss_mib']:6.1f} MiB cpu {row['cpu_pct']:5.1f}% "
              f"accepted {row['spans_accepted']:.0f} rejected {row['spans_rejected']:.0f} "
              f"open {row['open_traces']:.0f} delivered {row['notifications_delivered']:.0f}", flush=True)
        time.sleep(args.sample)
    out = loadgen.stdout.read()
    if loadgen.wait() != 0:
        serve.terminate()
        smtp.terminate()
        sys.exit(f"loadgen failed ({loadgen.returncode}): see {args.out}/loadgen.log\n{out}")
    tally = json.loads(out)
    json.dump(tally, open(os.path.join(args.out, "loadgen.json"), "w"), indent=1)

    # Let the last traces close (trace_idle 30 s), the last outage resolve and its notice leave
    # (the short window must forget the outage, then the group's next interval sends it).
    settle_from = time.time()
    while time.time() < settle_from + 15 * 60:
        row = sample()
        if row["open_traces"] == 0 and not firing(api) and time.time() > settle_from + 60:
            break
        time.sleep(args.sample)
    final = sample()
    slos = json.loads(get(f"http://{api}/api/v1/slos"))["slos"]

    checks = []

    def check(name, ok, detail):
        checks.append({"check": name, "ok": bool(ok), "detail": detail})

    check("loadgen: no request failed or retried", tally["failed"]["requests"] == 0 and tally["retries"] == 0,
          f"failed {tally['failed']['requests']}, retries {tally['retries']}")
    check("every span loadgen had accepted is counted", final["spans_accepted"] == tally["accepted"]["spans"],
          f"serve {final['spans_accepted']:.0f}, loadgen {tally['accepted']['spans']}")
    check("no span and no request refused", final["spans_rejected"] == 0 and final["requests_refused"] == 0,
          f"spans {final['spans_rejected']:.0f}, requests {final['requests_refused']:.0f}")
    for slo in slos:
        journey = tally["journeys"].get(slo["journey"])
        if journey is None:
            continue
        want = journey["traces"]
        got = slo["period"]["events"]
        check(f"{slo['name']}: events equal loadgen's traces", got == want, f"API {got}, loadgen {want}")

    after = [r for r in rows if r["t_s"] >= args.warmup * 60 and r["t_s"] <= minutes * 60]
    rss = [r["rss_mib"] for r in after]
    half = len(rss) // 2
    first, second = statistics.median(rss[:half]), statistics.median(rss[half:])
    slope = linear_slope([r["t_s"] / 60 for r in after], rss) * 10  # MiB per 10 minutes
    check("memory flat after warm-up (median of the second half within 10% of the first)",
          abs(second - first) <= 0.10 * first, f"{first:.1f} → {second:.1f} MiB, slope {slope:+.2f} MiB/10 min")

    pages = [(a["labels"]["slo"], a["status"]) for w in Webhook.received for a in w["doc"].get("alerts", [])]
    firings = sum(1 for _, s in pages if s == "firing")
    resolves = sum(1 for _, s in pages if s == "resolved")
    n_incidents = len(incidents) // 2
    check("every outage paged and resolved", firings >= n_incidents and resolves == firings,
          f"{n_incidents} outages; webhook alerts firing {firings}, resolved {resolves}")

    cpu = [r["cpu_pct"] for r in rows[1:] if r["t_s"] <= minutes * 60]
    summary = {
        "minutes": minutes,
        "rate_spans_per_sec": args.rate,
        "outages": n_incidents,
        "spans_accepted": final["spans_accepted"],
        "rss_mib": {"after_warmup_first_half_median": first, "second_half_median": second,
                    "slope_mib_per_10min": round(slope, 2), "peak": final["peak_rss_mib"]},
        "cpu_pct": {"mean": round(statistics.mean(cpu), 1), "max": max(cpu)},
        "webhook_posts": len(Webhook.received),
        "alerts_on_webhook": {"firing": firings, "resolved": resolves},
        "emails": final["emails"],
        "notification_retries": final["notification_retries"],
        "checks": checks,
    }
    json.dump(summary, open(os.path.join(args.out, "summary.json"), "w"), indent=1)
    print(json.dumps(summary, indent=1))

    serve.terminate()
    serve.wait(timeout=60)
    smtp.terminate()
    hook.shutdown()
    psql(admin, f"DROP DATABASE {db}")
    sys.exit(0 if all(c["ok"] for c in checks) else 1)


def firing(api):
    return bool(json.loads(get(f"http://{api}/api/v1/alerts"))["alerts"])


def linear_slope(xs, ys):
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


if __name__ == "__main__":
    main()
