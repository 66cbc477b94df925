"""Outbound httpx (sync, async) and requests calls: headers, client span, client histogram."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import requests

import obskit
from obskit.runtime.client import server_address
from obskit.testing import capture
from tests.runtime.servers import header_echo_server

pytestmark = pytest.mark.integration

CLIENT_COUNT = "http_client_request_duration_seconds_count"


@pytest.fixture
def echo():
    """A plain (uninstrumented) HTTP server on 127.0.0.1 that echoes request headers."""
    with header_echo_server() as url:
        yield url


def _check_propagated(headers: dict, span) -> None:
    assert headers["x-request-id"] == obskit.correlation_id()
    trace_hex = f"{span.context.trace_id:032x}"
    assert headers["traceparent"].startswith(f"00-{trace_hex}-")


@pytest.mark.parametrize("client", ["httpx", "httpx-async", "requests"])
def test_outbound_call_carries_ids_and_records_span_and_histogram(echo, client):
    with capture(instrument_clients=True) as cap:
        port = echo.rsplit(":", 1)[1]
        with obskit.observe("job"):
            if client == "httpx":
                headers = httpx.get(f"{echo}/x").json()
            elif client == "httpx-async":

                async def call():
                    async with httpx.AsyncClient() as c:
                        return (await c.get(f"{echo}/x")).json()

                headers = asyncio.run(call())
            else:
                headers = requests.get(f"{echo}/x", timeout=5).json()
            cid = obskit.correlation_id()
        spans = {s.name: s for s in cap.spans()}
        job, get = spans["job"], spans["GET"]
        assert get.kind.name == "CLIENT" and get.parent.span_id == job.context.span_id
        assert headers["x-request-id"] == cid
        version, trace_hex, span_hex, flags = headers["traceparent"].split("-")
        assert (version, trace_hex, span_hex) == (
            "00",
            f"{get.context.trace_id:032x}",
            f"{get.context.span_id:016x}",
        )
        assert int(flags, 16) & 0x01  # sampled
        assert get.attributes["server.address"] == "127.0.0.1"
        assert get.attributes["server.port"] == int(port)
        assert get.attributes["url.full"] == f"{echo}/x"  # required by the stable semconv
        assert (
            cap.sample(
                CLIENT_COUNT,
                http_request_method="GET",
                server_address=f"127.0.0.1:{port}",
                http_response_status_code="200",
                error_type="",
            )
            == 1
        )


def test_a_call_without_response_records_the_exception_class_as_error_type():
    with capture(instrument_clients=True) as cap:
        with pytest.raises(httpx.ConnectError):
            httpx.get("http://127.0.0.1:9/")
        with pytest.raises(requests.ConnectionError):
            requests.get("http://127.0.0.1:9/", timeout=5)
        assert (
            cap.sample(
                CLIENT_COUNT,
                http_request_method="GET",
                server_address="127.0.0.1:9",
                http_response_status_code="",
                error_type="ConnectError",
            )
            == 1
        )
        assert (
            cap.sample(
                CLIENT_COUNT,
                http_request_method="GET",
                server_address="127.0.0.1:9",
                http_response_status_code="",
                error_type="ConnectionError",
            )
            == 1
        )


def test_error_status_is_recorded_with_empty_error_type(echo):
    with capture(instrument_clients=True) as cap:
        assert httpx.get(f"{echo}/fail").status_code == 503
        port = echo.rsplit(":", 1)[1]
        assert (
            cap.sample(
                CLIENT_COUNT,
                http_request_method="GET",
                server_address=f"127.0.0.1:{port}",
                http_response_status_code="503",
                error_type="",
            )
            == 1
        )
        [span] = cap.spans()
        assert span.status.status_code.name == "ERROR"


def test_an_explicit_request_id_header_set_by_the_caller_is_kept(echo):
    with capture(instrument_clients=True), obskit.observe("job"):
        headers = httpx.get(f"{echo}/x", headers={"X-Request-ID": "mine"}).json()
    assert headers["x-request-id"] == "mine"


def test_reset_restores_the_original_client_methods():
    original = httpx.HTTPTransport.handle_request
    with capture(instrument_clients=True):
        assert httpx.HTTPTransport.handle_request is not original
    assert httpx.HTTPTransport.handle_request is original


@pytest.mark.parametrize(
    ("scheme", "host", "port", "expected"),
    [
        ("http", "payments", 8080, "payments:8080"),
        ("http", "payments", 80, "payments"),
        ("https", "api.example.com", 443, "api.example.com"),
        ("https", "api.example.com", None, "api.example.com"),
        ("http", "::1", 8080, "[::1]:8080"),
    ],
)
def test_server_address_is_the_authority_as_written(scheme, host, port, expected):
    assert server_address(scheme, host, port) == expected


def test_url_full_never_carries_credentials_or_url_signatures():
    from obskit.runtime.client import url_full

    assert url_full("https://user:pw@api.example/v1?a=1") == (
        "https://REDACTED:REDACTED@api.example/v1?a=1"
    )
    assert url_full("https://s3.example/k?X-Goog-Signature=abc&id=7&sig=x") == (
        "https://s3.example/k?X-Goog-Signature=REDACTED&id=7&sig=REDACTED"
    )
    assert url_full("http://payments:8080/charge") == "http://payments:8080/charge"
