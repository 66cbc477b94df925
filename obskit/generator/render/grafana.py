"""The Grafana dashboard of one service (classic JSON model, schemaVersion 42).

Panels are data built here; the dashboard shell (title, tags, variables, links) comes from the
`dashboard.json.j2` template and is parsed back. Layout is a fixed grid, 24 units wide, filled
row by row, and panel ids count up from 1 in that order, so the same manifest always gives the
same JSON.

Queries carry no template variables: the only variables are datasources (`$datasource`, and
`$loki` / `$tempo` when the manifest asks for links), used in `datasource` fields, never inside
PromQL. Every query can therefore be run verbatim against Prometheus, and every one returns a
series while the service has traffic: error ratios are built as `(errors or 0 * total) / total`
so they read 0, not "No data", on a healthy service.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote as url_quote

from obskit import semconv
from obskit.generator.model import (
    BURN_RATE_ROWS,
    DASHBOARD_BURN_WINDOWS,
    LABEL_LE,
    RATIO_WINDOWS,
    REC_BUDGET_REMAINING,
    REC_OBJECTIVE,
    SLO,
    Service,
    format_decimal,
)
from obskit.generator.render import promql
from obskit.generator.render.templates import Templates

SCHEMA_VERSION: Final = 42
"""The last classic (v1) dashboard schema version (Grafana 12.x/13.x import it as is)."""
WIDTH: Final = 24
HEIGHT: Final = 8
QUANTILES: Final = (0.5, 0.9, 0.99)
PROMETHEUS_DS: Final = {"type": "prometheus", "uid": "${datasource}"}
THRESHOLD_COLORS: Final = ("yellow", "orange", "red", "dark-red")


@dataclass
class Target:
    expr: str
    legend: str
    exemplar: bool = False

    def to_json(self, ref: str) -> dict[str, Any]:
        return {
            "datasource": PROMETHEUS_DS,
            "editorMode": "code",
            "exemplar": self.exemplar,
            "expr": self.expr,
            "legendFormat": self.legend,
            "range": True,
            "refId": ref,
        }


@dataclass
class Panel:
    title: str
    description: str
    targets: list[Target]
    unit: str
    width: int
    kind: str = "timeseries"
    thresholds: list[tuple[float, str]] = field(default_factory=list)
    minimum: float | None = None
    no_value: str | None = None
    """Text Grafana shows instead of "No data" (a signal this service may never emit)."""
    states: tuple[tuple[int, str, str], ...] = ()
    """state-timeline panels: (value, text, color) mappings."""
    key: str | None = None
    """Names the panel for alerts' `dashboard_url` (`?viewPanel=<id>`); see `panel_ids`."""


@dataclass
class Row:
    title: str
    panels: list[Panel]


def _sum(expr: str, by: tuple[str, ...] = ()) -> str:
    return f"sum by ({', '.join(by)}) ({expr})" if by else f"sum({expr})"


def _rate(metric: str, *matchers: str) -> str:
    return f"rate({metric}{promql.selector(*matchers)}[{promql.RATE}])"


def _ratio(bad: str, total: str) -> str:
    """bad/total that is 0 (not empty) when nothing is bad, and empty without traffic."""
    return f"({bad} or 0 * {total})\n/\n({total} > 0)"


def _quantile(q: float, metric: str, matchers: tuple[str, ...], by: tuple[str, ...]) -> str:
    inner = _sum(_rate(metric, *matchers), (*by, LABEL_LE))
    return f"histogram_quantile({promql.fmt_number(q)}, {inner})"


def _red(
    count: str,
    bucket: str,
    *,
    base: tuple[str, ...],
    bad: tuple[str, ...],
    by: tuple[str, ...],
    what: str,
    quantiles: tuple[float, ...],
) -> list[Panel]:
    legend = "{{" + by[0] + "}}" if by else ""
    total = _sum(_rate(count, *base), by)
    errors = _sum(_rate(count, *base, *bad), by)
    latency = [
        Target(_quantile(q, bucket, base, by), legend or _percentile(q), exemplar=True)
        for q in quantiles
    ]
    quantile_names = ", ".join(_percentile(q) for q in quantiles)
    return [
        Panel(
            f"{what}: request rate",
            "Requests per second, 5m rate.",
            [Target(total, legend or "requests/s")],
            "reqps",
            8,
            minimum=0,
        ),
        Panel(
            f"{what}: error ratio",
            "Share of failed requests, 5m rate.",
            [Target(_ratio(errors, total), legend or "error ratio")],
            "percentunit",
            8,
            minimum=0,
        ),
        Panel(
            f"{what}: latency {quantile_names}",
            "Quantiles from the duration histogram (exemplars link to traces).",
            latency,
            "s",
            8,
            minimum=0,
        ),
    ]


def _percentile(q: float) -> str:
    return "p" + promql.fmt_number(round(q * 100, 6))


def _overview(service: Service) -> list[Row]:
    base = (service.selector,)
    bad = (promql.match(semconv.LABEL_STATUS, promql.SERVER_ERROR_STATUS),)
    count, bucket = promql.SERVER_COUNT, promql.SERVER_BUCKET
    return [
        Row(
            "RED overview",
            _red(count, bucket, base=base, bad=bad, by=(), what="All routes", quantiles=QUANTILES),
        ),
        Row(
            "Per route",
            _red(
                count,
                bucket,
                base=base,
                bad=bad,
                by=(semconv.LABEL_ROUTE,),
                what="By route",
                quantiles=(0.99,),
            ),
        ),
    ]


def _slo_row(service: Service, slo: SLO) -> Row:
    return Row(f"SLO {slo.name}: {slo_summary(slo)}", _slo_panels(service, slo))


def slo_summary(slo: SLO) -> str:
    """`99.9% of requests not answered 5xx on /orders over 30d`."""
    if slo.kind == "availability":
        what = "requests not answered 5xx"
    elif slo.kind == "latency":
        what = f"requests faster than {promql.fmt_number(slo.threshold or 0)}s"
    elif slo.kind == "processing":
        what = "processed messages that succeeded (retries and duplicates aside)"
    elif slo.kind == "freshness":
        what = f"messages waiting at most {promql.fmt_number(slo.threshold or 0)}s in the queue"
    else:
        assert slo.dependency is not None
        what = f"calls to {slo.dependency.name} answered below 500 (breaker rejections fail)"
    scope = [*slo.routes, *slo.tasks, *slo.queues]
    where = f" on {', '.join(scope)}" if scope else ""
    return f"{format_decimal(slo.objective)}% of {what}{where} over {slo.window}"


def _slo_panels(service: Service, slo: SLO) -> list[Panel]:
    budget = format_decimal(slo.budget)
    short, window = RATIO_WINDOWS[0], slo.window
    sli = [
        Target(f"1 - {promql.error_ratio(service, slo, short)}", f"SLI ({short})"),
        Target(f"1 - {promql.error_ratio(service, slo, window)}", f"SLI ({window})"),
        Target(promql.recorded(REC_OBJECTIVE, service, slo), "objective"),
    ]
    factors = sorted({slo.factor(r) for r in BURN_RATE_ROWS if slo.can_fire(r)})
    burn = [
        Target(f"{promql.error_ratio(service, slo, w)} / {budget}", f"burn rate ({w})")
        for w in DASHBOARD_BURN_WINDOWS
    ]
    return [
        Panel(
            f"{slo.name}: SLI vs objective",
            f"{slo.description or slo.name}. SLI over {short} and over the SLO window.",
            sli,
            "percentunit",
            10,
            key=slo_sli_panel(slo),
        ),
        Panel(
            f"{slo.name}: error budget remaining",
            f"Share of the {window} error budget ({budget}) left; below 0 the SLO is missed.",
            [Target(promql.recorded(REC_BUDGET_REMAINING, service, slo), "remaining")],
            "percentunit",
            4,
            kind="stat",
            thresholds=[(0.0, "orange"), (0.25, "green")],
        ),
        Panel(
            f"{slo.name}: burn rate",
            "Error ratio / (1 - objective). Lines: the alert thresholds "
            + ", ".join(format_decimal(f) for f in factors)
            + " (page on the two highest, ticket on the others).",
            burn,
            "x",
            10,
            thresholds=[
                (float(f), THRESHOLD_COLORS[min(i, len(THRESHOLD_COLORS) - 1)])
                for i, f in enumerate(factors)
            ],
            minimum=0,
            key=slo_panel(slo),
        ),
    ]


def _dependencies(service: Service) -> list[Row]:
    if not service.dependencies:
        return []
    address = promql.match(
        semconv.LABEL_SERVER_ADDRESS,
        promql.dependency_regex(d.address for d in service.dependencies),
    )
    base = (service.selector, address)
    count, bucket = promql.CLIENT_COUNT, promql.CLIENT_BUCKET
    by = (semconv.LABEL_SERVER_ADDRESS,)
    total = _sum(_rate(count, *base), by)
    good = _sum(
        _rate(
            count,
            *base,
            f"{semconv.LABEL_STATUS}!~{promql.quote(promql.SERVER_ERROR_STATUS)}",
            promql.eq(semconv.LABEL_ERROR_TYPE, ""),
        ),
        by,
    )
    legend = "{{" + semconv.LABEL_SERVER_ADDRESS + "}}"
    return [
        Row(
            "Dependencies (outbound): " + ", ".join(d.address for d in service.dependencies),
            [
                Panel(
                    "Outbound request rate",
                    "Outbound requests per second by server_address, 5m rate.",
                    [Target(total, legend)],
                    "reqps",
                    8,
                    minimum=0,
                ),
                Panel(
                    "Outbound error ratio",
                    "Share of outbound requests that got a 5xx or no response (error_type).",
                    [Target(f"1 - (\n{_ratio(good, total)}\n)", legend)],
                    "percentunit",
                    8,
                    minimum=0,
                ),
                Panel(
                    "Outbound latency p99",
                    "p99 of outbound request durations (exemplars link to traces).",
                    [Target(_quantile(0.99, bucket, base, by), legend, exemplar=True)],
                    "s",
                    8,
                    minimum=0,
                ),
            ],
        )
    ]


BREAKER_STATES: Final = ((0, "closed", "green"), (1, "half-open", "yellow"), (2, "open", "red"))
RESILIENCE_PANELS: Final = {
    "inbound": "resilience:inbound",
    "outbound": "resilience:outbound",
    "breakers": "resilience:breakers",
    "retries": "resilience:retries",
}
"""Keys of the Resilience row's panels that alerts open (`alerts.Alert.panel`)."""
"""The state-timeline's value mappings (the query gives 2 open, 1 half_open, 0 closed)."""


def _resilience(service: Service) -> list[Row]:
    """In-flight requests, breakers and retries, and the dependencies' client-side SLOs.

    Panels appear for what the manifest names, so none stays empty: outbound in-flight calls
    when the service has dependencies, breaker panels when a dependency lists breakers, retry
    panels when one lists operations (each then shows every breaker or operation of the
    service, listed or not). The alerts cover every breaker and operation either way."""
    sel = service.selector
    state = semconv.BREAKER_STATE
    opened = promql.eq(semconv.LABEL_STATE, semconv.STATE_OPEN)
    half_open = promql.eq(semconv.LABEL_STATE, semconv.STATE_HALF_OPEN)
    breaker, operation = semconv.LABEL_BREAKER, semconv.LABEL_OPERATION
    retries = _sum(_rate(semconv.RETRIES, sel), (operation,))
    calls = _sum(_rate(semconv.RETRY_CALLS, sel), (operation,))
    no_breaker = "No circuit breaker seen"
    no_retry = "No retried call seen"
    panels: list[Panel] = []
    if service.serves_http:
        panels.append(
            Panel(
                "In-flight inbound requests",
                "Requests being served right now, by method (saturation precedes a cascade).",
                [
                    Target(
                        _sum(
                            f"{semconv.HTTP_SERVER_ACTIVE}{promql.selector(sel)}",
                            (semconv.LABEL_METHOD,),
                        ),
                        "{{" + semconv.LABEL_METHOD + "}}",
                    )
                ],
                "short",
                12,
                minimum=0,
                key=RESILIENCE_PANELS["inbound"],
            )
        )
    if service.dependencies:
        panels += [
            Panel(
                "In-flight outbound requests",
                "Calls waiting on each dependency right now, by server_address.",
                [
                    Target(
                        _sum(
                            f"{semconv.HTTP_CLIENT_ACTIVE}{promql.selector(sel)}",
                            (semconv.LABEL_SERVER_ADDRESS,),
                        ),
                        "{{" + semconv.LABEL_SERVER_ADDRESS + "}}",
                    )
                ],
                "short",
                12,
                minimum=0,
                no_value="No outbound call seen",
                key=RESILIENCE_PANELS["outbound"],
            ),
        ]
    if service.listed_breakers:
        panels += [
            Panel(
                "Circuit breaker state",
                "One lane per breaker: closed, half-open or open (the worst of its processes).",
                [
                    Target(
                        f"max by ({breaker}) (\n  2 * {state}{promql.selector(sel, opened)}\n"
                        f"  or\n  {state}{promql.selector(sel, half_open)}\n)",
                        "{{" + breaker + "}}",
                    )
                ],
                "short",
                24,
                kind="state-timeline",
                no_value=no_breaker,
                states=BREAKER_STATES,
                key=RESILIENCE_PANELS["breakers"],
            ),
            Panel(
                "Breaker calls by outcome",
                "Calls per second through each breaker: success, failure, rejected (failed fast).",
                [
                    Target(
                        _sum(_rate(semconv.BREAKER_CALLS, sel), (breaker, semconv.LABEL_OUTCOME)),
                        "{{" + breaker + "}} {{" + semconv.LABEL_OUTCOME + "}}",
                    )
                ],
                "reqps",
                12,
                minimum=0,
                no_value=no_breaker,
            ),
            Panel(
                "Breaker transitions",
                "Transitions into each state over 5m (0 while a known breaker stays put).",
                [
                    Target(
                        _sum(
                            f"increase({semconv.BREAKER_TRANSITIONS}{promql.selector(sel)}"
                            f"[{promql.RATE}])",
                            (breaker, semconv.LABEL_STATE),
                        )
                        + "\nor\n0 * "
                        + f"max by ({breaker}, {semconv.LABEL_STATE}) "
                        + f"({semconv.BREAKER_STATE}{promql.selector(sel)})",
                        "{{" + breaker + "}} to {{" + semconv.LABEL_STATE + "}}",
                    )
                ],
                "short",
                12,
                minimum=0,
                no_value=no_breaker,
            ),
        ]
    if service.listed_operations:
        panels += [
            Panel(
                "Retries per second",
                "Retries scheduled per second (an attempt failed and the policy tries again).",
                [Target(f"{retries}\nor\n0 * {calls}", "{{" + operation + "}}")],
                "short",
                8,
                minimum=0,
                no_value=no_retry,
            ),
            Panel(
                "Retry ratio",
                "Retries per logical call, 5m rate (ObskitRetryStorm uses "
                f"{format_decimal(service.resilience.retry_ratio)} over "
                f"{service.resilience.retry_window} by default).",
                [Target(_ratio(retries, calls), "{{" + operation + "}}")],
                "short",
                8,
                minimum=0,
                thresholds=[(float(service.resilience.retry_ratio), "red")],
                no_value=no_retry,
                key=RESILIENCE_PANELS["retries"],
            ),
            Panel(
                "Retry calls by outcome",
                "Logical calls per second: success (first try), recovered, exhausted, failed.",
                [
                    Target(
                        _sum(_rate(semconv.RETRY_CALLS, sel), (operation, semconv.LABEL_OUTCOME)),
                        "{{" + operation + "}} {{" + semconv.LABEL_OUTCOME + "}}",
                    )
                ],
                "reqps",
                8,
                minimum=0,
                no_value=no_retry,
            ),
        ]
    for slo in service.slos:
        if slo.dependency is not None:
            panels.extend(_slo_panels(service, slo))
    return [Row("Resilience: saturation, circuit breakers, retries", panels)] if panels else []


BACKGROUND_PANELS: Final = {
    "tasks": "background:tasks",
    "queue_wait": "background:queue-wait",
    "outbox_age": "background:outbox-age",
}
"""Keys of the Background work row's panels that alerts open (`alerts.Alert.panel`)."""


def published(service: Service, tasks: tuple[str, ...]) -> str:
    """Selector of the sent counter of `tasks` (any job, narrowed by `background.publishers`)."""
    matchers = [promql.match(semconv.LABEL_TASK, promql.alternation(tasks))]
    if service.background.publishers:
        matchers.insert(0, service.background.publishers)
    return semconv.MESSAGING_SENT + promql.selector(*matchers)


def _background(service: Service) -> list[Row]:
    """Throughput by task and outcome, processing and queue-wait p99, retries and duplicates
    (a worker: task SLIs or `background.tasks`), the outboxes (`background.outboxes`)."""
    panels: list[Panel] = []
    sel = service.selector
    task, outcome = semconv.LABEL_TASK, semconv.LABEL_OUTCOME
    if service.is_worker:
        processed = Target(
            _sum(_rate(promql.PROCESS_COUNT, sel), (task, outcome)),
            "{{" + task + "}} {{" + outcome + "}}",
        )
        throughput = [processed]
        if service.stalled_tasks:
            sent = f"rate({published(service, service.stalled_tasks)}[{promql.RATE}])"
            throughput.append(Target(_sum(sent, (task,)), "{{" + task + "}} published"))
        retried = promql.match(outcome, f"{semconv.PROCESS_RETRY}|{semconv.PROCESS_DUPLICATE}")
        panels += [
            Panel(
                "Tasks processed by outcome",
                "Messages processed per second by task and outcome (success, retry, failure, "
                "duplicate), and those published (by any job) for the tasks this service runs.",
                throughput,
                "reqps",
                12,
                minimum=0,
                key=BACKGROUND_PANELS["tasks"],
            ),
            Panel(
                "Processing p99",
                "p99 of processing durations by task.",
                [
                    Target(
                        _quantile(0.99, promql.PROCESS_BUCKET, (sel,), (task,)), "{{" + task + "}}"
                    )
                ],
                "s",
                12,
                minimum=0,
            ),
            Panel(
                "Queue wait p99",
                "p99 of the time from when a message became due to the start of its processing "
                "(freshness), by task.",
                [Target(_quantile(0.99, promql.WAIT_BUCKET, (sel,), (task,)), "{{" + task + "}}")],
                "s",
                12,
                minimum=0,
                key=BACKGROUND_PANELS["queue_wait"],
            ),
            Panel(
                "Retries and duplicates",
                "Executions per second that will be retried, and messages skipped as duplicates "
                "by an idempotent consumer.",
                [
                    Target(
                        _sum(_rate(promql.PROCESS_COUNT, sel, retried), (task, outcome)),
                        "{{" + task + "}} {{" + outcome + "}}",
                    )
                ],
                "reqps",
                12,
                minimum=0,
                no_value="No retry or duplicate",
            ),
        ]
    if service.background.outboxes:
        outbox = semconv.LABEL_OUTBOX
        panels += [
            Panel(
                "Outbox pending rows",
                "Rows waiting in each transactional outbox (obskit.watch_outbox).",
                [
                    Target(
                        f"max by ({outbox}) ({semconv.OUTBOX_PENDING}{promql.selector(sel)})",
                        "{{" + outbox + "}}",
                    )
                ],
                "short",
                12,
                minimum=0,
            ),
            Panel(
                "Outbox oldest row age",
                "Age of the oldest pending row; ObskitOutboxStale fires above "
                f"{service.background.outbox_older_than} held for {service.background.outbox_for}.",
                [
                    Target(
                        f"max by ({outbox}) ({semconv.OUTBOX_OLDEST_AGE}{promql.selector(sel)})",
                        "{{" + outbox + "}}",
                    )
                ],
                "s",
                12,
                minimum=0,
                thresholds=[(float(service.background.outbox_older_than.seconds), "red")],
                key=BACKGROUND_PANELS["outbox_age"],
            ),
        ]
    return [Row("Background work", panels)] if panels else []


def rows(service: Service) -> list[Row]:
    return [
        *(_overview(service) if service.serves_http else []),
        *(_slo_row(service, slo) for slo in service.slos if slo.dependency is None),
        *_dependencies(service),
        *_resilience(service),
        *_background(service),
    ]


def slo_panel(slo: SLO) -> str:
    """Key of an SLO's burn-rate panel (where its burn-rate alerts open the dashboard)."""
    return f"slo:{slo.name}:burn"


def slo_sli_panel(slo: SLO) -> str:
    """Key of an SLO's SLI panel."""
    return f"slo:{slo.name}:sli"


def _numbered(all_rows: list[Row]) -> Iterator[tuple[int, Row, list[tuple[int, Panel]]]]:
    """Each row with its id and its panels with theirs: ids count up from 1 in grid order."""
    panel_id = 0
    for row in all_rows:
        row_id = panel_id = panel_id + 1
        panels = []
        for panel in row.panels:
            panel_id += 1
            panels.append((panel_id, panel))
        yield row_id, row, panels


def panel_ids(service: Service, all_rows: list[Row] | None = None) -> dict[str, int]:
    """Panel key -> panel id in the service's dashboard (the ids `layout()` assigns);
    `all_rows`: `rows(service)` when already built."""
    ids: dict[str, int] = {}
    for _, _, panels in _numbered(all_rows if all_rows is not None else rows(service)):
        for panel_id, panel in panels:
            if panel.key is not None:
                if panel.key in ids:
                    raise ValueError(f"two dashboard panels share the key {panel.key!r}")
                ids[panel.key] = panel_id
    return ids


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"color": "green" if panel.kind != "stat" else "red", "value": None}
    ]
    steps += [{"color": color, "value": value} for value, color in panel.thresholds]
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "thresholds": {"mode": "absolute", "steps": steps},
        "color": {"mode": "palette-classic" if panel.kind == "timeseries" else "thresholds"},
    }
    if panel.minimum is not None:
        defaults["min"] = panel.minimum
    if panel.no_value is not None:
        defaults["noValue"] = panel.no_value
    options: dict[str, Any]
    if panel.kind == "state-timeline":
        defaults["color"] = {"mode": "thresholds"}
        defaults["custom"] = {"fillOpacity": 80, "lineWidth": 0}
        defaults["mappings"] = [
            {
                "options": {
                    str(value): {"color": color, "index": index, "text": text}
                    for index, (value, text, color) in enumerate(panel.states)
                },
                "type": "value",
            }
        ]
        options = {
            "alignValue": "left",
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "mergeValues": True,
            "rowHeight": 0.9,
            "showValue": "never",
            "tooltip": {"mode": "single", "sort": "none"},
        }
    elif panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "fillOpacity": 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "thresholdsStyle": {"mode": "line" if panel.thresholds else "off"},
        }
        options = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    else:
        options = {
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "auto",
        }
    return {
        "datasource": PROMETHEUS_DS,
        "description": panel.description,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "gridPos": {"h": HEIGHT, "w": panel.width, "x": x, "y": y},
        "id": panel_id,
        "options": options,
        "targets": [t.to_json(chr(ord("A") + i)) for i, t in enumerate(panel.targets)],
        "title": panel.title,
        "type": panel.kind,
    }


def layout(all_rows: list[Row]) -> list[dict[str, Any]]:
    """Row headers and panels with sequential ids and a packed 24-wide grid."""
    out: list[dict[str, Any]] = []
    y = 0
    for row_id, row, panels in _numbered(all_rows):
        out.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
                "id": row_id,
                "panels": [],
                "title": row.title,
                "type": "row",
            }
        )
        y += 1
        x = 0
        for panel_id, panel in panels:
            if x + panel.width > WIDTH:
                x, y = 0, y + HEIGHT
            out.append(_panel_json(panel, panel_id, x, y))
            x += panel.width
        y += HEIGHT
    return out


def _explore_url(datasource: str, query: dict[str, Any]) -> str:
    state = {"datasource": datasource, "queries": [{"refId": "A", **query}]}
    compact = json.dumps(state, sort_keys=True, separators=(",", ":"))
    return "/explore?left=" + url_quote(compact, safe="")


def variables(service: Service) -> list[dict[str, Any]]:
    wanted = [("datasource", "Prometheus", "prometheus")]
    if service.logs:
        wanted.append(("loki", "Logs (Loki)", "loki"))
    if service.traces:
        wanted.append(("tempo", "Traces (Tempo)", "tempo"))
    return [
        {
            "current": {},
            "hide": 0,
            "includeAll": False,
            "label": label,
            "multi": False,
            "name": name,
            "options": [],
            "query": plugin,
            "refresh": 1,
            "regex": "",
            "skipUrlSync": False,
            "type": "datasource",
        }
        for name, label, plugin in wanted
    ]


def links(service: Service) -> list[dict[str, Any]]:
    out = []
    if service.logs:
        query = {"expr": f"{{service_name={promql.quote(service.name)}}} | json"}
        out.append(("Logs (Loki)", _explore_url("${loki}", query)))
    if service.traces:
        query = {
            "queryType": "traceql",
            "query": f"{{resource.service.name={promql.quote(service.name)}}}",
        }
        out.append(("Traces (Tempo)", _explore_url("${tempo}", query)))
    return [
        {
            "asDropdown": False,
            "icon": "external link",
            "includeVars": False,
            "keepTime": True,
            "targetBlank": True,
            "title": title,
            "tooltip": "",
            "type": "link",
            "url": url,
        }
        for title, url in out
    ]


def dashboard(
    service: Service, templates: Templates, all_rows: list[Row] | None = None
) -> dict[str, Any]:
    """The dashboard document (`all_rows`: `rows(service)` when already built)."""
    name = "dashboard.json.j2"
    data = templates.render_json_mapping(
        name,
        service=service.name,
        team=service.team,
        uid=service.dashboard_uid,
        schema_version=SCHEMA_VERSION,
        variables=variables(service),
        links=links(service),
        panels=layout(all_rows if all_rows is not None else rows(service)),
    )
    for key in ("uid", "panels", "schemaVersion"):
        if key not in data:
            raise templates.problem(name, f"must keep the {key!r} key")
    return data


def _targets(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield from panel.get("targets", [])
        yield from _targets(panel.get("panels", []))


def expressions(document: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard's panels."""
    return [t["expr"] for t in _targets(document["panels"]) if "expr" in t]
