#!/usr/bin/env python3
"""Exports N root spans once with the OpenTelemetry SDK's OTLP exporter, over TLS.

    otel_tls.py --protocol http --endpoint https://127.0.0.1:4318/v1/traces --ca ca.pem \
        [--cert client.pem --key client.key] [--token TOKEN] --spans 5
    otel_tls.py --protocol grpc --endpoint https://127.0.0.1:4317 --ca ca.pem ...

The exporter verifies the server against --ca, presents --cert/--key as its client certificate
(mutual TLS) and sends `authorization: Bearer TOKEN`. Prints one JSON object:
{"result": "SUCCESS" | "FAILURE", "spans": N}. One export call, no retries beyond the SDK's own
within --export-timeout.
"""

from __future__ import annotations

import argparse
import json
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository

from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402


class Keep(SpanProcessor):
    """Keeps every ended span, to export them in one call."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def exporter(args):
    headers = {"authorization": f"Bearer {args.token}"} if args.token else None
    if args.protocol == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(
            endpoint=args.endpoint,
            certificate_file=args.ca,
            client_certificate_file=args.cert,
            client_key_file=args.key,
            headers=headers,
            timeout=args.export_timeout,
        )
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca),
        private_key=read(args.key),
        certificate_chain=read(args.cert),
    )
    return OTLPSpanExporter(
        endpoint=args.endpoint,
        insecure=False,
        credentials=credentials,
        headers=headers,
        timeout=args.export_timeout,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", choices=["http", "grpc"], required=True)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--ca", required=True, help="PEM of the CA the server's certificate is signed by")
    p.add_argument("--cert", help="PEM of the client certificate (mutual TLS)")
    p.add_argument("--key", help="PEM of the client certificate's key")
    p.add_argument("--token", help="sent as authorization: Bearer TOKEN")
    p.add_argument("--spans", type=int, default=5)
    p.add_argument("--export-timeout", type=float, default=10.0)
    args = p.parse_args()

    keep = Keep()
    provider = TracerProvider(resource=Resource.create({"service.name": "frontend"}))
    provider.add_span_processor(keep)
    tracer = provider.get_tracer("otel_tls")
    for i in range(args.spans):
        with tracer.start_as_current_span(f"GET /tls/{i}", kind=SpanKind.SERVER):
            pass
    result = exporter(args).export(keep.spans)
    print(json.dumps({"result": result.name, "spans": len(keep.spans)}))


if __name__ == "__main__":
    main()
