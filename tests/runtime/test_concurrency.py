"""No cross-talk between concurrent requests; tasks and threads started in a request keep its ID."""

from __future__ import annotations

import asyncio
import io
import threading

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry

import obskit

from .apps import fastapi_app, flask_app
from .servers import serve_asgi, serve_wsgi

pytestmark = pytest.mark.integration


def _init(app):
    stream = io.BytesIO()
    obskit.init(
        app,
        service="conc",
        log_stream=stream,
        log_format="json",
        registry=CollectorRegistry(),
        traces_enabled=True,
        otlp_endpoint="http://127.0.0.1:9/v1/traces",
        instrument_clients=False,
        capture_stdlib_logs=False,
        environ={},
    )
    return stream


def _lines(stream):
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def _slow_app():
    from fastapi import FastAPI

    app = FastAPI()
    log = obskit.get_logger("slow")

    @app.get("/slow/{n}")
    async def slow(n: int) -> dict:
        before = obskit.correlation_id()
        log.info("before sleep", n=n)
        await asyncio.sleep(0.01 * (n % 5))
        log.info("after sleep", n=n)
        return {"before": before, "after": obskit.correlation_id()}

    @app.get("/thread/{n}")
    def threaded(n: int) -> dict:
        log.info("in thread", n=n)
        return {"after": obskit.correlation_id()}

    return app


def test_concurrent_asgi_requests_never_see_each_others_ids():
    app = _slow_app()
    stream = _init(app)

    async def drive(url):
        async with httpx.AsyncClient(base_url=url) as client:
            calls = [
                client.get(
                    f"/{'slow' if n % 2 else 'thread'}/{n}", headers={"X-Request-ID": f"id-{n}"}
                )
                for n in range(60)
            ]
            return await asyncio.gather(*calls)

    with serve_asgi(app) as url:
        responses = asyncio.run(drive(url))
    for n, response in enumerate(responses):
        assert response.headers["x-request-id"] == f"id-{n}"
        assert response.json()["after"] == f"id-{n}"
        if n % 2:
            assert response.json()["before"] == f"id-{n}"
    for line in _lines(stream):
        if "n" in line:
            assert line["correlation_id"] == f"id-{line['n']}"
    trace_ids = {}
    for line in _lines(stream):
        if "n" in line:
            trace_ids.setdefault(line["n"], set()).add(line["trace_id"])
    assert all(len(ids) == 1 for ids in trace_ids.values())
    assert len({next(iter(ids)) for ids in trace_ids.values()}) == 60


def test_concurrent_wsgi_requests_never_see_each_others_ids():
    app = flask_app()
    stream = _init(app)

    def call(url, n, out):
        out[n] = httpx.get(f"{url}/refunds/{n}", headers={"X-Request-ID": f"w-{n}"})

    with serve_wsgi(app) as url:
        out: dict = {}
        threads = [threading.Thread(target=call, args=(url, n, out)) for n in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for n, response in out.items():
        assert response.json() == {"refund_id": n, "correlation_id": f"w-{n}"}
    for line in _lines(stream):
        if "refund_id" in line:
            assert line["correlation_id"] == f"w-{line['refund_id']}"


def test_background_task_started_in_a_request_keeps_its_correlation_id():
    app = fastapi_app()
    stream = _init(app)
    with serve_asgi(app) as url:
        response = httpx.post(f"{url}/background", headers={"X-Request-ID": "bg-1"})
        assert response.json()["correlation_id"] == "bg-1"
    [line] = [rec for rec in _lines(stream) if rec["event"] == "background task ran"]
    assert line["correlation_id"] == "bg-1" and line["seen"] == "bg-1"


def test_no_id_leaks_into_code_running_after_a_request():
    app = fastapi_app()
    _init(app)
    with serve_asgi(app) as url:
        httpx.get(f"{url}/orders/1", headers={"X-Request-ID": "leak-1"})
    assert obskit.correlation_id() is None


def test_a_wsgi_test_client_request_leaves_no_id_behind_and_is_recorded_once_read():
    """Flask's test client runs the app in the test's thread and may never close the response:
    nothing stays bound afterwards, and reading the body is enough to record the request."""
    from flask import Flask, Response

    from obskit.testing import capture

    app = Flask("stream")
    log = obskit.get_logger("stream")

    @app.get("/rows")
    def rows() -> Response:
        def generate():
            log.info("streaming")  # runs while the server pulls the body, after the view returned
            yield b"a"

        return Response(generate())

    with capture(app) as cap:
        response = app.test_client().get("/rows", headers={"X-Request-ID": "s-1"})
        assert obskit.correlation_id() is None  # not leaked into the caller, even before close
        assert response.data == b"a"
        [streaming] = cap.logs(event="streaming")
        assert streaming["correlation_id"] == "s-1" and "trace_id" in streaming
        [access] = cap.logs(logger="obskit.access")
        assert access["correlation_id"] == "s-1" and access["route"] == "/rows"
        assert [s.name for s in cap.spans()] == ["GET /rows"]
        response.close()
        assert (
            len(cap.logs(logger="obskit.access")) == 1
        )  # close() after exhaustion: no second line
