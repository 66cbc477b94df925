"""Read a Grafana dashboard's PromQL the way Grafana would run it against Prometheus.

No Grafana is available here, so the demo and the e2e tests do Grafana's part themselves:
collect every target expression of every panel (rows included), resolve the template
variables (query variables through Prometheus's label-values API, like Grafana on dashboard
load), and substitute them and Grafana's built-in interval variables into the expressions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

ALL = "$__all"

# Grafana's built-ins for a "last 1 hour" dashboard with a Prometheus datasource whose
# scrape interval is left at Grafana's default (15s): $__rate_interval = max(4 * 15s, ...).
BUILTINS: Mapping[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

_VAR_RE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]|\$(\w+)")
_LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(?:(.*)\s*,\s*)?(\w+)\s*\)\s*$", re.S)


class LabelSource(Protocol):
    """What variable resolution needs from Prometheus (examples.lab.prometheus.Prometheus)."""

    def label_values(self, label: str, match: Sequence[str] = ()) -> list[str]: ...


@dataclass(frozen=True)
class PanelQuery:
    panel_id: int | None
    panel_title: str
    ref_id: str
    expr: str  # as written in the dashboard, variables unsubstituted


def panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, including those nested in (collapsed) rows, rows themselves excluded."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every PromQL expression of every panel target that is not hidden."""
    out: list[PanelQuery] = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr and not target.get("hide", False):
                out.append(
                    PanelQuery(
                        panel.get("id"), str(panel.get("title", "")), target.get("refId", ""), expr
                    )
                )
    return out


def _regex_escape(value: str) -> str:
    # Grafana escapes regex metacharacters for the Prometheus "regex" format.
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", value)


def _format(values: list[str], multi_or_all: bool, fmt: str | None) -> str:
    if fmt == "raw" or (not multi_or_all and fmt is None):
        return ",".join(values)
    if fmt == "pipe":
        return "|".join(values)
    escaped = [_regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(expr: str, variables: Mapping[str, str | list[str]]) -> str:
    """Replace $var, ${var}, ${var:fmt} and [[var]] as Grafana does for Prometheus queries."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3) or m.group(5)
        fmt = m.group(2) or m.group(4)
        if name in BUILTINS:
            return BUILTINS[name]
        if name not in variables:
            return m.group(0)  # not a variable (e.g. a regex "$" or an unknown name): keep
        value = variables[name]
        if isinstance(value, str):
            return _format([value], False, fmt)
        return _format(value, True, fmt)

    return _VAR_RE.sub(repl, expr)


def _current(var: Mapping[str, Any]) -> list[str]:
    current = var.get("current") or {}
    value = current.get("value")
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def resolve_variables(
    dashboard: Mapping[str, Any], prom: LabelSource
) -> dict[str, str | list[str]]:
    """Resolve every template variable the way Grafana does on dashboard load.

    Query variables (`label_values(...)`) are refreshed from Prometheus; the saved current
    value is kept when still valid, else the first option (or All when includeAll). A value
    that is a list (multi-value or All without allValue) is formatted as a regex by substitute().
    """
    resolved: dict[str, str | list[str]] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        name, kind = var["name"], var.get("type")
        if kind == "datasource":
            continue
        if kind in ("constant", "textbox"):
            resolved[name] = str(var.get("query", "")) or (_current(var) or [""])[0]
            continue
        if kind == "interval":
            resolved[name] = (_current(var) or ["1m"])[0]
            continue
        if kind == "custom":
            options = [o.strip() for o in str(var.get("query", "")).split(",") if o.strip()]
        elif kind == "query":
            query = var.get("query")
            text = query.get("query", "") if isinstance(query, Mapping) else str(query or "")
            options = _query_options(substitute(text, resolved), prom)
            regex = var.get("regex")
            if regex:
                pattern = re.compile(regex.strip("/"))
                options = [o for o in options if pattern.search(o)]
        else:
            continue
        chosen = [v for v in _current(var) if v in options or v == ALL]
        if not chosen:
            chosen = [ALL] if var.get("includeAll") else options[:1]
        if ALL in chosen:
            all_value = var.get("allValue")
            resolved[name] = str(all_value) if all_value else options
        elif var.get("multi"):
            resolved[name] = chosen
        else:
            resolved[name] = chosen[0] if chosen else ""
    return resolved


def _query_options(query: str, prom: LabelSource) -> list[str]:
    m = _LABEL_VALUES_RE.match(query)
    if m is None:
        raise ValueError(f"unsupported template variable query {query!r} (expected label_values)")
    match, label = m.group(1), m.group(2)
    return sorted(prom.label_values(label, [match.strip()] if match else []))
