#!/usr/bin/env python3
"""The shop scenario (shop.py) written against the OpenTracing API, run through
`opentelemetry-opentracing-shim` over the OpenTelemetry SDK and its OTLP exporter.

    opentracing_shop.py --protocol http --endpoint http://127.0.0.1:4318/v1/traces
    opentracing_shop.py --protocol grpc --endpoint http://127.0.0.1:4317

The instrumentation is what a team still on OpenTracing writes: `start_active_span`, OpenTracing's
standard tags (`span.kind`, `http.method`, `http.status_code`, `error` = true; plus a custom
`http.route` tag, for which OpenTracing has no convention), and propagation by
`tracer.inject`/`tracer.extract` with `Format.HTTP_HEADERS` between the processes (the shim speaks
W3C `traceparent`). Only the tracer construction knows about OpenTelemetry. The shim maps an
OpenTracing `error` tag to an attribute, not to the span status: the journeys of these traces
need `error_when = ["http.status_code >= 500", "error = true"]`.
Prints one JSON object (see shop.summarize); never hangs on a dead endpoint.
"""

from __future__ import annotations

import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shop  # noqa: E402
from otel_shop import make_provider, parse_args  # noqa: E402  (SDK set-up shared with otel_shop)

import opentracing  # noqa: E402
from opentracing.ext import tags  # noqa: E402
from opentracing.propagation import Format  # noqa: E402
from opentelemetry.propagate import set_global_textmap  # noqa: E402
from opentelemetry.shim.opentracing_shim import create_tracer  # noqa: E402
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # noqa: E402

# The shim injects/extracts with the global propagator: W3C trace context.
set_global_textmap(TraceContextTextMapPropagator())


def carrier(headers) -> dict:
    """HTTP_HEADERS carrier from an incoming request (header names are case-insensitive)."""
    return {k.lower(): v for k, v in headers.items()}


# ---------------------------------------------------------------------------------------------
# From here on: OpenTracing API only.


def start_services(tracers: dict):
    checkout_t: opentracing.Tracer = tracers["checkout"]
    payment_t: opentracing.Tracer = tracers["payment"]

    def payment(method, path, headers, body):
        flags = shop.request_body(headers, body)
        parent = payment_t.extract(Format.HTTP_HEADERS, carrier(headers))
        with payment_t.start_active_span(
            f"{method} /pay", child_of=parent,
            tags={tags.SPAN_KIND: tags.SPAN_KIND_RPC_SERVER, tags.HTTP_METHOD: method, "http.route": "/pay"},
        ) as scope:
            with payment_t.start_active_span("charge card") as charge:
                time.sleep(shop.SLOW_S if flags.get("slow") else shop.FAST_S)
                if flags.get("fail") == "status":
                    charge.span.set_tag(tags.ERROR, True)
            code = 500 if flags.get("fail") == "status" else 200
            scope.span.set_tag(tags.HTTP_STATUS_CODE, code)
            if code >= 500:
                scope.span.set_tag(tags.ERROR, True)
        return code, {"paid": code == 200}

    def checkout(method, path, headers, body):
        flags = shop.request_body(headers, body)
        parent = checkout_t.extract(Format.HTTP_HEADERS, carrier(headers))
        with checkout_t.start_active_span(
            f"{method} {path}", child_of=parent,
            tags={tags.SPAN_KIND: tags.SPAN_KIND_RPC_SERVER, tags.HTTP_METHOD: method, "http.route": path},
        ) as scope:
            code = 200
            if path == "/cart":
                time.sleep(shop.SLOW_S if flags.get("slow") else shop.FAST_S)
                if flags.get("fail") == "status":
                    code = 500
            else:
                time.sleep(shop.FAST_S)
                if not flags.get("incomplete"):  # skipping payment leaves the trace incomplete
                    with checkout_t.start_active_span(
                        "POST /pay", tags={tags.SPAN_KIND: tags.SPAN_KIND_RPC_CLIENT, tags.HTTP_METHOD: "POST"}
                    ) as cs:
                        headers_out: dict = {}
                        checkout_t.inject(cs.span.context, Format.HTTP_HEADERS, headers_out)
                        pay_code, _ = shop.call(payment_url + "/pay", "POST", headers_out, flags)
                        cs.span.set_tag(tags.HTTP_STATUS_CODE, pay_code)
                        if pay_code >= 500:
                            cs.span.set_tag(tags.ERROR, True)
                    if pay_code >= 500:
                        code = 502
            scope.span.set_tag(tags.HTTP_STATUS_CODE, code)
            if code >= 500:
                scope.span.set_tag(tags.ERROR, True)
        return code, {"ok": code < 400}

    payment_srv, payment_url = shop.serve(payment)
    checkout_srv, checkout_url = shop.serve(checkout)
    return checkout_url, (checkout_srv, payment_srv)


def frontend_request(tracer: opentracing.Tracer, checkout_url: str, r: shop.Request) -> None:
    with tracer.start_active_span(
        f"{r.method} {r.route}", ignore_active_span=True,
        tags={tags.SPAN_KIND: tags.SPAN_KIND_RPC_SERVER, tags.HTTP_METHOD: r.method,
              tags.HTTP_URL: r.route, "http.route": r.route},
    ) as root:
        time.sleep(shop.FAST_S)
        code = 200
        if r.kind == "checkout" or (r.kind == "cart" and not r.incomplete):
            path = "/checkout" if r.kind == "checkout" else "/cart"
            with tracer.start_active_span(
                f"{r.method} {path}", tags={tags.SPAN_KIND: tags.SPAN_KIND_RPC_CLIENT, tags.HTTP_METHOD: r.method}
            ) as cs:
                headers: dict = {}
                tracer.inject(cs.span.context, Format.HTTP_HEADERS, headers)
                got, _ = shop.call(checkout_url + path, r.method, headers, shop.scenario_flags(r))
                cs.span.set_tag(tags.HTTP_STATUS_CODE, got)
                if got >= 500:
                    cs.span.set_tag(tags.ERROR, True)
            if got >= 500:
                code = 500
        if r.fail == "code":
            code = 503  # a 503 without the error tag: only the status-code rule sees it
        elif r.fail == "client":
            code = 400  # the client's fault: not an error
        root.span.set_tag(tags.HTTP_STATUS_CODE, code)
        if r.fail == "status" or code == 500:
            root.span.set_tag(tags.ERROR, True)


# ---------------------------------------------------------------------------------------------
# Tracer construction: the only OpenTelemetry-aware part.


def main() -> None:
    args = parse_args(description=__doc__)
    shop.quiet_sdk_logs()
    if args.role == "services":
        def start():
            records: list = []
            stats = shop.ExportStats()
            providers = {s: make_provider(s, args, records, stats) for s in ("checkout", "payment")}
            url, servers = start_services({s: create_tracer(p) for s, p in providers.items()})

            def finish():
                for srv in servers:
                    srv.shutdown()
                for p in providers.values():
                    p.shutdown()
                return {"spans": records, "export": stats.as_dict()}

            return url, finish

        shop.child_main(start)
        return

    requests = shop.plan(args.scenario)
    child = shop.Child(os.path.abspath(__file__), sys.argv[1:])
    records: list = []
    stats = shop.ExportStats()
    provider = make_provider("frontend", args, records, stats)
    tracer = create_tracer(provider)
    elapsed = shop.run_frontend(requests, lambda r: frontend_request(tracer, child.checkout_url, r))
    child_result = child.finish()
    provider.shutdown()
    shop.emit(shop.summarize(
        client="opentracing_shop",
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
