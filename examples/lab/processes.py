"""Child processes for the local lab: free ports, readiness waits, and cleanup that leaves nothing.

Every child is started in its own session (so a terminal Ctrl-C reaches only the parent, which
then stops the children in order) and, on Linux, with PR_SET_PDEATHSIG so that it is terminated
even when the parent dies without running its cleanup (SIGKILL, OOM). `Supervisor.stop_all()`
runs from `finally:` blocks and from atexit; it is idempotent.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _load_prctl()  # resolved in the parent: the child only calls a function pointer


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM it when the parent thread dies."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when GET url answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.2, what: str = "condition"
) -> None:
    """Poll predicate until it is true; raise TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Child:
    """One supervised child process with its output going to a log file."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(repr=False)
    log_path: Path
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Only a prctl() call on a pointer resolved before fork: no lock, no import.
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
        return self

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the child's process group now (a crash, not a shutdown) and reap it."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        self.stop()

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait, then SIGKILL the child's whole process group. Idempotent."""
        proc = self.process
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=timeout)
            # The group may still hold grandchildren when the leader exited first.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        return None if proc is None else proc.returncode


class Supervisor:
    """Owns a set of children; stops them all (reverse start order) exactly once per start."""

    def __init__(self) -> None:
        self._children: list[Child] = []
        self._history: list[Child] = []
        self._lock = threading.Lock()
        atexit.register(self.stop_all)

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        full_env = dict(os.environ)
        full_env.update(env or {})
        child = Child(name, list(argv), full_env, log_path, cwd)
        with self._lock:
            self._children.append(child)
            self._history.append(child)
        return child.start()

    def spawn_ready(
        self,
        name: str,
        argv: Callable[[int], Sequence[str]],
        ready: Callable[[int], bool],
        *,
        log_path: Path,
        timeout: float,
        attempts: int,
    ) -> tuple[int, Child | None, str]:
        """Spawn `argv(port)` on a free port and wait until `ready(port)`: (port, child, "").
        Another port when the chosen one was taken meanwhile (the child says "address already
        in use"); else (0, None, the child's last output) after `attempts` or any other failure."""
        last_error = ""
        for _ in range(attempts):
            port = free_port()
            child = self.spawn(name, argv(port), log_path=log_path)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and child.alive():
                if ready(port):
                    return port, child, ""
                time.sleep(0.1)
            last_error = child.output_tail()
            child.stop()
            self.forget(child)
            if "address already in use" not in last_error:
                break
        return 0, None, last_error

    def children(self) -> list[Child]:
        with self._lock:
            return list(self._children)

    def survivors(self) -> list[Child]:
        """Every child ever spawned here that is still running (empty after stop_all())."""
        with self._lock:
            return [c for c in self._history if c.alive()]

    def forget(self, child: Child) -> None:
        with self._lock:
            if child in self._children:
                self._children.remove(child)

    def stop_all(self) -> None:
        with self._lock:
            children, self._children = list(reversed(self._children)), []
        for child in children:
            child.stop()


def install_signal_handlers() -> None:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so `finally:` cleanup runs as on Ctrl-C."""

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise)
