"""The scenario the client scripts share: a small online shop over three services.

`frontend` (the edge, in the script's own process) receives requests and calls `checkout`, which
runs in a second real process (an HTTP server on 127.0.0.1) and calls `payment` (a second HTTP
server in that process, with its own tracer). Each script instruments the same behaviour with a
different client library; this module holds what does not depend on the library:

* the plan: which requests are made, which are slow, fail or skip a service (deterministic);
* plain HTTP plumbing (standard library only) and the child-process protocol;
* the summary: from the spans the scripts actually emitted (recorded by each process, merged
  here), the per-journey counts an SLO engine must arrive at, printed as ONE JSON object.

Journeys (what tests/tests/ingest.rs configures):

  checkout  root: service frontend, POST /api/checkout; expected frontend, checkout, payment
  cart      root: service frontend, GET  /api/cart;     expected frontend, checkout
  (GET /healthz roots match no journey)

An engine's verdicts, replayed on the emitted spans: a root is an error when its status is ERROR
(OpenTelemetry), it carries `error` (OpenTracing tag true, or any Zipkin `error` tag), or its status
code is >= 500; slow when its duration is strictly above the threshold; a closed trace is
incomplete when an expected service is missing, it has other than exactly one root, or a span's
parent is not in the trace.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

FAST_S = 0.005  # each service's own work on a normal request
SLOW_S = 0.400  # the slow dependency: well above the 200 ms threshold the tests use
DEFAULT_THRESHOLD_MS = 200

JOURNEYS = {
    "checkout": {
        "method": "POST",
        "route": "/api/checkout",
        "expected": ["frontend", "checkout", "payment"],
    },
    "cart": {"method": "GET", "route": "/api/cart", "expected": ["frontend", "checkout"]},
}
UNMATCHED = {"method": "GET", "route": "/healthz"}

# Requests per kind; interleaved deterministically.
SCENARIOS = {
    "shop": {"checkout": 30, "cart": 8, "healthz": 2},
    "smoke": {"checkout": 8, "cart": 4, "healthz": 1},
}


@dataclass
class Request:
    seq: int
    kind: str  # "checkout" | "cart" | "healthz"
    method: str
    route: str
    slow: bool = False
    # None, "status" (a dependency fails: ERROR + 500 at the root),
    # "code" (503 answered with status left unset), "client" (a 4xx: not an error)
    fail: str | None = None
    # checkout: skip payment; cart: answered from the frontend's cache (no checkout call)
    incomplete: bool = False


def plan(scenario: str) -> list[Request]:
    counts = SCENARIOS[scenario]
    items = []
    for kind, count in counts.items():
        for n in range(count):
            items.append(((n + 0.5) / count, kind, n))
    items.sort(key=lambda t: (t[0], t[1]))
    out = []
    for seq, (_, kind, n) in enumerate(items):
        if kind == "checkout":
            j = JOURNEYS["checkout"]
            fail = None
            if n % 10 == 3:
                fail = "status"
            elif n % 12 == 7:
                fail = "code"
            elif n % 15 == 9:
                fail = "client"
            r = Request(seq, kind, j["method"], j["route"], slow=n % 6 == 5, fail=fail,
                        incomplete=n % 8 == 6)
        elif kind == "cart":
            j = JOURNEYS["cart"]
            r = Request(seq, kind, j["method"], j["route"], slow=n % 8 == 3,
                        fail="status" if n % 8 == 5 else None, incomplete=n % 8 == 7)
        else:
            r = Request(seq, kind, UNMATCHED["method"], UNMATCHED["route"])
        out.append(r)
    return out


def planned_counts(requests: list[Request]) -> dict:
    out: dict = {name: {"traces": 0, "errors": 0, "slow": 0, "incomplete": 0} for name in JOURNEYS}
    out["unmatched"] = {"traces": 0}
    for r in requests:
        if r.kind not in JOURNEYS:
            out["unmatched"]["traces"] += 1
            continue
        c = out[r.kind]
        c["traces"] += 1
        c["errors"] += r.fail in ("status", "code")
        c["slow"] += r.slow
        c["incomplete"] += r.incomplete
    return out


# ---------------------------------------------------------------------------------------------
# What each process records of the spans it emitted (one dict per span).


def span_record(*, trace_id: str, span_id: str, parent_id: str | None, service: str, name: str,
                start_ns: int, end_ns: int, error: bool, code: int | None, method: str | None,
                route: str | None) -> dict:
    return {
        "trace_id": trace_id.lower(),
        "span_id": span_id.lower(),
        "parent_id": parent_id.lower() if parent_id else None,
        "service": service,
        "name": name,
        "start_ns": int(start_ns),
        "end_ns": int(end_ns),
        "error": bool(error),
        "code": code,
        "method": method,
        "route": route,
    }


def as_int(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


class ExportStats:
    """Counts what the exporters/transports of one process did (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches_ok = 0
        self.batches_failed = 0
        self.spans_ok = 0
        self.spans_failed = 0
        self.errors: list[str] = []

    def ok(self, spans: int) -> None:
        with self.lock:
            self.batches_ok += 1
            self.spans_ok += spans

    def failed(self, spans: int, why: str) -> None:
        with self.lock:
            self.batches_failed += 1
            self.spans_failed += spans
            if len(self.errors) < 5:
                self.errors.append(why)

    def as_dict(self) -> dict:
        with self.lock:
            return {
                "batches_ok": self.batches_ok,
                "batches_failed": self.batches_failed,
                "spans_ok": self.spans_ok,
                "spans_failed": self.spans_failed,
                "errors": list(self.errors),
            }

    @staticmethod
    def merge(stats: list[dict]) -> dict:
        out = {"batches_ok": 0, "batches_failed": 0, "spans_ok": 0, "spans_failed": 0, "errors": []}
        for s in stats:
            for k in ("batches_ok", "batches_failed", "spans_ok", "spans_failed"):
                out[k] += s[k]
            out["errors"] += s["errors"]
        return out


# ---------------------------------------------------------------------------------------------
# HTTP plumbing (standard library only).

Handler = Callable[[str, str, object, dict], "tuple[int, dict]"]


def serve(handler: Handler) -> tuple[ThreadingHTTPServer, str]:
    """Serves `handler(method, path, headers, body)` on 127.0.0.1:<free port>; returns the base URL."""

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            path = self.path.split("?", 1)[0]
            try:
                code, reply = handler(self.command, path, self.headers, body)
            except Exception as e:  # a bug in a script: answer, and say it on stderr
                print(f"handler error on {self.command} {path}: {e!r}", file=sys.stderr)
                code, reply = 500, {"error": repr(e)}
            data = json.dumps(reply).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _handle
        do_POST = _handle

        def log_message(self, format, *args):  # noqa: A002 - keep stderr quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def call(url: str, method: str, headers: dict, body: dict, timeout: float = 10.0) -> tuple[int, dict]:
    """One HTTP request; returns (status, JSON body). 4xx/5xx are answers, not exceptions."""
    data = json.dumps(body).encode() if method != "GET" else None
    hdrs = {"Content-Type": "application/json", **{k: v for k, v in headers.items() if v is not None}}
    if method == "GET":
        hdrs["X-Scenario"] = json.dumps(body)
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def request_body(headers, body: dict) -> dict:
    """The scenario flags of a request: the JSON body, or the X-Scenario header of a GET."""
    if body:
        return body
    raw = headers.get("X-Scenario")
    return json.loads(raw) if raw else {}


# ---------------------------------------------------------------------------------------------
# The child process: `checkout` and `payment`.
#
# Protocol: the child prints one JSON line {"checkout": URL} once it serves, then waits for its
# stdin to close; then it flushes its tracers and prints one JSON line
# {"spans": [...records], "export": {...}} and exits.


def child_main(start: Callable[[], tuple[str, Callable[[], dict]]]) -> None:
    """Runs in the child: `start()` serves the services and returns (checkout URL, finish)."""
    url, finish = start()
    sys.stdout.write(json.dumps({"checkout": url}) + "\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the parent closes it (or dies)
    result = finish()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


class Child:
    """The parent's handle on the child process."""

    def __init__(self, script: str, args: list[str], ready_timeout: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, script, *args, "--role", "services"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], ready_timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            raise SystemExit(f"the services process did not start (exit {self.proc.poll()})")
        self.checkout_url = json.loads(line)["checkout"]

    def finish(self, timeout: float = 60.0) -> dict:
        try:
            out, _ = self.proc.communicate(input="", timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            return {"spans": [], "export": {"batches_ok": 0, "batches_failed": 0, "spans_ok": 0,
                                            "spans_failed": 0,
                                            "errors": ["services process timed out"]}}
        lines = [line for line in out.splitlines() if line.strip()]
        if self.proc.returncode != 0 or not lines:
            return {"spans": [], "export": {"batches_ok": 0, "batches_failed": 0, "spans_ok": 0,
                                            "spans_failed": 0,
                                            "errors": [f"services process exited {self.proc.returncode}"]}}
        return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------------
# The summary: what was sent, judged from the emitted spans.


def summarize(*, client: str, transport: dict, scenario: str, requests: list[Request],
              spans: list[dict], export: dict, threshold_ms: int, elapsed_s: float) -> dict:
    threshold_ns = threshold_ms * 1_000_000
    traces: dict[str, list[dict]] = {}
    for s in spans:
        traces.setdefault(s["trace_id"], []).append(s)

    journeys = {name: {"traces": 0, "roots": 0, "errors": 0, "slow": 0, "incomplete": 0}
                for name in JOURNEYS}
    unmatched = {"traces": 0, "roots": 0}
    no_root = 0
    durations_ms: list[float] = []
    by_service: dict[str, int] = {}
    for s in spans:
        by_service[s["service"]] = by_service.get(s["service"], 0) + 1

    for trace in traces.values():
        ids = {s["span_id"] for s in trace}
        roots = [s for s in trace if s["parent_id"] is None]
        orphans = [s for s in trace if s["parent_id"] is not None and s["parent_id"] not in ids]
        services = {s["service"] for s in trace}
        if not roots:
            no_root += 1
            continue
        root = roots[0]
        name = next((n for n, j in JOURNEYS.items()
                     if root["service"] == "frontend" and root["route"] == j["route"]
                     and (root["method"] or "").upper() == j["method"]), None)
        if name is None:
            unmatched["traces"] += 1
            unmatched["roots"] += len(roots)
            continue
        j = journeys[name]
        j["traces"] += 1
        for r in roots:
            j["roots"] += 1
            j["errors"] += r["error"] or (r["code"] or 0) >= 500
            j["slow"] += (r["end_ns"] - r["start_ns"]) > threshold_ns
            durations_ms.append((r["end_ns"] - r["start_ns"]) / 1e6)
        missing = [e for e in JOURNEYS[name]["expected"] if e not in services]
        j["incomplete"] += bool(missing or len(roots) != 1 or orphans)

    planned = planned_counts(requests)
    warnings = []
    for name, j in journeys.items():
        for k in ("traces", "errors", "slow", "incomplete"):
            if j[k] != planned[name][k]:
                warnings.append(f"{name}.{k}: emitted {j[k]}, planned {planned[name][k]}")
    if unmatched["traces"] != planned["unmatched"]["traces"]:
        warnings.append(f"unmatched.traces: emitted {unmatched['traces']}, planned "
                        f"{planned['unmatched']['traces']}")
    if no_root:
        warnings.append(f"{no_root} traces without a root span")

    return {
        "client": client,
        **transport,
        "scenario": scenario,
        "threshold_ms": threshold_ms,
        "traces": len(traces),
        "spans": len(spans),
        "spans_by_service": dict(sorted(by_service.items())),
        "journeys": journeys,
        "unmatched": unmatched,
        "planned": planned,
        "export": export,
        # The margin around the threshold: the slowest root under it, the fastest over it.
        "root_ms": {
            "slowest_fast": max((d for d in durations_ms if d <= threshold_ms), default=None),
            "fastest_slow": min((d for d in durations_ms if d > threshold_ms), default=None),
        },
        "warnings": warnings,
        "elapsed_s": round(elapsed_s, 3),
    }


def emit(result: dict) -> None:
    sys.stdout.write(json.dumps(result, sort_keys=False) + "\n")
    sys.stdout.flush()


def run_frontend(requests: list[Request], handle: Callable[[Request], None]) -> float:
    """Plays the plan through `handle` (one root trace per request); returns elapsed seconds."""
    t0 = time.monotonic()
    for r in requests:
        handle(r)
    return time.monotonic() - t0


def scenario_flags(r: Request) -> dict:
    """What the frontend tells checkout about a request (stands in for the request's content)."""
    return {"seq": r.seq, **{k: v for k, v in asdict(r).items() if k in ("slow", "fail", "incomplete")}}


def quiet_sdk_logs() -> None:
    """SDK warnings (export retries against a dead endpoint) go to stderr, kept short."""
    import logging

    logging.basicConfig(level=os.environ.get("TRACEBUDGET_CLIENT_LOG", "WARNING"), stream=sys.stderr,
                        format="%(name)s: %(message)s")
