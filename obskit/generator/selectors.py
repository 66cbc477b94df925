"""PromQL label-matcher lists (a manifest's `selector`), read with promql-parser.

Shared by the manifest validation and the renderers, so both agree on what a selector means.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

import promql_parser


def quote(value: str) -> str:
    return json.dumps(value)


@lru_cache(maxsize=4096)
def _matchers(selector_text: str) -> tuple[promql_parser.Matcher, ...]:
    """The matchers of a selector (parsed once per text: the renderers ask for every series)."""
    node = promql_parser.parse("{" + selector_text + "}")
    if not isinstance(node, promql_parser.VectorSelector):
        raise ValueError("not a list of label matchers")
    return tuple(node.matchers.matchers)


def matchers(selector_text: str) -> tuple[promql_parser.Matcher, ...]:
    """The label matchers of a selector (`job="x", env=~"a|b"`), parsed by promql-parser."""
    return _matchers(selector_text)


def equality_labels(selector_text: str) -> dict[str, str]:
    """Labels fixed by `=` matchers (what `absent()` puts on its result)."""
    return {
        m.name: m.value for m in _matchers(selector_text) if m.op == promql_parser.MatchOp.Equal
    }


def example_labels(selector_text: str) -> dict[str, str]:
    """Labels a synthetic series needs to match `selector_text` (for promtool unit tests).

    `=` gives its value; `=~` its first alternative when that matches (nothing when the regex
    matches the empty value); `!=` and `!~` are met by leaving the label out, except `!=""`.
    Raises ValueError when no simple value exists.
    """
    labels: dict[str, str] = {}
    for m in _matchers(selector_text):
        if m.op == promql_parser.MatchOp.Equal:
            labels[m.name] = m.value
        elif m.op == promql_parser.MatchOp.Re:
            pattern = re.compile(f"(?:{m.value})")
            if pattern.fullmatch(""):
                continue
            candidate = m.value.split("|", 1)[0].strip("^$()")
            if not pattern.fullmatch(candidate):
                raise ValueError(
                    f"cannot derive a sample value for {m.name}=~{quote(m.value)}: start the "
                    'regex with a literal alternative (e.g. "prod|staging")'
                )
            labels[m.name] = candidate
        elif m.op == promql_parser.MatchOp.NotEqual and m.value == "":
            labels[m.name] = "obskit-test"
        elif m.op == promql_parser.MatchOp.NotRe and re.fullmatch(f"(?:{m.value})", ""):
            raise ValueError(f"cannot derive a sample value for {m.name}!~{quote(m.value)}")
    return labels
