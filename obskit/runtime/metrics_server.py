"""A separate HTTP listener for /metrics (OBSKIT_METRICS_PORT), in a daemon thread.

A process forked after the listener started (a Celery prefork pool process, a gunicorn worker
under --preload) inherits the listening socket but not the serving thread: the child closes its
copy, so it never holds the port once the parent is gone, and `close()` there returns at once.
"""

from __future__ import annotations

import os
import threading
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from obskit.runtime.metrics import exposition


class MetricsServer:
    """Serves the registry's exposition on host:port (port 0 picks a free one)."""

    def __init__(self, registry: Any, host: str, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, content_type = exposition(registry, self.headers.get("Accept"))
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="obskit-metrics", daemon=True
        )
        self._thread.start()
        self._forked = False
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_forget_in_child(weakref.ref(self)))

    def close(self) -> None:
        if not self._forked:  # in a forked child nothing serves: shutdown() would wait forever
            self._server.shutdown()
        self._server.server_close()


def _forget_in_child(ref: weakref.ref[MetricsServer]) -> Any:
    def after_fork() -> None:
        server = ref()
        if server is not None and not server._forked:
            server._forked = True
            server._server.server_close()  # this process's copy of the listening socket

    return after_fork
