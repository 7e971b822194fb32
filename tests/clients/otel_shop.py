#!/usr/bin/env python3
"""The shop scenario (shop.py) instrumented with the OpenTelemetry SDK, exported over OTLP.

    otel_shop.py --protocol http --endpoint http://127.0.0.1:4318/v1/traces
    otel_shop.py --protocol grpc --endpoint http://127.0.0.1:4317

Each service has its own TracerProvider (resource `service.name`) with a BatchSpanProcessor and
an OTLP exporter (gzip by default). `frontend` runs here; `checkout` and `payment` run in a child
process as HTTP servers; the W3C `traceparent` header carries the context between them, injected
and extracted with the SDK's TraceContext propagator. Prints one JSON object (see shop.summarize).
Never hangs on a dead endpoint: exports time out (--export-timeout) and, after the first failed
export, a process stops trying; the JSON still comes out, with the failures counted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shop  # noqa: E402

from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: E402
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # noqa: E402

PROPAGATOR = TraceContextTextMapPropagator()


def parse_args(argv=None, description: str | None = __doc__):
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", choices=["http", "grpc"], default="http")
    p.add_argument("--endpoint", required=True,
                   help="OTLP/HTTP URL (…/v1/traces is added when the path is empty) or OTLP/gRPC address")
    p.add_argument("--scenario", choices=sorted(shop.SCENARIOS), default="shop")
    p.add_argument("--compression", choices=["gzip", "none"], default="gzip")
    p.add_argument("--threshold-ms", type=int, default=shop.DEFAULT_THRESHOLD_MS,
                   help="a root slower than this counts as slow in the summary")
    p.add_argument("--export-timeout", type=float, default=5.0, help="seconds per export")
    p.add_argument("--role", choices=["frontend", "services"], default="frontend", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# SDK plumbing shared by both processes.


class Recorder(SpanProcessor):
    """Keeps a record of every span this provider ended (what the exporter is handed)."""

    def __init__(self, records: list) -> None:
        self.records = records

    def on_end(self, span: ReadableSpan) -> None:
        attrs = span.attributes or {}
        ctx = span.get_span_context()
        error = span.status.status_code == StatusCode.ERROR or attrs.get("error") is True
        self.records.append(shop.span_record(
            trace_id=format(ctx.trace_id, "032x"),
            span_id=format(ctx.span_id, "016x"),
            parent_id=format(span.parent.span_id, "016x") if span.parent else None,
            service=str(span.resource.attributes.get("service.name")),
            name=span.name,
            start_ns=span.start_time,
            end_ns=span.end_time,
            error=error,
            code=shop.as_int(attrs.get("http.response.status_code", attrs.get("http.status_code"))),
            method=attrs.get("http.request.method", attrs.get("http.method")),
            route=attrs.get("http.route"),
        ))


class GuardedExporter(SpanExporter):
    """The real OTLP exporter, counted; after a failed export, later batches fail at once, so a
    dead endpoint costs one export timeout per process instead of one per batch."""

    def __init__(self, inner: SpanExporter, stats: shop.ExportStats) -> None:
        self.inner = inner
        self.stats = stats
        self.down = False

    def export(self, spans):
        n = len(spans)
        if self.down:
            self.stats.failed(n, "not sent: an earlier export failed")
            return SpanExportResult.FAILURE
        try:
            result = self.inner.export(spans)
        except Exception as e:  # an exporter bug must not lose the JSON
            self.down = True
            self.stats.failed(n, f"export raised {e!r}")
            return SpanExportResult.FAILURE
        if result == SpanExportResult.SUCCESS:
            self.stats.ok(n)
        else:
            self.down = True
            self.stats.failed(n, f"export failed ({result.name})")
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def make_exporter(args) -> SpanExporter:
    if args.protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        compression = grpc.Compression.Gzip if args.compression == "gzip" else grpc.Compression.NoCompression
        return OTLPSpanExporter(endpoint=args.endpoint, insecure=True, timeout=args.export_timeout,
                                compression=compression)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = args.endpoint
    if endpoint.rstrip("/").count("/") <= 2:  # scheme://host:port
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    compression = Compression.Gzip if args.compression == "gzip" else Compression.NoCompression
    return OTLPSpanExporter(endpoint=endpoint, timeout=args.export_timeout, compression=compression)


def make_provider(service: str, args, records: list, stats: shop.ExportStats) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(Recorder(records))
    # A short schedule delay: spans of one trace leave every process within ~100 ms of each other.
    provider.add_span_processor(BatchSpanProcessor(GuardedExporter(make_exporter(args), stats),
                                                   schedule_delay_millis=100))
    return provider


# ---------------------------------------------------------------------------------------------
# checkout and payment (the child process)


def start_services(args):
    records: list = []
    stats = shop.ExportStats()
    checkout_p = make_provider("checkout", args, records, stats)
    payment_p = make_provider("payment", args, records, stats)
    checkout_t = checkout_p.get_tracer("shop.checkout")
    payment_t = payment_p.get_tracer("shop.payment")

    def payment(method, path, headers, body):
        flags = shop.request_body(headers, body)
        ctx = PROPAGATOR.extract(headers)
        with payment_t.start_as_current_span(f"{method} /pay", context=ctx, kind=SpanKind.SERVER,
                                             attributes={"http.route": "/pay",
                                                         "http.request.method": method}) as span:
            with payment_t.start_as_current_span("charge card") as charge:
                time.sleep(shop.SLOW_S if flags.get("slow") else shop.FAST_S)
                if flags.get("fail") == "status":
                    charge.set_status(Status(StatusCode.ERROR, "card processor unavailable"))
            code = 500 if flags.get("fail") == "status" else 200
            span.set_attribute("http.response.status_code", code)
            if code >= 500:
                span.set_status(Status(StatusCode.ERROR, "card processor unavailable"))
        return code, {"paid": code == 200}

    def checkout(method, path, headers, body):
        flags = shop.request_body(headers, body)
        ctx = PROPAGATOR.extract(headers)
        with checkout_t.start_as_current_span(f"{method} {path}", context=ctx, kind=SpanKind.SERVER,
                                              attributes={"http.route": path,
                                                          "http.request.method": method}) as span:
            code = 200
            if path == "/cart":
                time.sleep(shop.SLOW_S if flags.get("slow") else shop.FAST_S)
                if flags.get("fail") == "status":
                    code = 500
            else:
                time.sleep(shop.FAST_S)
                if not flags.get("incomplete"):  # skipping payment leaves the trace incomplete
                    with checkout_t.start_as_current_span("POST /pay", kind=SpanKind.CLIENT) as cs:
                        headers_out: dict = {}
                        PROPAGATOR.inject(headers_out)
                        pay_code, _ = shop.call(payment_url + "/pay", "POST", headers_out, flags)
                        cs.set_attribute("http.response.status_code", pay_code)
                        if pay_code >= 500:
                            cs.set_status(Status(StatusCode.ERROR))
                    if pay_code >= 500:
                        code = 502
            span.set_attribute("http.response.status_code", code)
            if code >= 500:
                span.set_status(Status(StatusCode.ERROR, "dependency failed"))
        return code, {"ok": code < 400}

    payment_srv, payment_url = shop.serve(payment)
    checkout_srv, checkout_url = shop.serve(checkout)

    def finish():
        checkout_srv.shutdown()
        payment_srv.shutdown()
        checkout_p.shutdown()  # flushes the batch processor
        payment_p.shutdown()
        return {"spans": records, "export": stats.as_dict()}

    return checkout_url, finish


# ---------------------------------------------------------------------------------------------
# frontend (this process)


def main() -> None:
    args = parse_args()
    shop.quiet_sdk_logs()
    if args.role == "services":
        shop.child_main(lambda: start_services(args))
        return

    requests = shop.plan(args.scenario)
    # The child first: gRPC must not be initialised in a process that forks.
    child = shop.Child(os.path.abspath(__file__), sys.argv[1:])
    records: list = []
    stats = shop.ExportStats()
    provider = make_provider("frontend", args, records, stats)
    tracer = provider.get_tracer("shop.frontend")

    def handle(r: shop.Request) -> None:
        attrs = {"http.route": r.route, "http.request.method": r.method, "url.path": r.route}
        with tracer.start_as_current_span(f"{r.method} {r.route}", kind=SpanKind.SERVER,
                                          attributes=attrs) as root:
            time.sleep(shop.FAST_S)
            code = 200
            calls_checkout = r.kind == "checkout" or (r.kind == "cart" and not r.incomplete)
            if calls_checkout:
                path = "/checkout" if r.kind == "checkout" else "/cart"
                with tracer.start_as_current_span(f"{r.method} {path}", kind=SpanKind.CLIENT) as cs:
                    headers: dict = {}
                    PROPAGATOR.inject(headers)
                    got, _ = shop.call(child.checkout_url + path, r.method, headers, shop.scenario_flags(r))
                    cs.set_attribute("http.response.status_code", got)
                    if got >= 500:
                        cs.set_status(Status(StatusCode.ERROR))
                if got >= 500:
                    code = 500
            if r.fail == "code":
                code = 503  # answered 503, status left unset: only the error_when rule sees it
            elif r.fail == "client":
                code = 400  # the client's fault: not an error
            root.set_attribute("http.response.status_code", code)
            if r.fail == "status" or code == 500:
                root.set_status(Status(StatusCode.ERROR, "checkout failed"))

    elapsed = shop.run_frontend(requests, handle)
    child_result = child.finish()
    provider.shutdown()
    shop.emit(shop.summarize(
        client="otel_shop",
        transport={"protocol": args.protocol, "endpoint": args.endpoint, "compression": args.compression},
        scenario=args.scenario,
        requests=requests,
        spans=records + child_result["spans"],
        export=shop.ExportStats.merge([stats.as_dict(), child_result["export"]]),
        threshold_ms=args.threshold_ms,
        elapsed_s=elapsed,
    ))


if __name__ == "__main__":
    main()
