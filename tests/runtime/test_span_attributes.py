"""Server spans carry the stable HTTP semconv attributes, decoded from real OTLP on the wire."""

from __future__ import annotations

import http.client
import io
from urllib.parse import urlsplit

import pytest
from prometheus_client import CollectorRegistry

import obskit
from examples.lab.otlp_receiver import OTLPReceiver
from obskit.integrations._http import ServerAttributes
from obskit.runtime.client import url_full
from obskit.runtime.redact import redact_query

from .apps import fastapi_app, flask_app
from .servers import serve_asgi, serve_wsgi

QUERY = "page=2&access_token=s3cret&X-Goog-Signature=abc&sig=x&signup=yes&flag"
REDACTED_QUERY = (
    "page=2&access_token=REDACTED&X-Goog-Signature=REDACTED&sig=REDACTED&signup=yes&flag"
)


def _init(app, rx: OTLPReceiver) -> CollectorRegistry:
    registry = CollectorRegistry()
    obskit.init(
        app,
        service="shop",
        log_stream=io.BytesIO(),
        log_format="json",
        registry=registry,
        otlp_endpoint=rx.traces_url,
        span_export_interval=0.05,
        environ={},
        instrument_clients=False,
    )
    return registry


def _get(url: str, target: str, headers: dict[str, str]) -> tuple[int, int]:
    """GET over a fresh connection: (status, the client's own port)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("GET", target, headers=headers)
        assert conn.sock is not None
        client_port = conn.sock.getsockname()[1]
        response = conn.getresponse()
        response.read()
        return response.status, client_port
    finally:
        conn.close()


def _exercise(url: str, route_path: str) -> tuple[int, int]:
    """A routed request with a query and custom Host/User-Agent, one without, one unmatched."""
    port = urlsplit(url).port
    status, client_port = _get(
        url,
        f"{route_path}?{QUERY}",
        {"Host": "shop.example:8443", "User-Agent": "obskit-test/1.0"},
    )
    assert status == 200
    assert _get(url, route_path, {"Host": f"127.0.0.1:{port}"})[0] == 200
    assert _get(url, "/no/such/route/123", {"Host": "shop.example"})[0] == 404
    return client_port, port or 0


def _check_spans(rx: OTLPReceiver, route: str, client_port: int, port: int) -> None:
    obskit.shutdown(30)
    spans = rx.spans()
    assert len(spans) == 3
    with_query = next(s for s in spans if "url.query" in s.attributes)
    plain = next(s for s in spans if s is not with_query and s.name != "GET")
    unmatched = next(s for s in spans if s.name == "GET")

    attrs = with_query.attributes
    assert with_query.name == f"GET {route}"
    assert attrs["http.route"] == route
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.scheme"] == "http"
    assert attrs["url.query"] == REDACTED_QUERY
    assert "s3cret" not in str(attrs)
    assert attrs["client.address"] == "127.0.0.1"
    assert attrs["client.port"] == client_port
    assert attrs["user_agent.original"] == "obskit-test/1.0"
    assert attrs["network.protocol.version"] == "1.1"
    assert attrs["server.address"] == "shop.example"
    assert attrs["server.port"] == 8443
    assert "http.request.method_original" not in attrs

    assert "url.query" not in plain.attributes  # only when the request has a query
    assert plain.attributes["server.address"] == "127.0.0.1"
    assert plain.attributes["server.port"] == port

    # no route matched: span named by the method alone, http.route omitted (the metric
    # label stays __unmatched__), the Host without a port gives the scheme's default
    assert "http.route" not in unmatched.attributes
    assert unmatched.attributes["http.response.status_code"] == 404
    assert unmatched.attributes["url.path"] == "/no/such/route/123"
    assert unmatched.attributes["server.address"] == "shop.example"
    assert unmatched.attributes["server.port"] == 80


@pytest.mark.integration
def test_uvicorn_server_span_has_every_semconv_attribute_and_unmatched_has_no_route(receiver):
    app = fastapi_app()
    registry = _init(app, receiver)
    with serve_asgi(app) as url:
        client_port, port = _exercise(url, "/orders/7")
    _check_spans(receiver, "/orders/{order_id}", client_port, port)
    labels = {
        "http_request_method": "GET",
        "http_route": "__unmatched__",
        "http_response_status_code": "404",
    }
    assert registry.get_sample_value("http_server_request_duration_seconds_count", labels) == 1


@pytest.mark.integration
def test_werkzeug_server_span_has_every_semconv_attribute_and_unmatched_has_no_route(receiver):
    app = flask_app()
    registry = _init(app, receiver)
    with serve_wsgi(app) as url:
        client_port, port = _exercise(url, "/refunds/12")
    _check_spans(receiver, "/refunds/{refund_id}", client_port, port)
    labels = {
        "http_request_method": "GET",
        "http_route": "__unmatched__",
        "http_response_status_code": "404",
    }
    assert registry.get_sample_value("http_server_request_duration_seconds_count", labels) == 1


def test_query_values_under_signature_and_secret_looking_keys_are_redacted():
    assert redact_query(QUERY) == REDACTED_QUERY
    assert redact_query("q=shoes&page=2") == "q=shoes&page=2"
    assert redact_query("Password=x&API-KEY=y") == "Password=REDACTED&API-KEY=REDACTED"
    assert redact_query("session=1", ("session",)) == "session=REDACTED"  # configured keys
    # client spans' url.full uses the same rule
    assert url_full("https://api.example/v1?id=7&token=t#frag") == (
        "https://api.example/v1?id=7&token=REDACTED#frag"
    )


@pytest.mark.parametrize(
    ("host", "address", "port"),
    [
        ("[::1]:8080", "::1", 8080),
        ("[::1]", "::1", 443),
        ("example.com", "example.com", 443),
        ("example.com:99999", "example.com", 443),
        ("example.com:" + "9" * 5000, "example.com", 443),
        ("example.com:x", "example.com", 443),
    ],
)
def test_server_address_and_port_come_from_host_and_hostile_ports_never_raise(host, address, port):
    attributes: dict = {}
    scope = {"scheme": "https", "method": "GET", "headers": [(b"host", host.encode())]}
    ServerAttributes(()).asgi(scope, attributes)
    assert (attributes["server.address"], attributes["server.port"]) == (address, port)


def test_method_outside_the_known_set_keeps_its_original_and_http_1_0_falls_back_to_server():
    attributes: dict = {}
    environ = {
        "REQUEST_METHOD": "PURGE",
        "SERVER_PROTOCOL": "HTTP/1.0",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8000",
        "wsgi.url_scheme": "http",
    }
    ServerAttributes(()).wsgi(environ, attributes)
    assert attributes["http.request.method_original"] == "PURGE"
    assert attributes["network.protocol.version"] == "1.0"
    assert (attributes["server.address"], attributes["server.port"]) == ("localhost", 8000)
