"""Manifests: valid ones load; every kind of bad input gets one clear `file:line` message."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from obskit import semconv
from obskit.generator.cli import app
from obskit.generator.manifest import (
    ManifestError,
    Problem,
    discover,
    json_schema,
    load,
    load_all,
    loads,
)
from obskit.generator.model import Duration
from tests.generator.conftest import EXAMPLES, MINIMAL, service_of


def problems(text: str) -> list[Problem]:
    with pytest.raises(ManifestError) as info:
        loads(text, "m.yaml")
    return list(info.value.problems)


def one_problem(text: str) -> Problem:
    [problem] = problems(text)
    return problem


def test_a_minimal_manifest_gets_the_documented_defaults() -> None:
    service = service_of(MINIMAL)
    assert service.selector == 'job="checkout"'
    [slo] = service.slos
    assert (slo.objective, slo.window, slo.kind, slo.routes) == (
        Decimal("99.9"),
        Duration.parse("30d"),
        "availability",
        (),
    )
    assert dict(service.policy("page").labels) == {"severity": "critical"}
    assert dict(service.policy("ticket").labels) == {"severity": "warning"}
    assert service.buckets == semconv.DEFAULT_BUCKETS


def test_the_issue_example_manifest_loads_with_team_labels_and_overrides() -> None:
    text = """\
service: checkout
team: payments
selector: 'job="checkout"'
runbook_url: https://runbooks.example.com/checkout
slos:
  - name: availability
    objective: 99.9
    window: 30d
    description: Orders succeed
    sli:
      availability: {}
    routes: ["/orders", "/orders/{order_id}"]
  - name: latency
    objective: 99
    sli:
      latency: {threshold: 0.25}
alerting:
  page: {labels: {severity: critical}}
  ticket: {labels: {severity: warning, channel: slack}}
dependencies: ["payments:8080"]
"""
    service = service_of(text)
    assert [s.name for s in service.slos] == ["availability", "latency"]
    assert service.slos[0].routes == ("/orders", "/orders/{order_id}")
    assert service.slos[1].threshold == 0.25
    assert dict(service.policy("ticket").labels) == {
        "channel": "slack",
        "severity": "warning",
        "team": "payments",
    }
    assert [(d.name, d.address) for d in service.dependencies] == [("payments:8080",) * 2]


def test_several_services_in_one_file_load_in_order() -> None:
    text = "services:\n  - service: a\n  - service: b\n"
    assert [s.name for s in loads(text, "m.yaml")] == ["a", "b"]


def test_the_example_manifests_are_found_in_the_examples_directory() -> None:
    files = list(discover([EXAMPLES]))
    assert [f.relative_to(EXAMPLES).as_posix() for f in files] == [
        "inventory/obskit.yaml",
        "payments/obskit.yaml",
        "shop/obskit.yaml",
        "worker/obskit.yaml",
    ]
    services = load_all([EXAMPLES])
    assert [s.name for s in services] == ["inventory", "payments", "shop", "worker"]
    shop = services[2]
    assert len(shop.slos) >= 2 and [d.address for d in shop.dependencies] == ["localhost"]


def test_unknown_key_suggests_the_closest_known_key_at_its_line() -> None:
    text = MINIMAL.replace("    objective: 99.9\n", "    objective: 99.9\n    windw: 30d\n")
    problem = one_problem(text)
    assert problem.line == 5
    assert "unknown key 'windw'" in problem.message
    assert "did you mean 'window'?" in problem.message
    assert str(problem).startswith("m.yaml:5: ")


def test_a_misspelt_required_key_is_one_problem_not_two() -> None:
    """`objectiv: 99` gets the did-you-mean only, not also "missing required key objective"."""
    problem = one_problem(MINIMAL.replace("objective: 99.9", "objectiv: 99.9"))
    assert problem.line == 4 and "did you mean 'objective'?" in problem.message


def test_unknown_top_level_key_suggests_too() -> None:
    problem = one_problem("service: a\nrunbok_url: x\n")
    assert (problem.line, "did you mean 'runbook_url'?" in problem.message) == (2, True)


@pytest.mark.parametrize(
    ("replace", "by", "line", "fragment"),
    [
        ("objective: 99.9", "objective: 100", 4, "strictly between 0 and 100"),
        ("objective: 99.9", "objective: 0", 4, "strictly between 0 and 100"),
        ("objective: 99.9", "objective: '99.9'", 4, "valid number"),
        ("objective: 99.9", "objective: 99.9\n    window: 30 days", 5, "cannot parse duration"),
        ("objective: 99.9", "objective: 99.9\n    window: 1d", 5, "between 3d and 365d"),
        (
            "service: checkout",
            "service: Checkout",
            1,
            "should match pattern '^[a-z][a-z0-9_-]*$', got 'Checkout'",
        ),
        (
            "availability: {}",
            "availability: {}\n      latency: {threshold: 0.25}",
            5,
            "exactly one",
        ),
        ("- name: availability", "- name: 7", 3, "valid string"),
        (
            "service: checkout",
            "service: checkout\nrunbook_url: runbooks/x",
            2,
            "runbook_url: 'runbooks/x' is not an http(s) URL",
        ),
    ],
)
def test_wrong_values_are_reported_at_their_line(
    replace: str, by: str, line: int, fragment: str
) -> None:
    problem = one_problem(MINIMAL.replace(replace, by))
    assert problem.line == line, problem
    assert fragment in problem.message, problem


def test_missing_required_keys_are_named() -> None:
    problem = one_problem("service: a\nslos:\n  - name: x\n    sli: {availability: {}}\n")
    assert problem.message == "missing required key 'slos[0].objective'"
    assert problem.line == 3


def test_latency_threshold_that_is_not_a_bucket_lists_the_buckets() -> None:
    text = MINIMAL.replace("availability: {}", "latency: {threshold: 0.3}")
    problem = one_problem(text)
    assert problem.line == 6
    assert "0.3 is not a histogram bucket boundary" in problem.message
    assert "0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5" in problem.message


def test_declared_custom_buckets_make_their_bounds_valid_thresholds() -> None:
    text = (
        MINIMAL.replace("availability: {}", "latency: {threshold: 0.3}")
        + "buckets: [0.1, 0.3, 1]\n"
    )
    assert service_of(text).slos[0].threshold == 0.3


def test_duplicate_slo_names_are_reported_at_the_second_one() -> None:
    text = MINIMAL + "  - name: availability\n    objective: 99\n    sli: {availability: {}}\n"
    problem = one_problem(text)
    assert (problem.line, "duplicate SLO name 'availability'" in problem.message) == (7, True)


def test_duplicate_service_names_in_one_file_and_across_files(tmp_path: Path) -> None:
    problem = one_problem("services:\n  - service: a\n  - service: a\n")
    assert (problem.line, "duplicate service name 'a'" in problem.message) == (3, True)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "obskit.yaml").write_text(MINIMAL)
    (tmp_path / "two" / "obskit.yaml").write_text(MINIMAL)
    with pytest.raises(ManifestError, match="duplicate service name 'checkout'"):
        load_all([tmp_path])


def test_a_duplicate_across_files_names_both_lines(tmp_path: Path) -> None:
    (tmp_path / "a.obskit.yaml").write_text("# first\nservice: checkout\n")
    (tmp_path / "b.obskit.yaml").write_text("services:\n  - service: shop\n  - service: checkout\n")
    with pytest.raises(ManifestError) as caught:
        load_all([tmp_path])
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'b.obskit.yaml'}:3: duplicate service name 'checkout' "
        f"(also in {tmp_path / 'a.obskit.yaml'}:2)"
    ]


def test_a_manifest_named_twice_is_loaded_once(tmp_path: Path) -> None:
    """`obskit generate examples/ examples/shop/obskit.yaml` is not a duplicate service."""
    (tmp_path / "obskit.yaml").write_text(MINIMAL)
    services = load_all([tmp_path, tmp_path / "obskit.yaml", tmp_path / "." / "obskit.yaml"])
    assert [s.name for s in services] == ["checkout"]


def test_duplicate_yaml_keys_are_not_silently_overwritten() -> None:
    problem = one_problem("service: a\nservice: b\n")
    assert (problem.line, problem.message) == (2, "duplicate key 'service'")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "file is empty"),
        ("# only a comment\n", 1, "file is empty"),
        ("service: [a\n", 2, "invalid YAML"),
        ("service: a\n  bad indent: x\n", 2, "invalid YAML"),
        ("- a\n- b\n", 1, "expected a mapping"),
        ("just text\n", 1, "expected a mapping"),
    ],
)
def test_empty_files_and_invalid_yaml_are_one_problem_with_a_line(
    text: str, line: int, fragment: str
) -> None:
    problem = one_problem(text)
    assert problem.line == line and fragment in problem.message, problem


def test_a_missing_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"nope\.yaml: no such file"):
        load(tmp_path / "nope.yaml")


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = "service: a\nteem: x\nslos:\n  - name: x\n    objective: 200\n    sli: {}\n"
    lines = [p.line for p in problems(text)]
    assert lines == [2, 5, 6]


MIXED = """\
  - service: a
    slos:
      - {name: x, objective: 200, sli: {availability: {}}}
      - {name: x, objective: 99, sli: {latency: {threshold: 0.3}}}
      - {name: y, objective: 99, sli: {latency: {threshold: 0.25}}}
  - service: b
    buckets: [0.1, 0.3]
    slos:
      - {name: z, objective: 99, window: 1x, sli: {latency: {threshold: 0.25}}}
      - {name: w, objective: 99, sli: {latency: {threshold: 0.3}}}
"""


@pytest.mark.parametrize("shape", ["services", "service"])
def test_structural_problems_do_not_hide_duplicate_names_and_non_bucket_thresholds(
    shape: str,
) -> None:
    """An objective of 200 elsewhere in the file does not postpone the duplicate SLO name and
    the thresholds that are not buckets (of the default or the declared buckets) to a second run."""
    if shape == "services":
        text, offset = "services:\n" + MIXED, 1
    else:  # the first service alone, as a single-service file
        text, offset = "\n".join(line[4:] for line in MIXED.splitlines()[:5]) + "\n", 0
    found = [(p.line, p.message) for p in problems(text)]
    expected = [
        (3 + offset, "strictly between 0 and 100"),
        (4 + offset, "duplicate SLO name 'x' (also slos[0])"),
        (4 + offset, "latency threshold 0.3 is not a histogram bucket boundary; obskit's default"),
    ]
    if shape == "services":
        expected += [
            (9 + offset, "cannot parse duration '1x'"),
            (
                9 + offset,
                "latency threshold 0.25 is not a histogram bucket boundary; the manifest's",
            ),
        ]
    assert len(found) == len(expected), found
    for (line, message), (want_line, fragment) in zip(found, expected, strict=True):
        assert line == want_line and fragment in message, (line, message)


def test_bad_selector_and_reserved_alert_labels_are_rejected() -> None:
    text = MINIMAL + "selector: 'job=\"a'\nalerting:\n  page: {labels: {slo: x}}\n"
    messages = [p.message for p in problems(text)]
    assert any("selector is not valid PromQL" in m for m in messages)
    assert any("label 'slo' is set by obskit" in m for m in messages)


def test_json_schema_describes_both_file_shapes() -> None:
    schema = json_schema()
    assert {"ServiceSpec", "ServicesFile", "SLOSpec"} <= schema["$defs"].keys()
    slo = schema["$defs"]["SLOSpec"]
    assert slo["additionalProperties"] is False
    assert {"name", "objective", "window", "sli", "routes"} <= slo["properties"].keys()


SCHEMA_BAD = {
    "objective 100": "service: a\nslos: [{name: x, objective: 100, sli: {availability: {}}}]\n",
    "objective 0": "service: a\nslos: [{name: x, objective: 0, sli: {availability: {}}}]\n",
    "window": "service: a\nslos: [{name: x, objective: 9, window: 3x, sli: {availability: {}}}]\n",
    "for": "service: a\nalerting: {page: {for: 2 minutes}}\n",
    "no sli": "service: a\nslos: [{name: x, objective: 99, sli: {}}]\n",
    "two slis": (
        "service: a\nslos: [{name: x, objective: 99, "
        "sli: {availability: {}, latency: {threshold: 0.25}}}]\n"
    ),
    "unknown key": "service: a\nteem: b\n",
    "bad name": "service: Checkout\n",
    "services empty": "services: []\n",
}


def test_json_schema_is_valid_and_agrees_with_the_loader() -> None:
    """What `obskit schema` prints is a valid draft 2020-12 schema that an editor can use: it
    accepts every manifest obskit accepts here and flags the mistakes it can express."""
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good = [p.read_text() for p in sorted(EXAMPLES.rglob("obskit.yaml"))]
    good.append(CliRunner().invoke(app, ["new", "checkout", "--team", "t"]).stdout)
    good.append(MINIMAL + "alerting: {page: {for: 5m}}\n")
    for text in good:
        loads(text)
        assert not list(validator.iter_errors(yaml.safe_load(text))), text
    for label, text in SCHEMA_BAD.items():
        with pytest.raises(ManifestError):
            loads(text)
        assert list(validator.iter_errors(yaml.safe_load(text))), label


# --- property: whatever the input, the loader succeeds or reports file:line problems ---

KEYS = [
    "service",
    "team",
    "selector",
    "slos",
    "alerting",
    "dependencies",
    "buckets",
    "links",
    "name",
    "objective",
    "window",
    "sli",
    "availability",
    "latency",
    "threshold",
    "routes",
    "page",
    "ticket",
    "labels",
    "for",
    "services",
    "runbook_url",
    "windw",
    "x",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["a", "checkout", "99.9", "30d", "1h", "0.25", 'job="a"', "{x}", "", "A b"]),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=4),
    ),
    max_leaves=12,
)
manifests = st.one_of(
    st.fixed_dictionaries(
        {"service": st.sampled_from(["a", "b-1", "Bad", 3])},
        optional={
            "slos": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "name": st.sampled_from(["x", "y", "x"]),
                        "objective": st.one_of(st.floats(-1, 101), st.just("99")),
                        "window": st.sampled_from(["30d", "4w", "1d", "x"]),
                        "sli": st.one_of(
                            st.just({"availability": {}}),
                            st.fixed_dictionaries(
                                {"latency": st.fixed_dictionaries({"threshold": scalars})}
                            ),
                            values,
                        ),
                        "routes": values,
                    },
                ),
                max_size=3,
            ),
            "alerting": values,
            "dependencies": values,
            "buckets": values,
            "x": values,
        },
    ),
    values,
)
LINE_MESSAGE = re.compile(r"^m\.yaml(:\d+)?: \S.*$")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests)
def test_random_manifests_load_or_fail_only_with_file_line_messages(data: object) -> None:
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    try:
        services = loads(text, "m.yaml")
    except ManifestError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert LINE_MESSAGE.match(str(problem).split("\n")[0]), str(problem)
            assert problem.line is None or problem.line >= 1
    else:
        assert all(s.name for s in services)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_random_text_loads_or_fails_only_with_file_line_messages(text: str) -> None:
    try:
        loads(text, "m.yaml")
    except ManifestError as exc:
        assert all(LINE_MESSAGE.match(str(p).split("\n")[0]) for p in exc.problems)


def test_the_documented_manifest_examples_are_valid() -> None:
    """The full example in docs/manifest.md and the minimal one in the README both load."""
    from tests.generator.conftest import ROOT

    docs = (ROOT / "docs" / "manifest.md").read_text()
    section = docs.split("## The manifest", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    [service] = loads(block, "docs/manifest.md")
    assert service.grafana_url and service.logs and service.traces
    assert [slo.name for slo in service.slos] == ["availability", "latency", "payments"]
    worker = docs.split("### Background work", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    [service] = loads(worker, "docs/manifest.md")
    assert [slo.kind for slo in service.slos] == ["processing", "freshness"]
    assert service.background.outboxes == ("orders",)
    readme = (ROOT / "README.md").read_text()
    section = readme.split("A minimal manifest:", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    [service] = loads(block, "README.md")
    assert [slo.name for slo in service.slos] == ["availability", "latency"]
