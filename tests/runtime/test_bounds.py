"""Oversized request-derived values are bounded (issue 13, item 9).

- A 100 KB User-Agent, path, query or Host is cut to the request value limit (2048 characters
  by default) in the span, as received over real OTLP, and in the access line.
- OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT / OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT work as in the SDK:
  the span limit (else the general one) cuts every string attribute, the user's own included,
  on obskit's lean server span and on SDK spans alike; the general one cuts event attributes.
- A 100 KB `baggage` header produces at most one short warning line per interval, not a
  100 KB line per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry import trace
from prometheus_client import CollectorRegistry

import obskit
from examples.lab.otlp_receiver import OTLPReceiver
from obskit.runtime.config import REQUEST_VALUE_LIMIT

from .apps import fastapi_app, flask_app
from .servers import asgi_request, header_echo_server

pytestmark = pytest.mark.integration

BIG = 100_000


@contextlib.contextmanager
def unconfigured_root_logger() -> Iterator[None]:
    """The root logger without handlers (pytest's own, too) for the block; obskit is reset
    before they come back."""
    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:
        root.removeHandler(handler)
    try:
        yield
    finally:
        obskit.reset()
        for handler in saved:
            root.addHandler(handler)


def _init(app: Any, rx: OTLPReceiver, stream: io.BytesIO, **environ: str) -> None:
    obskit.init(
        app,
        service="big",
        log_stream=stream,
        log_format="json",
        registry=CollectorRegistry(),
        otlp_endpoint=rx.traces_url,
        span_export_interval=0.05,
        environ=environ,
    )


def _asgi(app: Any, path: str, query: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    async def call() -> int:
        # asgi_request builds the scope; the query goes in through a wrapper
        async def with_query(scope: Any, receive: Any, send: Any) -> None:
            await app({**scope, "query_string": query}, receive, send)

        try:
            status, _, _ = await asgi_request(with_query, path, headers)
        except RuntimeError:  # the handler's error, re-raised to the server as servers expect
            return 500
        return status

    return asyncio.run(call())


def _wsgi(app: Any, path: str, query: str, headers: dict[str, str]) -> int:
    from werkzeug.test import Client

    response = Client(app).get(path, query_string=query, headers=headers)
    response.close()
    return response.status_code


def _lines(stream: io.BytesIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_100_kb_request_values_are_cut_to_the_default_bound(receiver: OTLPReceiver, kind: str):
    stream = io.BytesIO()
    agent, query = "A" * BIG, "q=" + "Q" * BIG
    path = "/" + "p" * BIG  # matches no route: 404, and the whole path is client-chosen
    if kind == "asgi":
        app = fastapi_app()
        _init(app, receiver, stream)
        headers = [(b"user-agent", agent.encode()), (b"host", b"h" * BIG)]
        assert _asgi(app, path, query.encode(), headers) == 404
    else:
        app = flask_app()
        _init(app, receiver, stream)
        assert _wsgi(app, path, query, {"User-Agent": agent}) == 404
    obskit.shutdown(30)
    [span] = receiver.wait_for_spans(1)
    attrs = span.attributes
    assert attrs["user_agent.original"] == agent[:REQUEST_VALUE_LIMIT]
    assert attrs["url.path"] == path[:REQUEST_VALUE_LIMIT]
    assert attrs["url.query"] == query[:REQUEST_VALUE_LIMIT]
    assert len(attrs["server.address"]) <= REQUEST_VALUE_LIMIT
    assert max(len(str(v)) for v in attrs.values()) <= REQUEST_VALUE_LIMIT
    [access] = [line for line in _lines(stream) if line["logger"] == "obskit.access"]
    assert access["path"] == path[:REQUEST_VALUE_LIMIT]
    assert len(stream.getvalue()) < 2 * REQUEST_VALUE_LIMIT + 2000  # the access line, not 100 KB


def test_otel_span_attribute_limit_applies_to_every_span_attribute(receiver: OTLPReceiver):
    """As the SDK does: the span limit (here 100) wins over the general one (here 1000) for
    span attributes, the user's own included; the general one bounds event attributes."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item}")
    async def item(item: str) -> dict[str, str]:
        trace.get_current_span().set_attribute("mine", "m" * 5000)
        trace.get_current_span().set_attribute("list", ["l" * 5000, 7])
        with header_echo_server() as url, httpx.Client() as client:
            client.get(f"{url}/echo?x=" + "u" * 5000)
        with obskit.observe("step"):
            trace.get_current_span().set_attribute("inner", "i" * 5000)
        raise RuntimeError("e" * 5000)

    stream = io.BytesIO()
    _init(
        app,
        receiver,
        stream,
        OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT="100",
        OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="1000",
    )
    assert _asgi(app, "/items/" + "p" * 5000, b"", [(b"user-agent", b"a" * 5000)]) == 500
    obskit.shutdown(30)
    internal = next(s for s in receiver.wait_for_spans(3) if s.name == "step")
    server = next(s for s in receiver.spans() if s.kind == 2)  # SPAN_KIND_SERVER
    client = next(s for s in receiver.spans() if s.kind == 3)  # SPAN_KIND_CLIENT
    assert server.attributes["mine"] == "m" * 100
    assert server.attributes["list"] == ["l" * 100, 7]
    assert server.attributes["url.path"] == ("/items/" + "p" * 5000)[:100]
    assert server.attributes["user_agent.original"] == "a" * 100
    assert len(client.attributes["url.full"]) == 100
    assert internal.attributes["inner"] == "i" * 100
    strings = [
        (k, text)
        for s in receiver.spans()
        for k, v in s.attributes.items()
        for text in (v if isinstance(v, list) else [v])
        if isinstance(text, str)
    ]
    assert [k for k, text in strings if len(text) > 100] == []


def test_the_general_limit_cuts_exception_event_attributes():
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    app = fastapi_app()
    obskit.init(app, service="ev", span_exporter=exporter, log_stream=io.BytesIO(),
                registry=CollectorRegistry(), environ={"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "40"},
                capture_stdlib_logs=False)  # fmt: skip
    assert _asgi(app, "/boom", b"", []) == 500
    obskit.shutdown(10)
    [server] = [s for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]
    [event] = server.events
    assert event.attributes is not None
    assert all(len(str(v)) <= 40 for v in event.attributes.values())
    assert event.attributes["exception.type"] == "RuntimeError"


def test_a_100_kb_baggage_header_logs_one_short_warning_not_one_per_request(
    receiver: OTLPReceiver,
) -> None:
    """0.1: every request with it wrote OTel's warning quoting the whole 100 KB header."""
    stream = io.BytesIO()
    app = fastapi_app()
    with unconfigured_root_logger():  # so obskit bridges stdlib logging (OTel's warnings)
        _init(app, receiver, stream)
        _send_hostile_headers(app)
    _check_warnings(stream)


def _send_hostile_headers(app: Any) -> None:
    baggage = ("k=" + "v" * BIG).encode()
    tracestate = ("bad member " * 10_000).encode()
    for _ in range(50):
        headers = [(b"baggage", baggage), (b"tracestate", tracestate),
                   (b"traceparent", b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01")]  # fmt: skip
        assert _asgi(app, "/orders/1", b"", headers) == 200


def _check_warnings(stream: io.BytesIO) -> None:
    warnings = [r for r in _lines(stream) if r["logger"].startswith("opentelemetry.")]
    assert {r["logger"] for r in warnings} == {
        "opentelemetry.baggage.propagation",
        "opentelemetry.trace.span",
    }
    assert len(warnings) == 2  # one per logger per interval (export_error_interval, 60 s)
    for warning in warnings:
        assert len(orjson.dumps(warning)) < 1500
        assert "rate-limited" in warning["event"]
    assert len(stream.getvalue()) < 50 * 1500 + 5000  # 50 access lines + 2 warnings + lookups
