"""A real Prometheus server on loopback for the demo and the end-to-end tests.

    with Prometheus([Target("shop", "127.0.0.1:8000")], rule_files=[rules]) as prom:
        prom.wait_for_targets()
        prom.query('sum(rate(http_server_request_duration_seconds_count[1m]))')
        prom.alerts()

It runs the Debian `prometheus` binary (2.42 here) on 127.0.0.1 with a port free at run time, its
own temporary `--storage.tsdb.path`, scrape and rule-evaluation intervals of 1s, one scrape job per
target named after the service (job="<service>", as the generated manifests select), and the given
rule files, sending alerts to the given Alertmanagers (`alertmanagers=["127.0.0.1:9093"]`,
see examples/lab/alertmanager.py). `stop()` terminates it and removes its directory.
Prometheus 2.42 applies new targets only every ~5 s, so the first scrape takes up to ~15 s:
`wait_for_targets()` waits for it.

Also runnable by hand: ``python -m examples.lab.prometheus --target shop=127.0.0.1:8000 --rules
demo-output/shop/rules.yaml`` prints its URL and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from examples.lab.processes import Child, Supervisor, http_ok, wait_until

INSTALL_HINT = (
    "Prometheus is not installed. On Debian/Ubuntu: "
    "sudo apt-get install -y --no-install-recommends prometheus"
)


class PrometheusError(RuntimeError):
    """Prometheus could not start, or its HTTP API answered with an error."""


@dataclass(frozen=True)
class Target:
    """A scrape target: scraped as job="<job>" at http://<address><metrics_path>."""

    job: str
    address: str
    metrics_path: str = "/metrics"


@dataclass(frozen=True)
class Sample:
    """One element of an instant-vector result."""

    labels: Mapping[str, str]
    value: float


def find_binary() -> str | None:
    return shutil.which("prometheus")


def render_config(
    targets: Sequence[Target],
    rule_files: Sequence[Path],
    interval: str = "1s",
    alertmanagers: Sequence[str] = (),
) -> dict[str, Any]:
    """The prometheus.yml for these targets (one job per service, job label = service name),
    sending alerts to `alertmanagers` (host:port) when given."""
    jobs: dict[tuple[str, str], list[str]] = {}
    for t in targets:
        jobs.setdefault((t.job, t.metrics_path), []).append(t.address)
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": path,
                "static_configs": [{"targets": sorted(addresses)}],
            }
            for (job, path), addresses in sorted(jobs.items())
        ],
    }
    if alertmanagers:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
        }
    return config


class Prometheus:
    """A Prometheus child process with a small client for its HTTP API."""

    def __init__(
        self,
        targets: Sequence[Target],
        rule_files: Sequence[Path] = (),
        *,
        binary: str | None = None,
        interval: str = "1s",
        supervisor: Supervisor | None = None,
        workdir: Path | None = None,
        alertmanagers: Sequence[str] = (),
    ) -> None:
        found = binary or find_binary()
        if found is None:
            raise PrometheusError(INSTALL_HINT)
        self.alertmanagers = list(alertmanagers)
        self.binary = found
        self.targets = list(targets)
        self.rule_files = [Path(p) for p in rule_files]
        self.interval = interval
        self._own_supervisor = supervisor is None
        self._supervisor = supervisor or Supervisor()
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="obskit-prometheus-"))
        self.port = 0
        self._child: Child | None = None

    # -- lifecycle -----------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def start(self, timeout: float = 30.0, attempts: int = 3) -> Prometheus:
        """Start and wait until /-/ready; retries with another port if the port was taken."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "prometheus.yml"
        config = render_config(self.targets, self.rule_files, self.interval, self.alertmanagers)
        config_path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is valid YAML
        data_dir = self.workdir / "data"
        shutil.rmtree(data_dir, ignore_errors=True)  # a fresh TSDB every start
        data_dir.mkdir(parents=True, exist_ok=True)
        self.port, self._child, last_error = self._supervisor.spawn_ready(
            "prometheus",
            lambda port: [
                self.binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={data_dir}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=info",
            ],
            lambda port: http_ok(f"http://127.0.0.1:{port}/-/ready", timeout=0.5),
            log_path=self.log_path,
            timeout=timeout,
            attempts=attempts,
        )
        if self._child is not None:
            return self
        raise PrometheusError(f"Prometheus did not become ready:\n{last_error}")

    def stop(self) -> None:
        """Terminate Prometheus and remove its data (idempotent).

        A temporary workdir goes entirely; a workdir passed in keeps prometheus.yml and the log.
        """
        if self._child is not None:
            self._child.stop()
            self._supervisor.forget(self._child)
            self._child = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            shutil.rmtree(self.workdir / "data", ignore_errors=True)

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP API ------------------------------------------------------------------
    def api(self, path: str, params: Mapping[str, str] | Sequence[tuple[str, str]] = ()) -> Any:
        """GET /api/v1/<path> and return its `data`, raising PrometheusError on an error."""
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                payload = json.load(resp)
        except urllib.error.HTTPError as exc:
            try:
                payload = json.load(exc)
            except ValueError:
                raise PrometheusError(f"{url}: HTTP {exc.code}") from exc
        if payload.get("status") != "success":
            raise PrometheusError(f"{path} {dict(params)}: {payload.get('error', payload)}")
        return payload["data"]

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """Evaluate an instant query; scalars and strings come back as one unlabeled sample."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", params)
        kind, result = data["resultType"], data["result"]
        if kind == "vector":
            return [Sample(r["metric"], float(r["value"][1])) for r in result]
        if kind == "scalar":
            return [Sample({}, float(result[1]))]
        if kind == "matrix":
            return [Sample(r["metric"], float(r["values"][-1][1])) for r in result if r["values"]]
        raise PrometheusError(f"unexpected result type {kind!r} for {expr!r}")

    def value(self, expr: str) -> float | None:
        """The single value of a query that returns at most one series (None when empty)."""
        samples = self.query(expr)
        if len(samples) > 1:
            raise PrometheusError(f"{expr!r} returned {len(samples)} series, expected one")
        return samples[0].value if samples else None

    def label_values(self, label: str, match: Sequence[str] = ()) -> list[str]:
        params = [("match[]", m) for m in match]
        return [str(v) for v in self.api(f"label/{urllib.parse.quote(label)}/values", params)]

    def targets_health(self) -> dict[str, str]:
        """scrapeUrl -> health ("up", "down", "unknown") for the active targets."""
        data = self.api("targets", {"state": "active"})
        return {t["scrapeUrl"]: t["health"] for t in data["activeTargets"]}

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts: each has labels, annotations, state ("pending"|"firing"), activeAt."""
        return list(self.api("alerts")["alerts"])

    def rule_groups(self) -> list[dict[str, Any]]:
        return list(self.api("rules")["groups"])

    def rule_health(self) -> dict[str, str]:
        """Rule name -> health ("ok", "err", "unknown"); error text appended when unhealthy."""
        out: dict[str, str] = {}
        for group in self.rule_groups():
            for rule in group["rules"]:
                key = rule["name"]
                health = rule.get("health", "unknown")
                out[key] = health if health != "err" else f"err: {rule.get('lastError', '')}"
        return out

    # -- waits ---------------------------------------------------------------------
    def wait_for_targets(self, timeout: float = 30.0) -> None:
        """Wait until every configured target has been scraped successfully."""
        expected = len(self.targets)

        def all_up() -> bool:
            try:
                health = self.targets_health()
            except (PrometheusError, OSError):
                return False
            return len(health) >= expected and all(h == "up" for h in health.values())

        wait_until(all_up, timeout, 0.25, f"Prometheus to scrape {expected} target(s)")

    def wait_for_query(self, expr: str, timeout: float = 30.0) -> list[Sample]:
        """Wait until expr returns at least one series; return them."""
        result: list[Sample] = []

        def has_data() -> bool:
            nonlocal result
            result = self.query(expr)
            return bool(result)

        wait_until(has_data, timeout, 0.25, f"data for {expr!r}")
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a loopback Prometheus until Ctrl-C.")
    parser.add_argument("--target", action="append", default=[], help="job=host:port")
    parser.add_argument("--rules", action="append", default=[], type=Path)
    parser.add_argument("--alertmanager", action="append", default=[], help="host:port")
    args = parser.parse_args(argv)
    targets = [Target(*t.split("=", 1)) for t in args.target]
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        prom = Prometheus(targets, args.rules, alertmanagers=args.alertmanager).start()
    except PrometheusError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"Prometheus on {prom.url} (data in {prom.workdir})", flush=True)
    try:
        stopped.wait()
    finally:
        prom.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
