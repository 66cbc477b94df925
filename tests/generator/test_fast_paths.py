"""The fast writers produce exactly the bytes of the reference serializers.

`output.dump_yaml` writes through `blockyaml` when it can and PyYAML otherwise; `dump_json`
through orjson unless a number would differ. Whichever path runs, the bytes must be those of
`pyyaml_dump` / `pyjson_dump`: checked on everything the generator writes for awkward manifests
and on random documents, and the style analysis against PyYAML's own on random text.
"""

from __future__ import annotations

import json
import string
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yaml.emitter import Emitter

from obskit.generator.manifest import loads
from obskit.generator.render import alertmanager, blockyaml, grafana, output, prometheus, promtool
from obskit.generator.render.templates import Templates, simple_mapping

AWKWARD = """\
services:
  - service: odd
    team: "Équipe \\"Ops\\" #1: night"
    runbook_url: https://runbooks.example.com/odd?x=1#frag
    grafana_url: https://grafana.example.com/base/
    selector: 'job="odd", env=~"prod|staging"'
    alerting:
      labels: {tier: "1", note: "yes", empty: ""}
      page: {labels: {severity: "P1 - wake up"}}
      ticket: {labels: {severity: "null"}}
      receivers: {page: odd.pager, ticket: odd_tickets}
    slos:
      - name: availability
        objective: 99.95
        window: 4w
        description: "Ünïcödé — 'quotes' \\"double\\" {{ braces }} a: b # c\\ttab"
        sli: {availability: {}}
        routes: ["/a b", "/x/{id}", "- dash", "'q'", "/ü", "trailing "]
      - name: lat-2
        objective: 97.5
        window: 7d
        description: "  leading spaces, a colon: and a hash #"
        sli: {latency: {threshold: 2.5}}
  - service: plain
    slos:
      - {name: a, objective: 90, window: 3d, sli: {availability: {}}}
    dependencies: ["x:1", "[::1]:8080"]
    links: {logs: true, traces: true}
"""


def _documents() -> list[Any]:
    templates = Templates()
    docs: list[Any] = []
    for service in loads(AWKWARD, "awkward.yaml"):
        rules = prometheus.rule_groups(service, templates)
        docs += [
            rules,
            promtool.rule_tests(service, templates, "rules.yaml", rules),
            alertmanager.part(service, rules),
        ]
    return docs


def test_generated_documents_are_written_byte_for_byte_as_pyyaml_writes_them() -> None:
    documents = _documents()
    fast = [blockyaml.dump(d) for d in documents]
    assert fast.count(None) >= 1  # the tab in a description needs PyYAML's double quotes
    assert sum(f is not None for f in fast) >= 4
    for document, text in zip(documents, fast, strict=True):
        if text is not None:
            assert text == output.pyyaml_dump(document)
        header = output.HEADER.format(service="s")
        assert output.dump_yaml(document, "s") == header + output.pyyaml_dump(document)


def test_dashboards_are_written_byte_for_byte_as_json_writes_them() -> None:
    for service in loads(AWKWARD, "awkward.yaml"):
        board = grafana.dashboard(service, Templates())
        assert output.dump_json(board) == output.pyjson_dump(board)


_analyzer = Emitter(None, allow_unicode=True)  # type: ignore[arg-type]
_ascii = st.text(alphabet=string.printable + " -:#'\"", max_size=12)
_TRICKY = [
    "yes", "null", "~", "1.0", "1e3", "0x1F", "=", "<<", "2001-12-14", ".nan", "- a", "a: b",
    "a #b", "---x", "...", "\na", " a\nb", "a\n", "a\n\n", "a\nb\n\nc", "a\n b", "a \nb",
    "1_000", "+1", ".5", "?", ":", "-", "a:", "é", "a\tb",
]  # fmt: skip
_text = st.one_of(_ascii, st.text(max_size=8), st.sampled_from(_TRICKY))


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(_text.filter(bool))
def test_the_style_analysis_agrees_with_pyyaml(text: str) -> None:
    analysis = _analyzer.analyze_scalar(text)
    expected = (analysis.allow_block_plain, analysis.allow_single_quoted, analysis.allow_block)
    assert blockyaml._styles(text) == expected


_scalar = st.one_of(
    _text, st.integers(), st.floats(), st.booleans(), st.none(), st.integers(-(2**70), 2**70)
)
_tree = st.recursive(
    _scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_text, children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(_text, _tree, min_size=1, max_size=5))
def test_random_documents_are_written_as_pyyaml_writes_them(document: dict[Any, Any]) -> None:
    text = blockyaml.dump(document)
    if text is not None:
        assert text == output.pyyaml_dump(document)


_json_scalar = st.one_of(
    st.text(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),  # json writes NaN/Infinity: not JSON
    st.booleans(),
    st.none(),
)
_json_tree = st.recursive(
    _json_scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_json_tree)
def test_random_json_documents_are_written_as_json_writes_them(document: Any) -> None:
    assert output.dump_json(document) == output.pyjson_dump(document)
    assert json.loads(output.dump_json(document)) == document


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), st.text(), max_size=4))
def test_annotation_documents_are_read_as_the_yaml_parser_reads_them(
    values: dict[str, str],
) -> None:
    """The fast reader of `key: "json"` lines gives what PyYAML gives, or steps aside."""
    text = "".join(f"{k}: {json.dumps(v, ensure_ascii=False)}\n" for k, v in values.items())
    fast = simple_mapping(text)
    if fast is not None:
        assert fast == yaml.safe_load(text)
