"""A live OTLP/HTTP receiver in a separate process (examples.lab.otlp_receiver).

Separate, so that decoding spans never competes for the measured process's GIL, as a
real collector would not. One receiver per tracing variant, so each variant's spans
are counted apart.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


class ReceiverProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "examples.lab.otlp_receiver", "--port", "0", "--count-only"],
            cwd=_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        prefix = "listening on "
        if not line.startswith(prefix):
            self.stop()
            raise RuntimeError(f"OTLP receiver did not start: {line!r}")
        self.endpoint = line[len(prefix) :]

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.endpoint}/stats", timeout=5) as resp:
            data: dict[str, int] = json.loads(resp.read())
        return data

    def spans(self) -> int:
        return self.stats()["spans"]

    def settle(self, quiet: float = 0.25, cap: float = 3.0) -> int:
        """Wait until the span count stops moving for `quiet` seconds (at most `cap`)."""
        deadline = time.monotonic() + cap
        last = self.spans()
        still_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.spans()
            if now != last:
                last, still_since = now, time.monotonic()
            elif time.monotonic() - still_since >= quiet:
                break
        return last

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
