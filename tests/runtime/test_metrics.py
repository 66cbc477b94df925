"""Exposition: promtool-valid, separate port, configurable buckets, multi-process mode."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import obskit
from obskit.testing import capture
from tests.conftest import require_binary

from .apps import fastapi_app
from .test_hostile import _request

ROOT = Path(__file__).resolve().parents[2]


def _traffic(app) -> None:
    async def run():
        for path in ("/orders/1", "/orders/2", "/missing", "/nope/x"):
            await _request(app, path)
        with contextlib.suppress(RuntimeError):  # the app raises; the server would answer 500
            await _request(app, "/boom")

    asyncio.run(run())


@pytest.mark.prometheus
def test_promtool_accepts_the_exposition():
    promtool = require_binary("promtool")
    app = fastapi_app()
    with capture(app, instrument_clients=True):
        _traffic(app)
        with obskit.observe("job"):
            pass
        body = _body(app, b"text/plain")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    text = body.decode()
    for name in (
        "http_server_request_duration_seconds_bucket",
        "obskit_operation_duration_seconds_bucket",
        "obskit_spans_exported_total",
        "obskit_spans_dropped_total",
        "obskit_span_export_failures_total",
        "obskit_build_info",
    ):
        assert name in text
    assert 'le="0.005"' in text and 'le="10.0"' in text
    assert 'http_response_status_code="500"' in text


def test_openmetrics_exposition_parses_and_carries_trace_exemplars():
    """promtool 2.42 reads only the text format; OpenMetrics is checked with a real parser."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    app = fastapi_app()
    with capture(app) as cap:
        _traffic(app)
        body = _body(app, b"application/openmetrics-text; version=1.0.0").decode()
        spans = {f"{s.context.trace_id:032x}" for s in cap.spans()}
    families = {f.name: f for f in text_string_to_metric_families(body)}
    server = families["http_server_request_duration_seconds"]
    exemplars = [s.exemplar for s in server.samples if s.exemplar is not None]
    assert exemplars
    assert {e.labels["trace_id"] for e in exemplars} <= spans


def _body(app, accept: bytes) -> bytes:
    chunks: list[bytes] = []
    scope = {"type": "http", "method": "GET", "path": "/metrics", "root_path": "",
             "headers": [(b"accept", accept)], "scheme": "http"}  # fmt: skip

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        if message["type"] == "http.response.body":
            chunks.append(message["body"])

    asyncio.run(app(scope, receive, send))
    return b"".join(chunks)


def test_buckets_are_configurable():
    app = fastapi_app()
    with capture(app, buckets=(0.1, 0.3)) as cap:
        _traffic(app)
        labels = {"http_request_method": "GET", "http_route": "/orders/{order_id}",
                  "http_response_status_code": "200"}  # fmt: skip
        assert cap.sample("http_server_request_duration_seconds_bucket", le="0.3", **labels) == 2
        assert cap.sample("http_server_request_duration_seconds_bucket", le="0.005",
                          **labels) is None  # fmt: skip


def test_metrics_on_a_separate_port_and_not_on_the_app():
    app = fastapi_app()
    with capture(app, metrics_port=0, metrics_host="127.0.0.1") as cap:
        _traffic(app)
        port = cap.handle.metrics_port
        assert port
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert 'http_route="/orders/{order_id}"' in text
        status, _ = asyncio.run(_request(app, "/metrics"))
        assert status == 404  # the app's own routing answers; obskit does not serve it there


WORKER = """
import asyncio, os, sys
sys.path.insert(0, os.environ["ROOT"])
import obskit
from tests.runtime.apps import fastapi_app
from tests.runtime.test_hostile import _request
app = fastapi_app()
obskit.init(app, service="mp", traces_enabled=False, capture_stdlib_logs=False,
            log_stream=open(os.devnull, "wb"))
async def run():
    for _ in range(int(sys.argv[1])):
        await _request(app, "/orders/1")
asyncio.run(run())
if len(sys.argv) > 2:
    from obskit.runtime.metrics import exposition
    from prometheus_client import REGISTRY
    sys.stdout.write(exposition(REGISTRY, None)[0].decode())
"""


@pytest.mark.integration
def test_multiprocess_mode_sums_every_workers_observations(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR: the exposition of any worker covers all workers."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "ROOT": str(ROOT)}
    for n in (3, 4):
        subprocess.run([sys.executable, "-c", WORKER, str(n)], env=env, check=True)
    out = subprocess.run([sys.executable, "-c", WORKER, "5", "expose"], env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    line = next(
        line
        for line in out.splitlines()
        if line.startswith("http_server_request_duration_seconds_count")
        and 'http_route="/orders/{order_id}"' in line
    )
    assert float(line.rsplit(" ", 1)[1]) == 12
    assert out.count("# TYPE http_server_request_duration_seconds histogram") == 1


def test_a_custom_metrics_path_is_served_and_never_observed():
    app = fastapi_app()
    with capture(app, metrics_path="/prom", excluded_paths="/health") as cap:
        _traffic(app)
        body = _body_at(app, "/prom")
        assert "http_server_request_duration_seconds" in body
        assert 'http_route="/prom"' not in body
        assert "/prom" not in {line["path"] for line in cap.logs(logger="obskit.access")}


def _body_at(app, path: str) -> str:
    chunks: list[bytes] = []
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": [],
             "scheme": "http"}  # fmt: skip

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        if message["type"] == "http.response.body":
            chunks.append(message["body"])

    asyncio.run(app(scope, receive, send))
    return b"".join(chunks).decode()


def test_the_fast_observer_counts_exactly_as_prometheus_clients_observe() -> None:
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry, Histogram

    from obskit.runtime.metrics import observer

    values = [-1.0, 0.0, 0.005, 0.01, 0.0100001, 0.3, 1.0, 29.9, 30.0, 3600.0, 1e9]
    values += [float("inf"), float("nan")]
    counts = []
    for fast in (False, True):
        registry = CollectorRegistry()
        histogram = Histogram("wait", "w", ["q"], buckets=(0.01, 0.1, 1.0, 30.0), registry=registry)
        child = histogram.labels("orders")
        observe = observer(child) if fast else child.observe
        for value in values:
            observe(value)
        samples = [s for m in registry.collect() for s in m.samples if "created" not in s.name]
        counts.append([(s.name, s.labels.get("le"), repr(s.value)) for s in samples])
    assert counts[0] == counts[1]
    other = SimpleNamespace(observe=print)  # internals not as expected: its own observe
    assert observer(other) is print
