"""obskit's direct OTLP encoder produces the same protobuf as the stock encoder."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
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

from obskit.otlp import Encoder


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
