"""A real Alertmanager on loopback, and a webhook receiver that records what it delivers.

    with WebhookReceiver() as pager, Alertmanager(config) as am:
        prom = Prometheus(targets, rule_files=[rules], alertmanagers=[am.address])
        pager.wait_for(lambda n: n.receiver == "payments-page" and n.status == "firing")

`Alertmanager` runs the Debian `prometheus-alertmanager` binary (0.25 here) on 127.0.0.1 with a
port free at run time, its own temporary `--storage.path` and clustering off
(`--cluster.listen-address=`), with the given configuration (a dict, written as YAML: JSON is
YAML). `stop()` terminates it and removes its directory. `alerts()` reads `/api/v2/alerts`
(each alert's `status.state` is `active` or `suppressed`, `status.inhibitedBy` lists the
fingerprints of what inhibits it).

`WebhookReceiver` is an HTTP server on 127.0.0.1 (in a thread) that records every webhook
notification (Alertmanager's JSON payload, version 4) with the path it was posted to, so one
receiver can stand in for several Alertmanager receivers: `pager_config()` turns obskit's
generated `alertmanager.yaml` into a deliverable configuration the way a user does, with
`obskit merge-alertmanager` semantics: a base configuration whose receivers post to
`<webhook>/<receiver name>`, the generated route and inhibition rules merged in.

Also runnable by hand: ``python -m examples.lab.alertmanager OUT/alertmanager.yaml`` runs
Alertmanager with every receiver posting to a printing webhook, until Ctrl-C; point a
Prometheus at the address it prints (``python -m examples.lab.prometheus --alertmanager ...``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from examples.lab.processes import Child, Supervisor, http_ok, wait_until
from obskit.generator.render.alertmanager import merge

INSTALL_HINT = (
    "Alertmanager is not installed. On Debian/Ubuntu: "
    "sudo apt-get install -y --no-install-recommends prometheus-alertmanager"
)
BINARIES = ("prometheus-alertmanager", "alertmanager")


class AlertmanagerError(RuntimeError):
    """Alertmanager could not start, or its HTTP API answered with an error."""


def find_binary() -> str | None:
    for name in BINARIES:
        if found := shutil.which(name):
            return found
    return None


@dataclass(frozen=True)
class Notification:
    """One webhook delivery: the receiver (from the path it was posted to) and the payload."""

    receiver: str
    payload: Mapping[str, Any]
    received: float
    """time.monotonic() at arrival."""
    wall: float = 0.0
    """time.time() at arrival (to compare with the alerts' startsAt/endsAt)."""

    @property
    def status(self) -> str:
        return str(self.payload.get("status", ""))

    @property
    def alerts(self) -> list[Mapping[str, Any]]:
        return list(self.payload.get("alerts", []))

    def has(self, alertname: str, status: str | None = None) -> bool:
        return any(
            a.get("labels", {}).get("alertname") == alertname
            and (status is None or a.get("status") == status)
            for a in self.alerts
        )


@dataclass
class WebhookReceiver:
    """Records every notification POSTed to it; `url(name)` is the URL for receiver `name`."""

    notifications: list[Notification] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                name = self.path.strip("/") or "default"
                with receiver._lock:
                    receiver.notifications.append(
                        Notification(name, payload, time.monotonic(), time.time())
                    )
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def url(self, receiver: str) -> str:
        return f"http://127.0.0.1:{self.port}/{receiver}"

    def received(self) -> list[Notification]:
        with self._lock:
            return list(self.notifications)

    def wait_for(
        self, predicate: Callable[[Notification], bool], timeout: float = 60.0
    ) -> Notification:
        """The first notification (in arrival order) that satisfies `predicate`."""
        found: list[Notification] = []

        def seen() -> bool:
            found[:] = [n for n in self.received() if predicate(n)][:1]
            return bool(found)

        wait_until(seen, timeout, 0.2, "a matching webhook notification")
        return found[0]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def timestamp(text: str) -> float:
    """Seconds since the epoch of an Alertmanager RFC 3339 time (nanoseconds, `Z`)."""
    head, _, fraction = text.rstrip("Z").partition(".")
    zone = ""
    for sign in ("+", "-"):
        if sign in fraction:
            fraction, zone = fraction.split(sign, 1)
            zone = sign + zone
    base = datetime.fromisoformat(head + (zone or "+00:00")).timestamp()
    return base + (float(f"0.{fraction}") if fraction else 0.0)


def pager_config(
    generated: Mapping[str, Any],
    webhook: WebhookReceiver,
    timing: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """obskit's generated configuration merged into a base configuration whose receivers all
    post to `webhook` (one path per receiver): what a user does with their own receivers and
    `obskit merge-alertmanager`. `timing` overrides the base root route's group_wait etc."""
    names = [r["name"] for r in generated["receivers"]]
    base: dict[str, Any] = {
        "route": {"receiver": "default", **(timing or {})},
        "receivers": [{"name": "default"}]
        + [
            {"name": name, "webhook_configs": [{"url": webhook.url(name), "send_resolved": True}]}
            for name in names
        ],
    }
    return merge(base, generated)


class Alertmanager:
    """An Alertmanager child process with a small client for its v2 API."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        binary: str | None = None,
        supervisor: Supervisor | None = None,
        workdir: Path | None = None,
    ) -> None:
        found = binary or find_binary()
        if found is None:
            raise AlertmanagerError(INSTALL_HINT)
        self.binary = found
        self.config = dict(config)
        self._supervisor = supervisor or Supervisor()
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="obskit-alertmanager-"))
        self.port = 0
        self._child: Child | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "alertmanager.yml"

    def start(self, timeout: float = 30.0, attempts: int = 3) -> Alertmanager:
        """Start and wait until /-/ready; retries with another port if the port was taken."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        data = self.workdir / "data"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        self.port, self._child, last_error = self._supervisor.spawn_ready(
            "alertmanager",
            lambda port: [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.path={data}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=info",
            ],
            lambda port: http_ok(f"http://127.0.0.1:{port}/-/ready", timeout=0.5),
            log_path=self.workdir / "alertmanager.log",
            timeout=timeout,
            attempts=attempts,
        )
        if self._child is not None:
            return self
        raise AlertmanagerError(f"Alertmanager did not become ready:\n{last_error}")

    def stop(self) -> None:
        """Terminate Alertmanager and remove its data (idempotent)."""
        if self._child is not None:
            self._child.stop()
            self._supervisor.forget(self._child)
            self._child = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            shutil.rmtree(self.workdir / "data", ignore_errors=True)

    def __enter__(self) -> Alertmanager:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api(self, path: str) -> Any:
        """GET /api/v2/<path> as JSON."""
        url = f"{self.url}/api/v2/{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return json.load(resp)
        except (urllib.error.URLError, ValueError) as exc:
            raise AlertmanagerError(f"{url}: {exc}") from exc

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert Alertmanager holds (active and suppressed)."""
        return list(self.api("alerts"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run Alertmanager with obskit's generated config and a printing webhook."
    )
    parser.add_argument("generated", type=Path, help="obskit's <out>/alertmanager.yaml")
    args = parser.parse_args(argv)
    generated = yaml.safe_load(args.generated.read_text())
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    with WebhookReceiver() as pager:
        timing = {"group_wait": "5s", "group_interval": "10s", "repeat_interval": "1h"}
        try:
            am = Alertmanager(pager_config(generated, pager, timing)).start()
        except AlertmanagerError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"Alertmanager on {am.url} (config {am.config_path}); webhook on {pager.port}")
        shown = 0
        try:
            while not stopped.wait(1.0):
                for note in pager.received()[shown:]:
                    print(json.dumps({"receiver": note.receiver, **note.payload}, indent=2))
                shown = len(pager.received())
        finally:
            am.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
