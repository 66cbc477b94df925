"""Hostile and unlucky manifests (issue 13, items 1-5): each gets one clear `file:line` error and
exit 2 (never a traceback, never exit 1, which means drift), within bounded time and memory; and
`validate` fails wherever `generate` would."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from obskit.generator import manifest
from obskit.generator.cli import EXIT_INVALID, EXIT_OK, app
from obskit.generator.model import PROMETHEUS_MAX_SECONDS, Duration, check_label_value
from tests.conftest import require_binary
from tests.generator.conftest import MINIMAL, ROOT

runner = CliRunner()
MEMORY_LIMIT = 1024**3
"""Address-space cap of the CLI subprocesses: 0.1 grew past 9 GB on the alias bomb."""

ALIAS_BOMB = """\
service: bomb
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
team: *i
"""
"""The issue's 455-byte shape: nine levels of nine aliases, 9**9 (387 million) strings."""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The real `obskit` in a subprocess with capped memory; the timeout only guards the suite
    against a hang (what the loading limits prevent), it measures nothing."""
    return subprocess.run(
        [sys.executable, "-m", "obskit.cli", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
        check=False,
    )


def _invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stderr


def _write(tmp_path: Path, text: str, name: str = "obskit.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------------- 1. alias bombs


def test_the_alias_bomb_is_refused_with_exit_2_and_a_clear_message(tmp_path: Path) -> None:
    path = _write(tmp_path, ALIAS_BOMB)
    assert len(ALIAS_BOMB.encode()) < 500
    for command in ("validate", "generate"):
        result = _cli(
            command, path, *(["--out", tmp_path / "out"] if command == "generate" else [])
        )
        assert result.returncode == EXIT_INVALID, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith(f"{path}:")
        assert "alias" in result.stderr and f"at most {manifest.MAX_NODES} YAML nodes" in (
            result.stderr
        )
    assert not (tmp_path / "out").exists()


def test_an_alias_bomb_used_as_a_mapping_key_is_refused_too(tmp_path: Path) -> None:
    """A complex key is constructed in one go: it must be measured before, like any value."""
    bomb = ALIAS_BOMB.replace("team: *i\n", "? *i\n: 1\n")
    code, err = _invoke("validate", _write(tmp_path, bomb))
    assert code == EXIT_INVALID
    assert "once its aliases are expanded" in err


def test_a_recursive_alias_is_invalid_yaml_not_a_recursion_error(tmp_path: Path) -> None:
    for text in ("service: x\nteam: &a [*a]\n", "service: x\n? &a [*a]\n: 1\n"):
        code, err = _invoke("validate", _write(tmp_path, text))
        assert code == EXIT_INVALID
        assert "obskit.yaml:2: invalid YAML: recursive alias" in err


def test_a_file_above_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    text = MINIMAL + "# " + "x" * manifest.MAX_FILE_BYTES + "\n"
    code, err = _invoke("validate", _write(tmp_path, text))
    assert code == EXIT_INVALID
    assert f"file too large: obskit reads manifests of at most {manifest.MAX_FILE_BYTES}" in err


def test_a_file_with_too_many_nodes_is_refused(tmp_path: Path) -> None:
    """No aliases: 60,000 list items. Composing stops at the node limit."""
    items = "".join(f"  - h{i}\n" for i in range(60_000))
    code, err = _invoke("validate", _write(tmp_path, MINIMAL + "dependencies:\n" + items))
    assert code == EXIT_INVALID
    assert f"manifest too large: obskit reads at most {manifest.MAX_NODES} YAML nodes" in err


def test_a_manifest_at_a_realistic_fleet_size_still_loads(tmp_path: Path) -> None:
    """The limits leave room: 500 services with two SLOs each in one file (~10k nodes)."""
    services = "".join(
        f"  - service: svc{i}\n    team: t{i % 7}\n    slos:\n"
        "      - {name: availability, objective: 99.9, sli: {availability: {}}}\n"
        "      - {name: latency, objective: 99, sli: {latency: {threshold: 0.25}}}\n"
        for i in range(500)
    )
    loaded = manifest.loads("services:\n" + services, "fleet.yaml")
    assert len(loaded) == 500


# ----------------------------------------------------------------------- 2. deep nesting


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("team: " + "[" * 500 + "]" * 500 + "\n", id="500-flow-sequences"),
        pytest.param("team: " + "{a: " * 500 + "1" + "}" * 500 + "\n", id="500-flow-mappings"),
        pytest.param(
            "team:\n" + "".join("  " * d + f"k{d}:\n" for d in range(1, 501)) + "  " * 501 + "1\n",
            id="500-block-mappings",
        ),
        pytest.param("team: " + "[" * 100_000 + "]" * 100_000 + "\n", id="100000-levels"),
    ],
)
def test_any_nesting_depth_is_a_clear_error_with_exit_2(tmp_path: Path, body: str) -> None:
    path = _write(tmp_path, "service: deep\n" + body)
    result = _cli("validate", path)
    assert result.returncode == EXIT_INVALID, result.stderr  # 0.1: RecursionError, exit 1
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    assert re.match(rf"{re.escape(str(path))}:\d+: manifest nested too deep", result.stderr)


def test_aliases_cannot_stack_nesting_past_the_depth_limit(tmp_path: Path) -> None:
    """Each anchor is 40 levels deep (allowed); used inside one another they are 120 deep."""
    deep = "[" * 39 + "1" + "]" * 39
    b = "[" * 39 + "*a" + "]" * 39
    text = f"service: x\na: &a {deep}\nb: &b {b}\nteam: {b.replace('*a', '*b')}\n"
    code, err = _invoke("validate", _write(tmp_path, text))
    assert code == EXIT_INVALID
    assert "manifest nested too deep" in err and "once its aliases are expanded" in err


# ----------------------------------------------------------------------- 3. templated labels


@pytest.mark.parametrize(
    ("snippet", "line", "where"),
    [
        ("team: '{{ $value }}'\n", 8, "team"),
        ("alerting:\n  labels: {component: '{{ $labels.job }}'}\n", 9, "alerting.labels.component"),
        ("alerting:\n  page:\n    labels: {severity: 'crit}}'}\n", 10, "alerting.page.labels"),
        ("alerting:\n  ticket:\n    labels: {route: '{{'}\n", 10, "alerting.ticket.labels.route"),
    ],
)
def test_template_delimiters_in_alert_label_values_are_rejected(
    tmp_path: Path, snippet: str, line: int, where: str
) -> None:
    path = _write(tmp_path, MINIMAL + "runbook_url: https://r.example.com\n" + snippet)
    for command in ("validate", "generate"):
        code, err = _invoke(
            command, path, *(["-o", tmp_path / "o"] if command == "generate" else [])
        )
        assert code == EXIT_INVALID
        assert f"{path}:{line}: {where}" in err
        assert "Prometheus would expand it as a template" in err
    assert not (tmp_path / "o").exists()


TEMPLATED_EVERYWHERE = """\
service: checkout
team: 'pay{ments}'
selector: 'job="checkout", env="{{prod}}"'
runbook_url: https://runbooks.example.com/{{x}}/}}
grafana_url: https://grafana.example.com/{{
alerting:
  labels: {x: '}a{'}
  page: {for: 1d}
slos:
  - name: availability
    objective: 99.9
    description: 'Orders {{ $value }} succeed }} {{ template "x" }} {{'
    routes: ["/orders/{{id}}", "/x}}"]
    sli: {availability: {}}
"""
"""Template delimiters in every free text that reaches a rule but is not a label value, and
the boundaries of what labels and `for:` accept."""


def test_every_user_text_in_rules_is_escaped_or_plain_and_promtool_agrees(tmp_path: Path) -> None:
    """Annotations (descriptions, links) are escaped, expressions quote their strings, label
    values keep single braces only, the longest `for:` (1d) is fine: `promtool check rules`
    passes, and `promtool test rules`, which compares every label and annotation of every
    alert with the manifest's text as written, passes too."""
    promtool = require_binary("promtool")
    path = _write(tmp_path, TEMPLATED_EVERYWHERE)
    code, err = _invoke("generate", path, "-o", tmp_path / "o")
    assert code == EXIT_OK, err
    rules = tmp_path / "o" / "checkout"
    groups = yaml.safe_load((rules / "rules.yaml").read_text())["groups"]
    alerting = [r for g in groups for r in g["rules"] if "alert" in r]
    assert alerting and all(
        "{{" not in v and "}}" not in v for r in alerting for v in r["labels"].values()
    )
    tests = yaml.safe_load((rules / "rules.test.yaml").read_text())["tests"]
    expected = [
        a["exp_annotations"] for t in tests for c in t["alert_rule_test"] for a in c["exp_alerts"]
    ]
    assert any(
        e.get("description", "").startswith("Orders {{ $value }} succeed }} {{") for e in expected
    )
    assert any(e.get("runbook_url") == "https://runbooks.example.com/{{x}}/}}" for e in expected)
    for argv in (
        ("check", "rules", rules / "rules.yaml"),
        ("test", "rules", rules / "rules.test.yaml"),
    ):
        result = subprocess.run([promtool, *argv], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_check_label_value_is_the_reusable_rule() -> None:
    assert check_label_value("team-a {x}") == "team-a {x}"
    for bad in ("{{", "a}}", "{{ .Labels.x }}"):
        with pytest.raises(ValueError, match="template"):
            check_label_value(bad)


# ----------------------------------------------------------------------- 4. durations


def test_a_for_beyond_prometheus_range_is_rejected_before_promtool_sees_it(
    tmp_path: Path,
) -> None:
    """0.1 accepted `for: 99999999999w`; `promtool check rules` then said "duration out of
    range" about the generated file."""
    path = _write(tmp_path, MINIMAL + "alerting:\n  page: {for: 99999999999w}\n")
    for command in ("validate", "generate"):
        code, err = _invoke(
            command, path, *(["-o", tmp_path / "o"] if command == "generate" else [])
        )
        assert code == EXIT_INVALID
        assert f"{path}:8: alerting.page.for: duration '99999999999w' is out of range" in err
    assert not (tmp_path / "o").exists()


def test_a_for_longer_than_a_day_is_rejected_with_the_limit_named(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL + "alerting:\n  ticket: {for: 2d}\n")
    code, err = _invoke("validate", path)
    assert code == EXIT_INVALID
    assert "alerting.ticket.for: duration '2d' is too long: at most 1d" in err


def test_durations_are_checked_against_prometheus_limit() -> None:
    longest = PROMETHEUS_MAX_SECONDS // 86400
    assert Duration.parse(f"{longest}d").seconds == longest * 86400
    for text in (f"{longest + 1}d", "15251w", "9" * 5000 + "m"):
        with pytest.raises(ValueError, match="out of range"):
            Duration.parse(text)
    with pytest.raises(ValueError, match="too long: at most 1h"):
        Duration.parse("61m", at_most=Duration(3600))


# ----------------------------------------------------------------------- 5. validate == generate


CASES = {
    "injected-selector": MINIMAL + 'selector: \'job="x"} or vector(1) or {job="y"\'\n',
    "name-selector": MINIMAL + "selector: '__name__=~\".+\"'\n",
    "300-character-name": MINIMAL.replace("service: checkout", "service: " + "a" * 300),
    "templated-team": MINIMAL + "team: '{{ $value }}'\n",
    "huge-for": MINIMAL + "alerting:\n  page: {for: 99999999999w}\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_fails_exactly_where_generate_fails(tmp_path: Path, case: str) -> None:
    path = _write(tmp_path, CASES[case])
    validate_code, validate_err = _invoke("validate", path)
    generate_code, generate_err = _invoke("generate", path, "-o", tmp_path / "out")
    assert generate_code == EXIT_INVALID, generate_err
    assert validate_code == generate_code
    assert validate_err == generate_err
    assert validate_err.startswith(f"{path}:")
    assert not (tmp_path / "out").exists()


def test_validate_checks_the_templates_and_format_generate_would_use(tmp_path: Path) -> None:
    """A template override that breaks the rendering fails `validate --templates` too."""
    path = _write(tmp_path, MINIMAL)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "prometheusrule.yaml.j2").write_text(
        "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: Bad_Name\n"
    )
    args = ("--format", "prometheus-operator", "--templates", str(templates))
    validate_code, validate_err = _invoke("validate", path, *args)
    generate_code, generate_err = _invoke("generate", path, "-o", tmp_path / "out", *args)
    assert validate_code == generate_code == EXIT_INVALID
    assert validate_err == generate_err and "not a valid Kubernetes object name" in validate_err
    assert _invoke("validate", path)[0] == EXIT_OK  # the default templates and format are fine


def test_validate_with_out_sees_the_output_directory_generate_would_assemble_from(
    tmp_path: Path,
) -> None:
    """generate assembles alertmanager.yaml from every service part in <out>: a broken part
    there fails it, and `validate --out` the same way."""
    path = _write(tmp_path, MINIMAL)
    out = tmp_path / "out"
    (out / "other").mkdir(parents=True)
    (out / "other" / "alertmanager.route.yaml").write_text("[not, a, part]\n")
    validate_code, validate_err = _invoke("validate", path, "--out", out)
    generate_code, generate_err = _invoke("generate", path, "--out", out)
    assert validate_code == generate_code == EXIT_INVALID
    assert validate_err == generate_err and "other/alertmanager.route.yaml" in validate_err
    assert _invoke("validate", path)[0] == EXIT_OK  # without --out: the manifests alone
