"""Real servers on 127.0.0.1: FastAPI under uvicorn and Flask under werkzeug, spans on the wire."""

from __future__ import annotations

import io

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry

import obskit
from examples.lab.otlp_receiver import OTLPReceiver

from .apps import fastapi_app, flask_app
from .servers import serve_asgi, serve_wsgi

pytestmark = pytest.mark.integration

SERVER = 2  # SpanKind.SERVER in OTLP


def _lines(stream: io.BytesIO) -> list[dict]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines() if line]


def _init(app, rx: OTLPReceiver, **extra):
    stream = io.BytesIO()
    registry = CollectorRegistry()
    obskit.init(
        app,
        service="shop",
        version="1.4.2",
        log_stream=stream,
        log_format="json",
        registry=registry,
        otlp_endpoint=rx.traces_url,
        span_export_interval=0.05,
        environ={},
        **{"instrument_clients": False, **extra},
    )
    return stream, registry


def test_fastapi_request_gives_one_server_span_on_the_wire_a_log_line_and_metrics(receiver):
    """One request -> one OTLP span named by the route template, correlated JSON logs, RED."""
    app = fastapi_app()
    stream, registry = _init(app, receiver)
    with serve_asgi(app) as url:
        response = httpx.get(f"{url}/orders/7", headers={"X-Request-ID": "req-7"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-7"
    assert response.json()["correlation_id"] == "req-7"

    obskit.shutdown(30)  # everything that ended is on the wire now: a duplicate would be too
    spans = receiver.spans()
    assert [s.name for s in spans] == ["GET /orders/{order_id}"]
    span = spans[0]
    assert span.kind == SERVER
    assert span.attributes["http.route"] == "/orders/{order_id}"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["correlation_id"] == "req-7"
    assert span.resource["service.name"] == "shop"
    assert span.resource["service.version"] == "1.4.2"
    assert "service.instance.id" in span.resource

    lines = _lines(stream)
    app_line = next(rec for rec in lines if rec["event"] == "order looked up")
    access = [rec for rec in lines if rec["logger"] == "obskit.access"]
    assert len(access) == 1
    for rec in (app_line, access[0]):
        assert rec["correlation_id"] == "req-7"
        assert rec["trace_id"] == span.trace_id
        assert rec["service"] == "shop"
        assert rec["timestamp"].endswith("Z")
    assert app_line["span_id"] == span.span_id
    assert access[0]["route"] == "/orders/{order_id}"
    assert access[0]["status"] == 200
    assert access[0]["method"] == "GET"
    assert access[0]["duration_ms"] >= 0

    labels = {
        "http_request_method": "GET",
        "http_route": "/orders/{order_id}",
        "http_response_status_code": "200",
    }
    assert registry.get_sample_value("http_server_request_duration_seconds_count", labels) == 1


def test_fastapi_metrics_endpoint_serves_exposition_and_is_not_itself_observed(receiver):
    app = fastapi_app()
    stream, _ = _init(app, receiver)
    with serve_asgi(app) as url:
        httpx.get(f"{url}/orders/1")
        httpx.get(f"{url}/health")
        text = httpx.get(f"{url}/metrics").text
        om = httpx.get(f"{url}/metrics", headers={"Accept": "application/openmetrics-text"})
    assert 'http_route="/orders/{order_id}"' in text
    assert "/health" not in text and 'http_route="/metrics"' not in text
    assert "obskit_spans_exported_total" in text
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert "# {trace_id=" in om.text  # exemplar linking latency to the trace
    access = [rec for rec in _lines(stream) if rec["logger"] == "obskit.access"]
    assert [rec["path"] for rec in access] == ["/orders/1"]


def test_fastapi_unhandled_exception_is_a_500_with_request_id_error_span_and_metric(receiver):
    app = fastapi_app()
    _stream, registry = _init(app, receiver)
    with serve_asgi(app) as url:
        response = httpx.get(f"{url}/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "boom-1"
    span = receiver.wait_for_spans(1)[0]
    assert span.name == "GET /boom"
    assert span.status_code == 2  # STATUS_CODE_ERROR
    assert span.attributes["error.type"] == "RuntimeError"
    labels = {
        "http_request_method": "GET",
        "http_route": "/boom",
        "http_response_status_code": "500",
    }
    assert registry.get_sample_value("http_server_request_duration_seconds_count", labels) == 1
    [access] = [rec for rec in _lines(_stream) if rec["logger"] == "obskit.access"]
    assert access["level"] == "error" and access["correlation_id"] == "boom-1"
    assert access["trace_id"] == span.trace_id
    assert access["exception"]["type"] == "RuntimeError"
    assert "kaboom" in access["exception"]["stacktrace"]


def test_flask_request_under_werkzeug_gives_span_logs_metrics_with_template_route(receiver):
    app = flask_app()
    stream, registry = _init(app, receiver)
    with serve_wsgi(app) as url:
        response = httpx.get(f"{url}/refunds/12", headers={"X-Correlation-ID": "corr-12"})
        health = httpx.get(f"{url}/health")
        boom = httpx.get(f"{url}/boom", headers={"X-Request-ID": "b-1"})
        text = httpx.get(f"{url}/metrics").text
    assert response.status_code == 200 and health.status_code == 200
    assert response.headers["x-request-id"] == "corr-12"
    assert response.json()["correlation_id"] == "corr-12"
    assert boom.status_code == 500 and boom.headers["x-request-id"] == "b-1"
    spans = receiver.wait_for_spans(2)
    assert sorted(s.name for s in spans) == ["GET /boom", "GET /refunds/{refund_id}"]
    refund = next(s for s in spans if s.name == "GET /refunds/{refund_id}")
    lines = _lines(stream)
    app_line = next(rec for rec in lines if rec["event"] == "refund looked up")
    assert app_line["correlation_id"] == "corr-12"
    assert app_line["trace_id"] == refund.trace_id
    access = [rec for rec in lines if rec["logger"] == "obskit.access"]
    assert [(rec["route"], rec["status"]) for rec in access] == [
        ("/refunds/{refund_id}", 200),
        ("/boom", 500),
    ]
    assert 'http_route="/refunds/{refund_id}"' in text
    assert "/health" not in text
    labels = {
        "http_request_method": "GET",
        "http_route": "/boom",
        "http_response_status_code": "500",
    }
    assert registry.get_sample_value("http_server_request_duration_seconds_count", labels) == 1


def test_werkzeug_request_lines_give_way_to_the_one_obskit_access_line(receiver):
    """With logging bridged, werkzeug's own per-request lines are dropped (no duplicate access
    line, no health check in the logs); other lines, like Flask's error report, still pass."""
    import logging

    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:
        root.removeHandler(handler)
    try:
        app = flask_app()
        stream, _ = _init(app, receiver, capture_stdlib_logs=True)
        with serve_wsgi(app) as url:
            assert httpx.get(f"{url}/refunds/3").status_code == 200
            assert httpx.get(f"{url}/health").status_code == 200
            assert httpx.get(f"{url}/boom").status_code == 500
        lines = _lines(stream)
        access = [rec for rec in lines if rec["logger"] == "obskit.access"]
        assert [rec["path"] for rec in access] == ["/refunds/3", "/boom"]
        werkzeug = [rec["event"] for rec in lines if rec["logger"] == "werkzeug"]
        assert not [event for event in werkzeug if "HTTP/1.1" in event], werkzeug
        assert not [event for event in werkzeug if "/health" in event]
        assert any(rec["logger"] == app.name and rec["level"] == "error" for rec in lines)
    finally:
        obskit.reset()
        for handler in saved:
            root.addHandler(handler)
