#!/usr/bin/env python3
"""A crowd of large request bodies against the release `tracebudget serve`: peak RSS.

Not a CI test, a figure anyone reruns. Starts `serve` with the example config (SQLite in a
temporary directory, everything on 127.0.0.1), then --bodies clients each open a connection to
OTLP/HTTP and announce a valid OTLP/JSON body of --mib MiB (an empty batch padded with spaces).
All of them send all but the last MiB at once and the rest 10 s later: the most bytes a crowd
can make the server hold at once. Prints the answers by status, the server's counters
and its peak RSS (VmHWM) next to its RSS before the crowd.

    cargo build --release -p tracebudget
    python3 tests/soak/bodies.py [--bodies 50] [--mib 16] [--binary target/release/tracebudget]

With the defaults (`max_body_bytes_in_flight = "256MiB"`) the bodies that do not fit get 429 +
`Retry-After`; add `--set 'max_body_bytes_in_flight = "1GiB"'` to see the crowd unbounded.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MIB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def metrics(api):
    with urllib.request.urlopen(f"http://127.0.0.1:{api}/metrics", timeout=10) as r:
        return r.read().decode()


def series(text, name, labels=""):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def client(port, size, resume_at, results, i):
    body = b'{"resourceSpans":[]' + b" " * (size - 20) + b"}"
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
    ).encode()
    status = "error"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall(head)
            try:
                s.sendall(body[: size - MIB])
                time.sleep(max(0.0, resume_at - time.time()))
                s.sendall(body[size - MIB :])
            except OSError:
                pass  # refused early: the answer is waiting
            answer = b""
            while b"\r\n" not in answer:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
            m = re.match(rb"HTTP/1.1 (\d+)", answer)
            status = m.group(1).decode() if m else "closed"
    except OSError as e:
        status = f"error: {e.strerror or e}"
    results[i] = status


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bodies", type=int, default=50)
    p.add_argument("--mib", type=int, default=16)
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "tracebudget"))
    p.add_argument("--set", action="append", default=[], help="a line added to [ingest]")
    args = p.parse_args()
    size = args.mib * MIB

    ports = {name: free_port() for name in ["api", "grpc", "http", "zipkin"]}
    with open(os.path.join(ROOT, "examples", "tracebudget.toml")) as f:
        text = f.read()
    with tempfile.TemporaryDirectory(prefix="tracebudget-bodies-") as tmp:
        for old, new in [
            ('listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{ports["api"]}"'),
            ('otlp_grpc = "0.0.0.0:4317"', f'otlp_grpc = "127.0.0.1:{ports["grpc"]}"'),
            ('otlp_http = "0.0.0.0:4318"', f'otlp_http = "127.0.0.1:{ports["http"]}"'),
            ('zipkin = "0.0.0.0:9411"', f'zipkin = "127.0.0.1:{ports["zipkin"]}"'),
            ('url = "sqlite://tracebudget.db"', f'url = "sqlite://{tmp}/tracebudget.db"'),
            ('max_body_size = "16MiB"', "\n".join([f'max_body_size = "{max(16, args.mib)}MiB"'] + args.set)),
        ]:
            assert old in text, old
            text = text.replace(old, new)
        config = os.path.join(tmp, "tracebudget.toml")
        with open(config, "w") as f:
            f.write(text)
        log = open(os.path.join(tmp, "serve.log"), "w")
        serve = subprocess.Popen([args.binary, "serve", "--config", config], stdout=log, stderr=log)
        try:
            for _ in range(300):
                try:
                    metrics(ports["api"])
                    break
                except OSError:
                    time.sleep(0.1)
            time.sleep(1)
            idle = rss(serve.pid, "VmRSS")
            results = [None] * args.bodies
            started = time.time()
            # All but the last MiB of every body, then the rest 10 s after the start (well
            # within the 30 s body deadline).
            threads = [
                threading.Thread(target=client, args=(ports["http"], size, started + 10, results, i))
                for i in range(args.bodies)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.time() - started
            peak = rss(serve.pid, "VmHWM")
            m = metrics(ports["api"])
        finally:
            serve.terminate()
            serve.wait(timeout=30)
    by_status = {}
    for s in results:
        by_status[s] = by_status.get(s, 0) + 1
    print(f"{args.bodies} bodies of {args.mib} MiB in {took:.1f} s: answers {dict(sorted(by_status.items()))}")
    for outcome in ["ok", "in_flight_limit", "timeout", "too_large"]:
        n = series(m, "tracebudget_requests_total", f'outcome="{outcome}",receiver="otlp_http"')
        n = n or series(m, "tracebudget_requests_total", f'receiver="otlp_http",outcome="{outcome}"')
        print(f"  requests_total{{receiver=otlp_http,outcome={outcome}}} {n:.0f}")
    print(f"  body bytes in flight after: {series(m, 'tracebudget_ingest_body_bytes_in_flight'):.0f}")
    print(f"RSS before the crowd {idle / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
