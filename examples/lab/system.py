"""The example system (shop -> payments) as child processes, for the demo and the e2e tests.

    with Supervisor() ... system = ExampleSystem(workdir, otlp_endpoint=rx.endpoint).start()
    system.url("shop"); system.set_faults("shop", error_rate=0.3); system.restart("payments")

With `background=True` it also runs a real Redis (examples.lab.redis) and the Celery worker
(`celery -A examples.worker.tasks worker`, prefork, 2 pool processes, its metrics on a port of its
own), and shop's POST /checkout goes through the outbox and the relay to the worker, which
charges payments: `system.set_relay(stalled=True)`, `system.set_worker_faults(error_rate=0.2)`,
`system.redis.restart()`.

Each service runs in its own process on 127.0.0.1 with a port it chose itself (port 0),
JSON logs to `<workdir>/<service>.log`, traces exported over OTLP/HTTP to `otlp_endpoint`
(quickly: a 200 ms batch delay), and its metrics at `/metrics` on the service's own port.
shop reaches payments at http://localhost:<port>, as the manifests' dependency expects.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from examples.lab.processes import Child, Supervisor, free_port, http_ok, wait_until
from examples.lab.redis import Redis
from examples.worker.knob import set_faults as set_worker_faults

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("payments", "shop")  # start order: shop needs payments' URL
BACKGROUND_SERVICES = ("payments", "worker", "shop")  # with background=True
WORKER_ARGV = ("-m", "celery", "-A", "examples.worker.tasks", "-q", "worker", "--pool=prefork",
               "--concurrency=2", "--queues=orders", "--loglevel=INFO", "--without-mingle",
               "--without-gossip", "--without-heartbeat")  # fmt: skip


@dataclass
class Service:
    name: str
    port: int
    child: Child

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class ExampleSystem:
    def __init__(
        self,
        workdir: Path,
        *,
        otlp_endpoint: str | None = None,
        supervisor: Supervisor | None = None,
        env: Mapping[str, str] | None = None,
        background: bool = False,
        names: Sequence[str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.otlp_endpoint = otlp_endpoint
        self.supervisor = supervisor or Supervisor()
        self.extra_env = dict(env or {})
        self.services: dict[str, Service] = {}
        self.background = background
        self.names = (
            tuple(names) if names is not None else (BACKGROUND_SERVICES if background else SERVICES)
        )
        self.redis: Redis | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> ExampleSystem:
        for stale in ("shop.db", "shop.db-wal", "shop.db-shm"):
            (self.workdir / stale).unlink(missing_ok=True)
        if self.background:
            self.redis = Redis(supervisor=self.supervisor, workdir=self.workdir / "redis").start()
        for name in self.names:
            self._start_one(name, port=0, timeout=timeout)
        return self

    def restart(self, name: str, timeout: float = 30.0) -> None:
        """Stop a service and start it again on the same port (its counters start from zero)."""
        old = self.services[name]
        old.child.stop()
        self.supervisor.forget(old.child)
        self._start_one(name, port=old.port, timeout=timeout)

    def stop(self) -> None:
        for name in reversed(self.names):
            service = self.services.pop(name, None)
            if service is not None:
                service.child.stop()
                self.supervisor.forget(service.child)
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def _env(self, name: str) -> dict[str, str]:
        env = {
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(REPO_ROOT),
            "OBSKIT_LOG_FORMAT": "json",
            "OBSKIT_SPAN_EXPORT_INTERVAL": "0.2",
            "OTEL_SERVICE_NAME": name,
        }
        if self.otlp_endpoint is not None:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.otlp_endpoint
        if name in ("shop", "worker"):
            env["PAYMENTS_URL"] = f"http://localhost:{self.services['payments'].port}"
        if name == "shop":  # its outbox is watched (0 pending) even without the broker
            env["EXAMPLE_SHOP_DB"] = str(self.workdir / "shop.db")
        if self.redis is not None and name in ("shop", "worker"):
            env["EXAMPLE_BROKER_URL"] = self.redis.url
        env.update(self.extra_env)
        return env

    def _start_one(self, name: str, port: int, timeout: float) -> Service:
        if name == "worker":
            return self._start_worker(port, timeout)
        port_file = self.workdir / f"{name}.port"
        port_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", f"examples.{name}", "--port", str(port)]
        argv += ["--port-file", str(port_file)]
        child = self.supervisor.spawn(
            name, argv, log_path=self.log_path(name), env=self._env(name), cwd=REPO_ROOT
        )

        def announced() -> bool:
            if not child.alive():
                raise RuntimeError(f"{name} exited early:\n{child.output_tail()}")
            return port_file.exists()

        wait_until(announced, timeout, 0.05, f"{name} to bind its port")
        service = Service(name, int(port_file.read_text()), child)
        self.services[name] = service
        wait_until(
            lambda: http_ok(f"{service.url}/health") or not child.alive(),
            timeout,
            0.05,
            f"{name} /health",
        )
        if not child.alive():
            raise RuntimeError(f"{name} exited early:\n{child.output_tail()}")
        return service

    def _start_worker(self, port: int, timeout: float) -> Service:
        """The Celery worker: its metrics on a port chosen here (it serves no HTTP app)."""
        port = port or free_port()
        env = self._env("worker")
        env.update(OBSKIT_METRICS_PORT=str(port), OBSKIT_METRICS_HOST="127.0.0.1")
        child = self.supervisor.spawn(
            "worker",
            [sys.executable, *WORKER_ARGV],
            log_path=self.log_path("worker"),
            env=env,
            cwd=REPO_ROOT,
        )
        service = Service("worker", port, child)
        self.services["worker"] = service

        def ready() -> bool:
            if not child.alive():
                raise RuntimeError(f"worker exited early:\n{child.output_tail()}")
            if not http_ok(f"{service.url}/metrics"):
                return False
            records = self.log_records("worker")
            return any(str(r.get("event", "")).endswith(" ready.") for r in records)

        wait_until(ready, timeout, 0.1, "the worker to be ready")
        return service

    # -- background work -----------------------------------------------------------
    def set_relay(self, **settings: Any) -> dict[str, Any]:
        """POST /admin/relay on shop: stalled (bool), duplicate_rate (0..1)."""
        return self._post("shop", "/admin/relay", settings)

    def set_worker_faults(self, *, error_rate: float) -> dict[str, Any]:
        """The share of tasks the worker fails for good (read from Redis at every task)."""
        if self.redis is None:
            raise RuntimeError("set_worker_faults: the system runs without background=True")
        return set_worker_faults(self.redis.url, error_rate=error_rate)

    # -- what callers use ----------------------------------------------------------
    def url(self, name: str) -> str:
        return self.services[name].url

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def set_faults(self, name: str, **settings: Any) -> dict[str, Any]:
        """POST /admin/faults on a service: error_rate (0..1), latency_ms, routes."""
        return self._post(name, "/admin/faults", settings)

    def _post(self, name: str, path: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.url(name)}{path}",
            data=json.dumps(settings).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            result: dict[str, Any] = json.load(resp)
        return result

    def log_records(self, name: str) -> list[dict[str, Any]]:
        """The service's JSON log lines, parsed (lines that are not JSON objects are skipped)."""
        records: list[dict[str, Any]] = []
        try:
            text = self.log_path(name).read_text(errors="replace")
        except FileNotFoundError:
            return records
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records
