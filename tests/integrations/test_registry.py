"""Library adapters activate when their library is imported, never import an unused one, and
never let their own failure reach the service."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

import obskit
from obskit.integrations import _hooks
from obskit.testing import capture

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_library_imported_after_init_is_instrumented_and_an_unused_one_never_imported():
    out = _run(
        """
        import sys, threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        import obskit

        seen = {}
        class Echo(BaseHTTPRequestHandler):
            def do_GET(self):
                seen.update(self.headers)
                self.send_response(204); self.end_headers()
            def log_message(self, *args): pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        obskit.init(None, service="late", traces_enabled=False, log_stream=open("/dev/null", "w"))
        print("before", "requests" in sys.modules, "httpx" in sys.modules)
        import requests  # after init(): the adapter activates on this import
        with obskit.observe("job"):
            requests.get(f"http://127.0.0.1:{server.server_port}/x", timeout=5)
            cid = obskit.correlation_id()
        print("header", seen.get("X-Request-ID") == cid)
        print("loader", type(requests.__spec__.loader).__module__)
        print("httpx", "httpx" in sys.modules)
        server.shutdown()
        """
    )
    assert "before False False" in out
    assert "header True" in out  # the call was recorded and propagated
    assert "loader obskit" not in out  # the module keeps its own loader
    assert "httpx False" in out  # installed, never imported by the service: never imported


def test_an_adapter_that_fails_to_instrument_is_counted_logged_and_never_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from obskit.integrations import requests as adapter

    def broken() -> None:
        raise AttributeError("Session has no attribute 'send' (library changed)")

    monkeypatch.setattr(adapter, "instrument", broken)
    original = requests.Session.send
    with caplog.at_level(logging.ERROR, logger="obskit"), capture(instrument_clients=True) as cap:
        assert requests.Session.send is original  # the library is left exactly as it was
        assert cap.sample("obskit_instrumentation_errors_total") == 1
    logged = [r for r in caplog.records if "obskit.integrations.requests" in r.getMessage()]
    assert len(logged) == 1


def test_disabled_instrumentations_leave_a_library_alone() -> None:
    original = requests.Session.send
    with capture(instrument_clients=True, disabled_instrumentations="requests"):
        assert requests.Session.send is original
    with capture(instrument_clients=True):
        assert requests.Session.send is not original
    assert requests.Session.send is original  # reset() put the original back


def test_reset_forgets_pending_hooks_and_removes_the_finder() -> None:
    obskit.init(None, service="x", traces_enabled=False, metrics_enabled=False)
    _hooks.when_imported("a_module_nobody_imports", lambda module: None)
    assert "a_module_nobody_imports" in _hooks.pending()
    assert any(type(f).__module__ == _hooks.__name__ for f in sys.meta_path)
    obskit.reset()
    assert not _hooks.pending()
    assert not any(type(f).__module__ == _hooks.__name__ for f in sys.meta_path)
