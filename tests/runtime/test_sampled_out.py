"""A request whose trace is sampled out still gets everything but an exported span."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from opentelemetry import trace

import obskit
from obskit.testing import capture

from .servers import asgi_request, header_echo_server

pytestmark = pytest.mark.integration

COUNT = "http_server_request_duration_seconds_count"


@pytest.fixture
def echo():
    """A plain HTTP server on 127.0.0.1 that answers with the request headers it got."""
    with header_echo_server() as url:
        yield url


def _app(echo: str) -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/calls/{n}")
    async def call(n: str) -> dict[str, Any]:
        span_context = trace.get_current_span().get_span_context()
        async with httpx.AsyncClient() as client:
            seen = (await client.get(f"{echo}/downstream")).json()
        return {
            "seen": seen,
            "current_trace_id": f"{span_context.trace_id:032x}",
            "current_span_id": f"{span_context.span_id:016x}",
            "current_sampled": bool(span_context.trace_flags.sampled),
        }

    return app


async def _request(app: Any, path: str, headers=()) -> tuple[int, dict, dict]:
    status, raw_headers, body = await asgi_request(app, path, headers)
    return status, dict(raw_headers), json.loads(body)


@pytest.mark.parametrize("inbound_id", [None, b"order-42"])
def test_sampled_out_request_keeps_metrics_logs_ids_and_propagation(echo, inbound_id):
    """traceidratio 0: histogram, access line with the (unsampled) IDs, X-Request-ID in and
    out, traceparent with the sampled flag off downstream, and no span."""
    app = _app(echo)
    headers = [(b"x-request-id", inbound_id)] if inbound_id else []
    with capture(app, sampler="traceidratio", sampler_arg=0.0, instrument_clients=True) as cap:
        status, out_headers, body = asyncio.run(_request(app, "/calls/1", headers))
        assert status == 200
        assert cap.spans() == []
        assert (
            cap.sample(
                COUNT,
                http_request_method="GET",
                http_route="/calls/{n}",
                http_response_status_code="200",
            )
            == 1
        )
        [access] = cap.logs(logger="obskit.access")
    cid = out_headers[b"x-request-id"].decode()
    if inbound_id:
        assert cid == inbound_id.decode()
    assert access["correlation_id"] == cid
    assert access["route"] == "/calls/{n}" and access["status"] == 200
    assert len(access["trace_id"]) == 32 and len(access["span_id"]) == 16
    # the handler sees the request's (unsampled) span as the current one
    assert body["current_trace_id"] == access["trace_id"]
    assert body["current_span_id"] == access["span_id"]
    assert body["current_sampled"] is False
    # the downstream call continues the same trace, not sampled, with the correlation ID
    seen = body["seen"]
    assert seen["x-request-id"] == cid
    version, trace_hex, span_hex, flags = seen["traceparent"].split("-")
    assert (version, trace_hex, flags) == ("00", access["trace_id"], "00")
    assert len(span_hex) == 16 and int(span_hex, 16) != 0


def test_sampled_out_ids_differ_per_request_and_context_is_gone_afterwards():
    """Each sampled-out request draws fresh IDs; none of them stays current afterwards."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/x")
    async def x() -> dict[str, str]:
        return {"ok": "1"}

    async def three() -> list[tuple[bool, str | None]]:
        after = []
        for _ in range(3):  # in one task: a leaked context would be visible here
            await _request(app, "/x")
            after.append(
                (trace.get_current_span().get_span_context().is_valid, obskit.correlation_id())
            )
        return after

    with capture(app, sampler="always_off") as cap:
        after = asyncio.run(three())
        lines = cap.logs(logger="obskit.access")
        assert cap.spans() == []
    assert after == [(False, None)] * 3
    assert len({line["trace_id"] for line in lines}) == 3
    assert len({line["span_id"] for line in lines}) == 3
    assert len({line["correlation_id"] for line in lines}) == 3


def test_server_span_context_keeps_what_was_current_before():
    """The request's span joins the current OTel context (baggage set outside stays visible)."""
    from opentelemetry import baggage, context

    from obskit.runtime.tracing import provider
    from obskit.runtime.tracing.span import UnsampledSpan

    outer = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        span = UnsampledSpan(0xABC, 0xDEF, None)
        token = provider.attach_span(span)
        assert trace.get_current_span() is span
        assert baggage.get_baggage("tenant") == "acme"
        assert f"{trace.get_current_span().get_span_context().trace_id:x}" == "abc"
        provider.detach_span(token)
        assert trace.get_current_span() is trace.INVALID_SPAN
        assert baggage.get_baggage("tenant") == "acme"
    finally:
        context.detach(outer)


@pytest.mark.parametrize(
    "missing", [("_SPAN_KEY",), ("_CONTEXT_VAR",), ("_SPAN_KEY", "_CONTEXT_VAR")]
)
def test_sampled_out_contract_holds_on_the_public_api_fallback(echo, monkeypatch, missing):
    """Without the span's context key or OTel's ContextVar, obskit uses the public OTel calls."""
    from obskit.runtime.tracing import provider

    for name in missing:
        monkeypatch.setattr(provider, name, None)
    test_sampled_out_request_keeps_metrics_logs_ids_and_propagation(echo, None)
    if "_SPAN_KEY" not in missing:
        test_server_span_context_keeps_what_was_current_before()


def test_otel_context_var_is_used_only_when_it_is_what_the_public_api_sets(monkeypatch):
    """The private ContextVar shortcut is found on this OTel and refused for another runtime."""
    from opentelemetry import context

    from obskit.runtime.tracing import provider

    assert provider._find_context_var() is not None  # in use with the installed OTel
    assert provider._find_span_key() is not None

    class OtherRuntime:  # e.g. a custom OTEL_PYTHON_CONTEXT runtime
        _current_context = None

    monkeypatch.setattr(context, "_RUNTIME_CONTEXT", OtherRuntime())
    assert provider._find_context_var() is None
