#!/usr/bin/env python3
"""The shop scenario (shop.py) instrumented with py-zipkin, sent as Zipkin v2 JSON.

    zipkin_shop.py --endpoint http://127.0.0.1:9411/api/v2/spans

Services are py-zipkin `service_name`s; `frontend` runs here, `checkout` and `payment` in a child
process as HTTP servers. Propagation is py-zipkin's own: the caller wraps the call in a
`zipkin_client_span` and sends `create_http_headers_for_new_span()` (multi-header B3:
X-B3-TraceId, X-B3-SpanId, X-B3-ParentSpanId, X-B3-Sampled, X-B3-Flags); the callee's
`zipkin_server_span` takes `extract_zipkin_attrs_from_headers(...)`. As py-zipkin does by default,
those server spans say `"shared": true` (each still has its own span id). Tags: `http.route`,
`http.request.method`, `http.response.status_code` (strings, as every Zipkin tag), and `error`
on failed spans. Each process's local root posts its spans (one POST per local trace) through a
transport that POSTs `application/json` to --endpoint and records what it sent.
Prints one JSON object (see shop.summarize); never hangs on a dead endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shop  # noqa: E402

from py_zipkin import Encoding  # noqa: E402
from py_zipkin.request_helpers import extract_zipkin_attrs_from_headers  # noqa: E402
from py_zipkin.transport import BaseTransportHandler  # noqa: E402
from py_zipkin.zipkin import (  # noqa: E402
    create_http_headers_for_new_span,
    zipkin_client_span,
    zipkin_server_span,
    zipkin_span,
)

HOST = "127.0.0.1"  # the endpoint address py-zipkin reports (skips a hostname lookup)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", required=True, help="Zipkin v2 URL, e.g. http://127.0.0.1:9411/api/v2/spans")
    p.add_argument("--scenario", choices=sorted(shop.SCENARIOS), default="shop")
    p.add_argument("--threshold-ms", type=int, default=shop.DEFAULT_THRESHOLD_MS,
                   help="a root slower than this counts as slow in the summary")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per POST")
    p.add_argument("--role", choices=["frontend", "services"], default="frontend", help=argparse.SUPPRESS)
    return p.parse_args(argv)


class RecordingTransport(BaseTransportHandler):
    """POSTs each encoded batch (a JSON array of v2 spans) and records the spans in it. After a
    failed POST later batches are not attempted (a dead endpoint costs one timeout)."""

    def __init__(self, url: str, timeout: float, records: list, stats: shop.ExportStats) -> None:
        super().__init__()
        self.url = url
        self.timeout = timeout
        self.records = records
        self.stats = stats
        self.down = False

    def get_max_payload_bytes(self):
        return None

    def send(self, payload) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        spans = json.loads(data)
        for s in spans:
            tags = s.get("tags") or {}
            start_us = s.get("timestamp", 0)
            self.records.append(shop.span_record(
                trace_id=s["traceId"],
                span_id=s["id"],
                parent_id=s.get("parentId"),
                service=(s.get("localEndpoint") or {}).get("serviceName", ""),
                name=s.get("name", ""),
                start_ns=start_us * 1000,
                end_ns=(start_us + s.get("duration", 0)) * 1000,
                error="error" in tags,
                code=shop.as_int(tags.get("http.response.status_code")),
                method=tags.get("http.request.method"),
                route=tags.get("http.route"),
            ))
        if self.down:
            self.stats.failed(len(spans), "not sent: an earlier POST failed")
            return
        req = urllib.request.Request(self.url, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
                ok = 200 <= resp.status < 300
                why = f"HTTP {resp.status}"
        except urllib.error.HTTPError as e:
            ok, why = False, f"HTTP {e.code}: {e.read()[:200]!r}"
        except OSError as e:
            ok, why = False, repr(e)
        if ok:
            self.stats.ok(len(spans))
        else:
            self.down = True
            self.stats.failed(len(spans), f"POST {self.url}: {why}")


def tag_status(span, code: int, error: str | None) -> None:
    tags = {"http.response.status_code": str(code)}
    if error:
        tags["error"] = error
    span.update_binary_annotations(tags)


def start_services(args):
    records: list = []
    stats = shop.ExportStats()
    transport = RecordingTransport(args.endpoint, args.timeout, records, stats)

    def payment(method, path, headers, body):
        flags = shop.request_body(headers, body)
        attrs = extract_zipkin_attrs_from_headers(headers, sample_rate=100.0, use_128bit_trace_id=True)
        with zipkin_server_span(
            service_name="payment", span_name=f"{method} /pay", zipkin_attrs=attrs,
            transport_handler=transport, encoding=Encoding.V2_JSON, host=HOST,
            binary_annotations={"http.route": "/pay", "http.request.method": method},
        ) as span:
            with zipkin_span(service_name="payment", span_name="charge card", host=HOST) as charge:
                time.sleep(shop.SLOW_S if flags.get("slow") else shop.FAST_S)
                if flags.get("fail") == "status":
                    charge.update_binary_annotations({"error": "card processor unavailable"})
            code = 500 if flags.get("fail") == "status" else 200
            tag_status(span, code, "card processor unavailable" if code >= 500 else None)
        return code, {"paid": code == 200}

    def checkout(method, path, headers, body):
        flags = shop.request_body(headers, body)
        attrs = extract_zipkin_attrs_from_headers(headers, sample_rate=100.0, use_128bit_trace_id=True)
        with zipkin_server_span(
            service_name="checkout", span_name=f"{method} {path}", zipkin_attrs=attrs,
            transport_handler=transport, encoding=Encoding.V2_JSON, host=HOST,
            binary_annotations={"http.route": path, "http.request.method": method},
        ) as span:
            code = 200
            if path == "/cart":
                time.sleep(shop.SLOW_S if flags.get("slow") else shop.FAST_S)
                if flags.get("fail") == "status":
                    code = 500
            else:
                time.sleep(shop.FAST_S)
                if not flags.get("incomplete"):  # skipping payment leaves the trace incomplete
                    with zipkin_client_span(service_name="checkout", span_name="POST /pay", host=HOST) as cs:
                        pay_code, _ = shop.call(payment_url + "/pay", "POST", create_http_headers_for_new_span(),
                                                flags)
                        tag_status(cs, pay_code, "payment failed" if pay_code >= 500 else None)
                    if pay_code >= 500:
                        code = 502
            tag_status(span, code, "dependency failed" if code >= 500 else None)
        # The `with` has posted this process's spans of the trace before the caller gets its answer.
        return code, {"ok": code < 400}

    payment_srv, payment_url = shop.serve(payment)
    checkout_srv, checkout_url = shop.serve(checkout)

    def finish():
        checkout_srv.shutdown()
        payment_srv.shutdown()
        return {"spans": records, "export": stats.as_dict()}

    return checkout_url, finish


def main() -> None:
    args = parse_args()
    shop.quiet_sdk_logs()
    if args.role == "services":
        shop.child_main(lambda: start_services(args))
        return

    requests = shop.plan(args.scenario)
    child = shop.Child(os.path.abspath(__file__), sys.argv[1:])
    records: list = []
    stats = shop.ExportStats()
    transport = RecordingTransport(args.endpoint, args.timeout, records, stats)

    def handle(r: shop.Request) -> None:
        with zipkin_server_span(
            service_name="frontend", span_name=f"{r.method} {r.route}", transport_handler=transport,
            sample_rate=100.0, encoding=Encoding.V2_JSON, use_128bit_trace_id=True, host=HOST,
            binary_annotations={"http.route": r.route, "http.request.method": r.method},
        ) as root:
            time.sleep(shop.FAST_S)
            code = 200
            if r.kind == "checkout" or (r.kind == "cart" and not r.incomplete):
                path = "/checkout" if r.kind == "checkout" else "/cart"
                with zipkin_client_span(service_name="frontend", span_name=f"{r.method} {path}", host=HOST) as cs:
                    got, _ = shop.call(child.checkout_url + path, r.method, create_http_headers_for_new_span(),
                                       shop.scenario_flags(r))
                    tag_status(cs, got, "checkout failed" if got >= 500 else None)
                if got >= 500:
                    code = 500
            if r.fail == "code":
                code = 503  # a 503 without the error tag: only the error_when rule sees it
            elif r.fail == "client":
                code = 400  # the client's fault: not an error
            error = "checkout failed" if r.fail == "status" or code == 500 else None
            tag_status(root, code, error)

    elapsed = shop.run_frontend(requests, handle)
    child_result = child.finish()
    shop.emit(shop.summarize(
        client="zipkin_shop",
        transport={"protocol": "zipkin_v2_json", "endpoint": args.endpoint},
        scenario=args.scenario,
        requests=requests,
        spans=records + child_result["spans"],
        export=shop.ExportStats.merge([stats.as_dict(), child_result["export"]]),
        threshold_ms=args.threshold_ms,
        elapsed_s=elapsed,
    ))


if __name__ == "__main__":
    main()
