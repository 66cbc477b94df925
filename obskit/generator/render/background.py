"""Alert rules of background work (issue 10): a stale outbox and stalled tasks.

One group, `obskit-<service>-background`:

- ObskitOutboxStale{outbox}: for every service (any outbox it exposes through
  `obskit.watch_outbox`): the oldest pending row is older than `older_than`, held for `for`.
  `max by (outbox)` over the service's targets and processes; its value is that age.
- ObskitTasksStalled{task}: for the tasks the service processes (`background.tasks` and the
  tasks its processing/freshness SLOs name; no rule when it names none): over the last
  `after`, messages of the task were published, by any job
  (`messaging_client_sent_messages_total`, optionally narrowed by `background.publishers`),
  and this service processed none of them (any outcome counts as processed), held for `for`.
  This is the blind spot of the freshness SLI: dead workers process nothing, so they measure no
  queue wait at all.

  A counter series born inside the window (a new worker or publisher process whose first
  scrape already counts its first messages) has no increase there: `(c > 0) unless c offset
  <after>` counts it as activity too, so a worker restarted in a new series that processed a rare
  message is not taken for stalled, and the first message ever published is not missed.
"""

from __future__ import annotations

from typing import Any, Final

from obskit import semconv
from obskit.generator.model import LABEL_SERVICE, Service
from obskit.generator.render import alerts, grafana, promql

BACKGROUND_ALERTS: Final = (semconv.ALERT_OUTBOX_STALE, semconv.ALERT_TASKS_STALLED)


def outbox_stale_expr(service: Service) -> str:
    b = service.background
    age = f"{semconv.OUTBOX_OLDEST_AGE}{promql.selector(service.selector)}"
    return f"max by ({semconv.LABEL_OUTBOX}) ({age}) > {b.outbox_older_than.seconds}"


def _activity(metric: str, window: str) -> str:
    """`metric` (a counter selector) grew within `window`, or was born in it with a count."""
    return (
        f"sum by ({semconv.LABEL_TASK}) (increase({metric}[{window}])) > 0\n"
        f"  or\n"
        f"  count by ({semconv.LABEL_TASK}) (({metric} > 0) unless {metric} offset {window})"
    )


def tasks_stalled_expr(service: Service) -> str:
    window = str(service.background.stalled_after)
    tasks = service.stalled_tasks
    only = promql.match(semconv.LABEL_TASK, promql.alternation(tasks))
    sent = grafana.published(service, tasks)
    processed = promql.PROCESS_COUNT + promql.selector(service.selector, only)
    return (
        f"(\n  {_activity(sent, window)}\n)\n"
        f"unless on ({semconv.LABEL_TASK})\n"
        f"(\n  {_activity(processed, window)}\n)"
    )


def outbox_stale_alert(ctx: alerts.Context) -> alerts.Alert:
    service, b = ctx.service, ctx.service.background
    panel = grafana.BACKGROUND_PANELS["outbox_age"]
    return alerts.Alert(
        name=semconv.ALERT_OUTBOX_STALE,
        expr=outbox_stale_expr(service),
        for_=b.outbox_for,
        labels={**dict(b.outbox_stale_labels), LABEL_SERVICE: service.name},
        summary=f"{service.name}: outbox {alerts.SUBJECT} stale (oldest row {alerts.VALUE} old)",
        description=(
            f"The oldest pending row of outbox {alerts.SUBJECT} of {service.name} is "
            f"{alerts.VALUE} old (threshold {b.outbox_older_than}, held for {b.outbox_for}): "
            "its relay is stalled or failing, so the messages it should publish are late."
        ),
        value=alerts.Value.DURATION,
        panel=panel if panel in ctx.panels else None,
        subject=semconv.LABEL_OUTBOX,
    )


def tasks_stalled_alert(ctx: alerts.Context) -> alerts.Alert:
    service, b = ctx.service, ctx.service.background
    panel = grafana.BACKGROUND_PANELS["tasks"]
    return alerts.Alert(
        name=semconv.ALERT_TASKS_STALLED,
        expr=tasks_stalled_expr(service),
        for_=b.stalled_for,
        labels={**dict(b.tasks_stalled_labels), LABEL_SERVICE: service.name},
        summary=f"{service.name}: task {alerts.SUBJECT} stalled",
        description=(
            f"Messages of {alerts.SUBJECT} were published in the last {b.stalled_after} but "
            f"{service.name} processed none of them (for {b.stalled_for}): its workers are down, "
            "stuck, or not consuming that queue. The freshness SLO cannot see this (a worker "
            "that processes nothing measures no queue wait)."
        ),
        panel=panel if panel in ctx.panels else None,
        subject=semconv.LABEL_TASK,
    )


def background_alerts(ctx: alerts.Context) -> list[alerts.Alert]:
    """Every background-work alert of the service, in rule order."""
    stalled = [tasks_stalled_alert(ctx)] if ctx.service.stalled_tasks else []
    return [outbox_stale_alert(ctx), *stalled]


def group(ctx: alerts.Context) -> dict[str, Any]:
    """The `obskit-<service>-background` rule group."""
    rules = [alerts.rule(ctx, alert) for alert in background_alerts(ctx)]
    return {"name": f"obskit-{ctx.service.name}-background", "rules": rules}
