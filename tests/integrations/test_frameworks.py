"""Starlette (with mounts and included routers), bare ASGI and WSGI callables."""

from __future__ import annotations

import asyncio
import io

import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import obskit
from obskit.testing import capture
from tests.runtime.test_hostile import _request

COUNT = "http_server_request_duration_seconds_count"


def _routes(cap) -> set[str]:
    return {line["route"] for line in cap.logs(logger="obskit.access")}


def test_starlette_mounts_and_fastapi_routers_report_full_templates():
    async def hello(request):
        return PlainTextResponse("hi")

    inner = Starlette(routes=[Route("/items/{item_id}", hello)])
    app = FastAPI()
    router = APIRouter(prefix="/api")

    @router.get("/users/{user_id}")
    async def user(user_id: str) -> dict:
        return {}

    app.include_router(router)
    app.mount("/sub", inner)
    with capture(app) as cap:
        for path in ("/api/users/1", "/sub/items/9", "/sub/nothing/here", "/api/users/2"):
            asyncio.run(_request(app, path))
        assert _routes(cap) == {"/api/users/{user_id}", "/sub/items/{item_id}", "__unmatched__"}
        assert cap.sample(COUNT, http_request_method="GET", http_route="/api/users/{user_id}",
                          http_response_status_code="200") == 2  # fmt: skip


def test_plain_starlette_app_is_instrumented_in_place():
    async def hello(request):
        return PlainTextResponse("hi")

    app = Starlette(routes=[Route("/hello/{name}", hello)])
    with capture(app) as cap:
        status, headers = asyncio.run(_request(app, "/hello/x"))
        assert status == 200 and b"x-request-id" in headers
        assert _routes(cap) == {"/hello/{name}"}


def test_bare_asgi_callable_is_wrapped_and_returned_on_the_handle():
    async def raw(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with capture(raw) as cap:
        assert cap.app is not raw
        status, headers = asyncio.run(_request(cap.app, "/anything"))
        assert status == 204 and b"x-request-id" in headers
        assert _routes(cap) == {"__unmatched__"}  # no router: no template to report


def test_bare_wsgi_callable_is_wrapped_and_reports_a_route_set_by_the_framework():
    def raw(environ, start_response):
        environ["obskit.route"] = "/custom/{id}"  # how other frameworks can name the route
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with capture(raw) as cap:
        seen = {}

        def start_response(status, headers, exc_info=None):
            seen["status"], seen["headers"] = status, dict(headers)

        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/custom/7", "wsgi.url_scheme": "http",
                   "HTTP_X_REQUEST_ID": "w-1", "wsgi.input": io.BytesIO()}  # fmt: skip
        body = cap.app(environ, start_response)
        assert b"".join(body) == b"ok"
        body.close()
        assert seen["headers"]["X-Request-ID"] == "w-1"
        [line] = cap.logs(logger="obskit.access")
        assert line["route"] == "/custom/{id}" and line["correlation_id"] == "w-1"


def test_a_second_init_with_the_same_bare_app_keeps_serving_the_one_wrapper():
    """init() again (same app, or the wrapper it returned) never unwraps nor wraps twice."""

    async def raw(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with capture(raw) as cap:
        wrapper = cap.app
        with pytest.warns(RuntimeWarning, match="called again"):
            assert obskit.init(raw).app is wrapper
        with pytest.warns(RuntimeWarning, match="called again"):
            assert obskit.init(wrapper).app is wrapper
        asyncio.run(_request(cap.app, "/once"))
        assert len(cap.logs(logger="obskit.access")) == 1  # one layer of instrumentation
        assert len(cap.spans()) == 1


def test_websocket_and_lifespan_scopes_pass_straight_through():
    calls = []

    async def raw(scope, receive, send):
        calls.append(scope["type"])

    with capture(raw) as cap:
        for kind in ("websocket", "lifespan"):
            asyncio.run(cap.app({"type": kind, "path": "/ws"}, None, None))
        assert calls == ["websocket", "lifespan"]
        assert cap.logs() == []
    assert obskit.correlation_id() is None


def test_a_streamed_response_is_recorded_once_when_its_last_chunk_is_sent():
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get("/stream/{n}")
    async def stream(n: int) -> StreamingResponse:
        async def chunks():
            for i in range(n):
                yield f"{i}\n".encode()

        return StreamingResponse(chunks())

    async def call() -> list[dict]:
        sent: list[dict] = []
        first = [True]

        async def receive() -> dict:
            if first[0]:
                first[0] = False
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # the client stays connected
            return {}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/stream/5", "root_path": "",
                 "headers": [], "scheme": "http", "query_string": b""}  # fmt: skip
        await app(scope, receive, send)
        return sent

    with capture(app) as cap:
        sent = asyncio.run(call())
        assert sent[0]["status"] == 200
        assert b"".join(m.get("body", b"") for m in sent[1:]) == b"0\n1\n2\n3\n4\n"
        [access] = cap.logs(logger="obskit.access")
        assert access["route"] == "/stream/{n}" and access["status"] == 200
        assert len(cap.spans()) == 1
        assert cap.sample(COUNT, http_request_method="GET", http_route="/stream/{n}",
                          http_response_status_code="200") == 1  # fmt: skip


def test_http_exceptions_keep_their_status_and_template():
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        return {}

    with capture(app) as cap:
        assert asyncio.run(_request(app, "/items/not-an-int"))[0] == 422
        assert asyncio.run(_request(app, "/items/1", method="DELETE"))[0] == 405
        statuses = {(line["route"], line["status"]) for line in cap.logs(logger="obskit.access")}
        assert statuses == {("/items/{item_id}", 422), ("/items/{item_id}", 405)}


def test_a_wsgi_body_that_fails_to_iterate_is_recorded_with_its_exception():
    class Exploding:
        def __iter__(self):
            raise RuntimeError("body broke")

    def raw(environ, start_response):
        start_response("200 OK", [])
        return Exploding()

    with capture(raw) as cap:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "wsgi.url_scheme": "http"}
        body = cap.app(environ, lambda status, headers, exc_info=None: None)
        with pytest.raises(RuntimeError, match="body broke"):
            list(body)
        body.close()
        [line] = cap.logs(logger="obskit.access")
        assert line["exception"]["type"] == "RuntimeError"
        [span] = cap.spans()
        assert span.status.status_code.name == "ERROR"
