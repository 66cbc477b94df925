"""Two real services: front (FastAPI/uvicorn) calls back (Flask/werkzeug) over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from .servers import spawn

pytestmark = pytest.mark.integration

SERVER, CLIENT = 2, 3


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_chain_shares_one_correlation_id_and_one_trace_with_parent_child_links(receiver, tmp_path):
    """A -> B: both services log one correlation_id and trace_id; B's span is A's child."""
    front_log, back_log = tmp_path / "front.log", tmp_path / "back.log"
    common = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OBSKIT_LOG_FORMAT": "json"}
    with (
        spawn(
            "tests.runtime.chain_service",
            {**common, "CHAIN_ROLE": "back", "CHAIN_LOG": str(back_log)},
        ) as back_url,
        spawn(
            "tests.runtime.chain_service",
            {**common, "CHAIN_ROLE": "front", "CHAIN_LOG": str(front_log), "CHAIN_NEXT": back_url},
        ) as front_url,
    ):
        response = httpx.get(
            f"{front_url}/checkout/c1",
            headers={"X-Request-ID": "chain-1", "baggage": "tenant=acme"},
            timeout=20,
        )
        assert response.status_code == 200
        # front server + 2 client spans, back: 2 server spans
        spans = receiver.wait_for_spans(5, timeout=20)
    body = response.json()
    assert body["mine"] == "chain-1"
    assert body["first"]["correlation_id"] == "chain-1"
    assert body["second"]["correlation_id"] == "chain-1"
    assert "tenant=acme" in (body["first"]["baggage"] or "")

    trace_ids = {s.trace_id for s in spans}
    assert len(trace_ids) == 1
    by_id = {s.span_id: s for s in spans}
    front_server = [s for s in spans if s.kind == SERVER and s.resource["service.name"] == "front"]
    back_servers = [s for s in spans if s.kind == SERVER and s.resource["service.name"] == "back"]
    clients = [s for s in spans if s.kind == CLIENT]
    assert len(front_server) == 1 and len(back_servers) == 2 and len(clients) == 2
    assert front_server[0].name == "GET /checkout/{cart_id}"
    assert {s.name for s in back_servers} == {"GET /charge/{cart_id}"}
    for server in back_servers:
        parent = by_id[server.parent_span_id]  # B's server span is a child of A's client span
        assert parent.kind == CLIENT
        assert parent.parent_span_id == front_server[0].span_id
    [trace_id] = trace_ids

    for path, service in ((front_log, "front"), (back_log, "back")):
        lines = [rec for rec in _lines(path) if rec.get("correlation_id")]
        assert lines, f"no request log lines from {service}"
        assert {rec["correlation_id"] for rec in lines} == {"chain-1"}
        assert {rec["trace_id"] for rec in lines} == {trace_id}
        assert {rec["service"] for rec in lines} == {service}
    assert len([r for r in _lines(back_log) if r.get("logger") == "obskit.access"]) == 2
