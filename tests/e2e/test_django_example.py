"""The example Django service (examples/inventory) under gunicorn against a real Prometheus.

Two sync workers with PROMETHEUS_MULTIPROC_DIR and the example's own gunicorn.conf.py serve
steady traffic on every route; 10% of the requests fail (Django's own 500 page). Prometheus
scrapes the app's /metrics every second and evaluates the committed rules
(dashboards/inventory/rules.yaml). Every query of every panel of the committed dashboard must
return data, the per-route panels must show Django's route templates, and the availability
page alert must fire. The committed alert waits `for: 2m` before firing; the copy Prometheus
loads differs only in that `for` (0s), so the alert fires within the test's time budget.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator

import pytest
import yaml

from examples.lab import grafana
from examples.lab.processes import wait_until
from examples.lab.prometheus import Prometheus, Target
from tests.conftest import require_binary
from tests.integrations.gunicorn_server import ROOT, Gunicorn

pytestmark = [pytest.mark.e2e, pytest.mark.prometheus]

COMMITTED = ROOT / "dashboards" / "inventory"
ERROR_RATE = 0.1
ROUTES = {
    "/items/": ("GET", "/items/"),
    "/items/{item_id}/": ("GET", "/items/{n}/"),
    "/items/{item_id}/reserve/": ("POST", "/items/{n}/reserve/"),
    "/catalog/{sku}/": ("GET", "/catalog/SKU-{n}/"),
    "__unmatched__": ("GET", "/no/such/page/{n}"),
}


class Traffic:
    """One thread cycling over every route (~40 requests/s) until stopped; tallies statuses."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.tally: Counter[tuple[str, int]] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        n = 0
        while not self._stop.wait(0.025):
            n += 1
            route = list(ROUTES)[n % len(ROUTES)]
            method, path = ROUTES[route]
            request = urllib.request.Request(
                self.url + path.format(n=1 + n % 50),
                method=method,
                data=b"" if method == "POST" else None,
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as resp:
                    status = int(resp.status)
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0
            self.tally[(route, status)] += 1


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gunicorn, Prometheus, Traffic]]:
    require_binary("prometheus")
    work = tmp_path_factory.mktemp("inventory")
    multiproc = work / "prometheus-multiproc"
    multiproc.mkdir()
    rules = work / "rules.yaml"
    rules.write_text(_page_alerts_fire_at_once((COMMITTED / "rules.yaml").read_text()))
    conf = (ROOT / "examples" / "inventory" / "gunicorn.conf.py").read_text()
    server = Gunicorn(
        work / "gunicorn", "examples.inventory.wsgi", [], conf=conf,
        env={
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
            "EXAMPLE_ERROR_RATE": str(ERROR_RATE),
            "DJANGO_SETTINGS_MODULE": "examples.inventory.settings",
            "OBSKIT_TRACES_ENABLED": "false",
        },
    ).start()  # fmt: skip
    try:
        target = Target("inventory", f"127.0.0.1:{server.port}")
        with Prometheus([target], [rules]) as prom, Traffic(server.url) as traffic:
            prom.wait_for_targets()
            yield server, prom, traffic
    finally:
        server.stop()


def _page_alerts_fire_at_once(text: str) -> str:
    doc = yaml.safe_load(text)
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("labels", {}).get("severity") == "critical" and "for" in rule:
                rule["for"] = "0s"
    return yaml.safe_dump(doc, sort_keys=False)


def test_the_rules_prometheus_loads_are_the_committed_ones_but_for_the_page_delay():
    committed = yaml.safe_load((COMMITTED / "rules.yaml").read_text())
    loaded = yaml.safe_load(_page_alerts_fire_at_once((COMMITTED / "rules.yaml").read_text()))
    changed = [
        (a["alert"], a["for"], b["for"])
        for ga, gb in zip(committed["groups"], loaded["groups"], strict=True)
        for a, b in zip(ga["rules"], gb["rules"], strict=True)
        if a != b
    ]
    assert changed and all(
        name == "ObskitSLOBurnRatePage" and new == "0s" for name, _, new in changed
    )


def test_per_route_panels_show_django_route_templates(lab):
    _, prom, _ = lab
    wait_until(lambda: set(ROUTES) <= set(prom.label_values("http_route")), 30, 0.5, "routes")
    assert set(prom.label_values("http_route", ['{job="inventory"}'])) == set(ROUTES)


def test_every_panel_query_of_the_committed_dashboard_returns_data(lab):
    _, prom, _ = lab
    dashboard = json.loads((COMMITTED / "dashboard.json").read_text())
    prom.wait_for_query("count_over_time(up[1m]) >= 10", timeout=40)
    empty, checked = [], 0
    variables = grafana.resolve_variables(dashboard, prom)
    for q in grafana.panel_queries(dashboard):
        expr = grafana.substitute(q.expr, variables)
        checked += 1
        if not prom.query(expr):
            empty.append(f"{q.panel_title} [{q.ref_id}]: {expr}")
    assert checked >= 12
    assert empty == [], "panels with no data:\n" + "\n".join(empty)
    count = 'http_server_request_duration_seconds_count{job="inventory"}'
    by_route = prom.query(f"sum by (http_route) (rate({count}[1m]))")
    assert {s.labels["http_route"] for s in by_route} == set(ROUTES)


def test_injected_errors_fire_the_availability_page_alert(lab):
    _, prom, traffic = lab

    def firing() -> list[dict]:
        return [
            a for a in prom.alerts()
            if a["state"] == "firing" and a["labels"].get("slo") == "availability"
            and a["labels"]["alertname"] == "ObskitSLOBurnRatePage"
        ]  # fmt: skip

    wait_until(lambda: bool(firing()), 60, 0.5, "the availability page alert to fire")
    alert = firing()[0]
    assert alert["labels"]["service"] == "inventory"
    assert alert["labels"]["severity"] == "critical"
    # the 5xx the client saw are Django's own 500 pages
    assert sum(n for (route, status), n in traffic.tally.items() if status == 500) > 0


def test_the_workers_write_obskit_json_with_route_templates(lab):
    server, _, _ = lab
    access = [line for line in server.lines("out") if line["logger"] == "obskit.access"]
    assert {line["route"] for line in access} == set(ROUTES)
    failed = [line for line in access if line["status"] == 500]
    assert failed and all(line["level"] == "error" for line in failed)
    errors = [line for line in server.lines("out") if line["logger"] == "django.request"]
    assert errors and all(line.get("correlation_id") for line in errors)
    master = [line for line in server.lines("err") if line["logger"] == "gunicorn.error"]
    assert master and all(line["service"] == "inventory" for line in master)
