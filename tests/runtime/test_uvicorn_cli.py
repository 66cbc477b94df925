"""Run as users do (`uvicorn module:app`): every stdout line, uvicorn's included, is JSON."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import orjson
import pytest

from .servers import ROOT

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_listening(port: int, proc: subprocess.Popen) -> None:
    """Wait (generously: a loaded CI machine imports slowly) until the port accepts connections.

    Only connecting is retried, never a request: a retried request could be served twice.
    """
    deadline = time.monotonic() + 90
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.1)


def test_uvicorn_cli_logs_come_out_as_obskit_json_with_one_access_line():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.runtime.uvicorn_app:app",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "OBSKIT_LOG_FORMAT": "json"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_until_listening(port, proc)
        response = httpx.get(f"http://127.0.0.1:{port}/hello/ann",
                             headers={"X-Request-ID": "cli-1"}, timeout=60)  # fmt: skip
        assert response.status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    lines = [orjson.loads(line) for line in out.splitlines() if line.strip()]
    assert not err.strip(), err.decode()  # nothing escaped the bridge to stderr
    events = [(line["logger"], line["event"]) for line in lines]
    assert any(logger.startswith("uvicorn") and "Uvicorn running" in event
               for logger, event in events)  # fmt: skip
    access = [line for line in lines if line["logger"] == "obskit.access"]
    assert len(access) == 1 and access[0]["route"] == "/hello/{name}"
    assert not any(logger == "uvicorn.access" for logger, _ in events)
    assert not any("color_message" in line for line in lines)  # uvicorn's ANSI copy dropped
    library = next(line for line in lines if line["logger"] == "library")
    assert library["correlation_id"] == "cli-1" and library["service"] == "cli-app"


def test_uvicorn_workers_with_multiproc_dir_report_every_request_from_any_worker(tmp_path):
    """Two worker processes: whichever answers the scrape reports the sum over both."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.runtime.uvicorn_app:app",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_until_listening(port, proc)
        n = 40
        for i in range(n):  # new connection each time: the kernel spreads them over workers
            assert httpx.get(f"http://127.0.0.1:{port}/hello/{i}", timeout=60).status_code == 200
        counts = set()
        for _ in range(6):
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=60).text
            line = next(
                line
                for line in text.splitlines()
                if line.startswith("http_server_request_duration_seconds_count")
                and 'http_route="/hello/{name}"' in line
            )
            counts.add(float(line.rsplit(" ", 1)[1]))
        assert counts == {float(n)}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
