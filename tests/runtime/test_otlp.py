"""obskit's direct OTLP encoder produces the same protobuf as the stock encoder."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from obskit.runtime.tracing.otlp import Encoder
from obskit.runtime.tracing.provider import detach_span as tracing_detach


def _spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "enc", "n": 3}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t", "1.0")
    other = provider.get_tracer("other")
    remote = SpanContext(
        0xABC,
        0xDEF,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "v1")]),
    )
    with tracer.start_as_current_span(
        "root", context=set_span_in_context(NonRecordingSpan(remote)), kind=SpanKind.SERVER
    ) as root:
        root.set_attributes(
            {
                "s": "x",
                "b": True,
                "i": -5,
                "f": 1.5,
                "big": 2**70,
                "arr": ["a", "b"],
                "nums": [1, 2],
                "uni": "héllo ✓",
                # per-request values (encoded inline, key part cached), short, unicode, long
                "url.path": "/items/é",
                "correlation_id": "c" * 32,
                "url.full": "http://h/" + "x" * 20000,
            }
        )
        root.add_event("ev", {"k": "v"})
        root.set_status(StatusCode.ERROR, "bad thing")
        with tracer.start_as_current_span(
            "child", kind=SpanKind.CLIENT, links=[Link(remote, {"l": 1})]
        ):
            pass
        with other.start_as_current_span("internal"):
            pass
        try:
            raise ValueError("boom")
        except ValueError as exc:
            root.record_exception(exc)
    return exporter.get_finished_spans()


def test_encoding_matches_the_stock_encoder_field_for_field():
    spans = _spans()
    ours = ExportTraceServiceRequest.FromString(Encoder().request(spans))
    stock = encode_spans(spans)
    # the stock encoder cannot carry ints beyond 64 bits; obskit sends them as strings
    for request in (ours, stock):
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    keep = [kv for kv in span.attributes if kv.key != "big"]
                    del span.attributes[:]
                    span.attributes.extend(keep)
    assert ours == stock


def test_big_integers_are_sent_as_strings_instead_of_breaking_the_batch():
    spans = _spans()
    ours = ExportTraceServiceRequest.FromString(Encoder().request(spans))
    root = next(
        s
        for rs in ours.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
        if s.name == "root"
    )
    big = next(kv for kv in root.attributes if kv.key == "big")
    assert big.value.string_value == str(2**70)


@pytest.mark.integration
def test_otel_headers_and_gzip_from_the_environment_reach_the_collector():
    """OTEL_EXPORTER_OTLP_HEADERS (URL-encoded) and _COMPRESSION=gzip are what goes on the wire."""
    import gzip
    import io
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from prometheus_client import CollectorRegistry

    import obskit

    seen: list[tuple[dict[str, str], bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cr%3Dt,x-tenant=acme",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_SERVICE_NAME": "wire",
    }
    try:
        obskit.init(None, environ=environ, registry=CollectorRegistry(),
                    log_stream=io.BytesIO(), capture_stdlib_logs=False)  # fmt: skip
        with obskit.observe("sent"):
            pass
        obskit.shutdown(10)
    finally:
        obskit.reset()
        server.shutdown()
        server.server_close()
    [(headers, body)] = seen
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower["api-key"] == "s3cr=t" and lower["x-tenant"] == "acme"
    assert lower["content-encoding"] == "gzip"
    request = ExportTraceServiceRequest()
    request.ParseFromString(gzip.decompress(body))
    [resource_spans] = request.resource_spans
    assert [s.name for s in resource_spans.scope_spans[0].spans] == ["sent"]


class _LeanExporter(SpanExporter):
    """Collects batches as the pipe hands them to obskit's own OTLP exporter."""

    reads_lean_spans = True

    def __init__(self) -> None:
        self.spans: list[object] = []

    def export(self, spans):  # type: ignore[no-untyped-def]
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def test_lean_spans_encode_exactly_as_their_readable_spans_through_the_stock_encoder():
    """obskit's own spans reach its OTLP exporter as they are (no ReadableSpan on the request
    path); the encoder's reading of them must give what the stock encoder gives for the SDK
    spans they stand for, remote parent, trace state, events and error status included."""
    import io

    import obskit
    from obskit.runtime import state

    exporter = _LeanExporter()
    obskit.init(None, service="enc", log_stream=io.StringIO(), span_exporter=exporter, environ={})
    try:
        traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        headers = {"traceparent": traceparent, "tracestate": "vendor=v1"}
        with obskit.consume("kafka", "orders", "charge", headers):
            with obskit.produce("kafka", "payments", task="pay"):
                pass
            try:
                with obskit.consume("kafka", "orders", "refund", {}):
                    raise ValueError("card declined")
            except ValueError:
                pass
        tracing = state.current().tracing
        span, token, *_ = tracing.begin_server_span("GET", None)
        span.set_attribute("http.route", "/items/{id}")
        span.add_event("ev", {"k": "v"})
        tracing_detach(token)
        span.end()
        obskit.shutdown()
    finally:
        obskit.reset()
    lean = exporter.spans
    assert len(lean) == 4
    assert all(type(s).__name__ == "ServerSpan" for s in lean)  # handed over as they are
    sdk = [s.readable() for s in lean]
    assert all(isinstance(s, ReadableSpan) for s in sdk)
    ours = ExportTraceServiceRequest.FromString(Encoder().request(lean))
    assert ours == encode_spans(sdk)
    charge = next(s for s in sdk if s.name == "process charge")
    assert charge.parent.span_id == 0xB7AD6B7169203331
    assert charge.context.trace_state.to_header() == "vendor=v1"


def test_a_lean_span_cannot_be_changed_once_it_has_ended():
    """An ended span sits in the export queue and may be being encoded in the export thread:
    a late update_name / set_status / set_attribute (a handler keeping a reference) must not
    change it, as the SDK ignores them too."""
    import io

    import obskit
    from obskit.runtime import state

    exporter = _LeanExporter()
    obskit.init(None, service="enc", log_stream=io.StringIO(), span_exporter=exporter, environ={})
    try:
        tracing = state.current().tracing
        span, token, *_ = tracing.begin_server_span("GET", None)
        span.set_attribute("http.route", "/a")
        tracing_detach(token)
        span.end()
        span.update_name("renamed")
        span.set_status(StatusCode.ERROR)
        span.set_attribute("http.route", "/b")
        span.add_event("late")
        obskit.shutdown()
    finally:
        obskit.reset()
    (ended,) = exporter.spans
    readable = ended.readable()
    assert readable.name == "GET"
    assert readable.status.status_code is StatusCode.UNSET
    assert readable.attributes["http.route"] == "/a"
    assert not readable.events


def test_per_span_values_of_every_length_encode_as_the_stock_encoder():
    # per-span text values (correlation ID, message ID, path...) take a precomputed prefix up
    # to the longest pair with a one-byte length and the general path beyond: both exact
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "enc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for n in range(131):
        with tracer.start_as_current_span(f"s{n}") as span:
            span.set_attribute("correlation_id", "c" * n)
            span.set_attribute("messaging.message.id", "é" * (n // 2))
            span.set_attribute("url.path", "/" * n)
    spans = exporter.get_finished_spans()
    encoder = Encoder()
    assert ExportTraceServiceRequest.FromString(encoder.request(spans)) == encode_spans(spans)
    assert encoder.cached_keys().isdisjoint({"correlation_id", "messaging.message.id", "url.path"})
