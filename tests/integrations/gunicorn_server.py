"""Real gunicorn masters on 127.0.0.1 for the tests: own port, own files, always stopped."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from examples.lab.processes import _die_with_parent, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
CONF = "from obskit.integrations.gunicorn import child_exit, logger_class, worker_exit  # noqa\n"


def _control_socket_flag() -> list[str]:
    """gunicorn >= 25 opens a control socket under $HOME unless told not to."""
    from gunicorn.config import KNOWN_SETTINGS

    return (
        ["--no-control-socket"] if any(s.name == "control_socket" for s in KNOWN_SETTINGS) else []
    )


@dataclass
class Gunicorn:
    """One gunicorn master and its workers; stdout and stderr each in their own file."""

    workdir: Path
    app: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    conf: str = CONF
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def out(self) -> Path:
        return self.workdir / "stdout.log"

    @property
    def err(self) -> Path:
        return self.workdir / "stderr.log"

    def start(self, ready_path: str = "/health") -> Gunicorn:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "gunicorn.conf.py"
        conf.write_text(self.conf)
        self.port = free_port()
        argv = [
            sys.executable, "-m", "gunicorn", "-c", str(conf), "-b", f"127.0.0.1:{self.port}",
            *_control_socket_flag(), *self.args, self.app,
        ]  # fmt: skip
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "tests.integrations.djproject.settings",
            "OBSKIT_LOG_FORMAT": "json",
            **self.env,
        }
        with self.out.open("ab") as out, self.err.open("ab") as err:
            self.proc = subprocess.Popen(
                argv, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=err, start_new_session=True, preexec_fn=_die_with_parent,  # noqa: PLW1509
            )  # fmt: skip
        try:
            wait_until(lambda: self._ready(ready_path), 60, 0.1, f"gunicorn on {self.url}")
        except TimeoutError:
            self.kill()
            tail = self.err.read_text()[-3000:]
            raise AssertionError(f"gunicorn did not start:\n{tail}") from None
        return self

    def _ready(self, path: str) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{self.err.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def get(self, path: str, request_id: str | None = None) -> tuple[int, dict[str, str], Any]:
        """GET path; (status, lower-cased headers, parsed JSON body or raw text)."""
        headers = {"X-Request-ID": request_id} if request_id else {}
        request = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                status, got, body = int(resp.status), _lower(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            status, got, body = exc.code, _lower(exc.headers), exc.read()
        try:
            return status, got, json.loads(body)
        except ValueError:
            return status, got, body.decode(errors="replace")

    def hit_every_worker(self, workers: int, path: str, prefix: str) -> dict[str, int]:
        """Concurrent requests (each held `path`'s pause) until every worker answered one;
        returns {request id: pid}."""
        served: dict[str, int] = {}
        with ThreadPoolExecutor(workers) as pool:
            for batch in range(20):
                ids = [f"{prefix}-{batch}-{i}" for i in range(workers)]
                for rid, (status, _, body) in zip(
                    ids, pool.map(lambda r: self.get(path, r), ids), strict=True
                ):
                    assert status == 200, body
                    served[rid] = int(body["pid"])
                if len(set(served.values())) >= workers:
                    return served
        raise AssertionError(f"requests reached only workers {set(served.values())}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM the master (graceful shutdown) and wait for it."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def lines(self, which: str = "err") -> list[dict[str, Any]]:
        """The JSON lines of stdout or stderr (a line that is not JSON fails the test)."""
        path = self.out if which == "out" else self.err
        parsed = []
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    parsed.append(json.loads(line))
                except ValueError:
                    raise AssertionError(f"not a JSON line in {path.name}: {line!r}") from None
        return parsed


def _lower(headers: Any) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


@contextlib.contextmanager
def gunicorn(workdir: Path, app: str, *args: str, **env: str) -> Iterator[Gunicorn]:
    server = Gunicorn(workdir, app, list(args), env).start()
    try:
        yield server
    finally:
        server.kill()


def wait_for(predicate: Any, timeout: float = 20, what: str = "condition") -> None:
    wait_until(predicate, timeout, 0.05, what)


def now() -> float:
    return time.monotonic()
