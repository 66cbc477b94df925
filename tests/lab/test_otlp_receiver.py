"""The test receiver decodes what the real OTLP/HTTP exporter sends (the peer our tests trust)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from examples.lab.otlp_receiver import OTLPReceiver

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_receiver_decodes_spans_sent_by_the_sdk_exporter(compression: Compression) -> None:
    with OTLPReceiver() as rx:
        exporter = OTLPSpanExporter(endpoint=rx.traces_url, compression=compression)
        provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("parent") as parent:
            tracer.start_span("child").end()
        provider.shutdown()
        spans = {s.name: s for s in rx.wait_for_spans(2, timeout=5)}
    trace_id = format(parent.get_span_context().trace_id, "032x")
    assert spans["child"].trace_id == spans["parent"].trace_id == trace_id
    assert spans["child"].parent_span_id == spans["parent"].span_id
    assert spans["parent"].parent_span_id == ""
    assert spans["parent"].resource["service.name"] == "svc"


def test_error_mode_makes_the_exporter_fail_and_stop_refuses_connections() -> None:
    rx = OTLPReceiver().start()
    exporter = OTLPSpanExporter(endpoint=rx.traces_url, timeout=2)
    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("s") as span:
        pass
    rx.set_mode("error")
    assert exporter.export([span]) == SpanExportResult.FAILURE  # type: ignore[list-item]
    rx.set_mode("ok")
    assert exporter.export([span]) == SpanExportResult.SUCCESS  # type: ignore[list-item]
    with urllib.request.urlopen(f"{rx.endpoint}/stats", timeout=2) as resp:
        assert json.load(resp) == {"spans": 1, "requests": 1}
    rx.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{rx.endpoint}/stats", timeout=2)
    exporter.shutdown()
    provider.shutdown()


def test_stop_cuts_keep_alive_connections_so_a_stopped_collector_looks_dead() -> None:
    """An exporter holding a pooled connection must see failures after stop(), not success."""
    rx = OTLPReceiver().start()
    exporter = OTLPSpanExporter(endpoint=rx.traces_url, timeout=2)
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("s") as span:
        pass
    assert exporter.export([span]) == SpanExportResult.SUCCESS  # type: ignore[list-item]
    rx.stop()
    assert exporter.export([span]) == SpanExportResult.FAILURE  # type: ignore[list-item]
    assert rx.span_count == 1
    exporter.shutdown()
    provider.shutdown()
