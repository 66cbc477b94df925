"""The one door every generated alert goes through: its rule, its annotations, its test case.

An `Alert` is what a renderer knows about one alert: name, expression, `for`, every label, and a
summary and description in plain words, where `VALUE` marks the spot for the alert's current
value. `rule()` turns it into the rules.yaml entry, `expected()` into the promtool expectation of
the same alert at a known value. Both render the annotations through one overridable template,
`alert_annotations.yaml.j2`, so every alert carries the same four annotations:

- `summary` and `description`, with `$value` printed for humans (`Value` says how: a burn rate
  as `21.6`, a rate through `humanize`, ...). Prometheus expands annotations as Go templates, so
  manifest text is escaped (`{{` becomes `{{ "{{" }}`) and only obskit's own action remains;
- `runbook_url`, when the manifest sets one;
- `dashboard_url`, when the manifest sets `grafana_url`: the service's dashboard opened on the
  panel the alert is about (`?viewPanel=<id>`, ids from the dashboard layout), so each SLO's
  link differs.

An alert about one of several things its expression keeps apart (a breaker, an operation) names
that label as its `subject`; `SUBJECT` in its text prints `{{ $labels.<subject> }}`.

`expected()` formats the value the way Prometheus's template functions do (Go's `%g` and
`%.1f`, `humanize`, `humanizePercentage`, `humanizeDuration`), so promtool can compare the
expanded annotations byte for byte.

Every alert name starts with `Obskit`: the generated Alertmanager routes select obskit's alerts
by that prefix. `INHIBIT` lists which alert suppresses which (see the alertmanager renderer).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from obskit.generator.model import (
    ALERT_PAGE,
    ALERT_TICKET,
    LABEL_SERVICE,
    LABEL_SLO,
    Duration,
    Service,
)
from obskit.generator.render import grafana
from obskit.generator.render.templates import Templates

TEMPLATE: Final = "alert_annotations.yaml.j2"
PREFIX: Final = "Obskit"
"""Every generated alert name starts with it (the Alertmanager routes select on it)."""
VALUE: Final = "\x00value\x00"
"""Placeholder for the alert's value in `Alert.summary` / `Alert.description` (a NUL never
appears in manifest text: the loader rejects control characters)."""
SUBJECT: Final = "\x00subject\x00"
"""Placeholder for the value of the alert's subject label (`Alert.subject`, e.g. `breaker`): a
label its expression keeps from the series, printed as `{{ $labels.<name> }}` in rules.yaml."""
ANNOTATION_KEYS: Final = ("summary", "description", "runbook_url", "dashboard_url")
INHIBIT: Final[tuple[tuple[str, str, tuple[str, ...]], ...]] = (
    (ALERT_PAGE, ALERT_TICKET, (LABEL_SERVICE, LABEL_SLO)),
)
"""(source alert, target alert, labels that must be equal): a firing source suppresses the
target in Alertmanager. A page burning an SLO makes its ticket redundant."""


def go_literal(text: str) -> str:
    """Prometheus template source that expands to exactly `text`.

    Prometheus expands alert annotations as Go templates, so a manifest's `{{` (in a
    description or URL) would be an action: a rules file promtool rejects, or text that changes
    when the alert fires. Each `{{` becomes the action `{{ "{{" }}`, which prints it.
    """
    return text.replace("{{", '{{ "{{" }}')


# --------------------------------------------------------------------------- Go formatting


def go_g(value: float, precision: int) -> str:
    """Go's `fmt.Sprintf("%.<precision>g", value)` (same rule as C's and Python's %g)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.{precision}g}"


def humanize(value: float) -> str:
    """Prometheus's `humanize`: 4 significant digits with an SI prefix (1.5k, 250m)."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return go_g(value, 4)
    prefix = ""
    if abs(value) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(value) < 1000:
                break
            prefix = p
            value /= 1000
        return go_g(value, 4) + prefix
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix = p
        value *= 1000
    return go_g(value, 4) + prefix


def humanize_percentage(value: float) -> str:
    """Prometheus's `humanizePercentage`: 0.0216 -> 2.16%."""
    return go_g(value * 100, 4) + "%"


def _quo(a: int, b: int) -> int:
    """Go's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _rem(a: int, b: int) -> int:
    """Go's `%` (the sign of the dividend)."""
    return a - b * _quo(a, b)


def humanize_duration(value: float) -> str:
    """Prometheus's `humanizeDuration`: seconds as `1d 2h 3m 4s`, or `1.5s`, `250ms`."""
    if math.isnan(value) or math.isinf(value):
        return go_g(value, 4)
    if value == 0:
        return go_g(value, 4) + "s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        value = abs(value)
        whole = int(value) if value < 2**63 else -(2**63)  # Go int64() overflow (amd64)
        seconds, minutes = _rem(whole, 60), _rem(_quo(whole, 60), 60)
        hours, days = _rem(_quo(whole, 3600), 24), _quo(whole, 86400)
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{go_g(value, 4)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix = p
        value *= 1000
    return f"{go_g(value, 4)}{prefix}s"


class Value(Enum):
    """How an alert shows its current value: (Go template action, the same in Python)."""

    BURN_RATE = ('{{ printf "%.1f" $value }}', "burn rate")
    RATE = ("{{ $value | humanize }}", "humanize")
    RATIO = ("{{ $value | humanizePercentage }}", "percentage")
    DURATION = ("{{ $value | humanizeDuration }}", "duration")
    COUNT = ('{{ printf "%.0f" $value }}', "count")

    @property
    def action(self) -> str:
        """The Go template action Prometheus expands."""
        return self.value[0]

    def format(self, value: float) -> str:
        """What the action prints for `value`."""
        return _FORMATS[self](value)


_FORMATS: Final[dict[Value, Callable[[float], str]]] = {
    Value.BURN_RATE: lambda v: f"{v:.1f}",
    Value.RATE: humanize,
    Value.RATIO: humanize_percentage,
    Value.DURATION: humanize_duration,
    Value.COUNT: lambda v: f"{v:.0f}",
}


def stable(value_format: Value, value: float, tolerance: float = 1e-9) -> bool:
    """Whether `value` prints the same under a relative error of `tolerance` (Prometheus's float
    arithmetic may differ from obskit's exact numbers in the last bits)."""
    text = value_format.format(value)
    return all(value_format.format(value * (1 + d)) == text for d in (tolerance, -tolerance))


# --------------------------------------------------------------------------- alerts


@dataclass(frozen=True)
class Alert:
    """One alert as a renderer describes it (see the module docstring)."""

    name: str
    expr: str
    for_: Duration
    labels: Mapping[str, str]
    """Every label of the alert (service, severity, team, slo, ...)."""
    summary: str
    description: str
    value: Value | None = None
    """How `VALUE` in summary/description prints `$value`; None when they do not show it."""
    panel: str | None = None
    """`grafana.Panel.key` of the panel `dashboard_url` opens; None: the dashboard's top."""
    slo: Mapping[str, Any] | None = None
    """Extra template context for SLO alerts (`slo` in the template)."""
    subject: str | None = None
    """The label naming what the alert is about, kept from the series by its expression (e.g.
    `breaker`), which `SUBJECT` in summary/description prints; None when there is none."""

    def __post_init__(self) -> None:
        if not self.name.startswith(PREFIX):
            raise ValueError(f"alert name {self.name!r} must start with {PREFIX!r}")
        uses_value = VALUE in self.summary or VALUE in self.description
        if uses_value != (self.value is not None):
            raise ValueError(f"{self.name}: VALUE placeholder and `value` must come together")
        uses_subject = SUBJECT in self.summary or SUBJECT in self.description
        if uses_subject != (self.subject is not None):
            raise ValueError(f"{self.name}: SUBJECT placeholder and `subject` must come together")


@dataclass
class Context:
    """Per-service rendering state shared by the rules, their tests and the dashboard: the
    templates, the dashboard's rows and panel ids, the alerts built so far, a render cache."""

    service: Service
    templates: Templates
    rows: list[grafana.Row]
    panels: Mapping[str, int]
    cache: dict[str, dict[str, str]] = field(default_factory=dict)
    alerts: dict[Hashable, Alert] = field(default_factory=dict)
    memoized: set[int] = field(default_factory=set)
    """ids of the alerts in `alerts`: they live as long as the context, so an id names one."""

    def alert(self, key: Hashable, build: Callable[[], Alert]) -> Alert:
        """The alert known by `key`, built once per service (rules and tests share it)."""
        found = self.alerts.get(key)
        if found is None:
            found = build()
            self.alerts[key] = found
            self.memoized.add(id(found))
        return found

    def dashboard_url(self, panel: str | None) -> str | None:
        base = self.service.dashboard_url
        if base is None:
            return None
        if panel is None:
            return base
        if panel not in self.panels:
            raise KeyError(f"no dashboard panel with key {panel!r} for {self.service.name}")
        return f"{base}?viewPanel={self.panels[panel]}"


def context(service: Service, templates: Templates) -> Context:
    rows = grafana.rows(service)
    return Context(service, templates, rows, grafana.panel_ids(service, rows))


def _text(text: str, value_text: str, subject_text: str, expanded: bool) -> str:
    if not expanded:
        text = go_literal(text)
    return text.replace(VALUE, value_text).replace(SUBJECT, subject_text)


def _optional(text: str | None, expanded: bool) -> str | None:
    return text if expanded or text is None else go_literal(text)


def _escaped(data: Any) -> Any:
    """`data` with every string escaped for Go templates (template context from manifests)."""
    if isinstance(data, str):
        return go_literal(data)
    if isinstance(data, dict):
        return {k: _escaped(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_escaped(v) for v in data]
    return data


def _render(
    ctx: Context, alert: Alert, value_text: str, expanded: bool, subject_text: str = ""
) -> dict[str, str]:
    if not expanded and alert.subject is not None:
        subject_text = "{{ $labels." + alert.subject + " }}"
    template_context = {
        "alert": alert.name,
        "service": ctx.service.name,
        "labels": dict(alert.labels),
        "summary": _text(alert.summary, value_text, subject_text, expanded),
        "description": _text(alert.description, value_text, subject_text, expanded),
        "value": value_text,
        "runbook_url": _optional(ctx.service.runbook_url, expanded),
        "dashboard_url": _optional(ctx.dashboard_url(alert.panel), expanded),
        "slo": None,
    }
    if alert.slo is not None:
        template_context["slo"] = dict(alert.slo) if expanded else _escaped(dict(alert.slo))
    # A memoized alert (ctx.alert) is named by its id, any other by its whole context.
    if id(alert) in ctx.memoized:
        key = f"{id(alert)}\0{value_text}\0{expanded}"
    else:
        key = json.dumps(template_context, sort_keys=True)
    cached = ctx.cache.get(key)
    if cached is None:
        data = ctx.templates.render_yaml_mapping(TEMPLATE, **template_context)
        for name, text in data.items():
            if not isinstance(text, str):
                raise ctx.templates.problem(TEMPLATE, f"annotation {name!r} must be a string")
        if "summary" not in data or "description" not in data:
            raise ctx.templates.problem(
                TEMPLATE, "must render summary and description (every alert carries them)"
            )
        cached = {str(k): v for k, v in data.items()}
        ctx.cache[key] = cached
    return dict(cached)


def rule_annotations(ctx: Context, alert: Alert) -> dict[str, str]:
    """The annotations as written in rules.yaml (Go template source)."""
    return _render(ctx, alert, alert.value.action if alert.value else "", expanded=False)


def expanded_annotations(
    ctx: Context, alert: Alert, value: float | None, subject: str | None = None
) -> dict[str, str]:
    """The annotations as Prometheus shows them while the alert's value is `value` (manifest
    text unescaped, the value printed); `value` is None exactly when the alert shows none, and
    `subject` (the subject label's value) exactly when the alert has a subject."""
    if (value is None) != (alert.value is None):
        raise ValueError(f"{alert.name}: give the value its annotations show (and only then)")
    if (subject is None) != (alert.subject is None):
        raise ValueError(f"{alert.name}: give the subject its annotations show (and only then)")
    text = alert.value.format(value) if alert.value is not None and value is not None else ""
    return _render(ctx, alert, text, expanded=True, subject_text=subject or "")


def rule(ctx: Context, alert: Alert) -> dict[str, Any]:
    """The rules.yaml entry of `alert` (no `for` when it is zero: the alert fires at once)."""
    entry: dict[str, Any] = {"alert": alert.name, "expr": alert.expr}
    if alert.for_.seconds:
        entry["for"] = str(alert.for_)
    entry["labels"] = dict(alert.labels)
    entry["annotations"] = rule_annotations(ctx, alert)
    return entry


def expected(
    ctx: Context,
    alert: Alert,
    value: float | None = None,
    *,
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The promtool `exp_alerts` entry of `alert` firing with `value`; `extra_labels` are the
    ones its expression adds (e.g. `absent()` keeps the selector's equality labels)."""
    extra = dict(extra_labels or {})
    subject = extra[alert.subject] if alert.subject is not None else None
    return {
        "exp_labels": {**extra, **alert.labels},
        "exp_annotations": expanded_annotations(ctx, alert, value, subject),
    }
