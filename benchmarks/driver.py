"""In-process ASGI driver: calls an ASGI app directly, no sockets, no server.

What is timed is exactly `await app(scope, receive, send)` for a GET with a path
parameter and the headers a browser-less client sends, plus the driver's own tiny
receive/send callables (the same for every variant, so they cancel out in the
overhead over bare).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from benchmarks.app import item_path

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

_HEADERS = (
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"obskit-bench/1"),
    (b"accept", b"*/*"),
)
_REQUEST: Message = {"type": "http.request", "body": b"", "more_body": False}


class WrongResponse(AssertionError):
    """The app answered something other than 200 with a body: the measurement is void."""


def _scope(path: str) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": list(_HEADERS),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _drive(app: ASGIApp, start: int, n: int) -> int:
    status = 0
    body_bytes = 0

    async def receive() -> Message:
        return _REQUEST

    async def send(message: Message) -> None:
        nonlocal status, body_bytes
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body_bytes += len(message.get("body", b""))

    t0 = time.perf_counter_ns()
    for i in range(start, start + n):
        status = 0
        body_bytes = 0
        await app(_scope(item_path(i)), receive, send)
        if status != 200 or body_bytes == 0:
            raise WrongResponse(f"request {i}: status {status}, {body_bytes} body bytes")
    return time.perf_counter_ns() - t0


class Driver:
    """Runs batches of requests against one app on one event loop; counts them all."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.requests = 0

    def run(self, n: int) -> float:
        """Send n requests; return the mean wall-clock microseconds per request."""
        return self.run_timed(n)[0]

    def run_timed(self, n: int, *, collect: bool = True) -> tuple[float, float]:
        """Send n requests; return mean wall-clock and process-CPU microseconds per request.

        CPU time counts every thread of the process (export threads included) and leaves
        out time the process spent waiting for a core, so it is the steadier number on a
        busy machine; wall time is what a caller waits.
        """
        if collect:
            gc.collect()
        cpu0 = time.process_time_ns()
        elapsed_ns = self.loop.run_until_complete(_drive(self.app, self.requests, n))
        cpu_ns = time.process_time_ns() - cpu0
        self.requests += n
        return elapsed_ns / n / 1000.0, cpu_ns / n / 1000.0

    def get(self, path: str) -> tuple[int, bytes]:
        """One extra GET (e.g. /metrics for verification); not counted as a benchmark request."""
        return self.loop.run_until_complete(_get(self.app, path))

    def close(self) -> None:
        self.loop.close()


async def _get(app: ASGIApp, path: str) -> tuple[int, bytes]:
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        return _REQUEST

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(_scope(path), receive, send)
    return status, b"".join(chunks)


class WSGIDriver:
    """The same protocol as Driver for a WSGI app: `app(environ, start_response)`, the body
    read and closed, as a WSGI server does (no sockets). Every response must be 200 with a
    body."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests = 0

    @staticmethod
    def environ(path: str) -> dict[str, Any]:
        import io
        import sys

        return {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "50000",
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_USER_AGENT": "obskit-bench/1",
            "HTTP_ACCEPT": "*/*",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }

    def _call(self, path: str) -> tuple[int, bytes]:
        status: list[str] = []

        def start_response(line: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(line)
            return None

        result = self.app(self.environ(path), start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return int(status[0][:3]) if status else 0, body

    def run_timed(self, n: int, *, collect: bool = True) -> tuple[float, float]:
        if collect:
            gc.collect()
        call = self._call
        start = self.requests
        cpu0 = time.process_time_ns()
        t0 = time.perf_counter_ns()
        for i in range(start, start + n):
            status, body = call(item_path(i))
            if status != 200 or not body:
                raise WrongResponse(f"request {i}: status {status}, {len(body)} body bytes")
        elapsed_ns = time.perf_counter_ns() - t0
        cpu_ns = time.process_time_ns() - cpu0
        self.requests += n
        return elapsed_ns / n / 1000.0, cpu_ns / n / 1000.0

    def run(self, n: int) -> float:
        return self.run_timed(n)[0]

    def get(self, path: str) -> tuple[int, bytes]:
        return self._call(path)

    def close(self) -> None:
        return None
