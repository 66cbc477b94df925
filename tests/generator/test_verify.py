"""`obskit verify` when it cannot ask Prometheus: exit 2 and one clear line, never a traceback.

Garbage answers, an answer that never comes (verify must give up within its timeout), a refused
connection, an API error, and bad input are each checked against a real HTTP server on
127.0.0.1 (or none). Agreement and mismatches with a real Prometheus are in
tests/e2e/test_alertmanager.py.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.generator.conftest import MINIMAL, ROOT

Answer = Callable[[BaseHTTPRequestHandler], None]


def _verify(manifest: Path, url: str, *extra: str) -> tuple[int, str, str, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "obskit.cli", "verify", "--prometheus", url, str(manifest), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    return result.returncode, result.stdout, result.stderr, time.monotonic() - started


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "obskit.yaml"
    path.write_text(MINIMAL)
    return path


@pytest.fixture
def server() -> Iterator[Callable[[Answer], str]]:
    """`serve(answer)` -> URL of a loopback server answering every GET with `answer`."""
    servers: list[ThreadingHTTPServer] = []

    def serve(answer: Answer) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer(self)

            def log_message(self, format: str, *args: object) -> None:
                return

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield serve
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def _send(status: int, body: bytes, content_type: str = "application/json") -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return answer


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (_send(200, b"<html>hello</html>", "text/html"), "does not answer like the Prometheus"),
        (_send(200, b'{"data": []}'), "no status field"),
        (_send(200, b"[1, 2, 3]"), "no status field"),
        (_send(200, b'{"status": "success", "data": {"groups": 7}}'), "has no groups list"),
        (
            _send(400, b'{"status": "error", "errorType": "bad_data", "error": "nope"}'),
            "refused /api/v1/rules: bad_data nope",
        ),
        (_send(502, b"Bad Gateway", "text/plain"), "is not JSON"),
    ],
)
def test_garbage_from_prometheus_is_exit_2_with_one_clear_line(
    manifest: Path, server: Callable[[Answer], str], answer: Answer, message: str
) -> None:
    code, out, err, _ = _verify(manifest, server(answer))
    assert code == 2 and out == ""
    assert err.startswith("verify: ") and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_prometheus_that_never_answers_is_given_up_within_the_timeout(
    manifest: Path, server: Callable[[Answer], str]
) -> None:
    release = threading.Event()

    def hang(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b"{")  # a trickle, then nothing
        handler.wfile.flush()
        release.wait(30)

    url = server(hang)
    try:
        code, _, err, elapsed = _verify(manifest, url, "--timeout", "1")
    finally:
        release.set()
    assert code == 2 and f"{url} did not answer within 1s" in err, err
    assert elapsed < 10  # interpreter start-up plus the one-second timeout
    assert "Traceback" not in err


def test_nothing_listening_is_exit_2(manifest: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err, _ = _verify(manifest, f"http://127.0.0.1:{port}")
    assert code == 2 and "cannot reach Prometheus at" in err and "refused" in err.lower(), err


def test_bad_input_is_exit_2_before_any_request(manifest: Path, tmp_path: Path) -> None:
    code, _, err, _ = _verify(manifest, "ftp://prometheus:9090")
    assert code == 2 and err.startswith("--prometheus: 'ftp://prometheus:9090' is not an http(s)")
    bad = tmp_path / "bad.yaml"
    bad.write_text("service: x\nslos: 3\n")
    code, _, err, _ = _verify(bad, "http://127.0.0.1:9")
    assert code == 2 and f"{bad}:2:" in err


def test_an_empty_prometheus_is_a_mismatch_that_names_each_fix(
    manifest: Path, server: Callable[[Answer], str]
) -> None:
    """A Prometheus that scrapes nothing and loads no rules: exit 1, every check says why."""

    def empty(handler: BaseHTTPRequestHandler) -> None:
        if handler.path.startswith("/api/v1/rules"):
            data: object = {"groups": []}
        else:
            data = {"resultType": "vector", "result": []}
        _send(200, json.dumps({"status": "success", "data": data}).encode())(handler)

    code, out, err, _ = _verify(manifest, server(empty))
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0].startswith('FAIL  checkout  scrape   no scrape target matches {job="checkout"}')
    assert '-> fix: scrape the service with job_name "checkout"' in lines[0]
    assert any("FAIL  checkout  runtime" in line and "obskit.init()" in line for line in lines)
    assert any("is not loaded -> fix: add checkout/rules.yaml" in line for line in lines)
    assert lines[-1].startswith("verify: 1 service(s),") and lines[-1].endswith("FAIL")
