"""The generated rules pass `promtool check rules`, and their unit tests pass `promtool test`.

These run the real promtool (Debian `prometheus` package). A deliberately broken copy of the
rules must make the generated unit tests fail, so they are known to be able to fail.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from obskit.generator.render import output
from tests.conftest import require_binary
from tests.generator.conftest import MINIMAL, service_of

pytestmark = pytest.mark.prometheus


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, timeout=300
    )


@pytest.fixture(scope="module")
def written(
    tmp_path_factory: pytest.TempPathFactory, example_files: dict[str, dict[str, str]]
) -> Path:
    out = tmp_path_factory.mktemp("generated")
    output.write(out, example_files)
    return out


def test_promtool_check_rules_accepts_every_generated_rules_file(written: Path) -> None:
    promtool = require_binary("promtool")
    files = sorted(written.glob("*/rules.yaml")) + sorted(written.glob("*/prometheusrule.yaml"))
    assert len(files) == 8
    plain = [f for f in files if f.name == "rules.yaml"]
    result = _run(promtool, "check", "rules", *plain)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules_passes_for_every_service(written: Path) -> None:
    """Each alert row fires under its synthetic burn; healthy, idle and restarted stay silent;
    so do the resilience alerts (alerts.test.yaml)."""
    promtool = require_binary("promtool")
    tests = sorted(written.glob("*/rules.test.yaml")) + sorted(written.glob("*/alerts.test.yaml"))
    assert [t.parent.name for t in tests] == ["inventory", "payments", "shop", "worker"] * 2
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda t: _run(promtool, "test", "rules", t), tests))
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr


def test_generated_unit_tests_fail_when_an_alert_threshold_is_wrong(tmp_path: Path) -> None:
    """Raise the page threshold tenfold: the 'page row fires' tests must now fail."""
    promtool = require_binary("promtool")
    from obskit.generator.render.bundle import render_service
    from obskit.generator.render.templates import Templates

    files = render_service(service_of(MINIMAL), Templates())
    broken = files["rules.yaml"].replace("/ 0.001 > 14.4)", "/ 0.001 > 144)")
    assert broken != files["rules.yaml"]
    (tmp_path / "rules.yaml").write_text(broken)
    (tmp_path / "rules.test.yaml").write_text(files["rules.test.yaml"])
    result = _run(promtool, "test", "rules", tmp_path / "rules.test.yaml")
    assert result.returncode != 0
    assert "page row 1h/5m fires" in result.stdout + result.stderr


def test_generated_unit_tests_fail_when_zero_traffic_divides_by_zero(tmp_path: Path) -> None:
    """Dropping the `> 0` guard makes NaN ratio series appear: the zero-traffic test catches it."""
    promtool = require_binary("promtool")
    from obskit.generator.render.bundle import render_service
    from obskit.generator.render.templates import Templates

    files = render_service(service_of(MINIMAL), Templates())
    broken = files["rules.yaml"].replace(" > 0)", ")")
    (tmp_path / "rules.yaml").write_text(broken)
    (tmp_path / "rules.test.yaml").write_text(files["rules.test.yaml"])
    result = _run(promtool, "test", "rules", tmp_path / "rules.test.yaml")
    assert result.returncode != 0
    assert "exp: nil" in result.stderr and "NaN" in result.stderr


OVERLAPPING = """\
service: multi
slos:
  - name: everything
    objective: 99.9
    sli: {availability: {}}
  - name: orders
    objective: 99
    sli: {availability: {}}
    routes: ["/orders/{order_id}"]
"""


def test_unit_tests_expect_every_slo_that_shares_the_burning_series(tmp_path: Path) -> None:
    """A burn on /orders/{order_id} also burns the all-routes SLO; the tests expect both."""
    promtool = require_binary("promtool")
    from obskit.generator.render.bundle import render_service
    from obskit.generator.render.templates import Templates

    files = render_service(service_of(OVERLAPPING), Templates())
    tests = yaml.safe_load(files["rules.test.yaml"])["tests"]
    expected = [
        {a["exp_labels"]["slo"] for a in t["alert_rule_test"][1]["exp_alerts"]}
        for t in tests
        if "fires at" in t["name"]
    ]
    assert {"everything", "orders"} in expected and len(expected) == 8
    (tmp_path / "rules.yaml").write_text(files["rules.yaml"])
    (tmp_path / "rules.test.yaml").write_text(files["rules.test.yaml"])
    result = _run(promtool, "test", "rules", tmp_path / "rules.test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_build_series_that_match_a_regex_selector(tmp_path: Path) -> None:
    """selector `env=~"prod|staging"`: the synthetic series carry env="prod" and the tests pass."""
    promtool = require_binary("promtool")
    from obskit.generator.render.bundle import render_service
    from obskit.generator.render.templates import Templates

    text = MINIMAL + 'selector: \'job="checkout", env=~"prod|staging", canary!="true"\'\n'
    files = render_service(service_of(text), Templates())
    assert 'env="prod"' in files["rules.test.yaml"] and "canary" not in files["rules.test.yaml"]
    (tmp_path / "rules.yaml").write_text(files["rules.yaml"])
    (tmp_path / "rules.test.yaml").write_text(files["rules.test.yaml"])
    result = _run(promtool, "test", "rules", tmp_path / "rules.test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_braces_in_manifest_text_are_literal_annotation_text(tmp_path: Path) -> None:
    """Prometheus expands annotations as Go templates: a description or URL holding `{{` must
    neither break `promtool check rules` nor change when the alert fires."""
    promtool = require_binary("promtool")
    from obskit.generator.render.bundle import render_service
    from obskit.generator.render.templates import Templates

    text = MINIMAL.replace(
        "    objective: 99.9\n",
        '    objective: 99.9\n    description: "Orders {{ succeed $value"\n',
    ) + ("runbook_url: https://runbooks.example.com/{{x}}\ngrafana_url: https://g.example.com/{{\n")
    files = render_service(service_of(text), Templates())
    tests = yaml.safe_load(files["rules.test.yaml"])["tests"]
    fired = [a for t in tests for case in t["alert_rule_test"] for a in case["exp_alerts"]]
    assert fired and all(
        a["exp_annotations"]["runbook_url"] == "https://runbooks.example.com/{{x}}" for a in fired
    )
    assert any(
        a["exp_annotations"].get("description", "").startswith("Orders {{ succeed $value.")
        for a in fired
    )
    (tmp_path / "rules.yaml").write_text(files["rules.yaml"])
    (tmp_path / "rules.test.yaml").write_text(files["rules.test.yaml"])
    check = _run(promtool, "check", "rules", tmp_path / "rules.yaml")
    assert check.returncode == 0, check.stdout + check.stderr
    result = _run(promtool, "test", "rules", tmp_path / "rules.test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


ISSUE_EXAMPLE = """\
service: checkout                 # required, [a-z][a-z0-9_-]*
team: payments                    # optional, becomes a label on alerts
selector: 'job="checkout"'        # optional PromQL label matchers for this service's series
runbook_url: https://runbooks.example.com/checkout   # optional
slos:
  - name: availability            # unique within the service
    objective: 99.9               # percent, strictly between 0 and 100
    window: 30d                   # default 30d
    description: Orders succeed
    sli:
      availability: {}            # share of inbound requests that are not 5xx
    routes: ["/orders", "/orders/{order_id}"]   # optional: only these http_route values
  - name: latency
    objective: 99
    sli:
      latency: {threshold: 0.25}  # seconds; must be a bucket boundary of the runtime's histogram
alerting:                         # optional
  page: {labels: {severity: critical}}
  ticket: {labels: {severity: warning}}
dependencies: ["payments:8080"]   # optional: server_address values to chart
"""


def test_the_issue_example_generates_rules_promtool_checks_and_tests(tmp_path: Path) -> None:
    """Acceptance: the manifest of the issue, through the CLI, gives rules that
    `promtool check rules` accepts and unit tests that `promtool test rules` passes."""
    promtool = require_binary("promtool")
    from typer.testing import CliRunner

    from obskit.generator.cli import app

    (tmp_path / "obskit.yaml").write_text(ISSUE_EXAMPLE)
    out = tmp_path / "observability"
    args = ["generate", str(tmp_path / "obskit.yaml"), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--format", "prometheus-operator"])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(app, [*args, "--check"]).exit_code == 1  # operator file is extra
    directory = out / "checkout"
    assert sorted(p.name for p in directory.iterdir()) == [
        "alertmanager.route.yaml",
        "alerts.test.yaml",
        "dashboard.json",
        "prometheusrule.yaml",
        "rules.test.yaml",
        "rules.yaml",
    ]
    rules = yaml.safe_load((directory / "rules.yaml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) == 10 and all(a["labels"]["team"] == "payments" for a in alerts)
    check = _run(promtool, "check", "rules", directory / "rules.yaml")
    assert check.returncode == 0 and "SUCCESS: 34 rules found" in check.stdout, check.stderr
    test = _run(promtool, "test", "rules", directory / "rules.test.yaml")
    assert test.returncode == 0, test.stdout + test.stderr
