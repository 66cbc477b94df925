"""The generator benchmarks measure what they claim (no timing asserted).

- benchmarks.rule_eval's "common way" rules are the same SLOs: same groups, alerts and
  objective/budget rules, every ratio from the raw counters over its window, valid PromQL; its
  synthetic history is OpenMetrics the real promtool turns into blocks.
- benchmarks.fleet's byte comparison tells identical trees from different ones.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from benchmarks import fleet, rule_eval
from obskit.generator.manifest import load_all
from obskit.generator.render import prometheus
from obskit.generator.render.templates import Templates
from tests.conftest import require_binary


def _groups(tmp_path: Path) -> list[dict[str, Any]]:
    services = load_all([fleet.write_fleet(tmp_path, 2)])
    groups = []
    for service in services:
        groups += rule_eval._slo_groups(prometheus.rule_groups(service, Templates()))
    return groups


def test_the_common_way_computes_every_window_from_raw_counters(tmp_path: Path) -> None:
    ours = _groups(tmp_path)
    theirs = rule_eval.common_way(ours)
    assert [g["name"] for g in theirs] == [g["name"] for g in ours]
    for mine, common in zip(ours, theirs, strict=True):
        alerts = [r for r in mine["rules"] if "alert" in r]
        assert [r for r in common["rules"] if "alert" in r] == alerts
        for rule in common["rules"]:
            promql_parser.parse(rule["expr"])
            assert "obskit_slo:requests:rate5m" not in rule["expr"]
            if rule.get("record") == "obskit_slo:error_ratio":
                window = rule["labels"]["window"]
                assert f"[{window}]" in rule["expr"] and "sum_over_time" not in rule["expr"]
                assert "http_server_request_duration_seconds_count" in rule["expr"]


def test_the_synthetic_history_becomes_tsdb_blocks(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    history = tmp_path / "history.om"
    slos = [("svc0000", "availability"), ("svc0001", "latency")]
    samples = rule_eval.write_history(history, ["svc0000", "svc0001"], slos, end=1_700_000_000)
    assert samples == (2 * 2 * 3 * 2 + 2 * 2) * (rule_eval.HISTORY_S // rule_eval.STEP_S + 1)
    result = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(history), str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert any((tmp_path / "b").iterdir())


def test_the_fleet_comparison_finds_a_changed_byte(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name / "svc").mkdir(parents=True)
        (tmp_path / name / "svc" / "rules.yaml").write_text(yaml.safe_dump({"x": 1}))
    assert fleet.compare(tmp_path / "a", tmp_path / "b") == 0
    (tmp_path / "b" / "svc" / "rules.yaml").write_text(yaml.safe_dump({"x": 2}))
    assert fleet.compare(tmp_path / "a", tmp_path / "b") == 1
