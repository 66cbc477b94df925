"""The /metrics listener across fork(): the child lets go of the port, the parent keeps serving."""

from __future__ import annotations

import os
import urllib.request

from prometheus_client import CollectorRegistry

from obskit.runtime.metrics_server import MetricsServer


def test_a_forked_child_closes_its_copy_of_the_listener_and_the_parent_keeps_serving() -> None:
    server = MetricsServer(CollectorRegistry(), "127.0.0.1", 0)
    try:
        pid = os.fork()
        if pid == 0:  # the child: no serving thread here, the socket must be closed
            code = 0 if server._server.socket.fileno() == -1 else 1
            server.close()  # must return: nothing serves in this process
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200
    finally:
        server.close()
