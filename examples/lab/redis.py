"""A real Redis server on loopback: the Celery broker of the demo and the tests.

    with Redis() as redis:
        app = Celery("worker", broker=redis.url)
        redis.restart()          # same port, empty data: a broker restart

It runs the Debian `redis-server` binary (7.0 here) on 127.0.0.1 with a port free at run time,
its own temporary working directory, no persistence (`--save "" --appendonly no`), and stops it
(and removes the directory) on `stop()`. `restart()` stops it and starts it again on the same
port, as a broker restart does; the queued messages are gone, like a broker that lost them.

Also runnable by hand: ``python -m examples.lab.redis`` prints its URL and runs until Ctrl-C.
"""

from __future__ import annotations

import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from examples.lab.processes import Child, Supervisor, free_port

INSTALL_HINT = (
    "Redis is not installed. On Debian/Ubuntu: "
    "sudo apt-get install -y --no-install-recommends redis-server"
)


class RedisError(RuntimeError):
    """redis-server is missing or could not start."""


def find_binary() -> str | None:
    return shutil.which("redis-server")


def ping(port: int, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING on 127.0.0.1:port (plain RESP, no client library)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class Redis:
    """A redis-server child process on 127.0.0.1 with its own directory."""

    def __init__(
        self,
        *,
        binary: str | None = None,
        supervisor: Supervisor | None = None,
        workdir: Path | None = None,
    ) -> None:
        found = binary or find_binary()
        if found is None:
            raise RedisError(INSTALL_HINT)
        self.binary = found
        self._supervisor = supervisor or Supervisor()
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="obskit-redis-"))
        self.port = 0
        self._child: Child | None = None

    @property
    def url(self) -> str:
        """The Celery broker / redis-py URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def start(self, timeout: float = 15.0, attempts: int = 3) -> Redis:
        """Start and wait until it answers PING; another port if the chosen one was taken."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        keep_port = self.port != 0
        last_error = ""
        for _ in range(1 if keep_port else attempts):
            if not keep_port:
                self.port = free_port()
            if self._spawn(timeout):
                return self
            last_error = self._child.output_tail() if self._child is not None else ""
            self._stop_child()
            if "Address already in use" not in last_error:
                break
        raise RedisError(f"redis-server did not start on port {self.port}:\n{last_error}")

    def _spawn(self, timeout: float) -> bool:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
            "--protected-mode",
            "yes",
        ]
        child = self._supervisor.spawn("redis", argv, log_path=self.log_path)
        self._child = child
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and child.alive():
            if ping(self.port):
                return True
            time.sleep(0.05)
        return False

    def restart(self, down_for: float = 0.0, timeout: float = 15.0) -> None:
        """Stop the server, stay down `down_for` seconds, start it again on the same port."""
        self._stop_child()
        if down_for > 0:
            time.sleep(down_for)
        if not self._spawn(timeout):
            tail = self._child.output_tail() if self._child is not None else ""
            raise RedisError(f"redis-server did not restart on port {self.port}:\n{tail}")

    def _stop_child(self) -> None:
        if self._child is not None:
            self._child.stop()
            self._supervisor.forget(self._child)
            self._child = None

    def stop(self) -> None:
        """Terminate the server and remove its directory (idempotent)."""
        self._stop_child()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def alive(self) -> bool:
        return self._child is not None and self._child.alive()

    def __enter__(self) -> Redis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> int:
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        redis = Redis().start()
    except RedisError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"Redis on {redis.url} (directory {redis.workdir})", flush=True)
    try:
        stopped.wait()
    finally:
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
