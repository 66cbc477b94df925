"""Secrets never leave the process (issue 13, items 7 and 8): one rule everywhere redaction
applies. A key is secret when, percent-decoded as the application decodes it, with case, `-`
and `_` ignored, it contains a configured word: so `api%5Fkey`, `%74oken`, `pass%77ord`,
`apikey` and `apiKey` are all caught, in the server span's url.query (ASGI and WSGI, decoded
from real OTLP on the wire), the client span's url.full, and log fields at any depth."""

from __future__ import annotations

import http.client
import io
import logging
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry

import obskit
from examples.lab.otlp_receiver import OTLPReceiver
from obskit.runtime.client import url_full
from obskit.runtime.redact import Redactor, redact_query

from .apps import fastapi_app, flask_app
from .servers import header_echo_server, serve_asgi, serve_wsgi

SECRETS = ("S1", "S2", "S3", "S4", "S5", "S6")
HOSTILE_QUERY = "api%5Fkey=S1&%74oken=S2&pass%77ord=S3&apikey=S4&apiKey=S5&X%2DAPI%2DKEY=S6&q=ok"
"""The issue's query plus the spellings the README promises to catch."""


def test_the_app_itself_decodes_these_keys_as_secret_names() -> None:
    """The premise: what a framework hands the handler (parse_qsl, as Starlette and werkzeug
    do) is api_key, token, password... so redaction must judge the decoded key."""
    keys = [key for key, _ in parse_qsl(HOSTILE_QUERY)]
    assert keys == ["api_key", "token", "password", "apikey", "apiKey", "X-API-KEY", "q"]


def test_redact_query_matches_on_the_decoded_key_ignoring_case_dash_and_underscore() -> None:
    assert redact_query(HOSTILE_QUERY) == (
        "api%5Fkey=REDACTED&%74oken=REDACTED&pass%77ord=REDACTED&apikey=REDACTED&"
        "apiKey=REDACTED&X%2DAPI%2DKEY=REDACTED&q=ok"
    )
    assert redact_query("%53ignature=abc&sig%6eup=yes") == "%53ignature=REDACTED&sig%6eup=yes"
    assert redact_query("pass+word=x&q=1") == "pass+word=x&q=1"  # decodes to "pass word"
    assert redact_query("API_Key=1", ("x-api-key",)) == "API_Key=1"  # word must be contained
    assert redact_query("x_api_key=1", ("API-KEY",)) == "x_api_key=REDACTED"


def test_one_rule_for_log_keys_and_query_keys() -> None:
    rule = Redactor(("api_key", "token"))
    for key in ("api_key", "apikey", "apiKey", "API-KEY", "X-Api-Key", "api%5Fkey", "%74oken"):
        assert rule.is_secret(key), key
        assert rule.is_secret_query_key(key), key
    for key in ("apiary", "key", "tok"):
        assert not rule.is_secret(key) and not rule.is_secret_query_key(key)
    assert rule.is_secret_query_key("sig") and not rule.is_secret("sig")  # semconv: URLs only


def _init(app: object, rx: OTLPReceiver, stream: io.BytesIO) -> None:
    obskit.init(
        app,
        service="shop",
        log_stream=stream,
        log_format="json",
        registry=CollectorRegistry(),
        otlp_endpoint=rx.traces_url,
        span_export_interval=0.05,
        environ={},
    )


def _get(url: str, target: str) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.integration
@pytest.mark.parametrize("server", ["uvicorn", "werkzeug"])
def test_encoded_and_respelled_secret_keys_never_reach_the_collector(
    receiver: OTLPReceiver, server: str
) -> None:
    stream = io.BytesIO()
    app, serve, path = (
        (fastapi_app(), serve_asgi, "/orders/7")
        if server == "uvicorn"
        else (flask_app(), serve_wsgi, "/refunds/7")
    )
    _init(app, receiver, stream)
    with serve(app) as url:
        assert _get(url, f"{path}?{HOSTILE_QUERY}") == 200
    obskit.shutdown(30)
    [span] = receiver.wait_for_spans(1)
    query = span.attributes["url.query"]
    assert query.endswith("&q=ok")
    assert query.count("=REDACTED") == 6
    wire = repr(span)  # every attribute, the resource and the name, as decoded from OTLP
    logged = stream.getvalue().decode()
    for secret in SECRETS:
        assert f"={secret}" not in wire and f"={secret}" not in logged


@pytest.mark.integration
def test_a_client_span_url_full_redacts_the_same_keys(receiver: OTLPReceiver) -> None:
    _init(None, receiver, io.BytesIO())
    with header_echo_server() as url, httpx.Client() as client:
        assert client.get(f"{url}/echo?{HOSTILE_QUERY}").status_code == 200
    obskit.shutdown(30)
    [span] = [s for s in receiver.wait_for_spans(1) if s.kind == 3]  # SPAN_KIND_CLIENT
    full = span.attributes["url.full"]
    assert full.endswith("&q=ok") and full.count("=REDACTED") == 6, full
    assert url_full(f"https://u:p@h/x?{HOSTILE_QUERY}#f").count("REDACTED") == 8


def _lines(stream: io.BytesIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_log_fields_use_the_same_rule_at_any_depth() -> None:
    stream = io.BytesIO()
    obskit.init(None, service="svc", log_stream=stream, log_format="json", environ={},
                traces_enabled=False, metrics_enabled=False)  # fmt: skip
    obskit.get_logger("app").info(
        "call",
        apikey="S1",
        apiKey="S2",
        nested={"a": [{"ApiKey": "S3", "keep": 1}], "X-Api-Key": "S4"},
        **{"api%5Fkey": "S5", "%74oken": "S6"},
    )
    [line] = _lines(stream)
    assert line["apikey"] == line["apiKey"] == "[REDACTED]"
    assert line["nested"] == {"a": [{"ApiKey": "[REDACTED]", "keep": 1}], "X-Api-Key": "[REDACTED]"}
    assert line["api%5Fkey"] == line["%74oken"] == "[REDACTED]"
    for secret in SECRETS:
        assert f'"{secret}"' not in stream.getvalue().decode()


def test_stdlib_log_records_follow_the_same_rule() -> None:
    stream = io.BytesIO()
    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:
        root.removeHandler(handler)
    try:
        obskit.init(None, service="svc", log_stream=stream, log_format="json", environ={},
                    traces_enabled=False, metrics_enabled=False)  # fmt: skip
        logging.getLogger("lib").warning("x", extra={"apiKey": "S1", "ctx": {"api-key": "S2"}})
        obskit.reset()
    finally:
        for handler in saved:
            root.addHandler(handler)
    [line] = [r for r in _lines(stream) if r["logger"] == "lib"]
    assert line["apiKey"] == "[REDACTED]" and line["ctx"] == {"api-key": "[REDACTED]"}
