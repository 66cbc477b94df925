"""Alertmanager routes, inhibition and routing tests, checked with the real amtool.

What an on-call engineer relies on: every generated alert reaches its team's page or ticket
receiver (the generated `alertmanager.test.sh` proves it with `amtool config routes test`, and
fails when the routes are wrong), a page suppresses only the ticket of the same service and SLO,
the assembled configuration passes `amtool check-config`, generating one service keeps the
others' routes, and merging into your own configuration keeps your receivers' integrations.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from obskit.generator.cli import EXIT_DRIFT, EXIT_INVALID, EXIT_OK, app
from obskit.generator.manifest import ManifestError, loads
from obskit.generator.render import alertmanager
from tests.conftest import require_binary
from tests.generator.conftest import EXAMPLES, service_of

pytestmark = pytest.mark.prometheus

FLEET = """\
services:
  - service: checkout
    team: payments
    alerting:
      receivers: {page: payments-oncall, ticket: payments-jira}
    slos:
      - {name: availability, objective: 99.9, sli: {availability: {}}}
      - {name: latency, objective: 99, sli: {latency: {threshold: 0.25}}}
  - service: refunds
    team: payments
    slos:
      - {name: availability, objective: 99.5, sli: {availability: {}}}
  - service: search
    team: 'Discovery "Team" \\ 2'
    alerting:
      labels: {tier: "1"}
      page: {labels: {severity: P1}}
      ticket: {labels: {severity: P3}}
    slos:
      - {name: latency, objective: 95, sli: {latency: {threshold: 1}}}
  - service: batch
    slos:
      - {name: availability, objective: 99, sli: {availability: {}}}
"""

runner = CliRunner()


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, timeout=300
    )


def _generate(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["generate", *(str(a) for a in args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fleet")
    (base / "fleet.obskit.yaml").write_text(FLEET)
    code, output = _generate(base / "fleet.obskit.yaml", EXAMPLES, "--out", base / "out")
    assert code == EXIT_OK, output
    return base / "out"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_receivers_come_from_the_manifest_or_the_documented_defaults() -> None:
    checkout, refunds, search, batch = loads(FLEET, "fleet.yaml")
    assert (checkout.receiver("page"), checkout.receiver("ticket")) == (
        "payments-oncall",
        "payments-jira",
    )
    assert (refunds.receiver("page"), refunds.receiver("ticket")) == (
        "payments-page",
        "payments-ticket",
    )
    assert search.receiver("page") == "Discovery-Team-2-page"  # the team made a valid name
    assert (batch.receiver("page"), batch.receiver("ticket")) == ("batch-page", "batch-ticket")


def test_amtool_accepts_the_assembled_configuration(fleet: Path) -> None:
    amtool = require_binary("amtool")
    result = _run(amtool, "check-config", fleet / alertmanager.CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_route_tree_groups_by_alert_service_and_slo_with_a_route_per_team(
    fleet: Path,
) -> None:
    config = _yaml(fleet / alertmanager.CONFIG)
    root = config["route"]
    assert root["group_by"] == ["alertname", "service", "slo"]
    [obskit] = root["routes"]
    assert obskit["matchers"] == ['alertname=~"Obskit.+"']
    assert obskit["group_by"] == ["alertname", "service", "slo"]
    teams = [r["matchers"] for r in obskit["routes"] if "routes" in r and "receiver" not in r]
    assert teams == [
        ['team="Discovery \\"Team\\" \\\\ 2"'],
        ['team="fulfilment"'],
        ['team="payments"'],
        ['team="storefront"'],
        ['team="warehouse"'],
    ]
    [batch] = [r for r in obskit["routes"] if r.get("matchers") == ['service="batch"']]
    assert batch["receiver"] == "batch-ticket"  # no team: directly under obskit's route
    [search] = obskit["routes"][0]["routes"]
    assert search["routes"] == [
        {"matchers": ['severity="P1"'], "receiver": "Discovery-Team-2-page"},
        {"matchers": ['severity="P3"'], "receiver": "Discovery-Team-2-ticket"},
    ]
    names = [r["name"] for r in config["receivers"]]
    assert "payments-oncall" in names and "storefront-page" in names
    assert all(set(r) == {"name"} for r in config["receivers"])  # no integrations here


def test_the_generated_routing_tests_cover_every_alert_and_pass(fleet: Path) -> None:
    """One amtool case per alert of every rules.yaml in <out>; all reach their receiver."""
    require_binary("amtool")
    alerts = [
        rule
        for rules in sorted(fleet.glob("*/rules.yaml"))
        for group in _yaml(rules)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    script = (fleet / alertmanager.TESTS).read_text()
    assert script.count("\nroute ") == len(alerts) > 20
    result = _run("sh", fleet / alertmanager.TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"routing tests: {len(alerts)} passed, 0 failed" in result.stdout
    assert "route payments-oncall 'alertname=\"ObskitSLOBurnRatePage\"'" in script
    assert "route Discovery-Team-2-ticket 'alertname=\"ObskitTelemetryAbsent\"'" in script


def test_the_routing_tests_fail_when_a_route_is_wrong(fleet: Path, tmp_path: Path) -> None:
    """Pages of checkout sent to its ticket receiver: exactly its page cases fail."""
    require_binary("amtool")
    config = (fleet / alertmanager.CONFIG).read_text()
    broken = config.replace("receiver: payments-oncall", "receiver: payments-jira")
    assert broken != config
    (tmp_path / "broken.yaml").write_text(broken)
    result = _run("sh", fleet / alertmanager.TESTS, tmp_path / "broken.yaml")
    assert result.returncode == 1
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL:")]
    assert len(failures) == 2  # checkout's two page alerts (availability, latency)
    assert all('service="checkout"' in f and "expected payments-oncall" in f for f in failures)


def test_a_page_inhibits_only_the_ticket_of_its_own_slo_matched_by_alert_name(
    fleet: Path,
) -> None:
    config = _yaml(fleet / alertmanager.CONFIG)
    assert config["inhibit_rules"] == [
        {
            "equal": ["service", "slo"],
            "source_matchers": ['alertname="ObskitSLOBurnRatePage"'],
            "target_matchers": ['alertname="ObskitSLOBurnRateTicket"'],
        }
    ]


def test_generating_one_service_updates_its_part_and_keeps_the_others(tmp_path: Path) -> None:
    """<out>/alertmanager.yaml is assembled from every service present in <out>."""
    a, b = tmp_path / "a.obskit.yaml", tmp_path / "b.obskit.yaml"
    a.write_text("service: a\nslos:\n  - {name: x, objective: 99, sli: {availability: {}}}\n")
    b.write_text("service: b\nslos:\n  - {name: y, objective: 99, sli: {availability: {}}}\n")
    out = tmp_path / "out"
    assert _generate(a, "--out", out)[0] == EXIT_OK
    assert _generate(b, "--out", out)[0] == EXIT_OK
    names = {r["name"] for r in _yaml(out / alertmanager.CONFIG)["receivers"]}
    assert {"a-page", "b-page"} <= names
    a.write_text(a.read_text() + "alerting: {receivers: {page: a-pager}}\n")
    assert _generate(a, "--out", out, "--check")[0] == EXIT_DRIFT
    assert _generate(a, "--out", out)[0] == EXIT_OK
    config = (out / alertmanager.CONFIG).read_text()
    assert "a-pager" in config and "a-page\n" not in config and "b-page" in config
    assert 'service="b"' in (out / alertmanager.TESTS).read_text()
    # b's directory removed by hand: the assembled files are stale until the next generate
    for path in (out / "b").iterdir():
        path.unlink()
    (out / "b").rmdir()
    code, output = _generate(a, "--out", out, "--check")
    assert code == EXIT_DRIFT and f"--- {out / alertmanager.CONFIG}" in output


def test_a_part_that_is_not_obskits_is_a_clear_input_error(tmp_path: Path) -> None:
    manifest = tmp_path / "obskit.yaml"
    manifest.write_text("service: a\n")
    out = tmp_path / "out"
    (out / "other").mkdir(parents=True)
    (out / "other" / alertmanager.PART).write_text("route: [\n")
    code, output = _generate(manifest, "--out", out)
    assert code == EXIT_INVALID and f"{out / 'other' / alertmanager.PART}: invalid YAML" in output
    (out / "other" / alertmanager.PART).write_text("route: {}\n")
    code, output = _generate(manifest, "--out", out)
    assert code == EXIT_INVALID and "not an obskit Alertmanager part" in output
    assert "Traceback" not in output and not (out / "a").exists()


YOURS = """\
global:
  resolve_timeout: 5m
route:
  receiver: default
  group_wait: 10s
  routes:
    - matchers: ['team="infra"']
      receiver: infra
receivers:
  - name: default
  - name: infra
    webhook_configs: [{url: "http://127.0.0.1:9/infra"}]
inhibit_rules:
  - source_matchers: ['alertname="NodeDown"']
    target_matchers: ['alertname="DiskFull"']
    equal: [instance]
"""


def _merge(yours: Path, generated: Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["merge-alertmanager", str(yours), str(generated)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_merge_keeps_your_integrations_and_puts_obskit_routes_first(
    fleet: Path, tmp_path: Path
) -> None:
    amtool = require_binary("amtool")
    generated = _yaml(fleet / alertmanager.CONFIG)
    names = [r["name"] for r in generated["receivers"] if r["name"] != alertmanager.UNROUTED]
    mine = yaml.safe_load(YOURS)
    mine["receivers"] += [
        {"name": n, "webhook_configs": [{"url": f"http://127.0.0.1:9/{n}"}]} for n in names
    ]
    yours = tmp_path / "yours.yaml"
    yours.write_text(yaml.safe_dump(mine))
    code, merged_text, err = _merge(yours, fleet / alertmanager.CONFIG)
    assert code == EXIT_OK, err
    merged = yaml.safe_load(merged_text)
    assert merged["global"] == {"resolve_timeout": "5m"}
    assert merged["route"]["receiver"] == "default" and merged["route"]["group_wait"] == "10s"
    assert merged["route"]["routes"][0]["matchers"] == ['alertname=~"Obskit.+"']
    assert merged["route"]["routes"][1] == {"matchers": ['team="infra"'], "receiver": "infra"}
    assert len(merged["inhibit_rules"]) == 2
    assert all("webhook_configs" in r for r in merged["receivers"] if r["name"] != "default")
    (tmp_path / "merged.yaml").write_text(merged_text)
    check = _run(amtool, "check-config", tmp_path / "merged.yaml")
    assert check.returncode == 0, check.stdout + check.stderr
    routes = _run("sh", fleet / alertmanager.TESTS, tmp_path / "merged.yaml")
    assert routes.returncode == 0, routes.stdout
    # merging again replaces obskit's route instead of adding a second one
    code, again, _ = _merge(tmp_path / "merged.yaml", fleet / alertmanager.CONFIG)
    assert code == EXIT_OK and yaml.safe_load(again) == merged


def test_merge_refuses_to_route_pages_to_receivers_you_have_not_defined(
    fleet: Path, tmp_path: Path
) -> None:
    yours = tmp_path / "yours.yaml"
    yours.write_text(YOURS)
    code, out, err = _merge(yours, fleet / alertmanager.CONFIG)
    assert code == EXIT_INVALID and out == ""
    assert "receivers obskit routes to are missing from your configuration:" in err
    assert "payments-oncall" in err and "Traceback" not in err
    yours.write_text("route: [\n")
    code, _, err = _merge(yours, fleet / alertmanager.CONFIG)
    assert code == EXIT_INVALID and f"{yours}: invalid YAML" in err


@pytest.mark.parametrize(
    ("snippet", "line", "fragment"),
    [
        (
            "alerting:\n  receivers:\n    page: {webhook_configs: [{url: x}]}\n",
            3,
            "alerting.receivers.page: give the receiver's name only: its integrations",
        ),
        (
            "alerting:\n  receivers:\n    pager: oncall\n",
            3,
            "unknown key 'pager' in alerting.receivers (did you mean 'page'?)",
        ),
        (
            "alerting:\n  receivers: {ticket: 'jira, tickets'}\n",
            2,
            "alerting.receivers.ticket: receiver name 'jira, tickets' is not valid",
        ),
        ("alerting:\n  receivers: {page: ''}\n", 2, "receiver name '' is not valid"),
        (
            "alerting:\n  ticket: {labels: {severity: critical}}\n",
            2,
            "page and ticket alerts both carry severity 'critical'",
        ),
        (
            "grafana_url: ftp://grafana.example.com\n",
            1,
            "grafana_url: 'ftp://grafana.example.com' is not an http(s) URL",
        ),
        ("grafana_url: grafana.example.com\n", 1, "is not an http(s) URL"),
        ("grafana_url: 'https://g.example.com/?orgId=1'\n", 1, "has a query or fragment"),
    ],
)
def test_bad_receivers_and_grafana_urls_are_reported_at_their_line(
    snippet: str, line: int, fragment: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        loads("service: checkout\n" + snippet, "m.yaml")
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == ("m.yaml", line + 1), problem
    assert fragment in problem.message, problem


def test_service_part_routes_any_other_severity_to_the_ticket_receiver() -> None:
    """A severity that is neither the page nor the ticket value stays on the service route."""
    service = service_of(
        "service: s\nslos:\n  - {name: x, objective: 99, sli: {availability: {}}}\n"
    )
    assert alertmanager.receiver_of(service, {"severity": "info"}) == "s-ticket"
    assert alertmanager.receiver_of(service, {"severity": "critical"}) == "s-page"
