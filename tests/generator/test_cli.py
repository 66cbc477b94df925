"""The obskit CLI: every command and exit code (0 ok, 1 drift, 2 invalid input)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from obskit.generator.cli import EXIT_DRIFT, EXIT_INVALID, EXIT_OK, app
from tests.generator.conftest import EXAMPLES, MINIMAL, ROOT

runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "obskit.yaml"
    path.write_text(MINIMAL)
    return path


def test_validate_accepts_files_and_directories(manifest: Path) -> None:
    code, out, _ = invoke("validate", manifest, EXAMPLES)
    assert code == EXIT_OK
    assert out.splitlines() == [
        f"ok: {manifest}: checkout (availability)",
        f"ok: {EXAMPLES / 'inventory' / 'obskit.yaml'}: inventory (availability, latency)",
        f"ok: {EXAMPLES / 'payments' / 'obskit.yaml'}: payments (availability, latency)",
        f"ok: {EXAMPLES / 'shop' / 'obskit.yaml'}: shop (availability, latency, payments)",
        f"ok: {EXAMPLES / 'worker' / 'obskit.yaml'}: worker (processing, freshness)",
    ]


def test_validate_reports_each_problem_with_file_line_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.obskit.yaml"
    bad.write_text(MINIMAL.replace("objective: 99.9", "objective: 120\n    windw: 30d"))
    code, out, err = invoke("validate", bad, tmp_path / "missing.yaml")
    assert code == EXIT_INVALID and out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"{bad}:4: slos[0].objective: objective must be strictly")
    assert lines[1].startswith(f"{bad}:5: unknown key 'windw'")
    assert lines[2] == f"{tmp_path / 'missing.yaml'}: no such file"
    assert "Traceback" not in err


def test_validate_notes_burn_rate_rows_that_cannot_fire(manifest: Path) -> None:
    manifest.write_text(MINIMAL.replace("99.9", "90"))
    code, _, err = invoke("validate", manifest)
    assert code == EXIT_OK
    assert err.strip() == (
        f"note: {manifest}: checkout/availability: the 14.4x 1h/5m page row would need an "
        "error ratio above 100% at 90%; it is left out"
    )


def test_validate_notes_burn_rate_rows_left_without_a_unit_test(
    manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row whose promtool scenario cannot be called is named, never dropped silently."""
    from obskit.generator.render import promtool

    manifest.write_text(MINIMAL)
    code, _, err = invoke("validate", manifest)
    assert code == EXIT_OK and "no promtool unit test" not in err
    monkeypatch.setattr(promtool, "_shares_series", lambda *_: True)
    monkeypatch.setattr(promtool, "_expected_firing", lambda *_: None)
    two = MINIMAL + MINIMAL[MINIMAL.index("  - name:") :].replace("availability", "avail2", 1)
    manifest.write_text(two)
    code, _, err = invoke("validate", manifest)
    assert code == EXIT_OK
    assert (
        f"note: {manifest}: checkout/availability: the 14.4x 1h/5m page row gets no promtool "
        "unit test" in err
    )


def test_validate_of_a_directory_without_manifests_is_invalid(tmp_path: Path) -> None:
    code, _, err = invoke("validate", tmp_path)
    assert code == EXIT_INVALID and "no manifest here" in err


def test_generate_writes_the_files_of_every_service(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, _ = invoke("generate", EXAMPLES, "--out", out)
    assert code == EXIT_OK
    for service in ("inventory", "payments", "shop", "worker"):
        assert sorted(p.name for p in (out / service).iterdir()) == [
            "alertmanager.route.yaml",
            "alerts.test.yaml",
            "dashboard.json",
            "rules.test.yaml",
            "rules.yaml",
        ]
    assert f"wrote {out / 'shop' / 'rules.yaml'}" in stdout
    assert not list(out.rglob("*.tmp"))


def test_generate_twice_is_byte_identical(tmp_path: Path) -> None:
    invoke("generate", EXAMPLES, "--out", tmp_path / "a")
    invoke("generate", EXAMPLES, "--out", tmp_path / "b")
    a = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*.*")}
    b = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in (tmp_path / "b").rglob("*.*")}
    assert a == b and len(a) == 22
    assert all(content.endswith(b"\n") and not content.endswith(b"\n\n") for content in a.values())


def test_generate_writes_nothing_when_any_manifest_is_invalid(
    tmp_path: Path, manifest: Path
) -> None:
    bad = tmp_path / "bad" / "obskit.yaml"
    bad.parent.mkdir()
    bad.write_text("service: bad\nslos: 3\n")
    out = tmp_path / "out"
    code, _, err = invoke("generate", manifest, bad.parent, "--out", out)
    assert code == EXIT_INVALID and f"{bad}:2:" in err
    assert not out.exists()


def test_an_unwritable_output_is_a_clear_error(tmp_path: Path, manifest: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file, not a directory\n")
    code, _, err = invoke("generate", manifest, "--out", blocker)
    assert code == EXIT_INVALID and "cannot write" in err and "Traceback" not in err


def test_check_passes_when_fresh_and_reports_stale_missing_and_extra_files(
    tmp_path: Path, manifest: Path
) -> None:
    out = tmp_path / "out"
    invoke("generate", manifest, "--out", out)
    assert invoke("generate", manifest, "--out", out, "--check")[0] == EXIT_OK

    rules = out / "checkout" / "rules.yaml"
    rules.write_text(rules.read_text().replace("14.4", "14"))
    (out / "checkout" / "dashboard.json").unlink()
    (out / "checkout" / "notes.txt").write_text("mine\n")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, stdout, err = invoke("generate", manifest, "--out", out, "--check")
    assert code == EXIT_DRIFT
    assert f"--- {rules}" in stdout and "-" in stdout and "+" in stdout
    assert "/ 0.001 > 14)" in stdout and "/ 0.001 > 14.4)" in stdout
    assert f"missing: {out / 'checkout' / 'dashboard.json'}" in stdout
    assert f"extra (not generated): {out / 'checkout' / 'notes.txt'}" in stdout
    assert "3 generated file(s) stale" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_check_of_a_never_generated_directory_is_drift(tmp_path: Path, manifest: Path) -> None:
    code, stdout, _ = invoke("generate", manifest, "--out", tmp_path / "none", "--check")
    assert code == EXIT_DRIFT and stdout.count("missing: ") == 7


def test_regenerating_removes_files_obskit_no_longer_generates(
    tmp_path: Path, manifest: Path
) -> None:
    out = tmp_path / "out"
    invoke("generate", manifest, "--out", out, "--format", "prometheus-operator")
    assert (out / "checkout" / "prometheusrule.yaml").exists()
    (out / "checkout" / "notes.txt").write_text("mine\n")
    code, stdout, _ = invoke("generate", manifest, "--out", out)
    assert code == EXIT_OK and not (out / "checkout" / "prometheusrule.yaml").exists()
    assert not (out / "checkout" / "notes.txt").exists()
    assert f"removed {out / 'checkout' / 'notes.txt'} (not generated)" in stdout  # said aloud
    assert f"removed {out / 'checkout' / 'prometheusrule.yaml'} (not generated)" in stdout


def test_prometheus_operator_format_wraps_the_same_groups(tmp_path: Path, manifest: Path) -> None:
    import yaml

    out = tmp_path / "out"
    code, _, _ = invoke("generate", manifest, "--out", out, "--format", "prometheus-operator")
    assert code == EXIT_OK
    resource = yaml.safe_load((out / "checkout" / "prometheusrule.yaml").read_text())
    rules = yaml.safe_load((out / "checkout" / "rules.yaml").read_text())
    assert (resource["apiVersion"], resource["kind"]) == (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
    )
    assert resource["metadata"]["name"] == "obskit-checkout"
    assert resource["spec"] == rules


def test_prometheus_operator_metadata_is_valid_for_kubernetes(tmp_path: Path) -> None:
    """Service names may hold `_` and end in `-`, teams any text: the PrometheusRule still gets
    a DNS-1123 name and valid label values, or `kubectl apply` would reject it."""
    import yaml

    manifest = tmp_path / "obskit.yaml"
    manifest.write_text('service: my_svc-\nteam: "Payments Team!"\n')
    out = tmp_path / "out"
    code, _, _ = invoke("generate", manifest, "--out", out, "--format", "prometheus-operator")
    assert code == EXIT_OK
    metadata = yaml.safe_load((out / "my_svc-" / "prometheusrule.yaml").read_text())["metadata"]
    assert metadata == {
        "name": "obskit-my-svc",
        "labels": {
            "app.kubernetes.io/managed-by": "obskit",
            "app.kubernetes.io/name": "my_svc",
            "team": "Payments-Team",
        },
    }


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("kind: PrometheusRule\nmetadata: {name: x}\n", "must render apiVersion"),
        (
            "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: A_b}\n",
            "metadata.name 'A_b' is not a valid Kubernetes object name",
        ),
        (
            "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\n"
            "metadata: {name: x, labels: {team: a b}}\n",
            "metadata.labels.team 'a b' is not a valid Kubernetes label value",
        ),
        (
            "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\n"
            "metadata: {name: x}\nspec: {}\n",
            "must leave 'spec' to obskit",
        ),
    ],
)
def test_an_operator_envelope_kubernetes_would_reject_is_invalid_input(
    tmp_path: Path, manifest: Path, content: str, fragment: str
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "prometheusrule.yaml.j2").write_text(content)
    out = tmp_path / "out"
    args = ("generate", manifest, "--out", out, "--format", "prometheus-operator")
    code, _, err = invoke(*args, "--templates", templates)
    assert code == EXIT_INVALID and fragment in err, err
    assert not out.exists()


def test_unknown_format_is_invalid_input(manifest: Path, tmp_path: Path) -> None:
    code, _, _ = invoke("generate", manifest, "--out", tmp_path, "--format", "nagios")
    assert code == EXIT_INVALID


def test_templates_override_one_template_by_name(tmp_path: Path, manifest: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "prometheusrule.yaml.j2").write_text(
        "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\n"
        "metadata:\n  name: {{ service | yaml }}\n  labels: {release: prom}\n"
    )
    out = tmp_path / "out"
    args = ("generate", manifest, "--out", out, "--format", "prometheus-operator")
    assert invoke(*args, "--templates", templates)[0] == EXIT_OK
    text = (out / "checkout" / "prometheusrule.yaml").read_text()
    assert "release: prom" in text and "name: checkout" in text
    assert "summary:" in (out / "checkout" / "rules.yaml").read_text()  # others: built-in


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("dashboard.json.j2", '{"uid": {{ uid | json }}, "panels": [}', "rendered invalid JSON"),
        ("alert_annotations.yaml.j2", "summary: [unclosed\n", "rendered invalid YAML"),
        ("alert_annotations.yaml.j2", "summary: {{ nope }}\n", "'nope' is undefined"),
        ("alert_annotations.yaml.j2", "summary: 3\n", "must be a string"),
        ("dashboard.json.j2", "{% if %}", "template dashboard.json.j2:1"),
    ],
)
def test_a_broken_template_is_invalid_input_and_writes_nothing(
    tmp_path: Path, manifest: Path, name: str, content: str, fragment: str
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / name).write_text(content)
    out = tmp_path / "out"
    code, _, err = invoke("generate", manifest, "--out", out, "--templates", templates)
    assert code == EXIT_INVALID and fragment in err, err
    assert len(err.splitlines()) == 1 and err.rstrip().endswith(f"({templates / name})"), err
    assert not out.exists()


def test_new_prints_a_manifest_that_validates(tmp_path: Path) -> None:
    code, text, _ = invoke("new", "orders", "--team", "shop-team")
    assert code == EXIT_OK and 'service: "orders"' in text
    path = tmp_path / "obskit.yaml"
    path.write_text(text)
    assert invoke("validate", path)[0] == EXIT_OK
    assert invoke("generate", path, "--out", tmp_path / "out")[0] == EXIT_OK


def test_new_rejects_an_invalid_service_name() -> None:
    code, _, err = invoke("new", "Bad Name")
    assert code == EXIT_INVALID and "should match pattern" in err


def test_schema_prints_a_json_schema() -> None:
    code, text, _ = invoke("schema")
    schema = json.loads(text)
    assert code == EXIT_OK and "ServiceSpec" in schema["$defs"]


def test_module_entry_point_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "obskit.generator.cli", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0
    assert all(c in result.stdout for c in ("generate", "validate", "new", "schema"))


def test_help_does_not_import_the_generator() -> None:
    """Lazy imports: `obskit --help` loads neither pydantic, jinja2, yaml nor the OTel SDK."""
    code = (
        "import sys\nfrom obskit.generator.cli import app\n"
        "from typer.testing import CliRunner\nCliRunner().invoke(app, ['--help'])\n"
        "heavy = ('pydantic', 'jinja2', 'yaml', 'opentelemetry.sdk')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_generated_files_get_the_mode_of_a_plain_write(tmp_path: Path, manifest: Path) -> None:
    """Readable by others under the usual umask (a Prometheus running as its own user reads
    rules.yaml); a file the user chmod-ed keeps its mode when regenerated."""
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        assert invoke("generate", manifest, "--out", out)[0] == EXIT_OK
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (out / "checkout").iterdir()}
        assert modes == dict.fromkeys(modes, 0o644) and len(modes) == 5
        rules = out / "checkout" / "rules.yaml"
        rules.chmod(0o640)
        rules.write_text("stale\n")
        assert invoke("generate", manifest, "--out", out)[0] == EXIT_OK
        assert stat.S_IMODE(rules.stat().st_mode) == 0o640 and rules.read_text() != "stale\n"
    finally:
        os.umask(old)
