"""The OTLP receiver in its own process, so that a test can kill it like a crashed collector.

Stopping the in-process receiver closes its listening socket, but connections the exporter
already holds open (HTTP keep-alive) keep being served by their handler threads. Killing a
separate process severs everything at once, as when a real collector dies.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from pathlib import Path

from examples.lab.otlp_receiver import ReceivedSpan
from examples.lab.processes import Child, Supervisor, wait_until

_LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


class ReceiverProcess:
    def __init__(self, supervisor: Supervisor, log_path: Path) -> None:
        self.supervisor = supervisor
        self.log_path = log_path
        self.port = 0
        self._child: Child | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> ReceiverProcess:
        """Start (again on the same port once it has had one)."""
        self.log_path.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "examples.lab.otlp_receiver", "--port", str(self.port)]
        child = self.supervisor.spawn("otlp-receiver", argv, log_path=self.log_path)
        self._child = child

        def listening() -> bool:
            if not child.alive():
                raise RuntimeError(f"OTLP receiver exited:\n{child.output_tail()}")
            match = _LISTENING.search(self.log_path.read_text(errors="replace"))
            if match is not None:
                self.port = int(match.group(1))
            return match is not None

        wait_until(listening, timeout, 0.05, "the OTLP receiver to listen")
        return self

    def kill(self) -> None:
        """SIGKILL: the port refuses connections and every open connection is reset."""
        if self._child is not None:
            self._child.kill()
            self.supervisor.forget(self._child)
            self._child = None

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop()
            self.supervisor.forget(self._child)
            self._child = None

    def _get(self, path: str) -> object:
        with urllib.request.urlopen(f"{self.endpoint}{path}", timeout=10) as resp:
            return json.load(resp)

    def spans(self) -> list[ReceivedSpan]:
        """Every span received since this process started."""
        data = self._get("/spans")
        assert isinstance(data, list)
        return [ReceivedSpan(**item) for item in data]

    def stats(self) -> dict[str, int]:
        data = self._get("/stats")
        assert isinstance(data, dict)
        return {str(k): int(v) for k, v in data.items()}
