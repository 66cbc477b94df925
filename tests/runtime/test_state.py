"""init/shutdown/reset rules: idempotent, never clobbering user setup, no import side effects."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import obskit
from obskit.testing import capture

from .apps import fastapi_app
from .servers import asgi_request


def _call(app, path: str, headers=()):
    """Call an ASGI app in-process; return (status, headers dict)."""
    status, raw_headers, _ = asyncio.run(asgi_request(app, path, headers))
    return status, {k.decode(): v.decode() for k, v in raw_headers}


def test_importing_obskit_configures_nothing():
    code = (
        "import logging, sys, obskit\n"
        "from opentelemetry import trace\n"
        "assert logging.getLogger().handlers == []\n"
        "assert 'prometheus_client' not in sys.modules\n"
        "assert 'opentelemetry.sdk' not in sys.modules\n"
        "assert 'structlog' not in sys.modules\n"
        "assert type(trace.get_tracer_provider()).__name__ == 'ProxyTracerProvider'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_second_init_warns_and_returns_the_same_handle():
    with capture() as cap, pytest.warns(RuntimeWarning, match="called again"):
        assert obskit.init(None, service="other") is cap.handle


def test_obskit_does_not_install_a_global_tracer_provider_by_default():
    with capture():
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def test_a_global_provider_set_by_the_user_is_never_replaced():
    user = TracerProvider()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trace, "_TRACER_PROVIDER", user)
        with capture(set_global_tracer_provider=True):
            assert trace.get_tracer_provider() is user


def test_users_tracer_provider_is_used_when_passed():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = fastapi_app()
    obskit.init(
        app,
        service="s",
        tracer_provider=provider,
        log_stream=io.BytesIO(),
        registry=CollectorRegistry(),
        environ={},
        instrument_clients=False,
    )
    status, _ = _call(app, "/orders/3")
    assert status == 200
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /orders/{order_id}"]


def test_fastapi_native_spans_stay_off_even_with_a_global_provider():
    """FastAPI >= 0.13x emits its own spans once a global provider exists; obskit keeps one."""
    user_exporter = InMemorySpanExporter()
    user = TracerProvider()
    user.add_span_processor(SimpleSpanProcessor(user_exporter))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trace, "_TRACER_PROVIDER", user)
        app = fastapi_app()
        with capture(app) as cap:
            status, _ = _call(app, "/orders/9")
            assert status == 200
            assert [s.name for s in cap.spans()] == ["GET /orders/{order_id}"]
        assert user_exporter.get_finished_spans() == ()


def test_request_hook_sees_each_request_and_its_errors_never_reach_the_request():
    seen = []

    def hook(span, info):
        seen.append((info.route, info.status, info.correlation_id))
        span.set_attribute("tenant", "acme")
        raise RuntimeError("hook bug")

    app = fastapi_app()
    with capture(app, request_hook=hook) as cap:
        status, headers = _call(app, "/orders/1", [(b"x-request-id", b"hook-1")])
        assert status == 200 and headers["x-request-id"] == "hook-1"
        assert seen == [("/orders/{order_id}", 200, "hook-1")]
        [span] = cap.spans()
        assert span.attributes["tenant"] == "acme"
        assert cap.sample("obskit_instrumentation_errors_total") == 1
        assert (
            cap.sample(
                "http_server_request_duration_seconds_count",
                http_request_method="GET",
                http_route="/orders/{order_id}",
                http_response_status_code="200",
            )
            == 1
        )


def test_handlers_can_annotate_the_server_span_through_the_otel_api():
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/annotated")
    async def annotated() -> dict:
        span = trace.get_current_span()
        span.set_attribute("user.tier", "gold")
        span.set_attribute("bad", object())  # not an OTLP value: dropped, never raised
        span.add_event("checked")
        return {}

    with capture(app) as cap:
        assert _call(app, "/annotated")[0] == 200
        [span] = cap.spans()
        assert span.attributes["user.tier"] == "gold" and "bad" not in span.attributes
        assert [e.name for e in span.events] == ["checked"]


def test_reset_undoes_init_and_allows_a_fresh_init():
    registry = CollectorRegistry()
    obskit.init(None, service="one", registry=registry, log_stream=io.BytesIO(), environ={})
    assert (
        registry.get_sample_value(
            "obskit_build_info", {"version": obskit.__version__, "service": "one"}
        )
        == 1
    )
    obskit.reset()
    assert (
        registry.get_sample_value(
            "obskit_build_info", {"version": obskit.__version__, "service": "one"}
        )
        is None
    )
    handle = obskit.init(
        None, service="two", registry=registry, log_stream=io.BytesIO(), environ={}
    )
    assert handle.config.service == "two"


def test_invalid_setting_fails_init_with_a_clear_message():
    with pytest.raises(obskit.ConfigError, match="log_format"):
        obskit.init(None, service="x", log_format="yaml", environ={})


def test_get_tracer_records_child_spans_of_the_request_span():
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/manual")
    async def manual() -> dict:
        with obskit.get_tracer("checkout").start_as_current_span("price lookup"):
            pass
        return {}

    with capture(app) as cap:
        assert _call(app, "/manual")[0] == 200
        spans = {s.name: s for s in cap.spans()}
        assert spans["price lookup"].parent.span_id == spans["GET /manual"].context.span_id
    assert isinstance(obskit.get_tracer(), trace.NoOpTracer)


def _taken_port():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def test_a_metrics_port_in_use_fails_init_clearly_and_leaves_nothing_behind():
    registry = CollectorRegistry()
    with _taken_port() as sock:
        port = sock.getsockname()[1]
        settings = {"metrics_host": "127.0.0.1", "registry": registry, "environ": {}}
        with pytest.raises(obskit.ConfigError, match=f"metrics_port: cannot listen on .*:{port}"):
            obskit.init(None, service="x", metrics_port=port, log_stream=io.BytesIO(), **settings)
        assert list(registry.collect()) == []  # nothing half-registered
        handle = obskit.init(None, service="x", metrics_port=0, **settings)  # init works again
        assert handle.metrics_port not in (None, port)


def test_with_worker_processes_a_metrics_port_taken_by_another_worker_is_left_to_it(
    tmp_path, monkeypatch
):
    """uvicorn/gunicorn workers with PROMETHEUS_MULTIPROC_DIR and OBSKIT_METRICS_PORT: the first
    worker serves every worker's metrics; the others start normally instead of crashing."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with _taken_port() as sock:
        handle = obskit.init(None, service="x", metrics_port=sock.getsockname()[1],
                             metrics_host="127.0.0.1", registry=CollectorRegistry(),
                             log_stream=io.BytesIO(), environ={})  # fmt: skip
        assert handle.metrics_port is None
