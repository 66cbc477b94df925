"""A request whose trace is sampled out still gets everything but an exported span."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry import trace

import obskit
from obskit.testing import capture

pytestmark = pytest.mark.integration

COUNT = "http_server_request_duration_seconds_count"


@pytest.fixture
def echo():
    """A plain HTTP server on 127.0.0.1 that answers with the request headers it got."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"t"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), json.loads(body)


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

    from obskit import tracing
    from obskit._span import UnsampledSpan

    assert tracing._SPAN_KEY is not None  # the one-step path is in use with this OTel
    outer = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        span = UnsampledSpan(0xABC, 0xDEF, None)
        token = tracing.attach_span(span)
        assert trace.get_current_span() is span
        assert baggage.get_baggage("tenant") == "acme"
        assert f"{trace.get_current_span().get_span_context().trace_id:x}" == "abc"
        tracing.detach(token)
        assert trace.get_current_span() is trace.INVALID_SPAN
        assert baggage.get_baggage("tenant") == "acme"
    finally:
        context.detach(outer)


def test_sampled_out_contract_holds_on_the_public_api_fallback(echo, monkeypatch):
    """If the span's context key cannot be found, obskit uses the public OTel calls."""
    from obskit import tracing

    monkeypatch.setattr(tracing, "_SPAN_KEY", None)
    test_sampled_out_request_keeps_metrics_logs_ids_and_propagation(echo, None)
