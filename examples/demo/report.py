"""What the demo prints: plain text sections, one idea each, readable in a terminal or a CI log."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from examples.lab.otlp_receiver import ReceivedSpan
from examples.lab.prometheus import Prometheus
from obskit import semconv

_WIDTH = min(max(shutil.get_terminal_size((100, 24)).columns, 80), 120)
_SPAN_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}

FINDINGS = "findings.json"
"""What the demo showed, as data, in `<out>/findings.json`: tests/e2e/test_demo.py checks it."""
_findings: dict[str, Any] = {}


def record(name: str, data: Any) -> None:
    """Keep the facts behind one printed section (JSON-able) for findings.json. A new demo
    phase records its own name and adds a test of it to tests/e2e/test_demo.py."""
    _findings[name] = data


def write_findings(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / FINDINGS).write_text(json.dumps(_findings, indent=2, sort_keys=True, default=str))


def section(title: str) -> None:
    print()
    print(f"== {title} " + "=" * max(0, _WIDTH - len(title) - 4))


def say(text: str = "") -> None:
    print(text, flush=True)


def table(header: Sequence[str], rows: Iterable[Sequence[str]], indent: str = "  ") -> None:
    rows = [list(map(str, r)) for r in rows]
    if not rows:
        say(indent + "(no data)")
        return
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    say(indent + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    say(indent + "  ".join("-" * w for w in widths))
    for r in rows:
        say(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def fmt_ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value * 100:.2f}%"


def fmt_number(value: float | None, unit: str = "", digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}{unit}"


# -- logs and traces ------------------------------------------------------------------------
def correlated_logs(records: dict[str, list[dict[str, Any]]], correlation_id: str) -> int:
    """Print the log lines of every service that carry correlation_id; return how many."""
    lines: list[tuple[str, str, dict[str, Any]]] = []
    for service, recs in records.items():
        for rec in recs:
            if rec.get(semconv.LOG_CORRELATION_ID) == correlation_id:
                lines.append((str(rec.get(semconv.LOG_TIMESTAMP, "")), service, rec))
    lines.sort(key=lambda t: t[0])
    rows = []
    for ts, service, rec in lines:
        event = str(rec.get(semconv.LOG_EVENT, ""))
        if rec.get(semconv.LOG_LOGGER) == "obskit.access":
            event = f"{rec.get('method')} {rec.get('route')} -> {rec.get('status')}"
        rows.append(
            (
                ts[11:23],
                service,
                str(rec.get(semconv.LOG_LOGGER, ""))[:14],
                event[:38],
                str(rec.get(semconv.LOG_TRACE_ID, "-")),
                str(rec.get(semconv.LOG_SPAN_ID, "-")),
            )
        )
    if rows:
        table(("time", "service", "logger", "event", "trace_id", "span_id"), rows)
        say()
        say("  one of them as written to the log (JSON, one line per event):")
        say("  " + json.dumps(lines[-1][2], separators=(",", ":")))
    return len(lines)


CLIENT_ATTRIBUTES = (semconv.HTTP_RESEND_COUNT, "http.response.status_code")
"""Span attributes worth showing in a retried request's trace."""


def trace_tree(
    spans: Sequence[ReceivedSpan], attributes: Sequence[str] = (), record_as: str = "trace"
) -> None:
    """Print the spans of one trace as a tree (parent before children), with `attributes`;
    record them as `record_as`."""
    record(
        record_as,
        [
            {
                "trace_id": s.trace_id,
                "span_id": s.span_id,
                "parent_span_id": s.parent_span_id,
                "name": s.name,
                "kind": _SPAN_KINDS.get(s.kind, str(s.kind)),
                "service": s.resource.get("service.name"),
                **{name: s.attributes[name] for name in attributes if name in s.attributes},
            }
            for s in spans
        ],
    )
    by_parent: dict[str, list[ReceivedSpan]] = {}
    ids = {s.span_id for s in spans}
    for s in sorted(spans, key=lambda s: s.start_time_unix_nano):
        parent = s.parent_span_id if s.parent_span_id in ids else ""
        by_parent.setdefault(parent, []).append(s)

    def walk(parent: str, depth: int) -> None:
        for s in by_parent.get(parent, []):
            ms = (s.end_time_unix_nano - s.start_time_unix_nano) / 1e6
            service = s.resource.get("service.name", "?")
            kind = _SPAN_KINDS.get(s.kind, str(s.kind))
            shown = "".join(
                f" {name}={s.attributes[name]}" for name in attributes if name in s.attributes
            )
            say(
                f"  {'  ' * depth}{'└─ ' if depth else ''}{service}: {s.name} [{kind}] "
                f"span_id={s.span_id} parent={s.parent_span_id or '-'} {ms:.1f} ms{shown}"
            )
            walk(s.span_id, depth + 1)

    walk("", 0)


def breaker_transitions(records: Sequence[dict[str, Any]]) -> None:
    """The circuit_breaker_state_changed lines of one service's log, in order."""
    rows = [
        (
            str(r.get(semconv.LOG_TIMESTAMP, ""))[11:23],
            str(r.get("level", "")),
            str(r.get("breaker", "")),
            f"{r.get('from_state')} -> {r.get('to_state')}",
        )
        for r in records
        if r.get(semconv.LOG_EVENT) == semconv.EVENT_BREAKER_STATE_CHANGED
    ]
    table(("time", "level", "breaker", "transition"), rows)
    record(
        "breaker_transitions", [{"level": r[1], "breaker": r[2], "transition": r[3]} for r in rows]
    )


def resilience_alerts(active: Sequence[dict[str, Any]]) -> None:
    """Resilience alerts (breaker open/flapping, retry storm): state, subject, `for:`."""
    rows = [
        (
            str(a["state"]).upper(),
            a["labels"]["alertname"],
            a["labels"].get("breaker") or a["labels"].get("operation", "-"),
            a["labels"].get("dependency", "-"),
            a["labels"].get("severity", "-"),
        )
        for a in active
    ]
    table(("state", "alert", "breaker / operation", "dependency", "severity"), rows)
    record(
        "resilience_alerts",
        [dict(zip(("state", "alertname", "subject"), r[:3], strict=True)) for r in rows],
    )
    if rows:
        say(
            "  PENDING = the breaker has not been closed since the outage began; with the"
            "\n  default `for: 5m` it would fire if payments stayed down that long."
        )


def retried_trace_id(records: Sequence[dict[str, Any]]) -> str | None:
    """The trace of a request whose call was retried: preferably one that recovered (its
    last client span succeeded), else the first retried one."""
    retried: list[str] = []
    for r in records:
        if r.get(semconv.LOG_EVENT) == semconv.EVENT_RETRY_SCHEDULED and r.get(
            semconv.LOG_TRACE_ID
        ):
            trace_id = str(r[semconv.LOG_TRACE_ID])
            if trace_id not in retried:
                retried.append(trace_id)
    if not retried:
        return None
    created = {
        str(r.get(semconv.LOG_TRACE_ID))
        for r in records
        if r.get(semconv.LOG_LOGGER) == "obskit.access" and r.get("status") == 201
    }
    return next((t for t in retried if t in created), retried[0])


def resilience_metrics(prom: Prometheus, job: str) -> None:
    """Retries, retried calls by outcome and breaker calls by outcome, as Prometheus has them."""
    sel = f'job="{job}"'
    op, err = semconv.LABEL_OPERATION, semconv.LABEL_ERROR_TYPE
    outcome, breaker = semconv.LABEL_OUTCOME, semconv.LABEL_BREAKER
    retries = _by(prom, f"sum by ({op}, {err}) ({semconv.RETRIES}{{{sel}}})", op, err)
    say(f"  {semconv.RETRIES} (retries scheduled), from Prometheus:")
    table(
        ("operation", "error_type", "retries"), [(*k, f"{v:g}") for k, v in sorted(retries.items())]
    )
    calls = _by(prom, f"sum by ({op}, {outcome}) ({semconv.RETRY_CALLS}{{{sel}}})", op, outcome)
    say(f"\n  {semconv.RETRY_CALLS} (logical calls by outcome):")
    table(("operation", "outcome", "calls"), [(*k, f"{v:g}") for k, v in sorted(calls.items())])
    through = _by(
        prom, f"sum by ({breaker}, {outcome}) ({semconv.BREAKER_CALLS}{{{sel}}})", breaker, outcome
    )
    state = _by(prom, f"{semconv.BREAKER_STATE}{{{sel}}} == 1", breaker, semconv.LABEL_STATE)
    now = {k[0]: k[1] for k in state}
    say(f"\n  {semconv.BREAKER_CALLS} (rejected = failed fast, the payments call did not run):")
    table(
        ("breaker", "outcome", "calls", "state now"),
        [(*k, f"{v:g}", now.get(k[0], "-")) for k, v in sorted(through.items())],
    )
    record(
        "resilience",
        {
            "retries": [{op: k[0], err: k[1], "value": v} for k, v in sorted(retries.items())],
            "retry_calls": [
                {op: k[0], outcome: k[1], "value": v} for k, v in sorted(calls.items())
            ],
            "breaker_calls": [
                {breaker: k[0], outcome: k[1], "value": v} for k, v in sorted(through.items())
            ],
            "breaker_state": now,
        },
    )


# -- Prometheus -----------------------------------------------------------------------------
def _by(prom: Prometheus, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(s.labels.get(label, "") for label in labels): s.value for s in prom.query(expr)}


def red(prom: Prometheus, services: Sequence[str], window: str) -> None:
    """Rate, errors, duration per service and route over `window`."""
    count = semconv.HTTP_SERVER_DURATION + semconv.COUNT
    bucket = semconv.HTTP_SERVER_DURATION + semconv.BUCKET
    route, status = semconv.LABEL_ROUTE, semconv.LABEL_STATUS
    rows = []
    facts = []
    for service in services:
        sel = f'job="{service}"'
        rate = _by(prom, f"sum by ({route}) (rate({count}{{{sel}}}[{window}]))", route)
        errors = _by(
            prom,
            f'sum by ({route}) (rate({count}{{{sel},{status}=~"5.."}}[{window}]))',
            route,
        )
        p99 = _by(
            prom,
            f"histogram_quantile(0.99, sum by ({route}, le) (rate({bucket}{{{sel}}}[{window}])))",
            route,
        )
        for (r,), value in sorted(rate.items()):
            if value == 0:
                continue
            err = errors.get((r,), 0.0)
            facts.append(
                {"service": service, "route": r, "rate": value, "error_ratio": err / value}
            )
            rows.append(
                (
                    service,
                    r,
                    fmt_number(value, "/s"),
                    fmt_ratio(err / value if value else None),
                    fmt_number(p99.get((r,), math.nan) * 1000, " ms", 0),
                )
            )
    table(("service", "route", "rate", "errors", "p99"), rows)
    record("red", facts)


def file_list(out: Path) -> None:
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        try:
            shown = path.relative_to(Path.cwd())
        except ValueError:
            shown = path
        say(f"  {shown}")


def slos(prom: Prometheus, manifests: Sequence[Path]) -> None:
    """Error ratios and burn rates per SLO and window, from the generated recording rules."""
    from obskit.generator.manifest import load  # noqa: PLC0415 - the generator's model, for thresholds
    from obskit.generator.model import BURN_RATE_ROWS  # noqa: PLC0415

    burn = prom.query(
        "obskit_slo:error_ratio / on (service, slo) group_left () (1 - obskit_slo:objective)"
    )
    burns = {(s.labels["service"], s.labels["slo"], s.labels["window"]): s.value for s in burn}
    ratios = {
        (s.labels["service"], s.labels["slo"], s.labels["window"]): s.value
        for s in prom.query("obskit_slo:error_ratio")
    }
    budget = {
        (s.labels["service"], s.labels["slo"]): s.value
        for s in prom.query("obskit_slo:error_budget_remaining")
    }
    page = BURN_RATE_ROWS[0]
    rows = []
    facts = []
    for path in manifests:
        for service in load(path):
            for slo in service.slos:
                key = (service.name, slo.name)
                facts.append(
                    {
                        "service": service.name,
                        "slo": slo.name,
                        "error_ratio": {w: ratios.get((*key, w)) for w in ("5m", "1h")},
                        "burn_rate": {w: burns.get((*key, w)) for w in ("5m", "1h")},
                        "budget_remaining": budget.get(key),
                    }
                )
                rows.append(
                    (
                        service.name,
                        slo.name,
                        f"{slo.objective}% / {slo.window}",
                        fmt_ratio(ratios.get((*key, "5m"))),
                        fmt_ratio(ratios.get((*key, "1h"))),
                        fmt_number(burns.get((*key, "5m")), "x", 1),
                        fmt_number(burns.get((*key, "1h")), "x", 1),
                        f"{float(slo.factor(page)):g}x",
                        fmt_ratio(budget.get(key)),
                    )
                )
    table(
        (
            "service",
            "slo",
            "objective",
            "errors 5m",
            "errors 1h",
            "burn 5m",
            "burn 1h",
            "page at",
            "budget left",
        ),
        rows,
    )
    record("slos", facts)
    say(
        "\n  burn rate = error ratio / (1 - objective). The page alert needs the 1h AND the 5m"
        "\n  burn above 'page at' (or the 6h AND the 30m burn above 6x). With under a minute of"
        "\n  data every window holds the same minute: the long windows average the 5-minute rates"
        "\n  recorded so far (healthy ones included), and the SLO window's budget looks spent."
    )


def alerts(active: list[dict[str, Any]], for_note: str = "") -> None:
    record(
        "alerts",
        [{"state": a["state"], **{k: str(v) for k, v in a["labels"].items()}} for a in active],
    )
    if not active:
        say("  none pending or firing")
        return

    def key(a: dict[str, Any]) -> tuple[str, str, str]:
        labels = a["labels"]
        return (labels.get("service", ""), labels.get("slo", ""), labels["alertname"])

    rows = []
    for a in sorted(active, key=key):
        labels = a["labels"]
        rows.append(
            (
                a["state"].upper(),
                labels["alertname"],
                labels.get("service", "-"),
                labels.get("slo", "-"),
                labels.get("severity", "-"),
                str(a.get("activeAt", ""))[11:19],
            )
        )
    table(("state", "alert", "service", "slo", "severity", "active since"), rows)
    if for_note:
        say(for_note)


PAGE_ALERT = "ObskitSLOBurnRatePage"


def page_delivered(notes: Sequence[Any]) -> bool:
    """Whether a firing page reached the pager."""
    return any(n.status == "firing" and n.has(PAGE_ALERT, "firing") for n in notes)


def _card(note: Any) -> None:
    """One notification the way a pager shows it: title, then each alert's text and links."""
    payload = note.payload
    group = ", ".join(f"{k}={v}" for k, v in sorted(payload.get("groupLabels", {}).items()))
    say(f"  [{note.status.upper()}:{len(note.alerts)}] {group}  -> receiver {note.receiver}")
    for alert in note.alerts:
        annotations = alert.get("annotations", {})
        say(f"    {annotations.get('summary', '')}")
        say(f"    {annotations.get('description', '')}")
        for key in ("runbook_url", "dashboard_url"):
            if key in annotations:
                say(f"    {key}: {annotations[key]}")
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.get("labels", {}).items()))
        say(f"    labels: {labels}; since {str(alert.get('startsAt', ''))[11:19]}")


def notifications(notes: Sequence[Any], held: list[dict[str, Any]], out: Path) -> None:
    """What Alertmanager delivered (pager cards, then the first page's JSON as received) and
    what it holds back by inhibition."""
    record(
        "notifications",
        [
            {
                "receiver": n.receiver,
                "status": n.status,
                "alerts": [
                    {"status": a.get("status"), "labels": a.get("labels"), "annotations":
                     a.get("annotations")}
                    for a in n.alerts
                ],
            }
            for n in notes
        ],
    )  # fmt: skip
    record(
        "alertmanager_alerts",
        [
            {
                "labels": a.get("labels", {}),
                "state": a.get("status", {}).get("state"),
                "inhibited_by": a.get("status", {}).get("inhibitedBy", []),
            }
            for a in held
        ],
    )
    (out / "notifications.json").write_text(
        json.dumps([{"receiver": n.receiver, **n.payload} for n in notes], indent=2) + "\n"
    )
    if not notes:
        say("  no notification delivered yet")
        return
    say("  delivered to the pager (webhook), in order:")
    for note in notes:
        _card(note)
    page = next((n for n in notes if n.has(PAGE_ALERT, "firing")), None)
    if page is not None:
        say(f"\n  the first page, as the pager's webhook received it (POST /{page.receiver}):")
        body = json.dumps(page.payload, indent=2, sort_keys=True)
        say("\n".join("    " + line for line in body.splitlines()))
    suppressed = [a for a in held if a.get("status", {}).get("state") == "suppressed"]
    for alert in suppressed:
        labels = alert.get("labels", {})
        say(
            f"  held back: {labels.get('alertname')} {labels.get('service')}/{labels.get('slo')} "
            "is suppressed in Alertmanager (inhibited by the page of the same SLO): "
            "no ticket for what already pages"
        )
    say(f"  (all notifications: {out / 'notifications.json'})")
