"""Django in-process: route templates from the resolver, Django's own 404/500 pages, async
views under ASGI, LOGGING levels, and the handler instrumented in place (and undone)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from werkzeug.test import Client

import obskit
from obskit.integrations.django import RouteTemplates, path_template, regex_template
from obskit.testing import capture

COUNT = "http_server_request_duration_seconds_count"


@pytest.fixture(scope="module", autouse=True)
def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integrations.djproject.settings")
    import django

    django.setup()


@contextmanager
def bare_root() -> Iterator[None]:
    """The root logger without pytest's handlers, as in a service (the bridge installs).
    Entered inside the test: pytest adds its capturing handlers after the fixtures ran."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    for handler in saved:
        root.removeHandler(handler)
    try:
        yield
    finally:
        obskit.reset()
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


def wsgi_app() -> Any:
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def asgi_app() -> Any:
    from django.core.asgi import get_asgi_application

    return get_asgi_application()


def get(app: Any, path: str, **headers: str) -> Any:
    return Client(app).get(path, headers=headers)


async def asgi_request(app: Any, path: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One in-process ASGI request; after the body, receive() waits as a connected client
    does (Django listens for the disconnect while the view runs)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # cancelled by Django once the response is sent
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], list(start["headers"]), body


def access(cap: Any) -> list[dict[str, Any]]:
    return cap.logs(logger="obskit.access")


# --------------------------------------------------------------------- templates ----

ROUTES = [
    ("/", "/"),
    ("/api/", "/api/"),
    ("/api/orders/7/", "/api/orders/{order_id}/"),
    ("/api/async/orders/7/", "/api/async/orders/{order_id}/"),
    ("/legacy/2021/", "/legacy/{year}/"),
    ("/archive/2021/05/", "/archive/{var}/{var}/"),
    ("/v1/orders/3/", "/v1/orders/{order_id}/"),  # path() included under a re_path()
    ("/boom/", "/boom/"),
    ("/api/items/x/", "/api/items/{item_id}/"),  # matched, then Http404 from the view
    ("/nowhere/at/all", "__unmatched__"),
    ("/legacy/21/", "__unmatched__"),
]


def test_route_templates_come_from_the_url_resolver():
    app = wsgi_app()
    with capture(app) as cap:
        for path, _ in ROUTES:
            get(app, path).close()
        assert [line["route"] for line in access(cap)] == [route for _, route in ROUTES]
        spans = {span.attributes["url.path"]: span for span in cap.spans()}
        order = spans["/api/orders/7/"]
        assert order.name == "GET /api/orders/{order_id}/"
        assert order.attributes["http.route"] == "/api/orders/{order_id}/"
        assert "http.route" not in spans["/nowhere/at/all"].attributes
        assert cap.sample(COUNT, http_route="/legacy/{year}/", http_response_status_code="200") == 1
        assert cap.sample(COUNT, http_route="__unmatched__", http_response_status_code="404") == 2
        assert cap.sample(COUNT, http_route="/api/items/{item_id}/",
                          http_response_status_code="404") == 1  # fmt: skip


@pytest.mark.parametrize(
    ("pattern", "template"),
    [
        (r"^legacy/(?P<year>[0-9]{4})/$", "legacy/{year}/"),
        (r"^archive/([0-9]{4})/(\d+)/$", "archive/{var}/{var}/"),
        (r"^robots\.txt$", "robots.txt"),
        (r"^files/(?P<path>(a|b)+/[^/)]*)$", "files/{path}"),
        (r"^p/[()]+/(?P<n>\d)\Z", "p/[()]+/{n}"),
        (r"^(?:page-(?P<page>\d+)/)?$", "(?:page-{page}/)?"),
        (r"^price\$$", "price$"),
        ("^v1/", "v1/"),
    ],
)
def test_re_path_patterns_become_templates(pattern: str, template: str):
    assert regex_template(pattern) == template


def test_path_converters_become_names():
    assert path_template("orders/<int:order_id>/<slug>/") == "orders/{order_id}/{slug}/"


def test_each_route_template_is_built_once_then_served_from_the_cache(monkeypatch):
    built: list[str] = []
    real = RouteTemplates._build

    def counting(match: Any) -> str:
        built.append(match.route)
        return real(match)

    monkeypatch.setattr(RouteTemplates, "_build", staticmethod(counting))
    app = wsgi_app()
    with capture(app):
        for i in range(5):
            get(app, f"/api/orders/{i}/").close()
            get(app, f"/legacy/20{i}0/").close()
    assert sorted(built) == ["^legacy/(?P<year>[0-9]{4})/$", "api/orders/<int:order_id>/"]


# ------------------------------------------------------------ behaviour and headers ----


def test_responses_are_the_same_with_and_without_obskit():
    paths = [path for path, _ in ROUTES]

    def observe(app: Any) -> list[tuple[int, str, bytes]]:
        out = []
        for path in paths:
            response = get(app, path)
            body = response.get_data()
            if b'"pid"' in body:
                body = b"<pid>"
            out.append((response.status_code, response.headers.get("Content-Type", ""), body))
            response.close()
        return out

    plain = observe(wsgi_app())
    app = wsgi_app()
    with capture(app):
        assert observe(app) == plain


def test_django_404_and_500_pages_carry_the_request_id():
    app = wsgi_app()
    with bare_root(), capture(app, capture_stdlib_logs=True) as cap:
        missing = get(app, "/nowhere", **{"X-Request-ID": "req-404"})
        failing = get(app, "/boom/", **{"X-Request-ID": "req-500"})
        assert missing.status_code == 404 and b"Not Found" in missing.get_data()
        assert failing.status_code == 500 and b"Server Error" in failing.get_data()
        assert missing.headers["X-Request-ID"] == "req-404"
        assert failing.headers["X-Request-ID"] == "req-500"
        fresh = get(app, "/nowhere")
        assert len(fresh.headers["X-Request-ID"]) == 32
        for response in (missing, failing, fresh):
            response.close()
        # Django's own log lines about them carry the request's IDs
        error = cap.logs(logger="django.request", level="error")[0]
        assert error["correlation_id"] == "req-500"
        assert error["exception"]["type"] == "RuntimeError"
        assert error["trace_id"] == access(cap)[1]["trace_id"]
        warning = cap.logs(logger="django.request", level="warning")[0]
        assert warning["event"] == "Not Found: /nowhere"
        assert warning["correlation_id"] == "req-404"


# ------------------------------------------------------------------------- ASGI ----


def test_async_and_sync_views_under_asgi():
    app = asgi_app()
    with capture(app) as cap:
        status, headers, body = asyncio.run(asgi_request(app, "/api/async/orders/5/"))
        assert status == 200 and b'"async": true' in body
        assert any(k == b"x-request-id" for k, _ in headers)
        status, _, _ = asyncio.run(asgi_request(app, "/api/orders/6/"))
        assert status == 200
        status, headers, _ = asyncio.run(asgi_request(app, "/boom/"))
        assert status == 500 and any(k == b"x-request-id" for k, _ in headers)
        status, _, _ = asyncio.run(asgi_request(app, "/nowhere"))
        assert status == 404
        assert [(line["route"], line["status"]) for line in access(cap)] == [
            ("/api/async/orders/{order_id}/", 200),
            ("/api/orders/{order_id}/", 200),
            ("/boom/", 500),
            ("__unmatched__", 404),
        ]
        spans = cap.spans()
        assert spans[0].name == "GET /api/async/orders/{order_id}/"


def test_asgi_lifespan_is_answered_and_shutdown_flushes_spans(monkeypatch):
    app = asgi_app()
    with capture(app) as cap:
        asyncio.run(asgi_request(app, "/api/async/orders/1/"))
        flushed: list[bool] = []
        monkeypatch.setattr(cap.handle, "flush", lambda *a: flushed.append(True))
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
        sent: list[str] = []

        async def receive() -> dict[str, Any]:
            return next(messages)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])

        asyncio.run(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
        assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        assert flushed == [True]


# ---------------------------------------------------------------------- logging ----


def test_logging_levels_are_respected_and_lines_are_obskit_json(capsys):
    app = wsgi_app()
    with bare_root(), capture(app, capture_stdlib_logs=True, log_level="error") as cap:
        response = get(app, "/api/orders/9/", **{"X-Request-ID": "req-log"})
        response.close()
        lines = [(line["logger"], line["event"]) for line in cap.logs(correlation_id="req-log")]
    # djproject.views: INFO passes the logger and its console handler (obskit's log_level
    # "error" does not apply to lines LOGGING routes); djproject.quiet: only WARNING;
    # djproject.picky: its handler's WARNING level; django.server (no propagation) too
    assert ("djproject.views", "order viewed 9") in lines
    assert ("djproject.quiet", "quiet warning") in lines
    assert ("djproject.picky", "picky error") in lines
    assert ("django.server", "server line inside a request") in lines
    events = [event for _, event in lines]
    assert not [e for e in events if "info:" in e or "debug" in e]
    assert len(lines) == 4  # each once, however many obskit handlers a line passed
    assert "PLAIN" not in capsys.readouterr().err  # the plain console formatter is gone
    assert cap.logs(correlation_id="req-log", logger="djproject.views")[0]["order_id"] == 9


def test_reset_restores_the_handler_and_the_logging_handlers():
    app = wsgi_app()
    cls = type(app)
    before = {n: logging.getLogger(n).handlers[:] for n in ("djproject", "django.server")}
    handle = obskit.init(app, service="x", capture_stdlib_logs=True, traces_enabled=False,
                         metrics_enabled=False, log_stream=io.BytesIO())  # fmt: skip
    assert handle.app is app  # instrumented in place: wsgi.py serves the same object
    assert type(app) is not cls and isinstance(app, cls)
    assert logging.getLogger("djproject").handlers != before["djproject"]
    obskit.reset()
    assert type(app) is cls
    after = {n: logging.getLogger(n).handlers[:] for n in ("djproject", "django.server")}
    assert after == before
    response = get(app, "/api/")
    assert "X-Request-ID" not in response.headers
    response.close()


def test_a_second_init_after_reset_instruments_the_same_handler_again():
    app = wsgi_app()
    for service in ("first", "second"):
        with capture(app, service=service) as cap:
            get(app, "/api/orders/1/").close()
            assert [line["service"] for line in access(cap)] == [service]


@pytest.mark.integration
def test_runserver_request_lines_are_obskit_json_with_the_request_ids():
    """`manage.py runserver`'s own server classes: its django.server line per request is
    written after the response, yet carries that request's IDs."""
    import threading
    import urllib.request

    from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer

    app = wsgi_app()
    with bare_root(), capture(app, capture_stdlib_logs=True) as cap:
        httpd = WSGIServer(("127.0.0.1", 0), WSGIRequestHandler)
        httpd.set_app(app)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{httpd.server_address[1]}"
            for rid in ("dev-1", "dev-2"):
                request = urllib.request.Request(
                    url + "/legacy/2020/", headers={"X-Request-ID": rid}
                )
                with urllib.request.urlopen(request, timeout=10) as resp:
                    assert resp.status == 200 and resp.headers["X-Request-ID"] == rid
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(10)
        lines = [line for line in cap.logs(logger="django.server") if "GET" in line["event"]]
        assert [line["correlation_id"] for line in lines] == ["dev-1", "dev-2"]
        assert lines[0]["event"] == '"GET /legacy/2020/ HTTP/1.1" 200 4'
        assert lines[0]["trace_id"] == access(cap)[0]["trace_id"]


def test_a_broken_route_lookup_is_counted_and_never_fails_the_request(monkeypatch):
    def broken(match: Any) -> str:
        raise RuntimeError("a Django release changed ResolverMatch")

    monkeypatch.setattr(RouteTemplates, "_build", staticmethod(broken))
    app = wsgi_app()
    with capture(app) as cap:
        response = get(app, "/api/orders/4/")
        assert response.status_code == 200 and response.get_json()["order"] == 4
        response.close()
        assert [line["route"] for line in access(cap)] == ["__unmatched__"]
        assert cap.sample("obskit_instrumentation_errors_total") == 1
