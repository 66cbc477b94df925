"""From rule to pager through a real Alertmanager, and `obskit verify` against a real Prometheus.

One module-wide lab: the example payments service (werkzeug, instrumented by obskit) with a
manifest whose alerts hold for seconds, the real Prometheus (1 s scrape/evaluation) loading the
generated rules and sending to a real Alertmanager (its own storage, clustering off) configured
from the generated `alertmanager.yaml` merged the way the README says, and a webhook receiver
standing in for the pager. Every request to payments fails from the start; once the page was
delivered, requests succeed, many of them, so the burn stops quickly.

What an on-call engineer relies on: the page reaches the page receiver with the labels and
annotations (burn rate printed, runbook, dashboard link); the ticket of the same SLO is held
back by inhibition while the page fires; a resolved notification follows the recovery.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from examples.lab.alertmanager import (
    Alertmanager,
    Notification,
    WebhookReceiver,
    pager_config,
    timestamp,
)
from examples.lab.processes import Supervisor, wait_until
from examples.lab.prometheus import Prometheus, Target
from examples.lab.system import ExampleSystem
from tests.conftest import require_binary
from tests.generator.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.prometheus, pytest.mark.integration]

MANIFEST = """\
service: payments
team: payments
runbook_url: https://runbooks.example.com/payments
grafana_url: https://grafana.example.com
alerting:
  page: {for: 5s}
  ticket: {for: 10s}
  receivers: {page: payments-pager, ticket: payments-tickets}
slos:
  - name: availability
    objective: 95
    description: Refund lookups succeed
    sli: {availability: {}}
  - name: latency
    objective: 99
    sli: {latency: {threshold: 0.5}}
    routes: ["/charge"]
"""
TIMING = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
PAGE, TICKET = "ObskitSLOBurnRatePage", "ObskitSLOBurnRateTicket"


class Traffic:
    """GET /refunds/<id> on payments in a loop at `rate` requests per second."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.rate = 10.0
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="traffic", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(f"{self.url}/refunds/r{self.sent}", timeout=2):
                    pass
            except OSError:  # the injected 500s arrive as HTTPError (an OSError)
                pass
            self.sent += 1
            self._stop.wait(max(0.0, 1 / self.rate - (time.monotonic() - started)))

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class Lab:
    out: Path
    manifest: Path
    system: ExampleSystem
    prom: Prometheus
    am: Alertmanager
    pager: WebhookReceiver
    traffic: Traffic


def _obskit(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obskit.cli", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    base = tmp_path_factory.mktemp("alerting")
    manifest = base / "obskit.yaml"
    manifest.write_text(MANIFEST)
    out = base / "generated"
    generated = _obskit("generate", manifest, "--out", out)
    assert generated.returncode == 0, generated.stderr
    supervisor = Supervisor()
    pager = WebhookReceiver().start()
    traffic = None
    try:
        system = ExampleSystem(
            base / "system", supervisor=supervisor, names=("payments",),
            env={"EXAMPLE_ERROR_RATE": "1"},
        ).start()  # fmt: skip
        traffic = Traffic(system.url("payments")).start()
        config = pager_config(
            yaml.safe_load((out / "alertmanager.yaml").read_text()), pager, TIMING
        )
        am = Alertmanager(config, supervisor=supervisor, workdir=base / "am").start()
        prom = Prometheus(
            [Target("payments", system.services["payments"].address)],
            rule_files=[out / "payments" / "rules.yaml"],
            supervisor=supervisor,
            workdir=base / "prometheus",
            alertmanagers=[am.address],
        ).start()
        yield Lab(out, manifest, system, prom, am, pager, traffic)
    finally:
        if traffic is not None:
            traffic.stop()
        supervisor.stop_all()
        pager.stop()


def _page(note: Notification, status: str) -> bool:
    return note.receiver == "payments-pager" and note.has(PAGE, status)


def test_the_merged_configuration_is_what_alertmanager_runs(lab: Lab) -> None:
    """The generated routing tests pass on the configuration the lab's Alertmanager loaded."""
    require_binary("amtool")
    result = subprocess.run(
        ["sh", str(lab.out / "alertmanager.test.sh"), str(lab.am.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout


def test_verify_finds_the_running_prometheus_in_agreement(lab: Lab) -> None:
    """Targets up, runtime seen, series present (the /charge-only SLO: no traffic yet, a
    note), buckets scraped, every rule group loaded as generated: exit 0."""
    lab.prom.wait_for_targets()
    wait_until(
        lambda: bool(lab.prom.query('http_server_request_duration_seconds_count{job="payments"}')),
        30,
        0.5,
        "payments' request series",
    )
    result = _obskit("verify", "--prometheus", lab.prom.url, lab.manifest)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("ok    payments  scrape") for line in lines)
    assert any(line.startswith("ok    payments  runtime") for line in lines)
    assert any(
        line.startswith("note  payments  series") and "latency: no traffic yet" in line
        for line in lines
    )
    groups = yaml.safe_load((lab.out / "payments" / "rules.yaml").read_text())["groups"]
    assert sum(line.startswith("ok    payments  rules") for line in lines) == len(groups) >= 3
    assert not any(line.startswith("FAIL") for line in lines)
    assert lines[-1].startswith("verify: 1 service(s),") and "0 FAIL" in lines[-1]


def test_verify_names_the_fix_for_a_missing_bucket_and_stale_rules(
    lab: Lab, tmp_path: Path
) -> None:
    """A manifest whose latency threshold (0.3 s) is not a bucket the runtime has: the bucket
    check lists the scraped buckets, the loaded rules differ from the new ones: exit 1."""
    manifest = tmp_path / "obskit.yaml"
    text = MANIFEST.replace('threshold: 0.5}}\n    routes: ["/charge"]', "threshold: 0.3}}")
    manifest.write_text(text + "buckets: [0.1, 0.3, 1]\n")
    result = _obskit("verify", "--prometheus", lab.prom.url, manifest)
    assert result.returncode == 1, result.stdout + result.stderr
    [bucket] = [line for line in result.stdout.splitlines() if "  bucket " in line]
    assert bucket.startswith("FAIL  payments  bucket") and 'no le="0.3" bucket' in bucket
    assert "scraped buckets: 0.005, 0.01," in bucket and "-> fix: give the runtime a 0.3" in bucket
    stale = [
        line for line in result.stdout.splitlines() if line.startswith("FAIL  payments  rules")
    ]
    assert len(stale) == 1 and "obskit-payments-slo-latency" in stale[0]
    assert "reload Prometheus" in stale[0]


def test_verify_reports_a_service_nobody_scrapes(lab: Lab, tmp_path: Path) -> None:
    manifest = tmp_path / "obskit.yaml"
    manifest.write_text(MANIFEST.replace("service: payments", "service: ghost"))
    result = _obskit("verify", "--prometheus", lab.prom.url, manifest)
    assert result.returncode == 1
    out = result.stdout
    assert 'FAIL  ghost  scrape   no scrape target matches {job="ghost"}' in out
    assert "FAIL  ghost  runtime" in out and "is not loaded -> fix: add ghost/rules.yaml" in out


def test_the_page_reaches_the_pager_with_labels_and_annotations(lab: Lab) -> None:
    note = lab.pager.wait_for(lambda n: _page(n, "firing"), timeout=90)
    [alert] = [a for a in note.alerts if a["labels"]["alertname"] == PAGE]
    labels, annotations = alert["labels"], alert["annotations"]
    assert labels["service"] == "payments" and labels["slo"] == "availability"
    assert labels["severity"] == "critical" and labels["team"] == "payments"
    assert note.payload["groupLabels"] == {
        "alertname": PAGE,
        "service": "payments",
        "slo": "availability",
    }
    assert annotations["summary"].startswith("payments availability SLO: error budget burning ")
    burn = float(annotations["summary"].split("burning ")[1].split("x")[0])
    assert burn > 14.4  # every request failed: the burn rate is 1 / 0.05 = 20
    assert (
        "Refund lookups succeed. The availability SLO (95% over 30d)"
        in (annotations["description"])
    )
    assert annotations["runbook_url"] == "https://runbooks.example.com/payments"
    assert annotations["dashboard_url"].startswith(
        "https://grafana.example.com/d/obskit-payments?viewPanel="
    )


def test_the_ticket_of_the_same_slo_is_inhibited_while_the_page_fires(lab: Lab) -> None:
    lab.pager.wait_for(lambda n: _page(n, "firing"), timeout=90)

    def ticket_suppressed() -> bool:
        held = [a for a in lab.am.alerts() if a["labels"].get("alertname") == TICKET]
        return any(
            a["labels"].get("slo") == "availability"
            and a["status"]["state"] == "suppressed"
            and a["status"]["inhibitedBy"]
            for a in held
        )

    wait_until(ticket_suppressed, 60, 0.5, "the availability ticket held by inhibition")
    assert not [n for n in lab.pager.received() if n.receiver == "payments-tickets"]


def test_recovery_sends_a_resolved_notification(lab: Lab) -> None:
    fired = lab.pager.wait_for(lambda n: _page(n, "firing"), timeout=90)
    lab.system.set_faults("payments", error_rate=0)
    lab.traffic.rate = 150.0  # a healthy flood ends the burn within seconds
    resolved = lab.pager.wait_for(lambda n: _page(n, "resolved"), timeout=90)
    assert resolved.received > fired.received
    [alert] = [a for a in resolved.alerts if a["labels"]["alertname"] == PAGE]
    assert alert["status"] == "resolved"
    started, ended = timestamp(alert["startsAt"]), timestamp(alert["endsAt"])
    assert started < ended <= resolved.wall
    # While the page fired no ticket got through; once it resolved, the ticket (whose burn
    # still holds) may: Alertmanager inhibits only while the source fires.
    early = [n for n in lab.pager.received() if n.receiver == "payments-tickets" and n.wall < ended]
    assert early == []
