"""Hostile input: odd request IDs, malformed traceparent, 10,000 random paths, odd methods."""

from __future__ import annotations

import asyncio
import random
import string

import pytest

from obskit.runtime import correlation
from obskit.testing import capture

from .apps import fastapi_app
from .servers import asgi_request

SERIES = "http_server_request_duration_seconds_count"


async def _request(app, path: str, headers=(), method: str = "GET"):
    status, raw_headers, _ = await asgi_request(app, path, headers, method)
    return status, dict(raw_headers)


@pytest.mark.parametrize(
    "raw",
    [
        b"a" * 129,  # over-long
        b"abc\ndef",  # newline (log injection)
        b"abc\r\nX-Evil: 1",  # header injection
        b"abc\x00\x07def",  # control characters
        "caf\u00e9-\u2603".encode(),  # non-ASCII
        b"",  # empty
        b"has space",
        b"\xff\xfe",  # invalid UTF-8
    ],
)
def test_unsafe_inbound_request_ids_are_replaced_by_a_fresh_one(raw):
    app = fastapi_app()
    with capture(app) as cap:
        status, headers = asyncio.run(_request(app, "/orders/1", [(b"x-request-id", raw)]))
        assert status == 200
        echoed = headers[b"x-request-id"].decode("ascii")
        assert echoed != raw.decode("latin-1")
        assert correlation.is_valid(echoed) and len(echoed) == 32
        [access] = cap.logs(logger="obskit.access")
        assert access["correlation_id"] == echoed


def test_a_safe_id_of_exactly_128_characters_is_kept():
    app = fastapi_app()
    raw = ("a1-_.:" * 30)[:128].encode()
    with capture(app):
        _, headers = asyncio.run(_request(app, "/orders/1", [(b"x-request-id", raw)]))
        assert headers[b"x-request-id"] == raw


@pytest.mark.parametrize(
    "traceparent",
    [
        b"garbage",
        b"00-00000000000000000000000000000000-0000000000000000-01",  # all-zero ids
        b"00-zzzz4bf92f3577b34da6a3ce929d0e0e-00f067aa0ba902b7-01",
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        b"\xff" * 60,
    ],
)
def test_malformed_traceparent_starts_a_new_trace_and_the_request_succeeds(traceparent):
    app = fastapi_app()
    with capture(app) as cap:
        status, _ = asyncio.run(_request(app, "/orders/1", [(b"traceparent", traceparent)]))
        assert status == 200
        [span] = cap.spans()
        assert span.parent is None
        assert span.context.trace_id != 0


def test_valid_traceparent_is_continued():
    app = fastapi_app()
    parent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with capture(app) as cap:
        asyncio.run(_request(app, "/orders/1", [(b"traceparent", parent)]))
        [span] = cap.spans()
        assert f"{span.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"


def test_unsampled_parent_means_no_span_but_ids_still_propagate_to_logs():
    app = fastapi_app()
    parent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    with capture(app) as cap:
        asyncio.run(_request(app, "/orders/1", [(b"traceparent", parent)]))
        assert cap.spans() == []
        [access] = cap.logs(logger="obskit.access")
        assert access["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_ten_thousand_random_paths_add_only_a_handful_of_series():
    app = fastapi_app()
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "-._~%"

    async def scan():
        for _ in range(10_000):
            path = "/" + "/".join(
                "".join(rng.choices(alphabet, k=rng.randint(1, 12)))
                for _ in range(rng.randint(1, 4))
            )
            await _request(app, path)

    with capture(app) as cap:
        asyncio.run(scan())
        families = list(cap.registry.collect())
        server = next(f for f in families if f.name == "http_server_request_duration_seconds")
        label_sets = {
            tuple(sorted(s.labels.items())) for s in server.samples if s.name.endswith("_count")
        }
        assert len(label_sets) <= 5
        assert (
            cap.sample(
                SERIES,
                http_request_method="GET",
                http_route="__unmatched__",
                http_response_status_code="404",
            )
            is not None
        )


def test_unknown_http_methods_share_one_label_value():
    app = fastapi_app()
    with capture(app) as cap:
        for method in ("FOO", "BAR", "PROPFIND"):
            asyncio.run(_request(app, "/orders/1", method=method))
        total = sum(
            s.value
            for f in cap.registry.collect()
            for s in f.samples
            if s.name == SERIES and s.labels["http_request_method"] == "_OTHER"
        )
        assert total == 3


def test_health_and_metrics_endpoints_are_excluded_from_metrics_traces_and_access_logs():
    app = fastapi_app()
    with capture(app) as cap:
        for path in ("/health", "/metrics"):
            asyncio.run(_request(app, path))
        assert cap.spans() == []
        assert cap.logs(logger="obskit.access") == []
        assert (
            cap.sample(
                SERIES,
                http_request_method="GET",
                http_route="/health",
                http_response_status_code="200",
            )
            is None
        )


def test_an_app_that_sets_its_own_request_id_header_gets_no_duplicate():
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    app = FastAPI()

    @app.get("/own")
    async def own() -> PlainTextResponse:
        return PlainTextResponse("x", headers={"X-Request-ID": "app-chosen"})

    scope_headers = [(b"x-request-id", b"inbound-1")]
    with capture(app):
        sent: list[dict] = []

        async def run():
            scope = {"type": "http", "method": "GET", "path": "/own", "root_path": "",
                     "headers": scope_headers, "scheme": "http", "query_string": b""}  # fmt: skip

            async def receive():
                return {"type": "http.request", "body": b""}

            async def send(message):
                sent.append(message)

            await app(scope, receive, send)

        asyncio.run(run())
        headers = [v for k, v in sent[0]["headers"] if k.lower() == b"x-request-id"]
        assert headers == [b"app-chosen"]


def test_the_first_configured_id_header_wins_whatever_the_order_in_the_request_asgi_and_wsgi():
    """X-Request-ID beats X-Correlation-ID (the configured order) in both middlewares."""

    async def asgi_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def wsgi_app(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    with capture(asgi_app) as cap:
        headers = [(b"x-correlation-id", b"second-choice"), (b"x-request-id", b"first-choice")]
        _, response_headers = asyncio.run(_request(cap.app, "/a", headers))
        assert response_headers[b"x-request-id"] == b"first-choice"
    with capture(wsgi_app) as cap:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/w", "wsgi.url_scheme": "http",
                   "HTTP_X_CORRELATION_ID": "second-choice",
                   "HTTP_X_REQUEST_ID": "first-choice"}  # fmt: skip
        seen = {}
        cap.app(environ, lambda status, headers, exc_info=None: seen.update(headers)).close()
        assert seen["X-Request-ID"] == "first-choice"


_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
_SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("traceparent", "expected"),
    [
        (f"00-{_TRACE}-{_SPAN}-01", (int(_TRACE, 16), int(_SPAN, 16), True)),
        (f"00-{_TRACE}-{_SPAN}-00", (int(_TRACE, 16), int(_SPAN, 16), False)),
        (f"00-{_TRACE.upper()}-{_SPAN}-01", (int(_TRACE, 16), int(_SPAN, 16), True)),
        (f" 00-{_TRACE}-{_SPAN}-01 ", (int(_TRACE, 16), int(_SPAN, 16), True)),
        (f"01-{_TRACE}-{_SPAN}-01-later", (int(_TRACE, 16), int(_SPAN, 16), True)),
        (f"00-{'0' * 32}-{_SPAN}-01", None),
        (f"00-{_TRACE}-{'0' * 16}-01", None),
        (f"00-{_TRACE}-{_SPAN}-0g", None),
        (f"00--{_TRACE[1:]}-{_SPAN}-01", None),  # int() would read a negative ID
        (f"00-{_TRACE[:10]}_{_TRACE[11:]}-{_SPAN}-01", None),  # int() would skip the "_"
        (f"00-0x{_TRACE[2:]}-{_SPAN}-01", None),  # int() would skip the "0x"
        (f"00-{_TRACE}-+{_SPAN[1:]}-01", None),
        (f"00-{_TRACE}-{_SPAN[:8]} {_SPAN[9:]}-01", None),
        (f"00-{_TRACE}-{_SPAN}--1", None),
        (f"ff-{_TRACE}-{_SPAN}-01", None),
    ],
)
@pytest.mark.parametrize("tuple_contexts", [True, False])
def test_traceparent_parsing_reads_exactly_the_w3c_form(
    traceparent, expected, tuple_contexts, monkeypatch
):
    from opentelemetry.trace import SpanContext

    from obskit.runtime.tracing import provider

    # the remote context built directly as a tuple (the API's layout, checked at import) and
    # through the API's constructor are the same object
    assert provider._TUPLE_CONTEXTS
    monkeypatch.setattr(provider, "_TUPLE_CONTEXTS", tuple_contexts)
    parsed = provider.parse_traceparent(traceparent, "vendor=v1")
    if expected is None:
        assert parsed is None
    else:
        assert parsed is not None and parsed.is_remote and parsed.is_valid
        assert (parsed.trace_id, parsed.span_id, parsed.trace_flags.sampled) == expected
        assert parsed.trace_state.to_header() == "vendor=v1"
        assert parsed == SpanContext(*expected[:2], True, parsed.trace_flags, parsed.trace_state)
