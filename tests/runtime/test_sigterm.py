"""Spans still queued when uvicorn is stopped with SIGTERM reach the collector."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from examples.lab.otlp_receiver import OTLPReceiver
from tests.runtime.servers import ROOT

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_uvicorn_sigterm_flushes_queued_spans() -> None:
    """uvicorn re-raises SIGTERM after its graceful shutdown, so atexit never runs: obskit
    flushes on the ASGI lifespan shutdown instead."""
    with OTLPReceiver() as rx:
        port = _free_port()
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "tests.runtime.lifespan_app:create",
                "--factory", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.05)
            for i in range(20):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/items/{i}") as resp:
                    assert resp.status == 200
            assert rx.span_count == 0  # nothing exported yet: the interval is 60 s
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        spans = rx.wait_for_spans(20, timeout=5)
    assert sorted(s.name for s in spans) == ["GET /items/{item_id}"] * 20
