"""Issue 10 on the generator side: processing and freshness SLIs, ObskitOutboxStale and
ObskitTasksStalled with their promtool tests (real promtool, including tests that prove the
generated unit tests fail when a rule loses one of its semantics), and the "Background work"
dashboard row."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from obskit import semconv
from obskit.generator.manifest import ManifestError
from obskit.generator.model import Duration, Service
from obskit.generator.render import grafana, prometheus
from obskit.generator.render.bundle import render_service
from obskit.generator.render.templates import Templates
from tests.generator.conftest import MINIMAL, service_of
from tests.generator.test_resilience import Mutation, _mutated, _promtool, _write

WORKER = """\
service: worker
team: fulfilment
slos:
  - name: processing
    objective: 99
    sli: {processing: {tasks: [app.tasks.charge]}}
  - name: freshness
    objective: 99
    sli: {freshness: {threshold: 30, queues: [orders]}}
background:
  tasks: [app.tasks.refund]
  outboxes: [orders]
  tasks_stalled: {after: 15m}
  outbox_stale: {older_than: 10m, labels: {severity: critical}}
"""


def rules(service: Service) -> list[dict[str, Any]]:
    doc = prometheus.rule_groups(service, Templates())
    return [r for g in doc["groups"] for r in g["rules"]]


def records(service: Service, slo: str) -> dict[str, str]:
    return {
        r["record"]: r["expr"]
        for r in rules(service)
        if "record" in r and r["labels"].get("slo") == slo and "window" not in r["labels"]
    }


# --------------------------------------------------------------------------- manifest


def test_processing_and_freshness_slis_and_the_background_block_load() -> None:
    service = service_of(WORKER)
    processing, freshness = service.slos
    assert (processing.kind, processing.tasks, processing.queues) == (
        "processing",
        ("app.tasks.charge",),
        (),
    )
    assert (freshness.kind, freshness.threshold, freshness.queues) == (
        "freshness",
        30.0,
        ("orders",),
    )
    b = service.background
    assert b.declared and b.tasks == ("app.tasks.refund",) and b.outboxes == ("orders",)
    assert (b.stalled_after, b.stalled_for) == (Duration(900), Duration(120))
    assert (b.outbox_older_than, b.outbox_for) == (Duration(600), Duration(300))
    assert dict(b.outbox_stale_labels)["severity"] == "critical"
    assert dict(b.tasks_stalled_labels) == {"severity": "warning", "team": "fulfilment"}
    # The tasks ObskitTasksStalled watches: background.tasks, then those the SLOs name.
    assert service.stalled_tasks == ("app.tasks.refund", "app.tasks.charge")
    assert service.is_worker and not service.serves_http


def test_background_defaults_are_the_documented_ones() -> None:
    b = service_of(MINIMAL).background
    assert not b.declared and (str(b.stalled_after), str(b.stalled_for)) == ("10m", "2m")
    assert (str(b.outbox_older_than), str(b.outbox_for)) == ("5m", "5m")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "  - name: fresh\n    objective: 99\n    sli: {freshness: {threshold: 45}}\n",
            "test.yaml:9: freshness threshold 45 is not a queue-wait bucket boundary; obskit's "
            "default queue-wait buckets are: 0.01, 0.05",
        ),
        (
            "  - name: fresh\n    objective: 99\n    sli: {freshness: {threshold: 2}}\n"
            "queue_wait_buckets: [1, 5]\n",
            "test.yaml:9: freshness threshold 2 is not a queue-wait bucket boundary; the "
            "manifest's queue-wait buckets are: 1.0, 5.0",
        ),
        (
            "  - name: p\n    objective: 99\n    sli: {processing: {}}\n    routes: [/x]\n",
            "test.yaml:7: slos[1]: routes apply to availability and latency SLIs; a processing "
            "SLI names its `tasks:`",
        ),
        (
            "  - name: p\n    objective: 99\n    sli: {procesing: {}}\n",
            "test.yaml:9: unknown key 'procesing' in slos[1].sli (did you mean 'processing'?)",
        ),
        (
            "  - name: p\n    objective: 99\n    sli: {processing: {task: [a]}}\n",
            "test.yaml:9: unknown key 'task' in slos[1].sli.processing (did you mean 'tasks'?)",
        ),
        (
            "background:\n  tasks_staled: {}\n",
            "test.yaml:8: unknown key 'tasks_staled' in background (did you mean 'tasks_stalled'?)",
        ),
        (
            "background:\n  outbox_stale: {older_than: soon}\n",
            "test.yaml:8: background.outbox_stale.older_than: cannot parse duration 'soon'",
        ),
        (
            "background:\n  tasks_stalled: {labels: {task: x}}\n",
            "test.yaml:8: label 'task' is set by obskit",
        ),
        (
            'background:\n  publishers: \'env="prod"} or vector(1) or {a="b"\'\n',
            "test.yaml:8: publishers must be label matchers only",
        ),
    ],
)
def test_bad_background_input_gets_one_clear_line(text: str, expected: str) -> None:
    with pytest.raises(ManifestError) as caught:
        service_of(MINIMAL + text)
    assert any(str(p).startswith(expected) for p in caught.value.problems), caught.value


# --------------------------------------------------------------------------- rules


def test_processing_counts_success_over_success_plus_failure_only() -> None:
    recorded = records(service_of(WORKER), "processing")
    total, errors = recorded["obskit_slo:requests:rate5m"], recorded["obskit_slo:errors:rate5m"]
    assert 'outcome=~"success|failure"' in total and 'task=~"app\\\\.tasks\\\\.charge"' in total
    assert 'outcome="failure"' in errors and "retry" not in total + errors


def test_freshness_reads_the_queue_wait_bucket_at_its_threshold() -> None:
    recorded = records(service_of(WORKER), "freshness")
    errors = recorded["obskit_slo:errors:rate5m"]
    assert "messaging_queue_wait_seconds_bucket{" in errors and 'le="30.0"' in errors
    assert 'messaging_destination_name=~"orders"' in errors


def test_outbox_stale_for_every_service_and_tasks_stalled_for_named_tasks() -> None:
    [outbox] = [r for r in rules(service_of(MINIMAL)) if r.get("alert") == "ObskitOutboxStale"]
    assert outbox["expr"] == (
        'max by (outbox) (obskit_outbox_oldest_age_seconds{job="checkout"}) > 300'
    )
    assert outbox["for"] == "5m" and outbox["labels"]["severity"] == "warning"
    assert "{{ $labels.outbox }}" in outbox["annotations"]["summary"]
    assert not [r for r in rules(service_of(MINIMAL)) if r.get("alert") == "ObskitTasksStalled"]
    [stalled] = [r for r in rules(service_of(WORKER)) if r.get("alert") == "ObskitTasksStalled"]
    expr = stalled["expr"]
    assert 'messaging_client_sent_messages_total{task=~"app\\\\.tasks\\\\.refund|app' in expr
    assert "job=" not in expr.split("unless on (task)")[0]  # any job's sent counter
    assert 'messaging_process_duration_seconds_count{job="worker"' in expr
    assert "[15m]" in expr and "offset 15m" in expr and stalled["for"] == "2m"


def test_publishers_narrow_the_sent_counter() -> None:
    text = WORKER + "  publishers: 'env=\"prod\"'\n"
    [stalled] = [r for r in rules(service_of(text)) if r.get("alert") == "ObskitTasksStalled"]
    assert 'messaging_client_sent_messages_total{env="prod", task=~' in stalled["expr"]


# --------------------------------------------------------------------------- dashboard


def test_background_work_row_for_a_worker_and_its_outboxes() -> None:
    doc = grafana.dashboard(service_of(WORKER), Templates())
    rows = [p["title"] for p in doc["panels"] if p["type"] == "row"]
    # A worker with no HTTP SLO serves no HTTP: no RED rows, no empty inbound panels.
    assert rows == [
        "SLO processing: 99% of processed messages that succeeded (retries and duplicates "
        "aside) on app.tasks.charge over 30d",
        "SLO freshness: 99% of messages waiting at most 30s in the queue on orders over 30d",
        "Background work",
    ]
    start = [p["title"] for p in doc["panels"]].index("Background work")
    panels = doc["panels"][start + 1 :]
    assert [p["title"] for p in panels] == [
        "Tasks processed by outcome",
        "Processing p99",
        "Queue wait p99",
        "Retries and duplicates",
        "Outbox pending rows",
        "Outbox oldest row age",
    ]
    legends = [t["legendFormat"] for t in panels[0]["targets"]]
    assert legends == ["{{task}} {{outcome}}", "{{task}} published"]
    assert "messaging_queue_wait_seconds_bucket" in panels[2]["targets"][0]["expr"]


def test_no_background_row_for_a_service_without_background_work() -> None:
    doc = grafana.dashboard(service_of(MINIMAL), Templates())
    assert "Background work" not in [p["title"] for p in doc["panels"]]
    outbox_only = grafana.dashboard(
        service_of(MINIMAL + "background: {outboxes: [orders]}\n"), Templates()
    )
    titles = [p["title"] for p in outbox_only["panels"]]
    assert titles[-3:] == ["Background work", "Outbox pending rows", "Outbox oldest row age"]
    assert "RED overview" in titles  # not a worker: its HTTP rows stay


# --------------------------------------------------------------------------- real promtool


def _without_born(side: int) -> Mutation:
    """Drop the 'born inside the window' half of the sent (0) or processed (1) side."""

    def change(expr: str) -> str:
        parts = expr.split("\n  or\n")
        assert len(parts) == 3
        head, middle, tail = parts
        if side == 0:
            return head + "\n" + middle.split("\n", 1)[1] + "\n  or\n" + tail
        return head + "\n  or\n" + middle + "\n" + tail.split("\n", 1)[1]

    return change


BACKGROUND_MUTATIONS: list[tuple[str, str, Mutation, str, str]] = [
    (
        "processing counting retries and duplicates as calls",
        "obskit_slo:requests:rate5m",
        lambda e: e.replace(', outcome=~"success|failure"', ""),
        "rules.test.yaml",
        "worker/processing: page row 1h/5m fires",
    ),
    (
        "tasks stalled without newly born processed series",
        semconv.ALERT_TASKS_STALLED,
        _without_born(1),
        "alerts.test.yaml",
        "rare message, processed by a freshly started worker: silent",
    ),
    (
        "tasks stalled without newly born sent series",
        semconv.ALERT_TASKS_STALLED,
        _without_born(0),
        "alerts.test.yaml",
        "first message never processed (no worker at all): fires",
    ),
    (
        "outbox stale at any age",
        semconv.ALERT_OUTBOX_STALE,
        lambda e: e.rsplit(" > ", 1)[0] + " >= 0",
        "alerts.test.yaml",
        "relayed as rows arrive: silent",
    ),
]


@pytest.mark.prometheus
def test_generated_background_tests_pass_and_fail_when_a_rule_loses_its_semantics(
    tmp_path: Path,
) -> None:
    # One task SLI keeps each promtool run short (every rule is evaluated at every step).
    text = (
        "service: worker\nslos:\n  - name: processing\n    objective: 99\n"
        "    sli: {processing: {tasks: [app.tasks.charge]}}\n"
    )
    files = render_service(service_of(text), Templates())
    jobs = [
        (tmp_path / "ok", files, "alerts.test.yaml"),
        (tmp_path / "ok", files, "rules.test.yaml"),
    ]
    for index, (_, alert, change, test_file, _) in enumerate(BACKGROUND_MUTATIONS):
        jobs.append((tmp_path / str(index), _mutated(files, alert, change), test_file))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda j: _promtool(_write(j[0], j[1]), j[2]), jobs))
    for result in results[:2]:
        assert result.returncode == 0, result.stdout + result.stderr
    for (what, _, _, _, scenario), result in zip(BACKGROUND_MUTATIONS, results[2:], strict=True):
        assert result.returncode != 0, what
        assert scenario in result.stdout + result.stderr, (what, result.stdout + result.stderr)


@pytest.mark.prometheus
def test_freshness_burn_tests_pass_with_real_promtool(tmp_path: Path) -> None:
    """A freshness SLO's burn rows fire on slow messages (and only on those)."""
    text = (
        "service: worker\nslos:\n  - name: fresh\n    objective: 99\n"
        "    sli: {freshness: {threshold: 10}}\n"
    )
    files = render_service(service_of(text), Templates())
    assert "worker/fresh: page row 1h/5m fires" in files["rules.test.yaml"]
    result = _promtool(_write(tmp_path, files), "rules.test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_validate_notes_a_worker_that_names_no_task(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from obskit.generator.cli import app

    manifest = tmp_path / "obskit.yaml"
    manifest.write_text(
        "service: worker\nslos:\n  - name: p\n    objective: 99\n    sli: {processing: {}}\n"
    )
    result = CliRunner().invoke(app, ["validate", str(manifest)])
    assert result.exit_code == 0
    assert "worker: no task named (background.tasks or an SLI's tasks:)" in result.stderr
    manifest.write_text(WORKER)
    assert "no task named" not in CliRunner().invoke(app, ["validate", str(manifest)]).stderr
