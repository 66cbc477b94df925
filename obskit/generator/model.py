"""Frozen domain objects of the generator: services, SLOs, windows and the burn-rate table.

The manifest loader builds these from validated YAML; the renderers only read them. Nothing
here knows about YAML, jinja2 or Prometheus syntax beyond the duration notation. The checks
every user text must pass before it reaches a rule live here too (`Duration.parse` within
Prometheus's range, `check_label_value`), so every manifest field uses the same ones. The burn-rate
table is data (`BURN_RATE_ROWS`), and its thresholds follow the budget-based convention:

    factor = budget_fraction * slo_window_hours / long_window_hours

which gives 14.4 / 6 / 3 / 1 for a 30-day SLO and 13.44 / 5.6 / 2.8 / 0.933 for 28 days.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Final, Literal
from urllib.parse import urlsplit

from obskit import semconv

Severity = Literal["page", "ticket"]
SLIKind = Literal["availability", "latency", "processing", "freshness", "client"]
"""availability/latency: inbound HTTP; processing/freshness: background tasks (issue 10);
client: calls to a dependency, from the client histogram plus breaker rejections (issue 9)."""
HTTP_KINDS: Final = frozenset({"availability", "latency"})
TASK_KINDS: Final = frozenset({"processing", "freshness"})

_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION_PATTERN: Final = r"^([1-9][0-9]*)([mhdw])$"
SHORT_DURATION_PATTERN: Final = r"^([1-9][0-9]*)([smhdw])$"
"""Alert thresholds of resilience and background work may be seconds (demo and test manifests)."""
_DURATION_RE: Final = re.compile(DURATION_PATTERN)
_SHORT_DURATION_RE: Final = re.compile(SHORT_DURATION_PATTERN)
PROMETHEUS_MAX_SECONDS: Final = (2**63 - 1) // 10**9
"""Prometheus keeps durations as int64 nanoseconds: longer ones are "out of range" (~292y)."""
TEMPLATE_DELIMITERS: Final = ("{{", "}}")


def shown(text: str, limit: int = 60) -> str:
    """`repr(text)` for a message, cut to about `limit` characters (inputs may be huge)."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


RECEIVER_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_RECEIVER_RE: Final = re.compile(RECEIVER_PATTERN)


def check_receiver(value: str) -> str:
    """Return `value` if it is a receiver name obskit writes and amtool checks unquoted."""
    if not _RECEIVER_RE.match(value):
        raise ValueError(
            f"receiver name {shown(value)} is not valid: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 128 characters (e.g. payments-pager)"
        )
    return value


def receiver_name(text: str) -> str:
    """`text` made a valid receiver name ("Payments Team" -> "Payments-Team"; "" if none)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:128]
    return re.sub(r"^[^A-Za-z0-9]+", "", name)


def check_url(value: str, *, base: bool = False) -> str:
    """Return `value` if it is an absolute http(s) URL (`base`: one obskit appends a path to,
    so without query or fragment); raise ValueError saying what is expected otherwise."""
    parts = urlsplit(value) if not any(c.isspace() for c in value) else None
    scheme = parts.scheme if parts is not None else ""
    if parts is None or scheme not in ("http", "https") or not parts.netloc:
        example = "https://grafana.example.com" if base else "https://runbooks.example.com/x"
        raise ValueError(f"{shown(value)} is not an http(s) URL; write it like {example}")
    if base and (parts.query or parts.fragment or value.endswith(("?", "#"))):
        raise ValueError(
            f"{shown(value)} has a query or fragment: give the base URL of your Grafana "
            "(obskit appends /d/<uid>?viewPanel=<panel>)"
        )
    return value


def check_label_value(value: str) -> str:
    """Return `value` if it may be an alert label value; raise ValueError otherwise.

    Prometheus expands alert label values as Go templates, so `{{ ... }}` in a team, label or
    severity would be evaluated (and break the generated promtool tests): rejected. Use it for
    every manifest text that becomes a label value of an alerting rule.
    """
    for delimiter in TEMPLATE_DELIMITERS:
        if delimiter in value:
            raise ValueError(
                f"label value {shown(value)} contains {delimiter!r}: Prometheus would expand it "
                "as a template in the alert's labels; remove the braces"
            )
    return value


@dataclass(frozen=True, order=True)
class Duration:
    """A whole number of seconds (minutes for SLO windows), written the way Prometheus reads
    it (`30s`, `5m`, `6h`, `30d`)."""

    seconds: int

    @classmethod
    def parse(
        cls, text: str, at_most: Duration | None = None, *, seconds: bool = False
    ) -> Duration:
        """Parse `<n>m|h|d|w` (and `<n>s` when `seconds`) within Prometheus's range (and
        `at_most`, when given); raise ValueError with the accepted forms otherwise."""
        match = (_SHORT_DURATION_RE if seconds else _DURATION_RE).match(text.strip())
        if match is None:
            units = "s (seconds), m (minutes)" if seconds else "m (minutes)"
            raise ValueError(
                f"cannot parse duration {shown(text)}: use a whole number and one unit, "
                f"{units}, h (hours), d (days) or w (weeks), e.g. {'5m' if seconds else '30d'}"
            )
        digits, unit = match.groups()
        if len(digits) > len(str(PROMETHEUS_MAX_SECONDS)) or (
            int(digits) * _UNIT_SECONDS[unit] > PROMETHEUS_MAX_SECONDS
        ):
            raise ValueError(
                f"duration {shown(text)} is out of range: Prometheus accepts at most "
                f"{PROMETHEUS_MAX_SECONDS // _UNIT_SECONDS['d']}d (about 292 years)"
            )
        duration = cls(int(digits) * _UNIT_SECONDS[unit])
        if at_most is not None and duration > at_most:
            raise ValueError(f"duration {shown(text)} is too long: at most {at_most}")
        return duration

    @property
    def hours(self) -> Decimal:
        return Decimal(self.seconds) / Decimal(3600)

    def __str__(self) -> str:
        """Canonical form: the largest of d, h, m that divides the duration (weeks as days)."""
        for unit in ("d", "h", "m"):
            size = _UNIT_SECONDS[unit]
            if self.seconds % size == 0:
                return f"{self.seconds // size}{unit}"
        return f"{self.seconds}s"


def minutes(n: int) -> Duration:
    return Duration(n * 60)


def hours(n: int) -> Duration:
    return Duration(n * 3600)


def days(n: int) -> Duration:
    return Duration(n * 86400)


@dataclass(frozen=True)
class BurnRateRow:
    """One row of the multi-window multi-burn-rate table (Google SRE Workbook)."""

    severity: Severity
    budget_fraction: Decimal
    """Share of the whole error budget spent over `long` when the row starts to fire."""
    long: Duration
    short: Duration

    def factor(self, slo_window: Duration) -> Decimal:
        """Burn-rate threshold for an SLO over `slo_window` (14.4 for the 1h row at 30d)."""
        return self.budget_fraction * slo_window.hours / self.long.hours


BURN_RATE_ROWS: Final = (
    BurnRateRow("page", Decimal("0.02"), hours(1), minutes(5)),
    BurnRateRow("page", Decimal("0.05"), hours(6), minutes(30)),
    BurnRateRow("ticket", Decimal("0.10"), days(1), hours(2)),
    BurnRateRow("ticket", Decimal("0.10"), days(3), hours(6)),
)
"""Rows are OR-ed within a severity; a row fires when both of its windows burn too fast."""

SEVERITIES: Final[tuple[Severity, ...]] = ("page", "ticket")

RATIO_WINDOWS: Final = tuple(sorted({w for row in BURN_RATE_ROWS for w in (row.long, row.short)}))
"""Windows of the recorded error ratios: every window any burn-rate row uses (5m ... 3d)."""

DASHBOARD_BURN_WINDOWS: Final = (hours(1), hours(6), days(3))

DEFAULT_WINDOW: Final = days(30)
MIN_SLO_WINDOW: Final = RATIO_WINDOWS[-1]
"""An SLO window shorter than the longest alert window (3d) makes the table meaningless."""
MAX_SLO_WINDOW: Final = days(365)

DEFAULT_FOR: Final[dict[Severity, Duration]] = {"page": minutes(2), "ticket": minutes(15)}
MAX_FOR: Final = days(1)
"""Longest alert `for:`: a page held back more than a day is no page, and the promtool tests
replay `for` minute by minute (a `for: 4w` test takes promtool ~15 s, `15000w` forever)."""
DEFAULT_SEVERITY_LABEL: Final[dict[Severity, str]] = {"page": "critical", "ticket": "warning"}
ABSENT_FOR: Final = minutes(10)
GUARD_FOR: Final = minutes(10)
"""`for` of ObskitSLOBucketMissing: a misconfiguration, not an outage (ticket severity)."""
MAX_UID: Final = 40
"""Grafana's limit on a dashboard uid."""

# --- Names the generator itself defines (recorded series, rule labels, alerts) ---
REC_REQUESTS: Final = "obskit_slo:requests:rate5m"
REC_ERRORS: Final = "obskit_slo:errors:rate5m"
REC_ERROR_RATIO: Final = "obskit_slo:error_ratio"
REC_OBJECTIVE: Final = "obskit_slo:objective"
REC_BUDGET_REMAINING: Final = "obskit_slo:error_budget_remaining"
RECORDED_NAMES: Final = frozenset(
    {REC_REQUESTS, REC_ERRORS, REC_ERROR_RATIO, REC_OBJECTIVE, REC_BUDGET_REMAINING}
)

LABEL_SERVICE: Final = "service"
LABEL_SLO: Final = "slo"
LABEL_WINDOW: Final = "window"
LABEL_SEVERITY: Final = "severity"
LABEL_TEAM: Final = "team"
LABEL_DEPENDENCY: Final = "dependency"
"""The subject label of a dependency's alerts (its manifest `name`)."""
RULE_LABELS: Final = frozenset({LABEL_SERVICE, LABEL_SLO, LABEL_WINDOW, LABEL_DEPENDENCY})
SUBJECT_LABELS: Final = frozenset(
    {
        LABEL_DEPENDENCY,
        semconv.LABEL_BREAKER,
        semconv.LABEL_OPERATION,
        semconv.LABEL_TASK,
        semconv.LABEL_OUTBOX,
    }
)
"""Labels naming an alert's subject: set by obskit (from the series or the manifest), never by
the manifest's `labels:`."""

LABEL_LE: Final = "le"
PROMETHEUS_LABELS: Final = frozenset({LABEL_LE, "job", "instance", "__name__"})
"""Label names Prometheus itself attaches (histogram buckets, scrape targets)."""

ALERT_PAGE: Final = "ObskitSLOBurnRatePage"
ALERT_TICKET: Final = "ObskitSLOBurnRateTicket"
ALERT_ABSENT: Final = "ObskitTelemetryAbsent"
ALERT_BUCKET_MISSING: Final = "ObskitSLOBucketMissing"
ALERT_NAMES: Final[dict[Severity, str]] = {"page": ALERT_PAGE, "ticket": ALERT_TICKET}


@dataclass(frozen=True)
class SLO:
    name: str
    objective: Decimal
    """Percent, strictly between 0 and 100 (99.9)."""
    window: Duration
    description: str
    kind: SLIKind
    threshold: float | None
    """Latency SLIs only: seconds, a bucket boundary of the service's histogram."""
    routes: tuple[str, ...]
    """Only these `http_route` values; empty means every route."""
    tasks: tuple[str, ...] = ()
    """processing/freshness SLIs: only these `task` values; empty means every task."""
    queues: tuple[str, ...] = ()
    """processing/freshness SLIs: only these `messaging_destination_name` values."""
    dependency: Dependency | None = None
    """client SLIs: the dependency whose calls are counted."""
    labels: Labels | None = None
    """Alert labels replacing the severity policy's (client SLIs: the ticket labels, severity
    `warning` by default, since someone else owns that service); None for the policy's."""

    @property
    def budget(self) -> Decimal:
        """Allowed error ratio, 1 - objective (0.001 for 99.9)."""
        return (Decimal(100) - self.objective) / Decimal(100)

    @property
    def windows(self) -> tuple[Duration, ...]:
        """Every window whose error ratio is recorded: the alert windows and the SLO window."""
        return tuple(sorted({*RATIO_WINDOWS, self.window}))

    def factor(self, row: BurnRateRow) -> Decimal:
        return row.factor(self.window)

    def limit(self, row: BurnRateRow) -> Decimal:
        """The error ratio above which `row` burns too fast: `factor * budget`."""
        return self.factor(row) * self.budget

    def can_fire(self, row: BurnRateRow) -> bool:
        """A row whose threshold needs an error ratio above 100% can never fire."""
        return self.limit(row) < 1


Labels = tuple[tuple[str, str], ...]
"""Alert labels, sorted by name."""

DEFAULT_BREAKER_OPEN_FOR: Final = minutes(5)
DEFAULT_FLAPPING_TRANSITIONS: Final = 3
DEFAULT_FLAPPING_WINDOW: Final = minutes(30)
DEFAULT_RETRY_RATIO: Final = Decimal("0.5")
DEFAULT_RETRY_WINDOW: Final = minutes(10)
DEFAULT_RETRY_MIN_CALL_RATE: Final = Decimal("0.1")
"""Logical calls per second through a retry policy below which no storm is reported."""
DEFAULT_RETRY_FOR: Final = minutes(2)
CALLS_ARRIVING_WINDOW: Final = minutes(5)
"""ObskitCircuitBreakerOpen: calls must have arrived within min(this, `for`) at each evaluation."""


@dataclass(frozen=True)
class Resilience:
    """Thresholds and labels of the breaker and retry alerts of one scope (the service's
    defaults, or one dependency's overrides)."""

    breaker_open_for: Duration = DEFAULT_BREAKER_OPEN_FOR
    flapping_transitions: int = DEFAULT_FLAPPING_TRANSITIONS
    flapping_window: Duration = DEFAULT_FLAPPING_WINDOW
    retry_ratio: Decimal = DEFAULT_RETRY_RATIO
    retry_window: Duration = DEFAULT_RETRY_WINDOW
    retry_min_call_rate: Decimal = DEFAULT_RETRY_MIN_CALL_RATE
    retry_for: Duration = DEFAULT_RETRY_FOR
    breaker_open_labels: Labels = ()
    flapping_labels: Labels = ()
    retry_storm_labels: Labels = ()
    """Every label of each alert besides service and its subject labels (severity included)."""

    @property
    def calls_window(self) -> Duration:
        return min(CALLS_ARRIVING_WINDOW, self.breaker_open_for)

    def with_labels(self, labels: Labels) -> Resilience:
        """These thresholds, every alert labelled `labels`."""
        return replace(
            self, breaker_open_labels=labels, flapping_labels=labels, retry_storm_labels=labels
        )


DEFAULT_STALLED_AFTER: Final = minutes(10)
DEFAULT_STALLED_FOR: Final = minutes(2)
DEFAULT_OUTBOX_OLDER_THAN: Final = minutes(5)
DEFAULT_OUTBOX_FOR: Final = minutes(5)


@dataclass(frozen=True)
class Background:
    """Background work a service does: the tasks it processes, the outboxes it exposes, and the
    thresholds and labels of ObskitTasksStalled and ObskitOutboxStale."""

    declared: bool = False
    """The manifest has a `background:` block."""
    tasks: tuple[str, ...] = ()
    """`task` values the service processes (`background.tasks`)."""
    outboxes: tuple[str, ...] = ()
    """`outbox` names the service exposes (`background.outboxes`): the dashboard's outbox panels."""
    stalled_after: Duration = DEFAULT_STALLED_AFTER
    stalled_for: Duration = DEFAULT_STALLED_FOR
    publishers: str | None = None
    """PromQL label matchers narrowing the sent counter (default: any job's)."""
    outbox_older_than: Duration = DEFAULT_OUTBOX_OLDER_THAN
    outbox_for: Duration = DEFAULT_OUTBOX_FOR
    tasks_stalled_labels: Labels = ()
    outbox_stale_labels: Labels = ()
    """Every label of each alert besides service and its subject label (severity included)."""


@dataclass(frozen=True)
class Dependency:
    """A service this one calls: its address, and the breakers and retried operations on the way."""

    name: str
    """Value of the `dependency` label (the manifest's `name`, default the address)."""
    address: str
    """`server_address` of the client histogram; a bare host matches any port."""
    breakers: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()
    resilience: Resilience | None = None
    """Thresholds of this dependency's breakers and operations (None: it lists neither)."""


@dataclass(frozen=True)
class AlertPolicy:
    severity: Severity
    labels: tuple[tuple[str, str], ...]
    """Every label the alert carries besides service and slo, sorted (severity included)."""
    for_: Duration


@dataclass(frozen=True)
class Service:
    name: str
    source: str
    """The manifest file this service came from (for messages only, never in output)."""
    selector: str
    """PromQL label matchers (without braces) selecting this service's series."""
    team: str | None
    runbook_url: str | None
    grafana_url: str | None
    slos: tuple[SLO, ...]
    """The service's own SLOs, then its dependencies' client SLOs (names unique across both)."""
    policies: tuple[AlertPolicy, AlertPolicy]
    """page, then ticket."""
    dependencies: tuple[Dependency, ...]
    buckets: tuple[float, ...]
    logs: bool
    traces: bool
    line: int = 1
    """Line of the `service:` key in `source` (for messages only)."""
    receivers: tuple[str | None, str | None] = (None, None)
    """Alertmanager receiver names of page and ticket alerts as the manifest sets them
    (`alerting.receivers`); `receiver()` gives the defaults."""
    resilience: Resilience = Resilience()
    """Thresholds of the breakers and operations that no dependency lists."""
    background: Background = Background()
    queue_wait_buckets: tuple[float, ...] = semconv.DEFAULT_QUEUE_WAIT_BUCKETS
    """The queue-wait histogram's buckets (a freshness threshold must be one of them)."""

    @property
    def stalled_tasks(self) -> tuple[str, ...]:
        """Tasks ObskitTasksStalled watches: `background.tasks`, then those the service's
        processing and freshness SLOs name."""
        named = (t for s in self.slos if s.kind in TASK_KINDS for t in s.tasks)
        return tuple(dict.fromkeys((*self.background.tasks, *named)))

    @property
    def serves_http(self) -> bool:
        """A service that is a worker with no HTTP SLO is taken to serve no HTTP: its dashboard
        leaves out the inbound request panels (they could only say "No data")."""
        return not self.is_worker or any(s.kind in HTTP_KINDS for s in self.slos)

    @property
    def is_worker(self) -> bool:
        """The service processes background work (a task SLI, or `background.tasks`)."""
        return bool(self.background.tasks) or any(s.kind in TASK_KINDS for s in self.slos)

    @property
    def listed_breakers(self) -> tuple[str, ...]:
        return tuple(b for d in self.dependencies for b in d.breakers)

    @property
    def listed_operations(self) -> tuple[str, ...]:
        return tuple(o for d in self.dependencies for o in d.operations)

    def policy(self, severity: Severity) -> AlertPolicy:
        return self.policies[0] if severity == "page" else self.policies[1]

    def receiver(self, severity: Severity) -> str:
        """Alertmanager receiver of `severity`'s alerts: the manifest's, or `<team>-page` /
        `<team>-ticket` (the team made a valid receiver name), or `<service>-page|ticket`."""
        given = self.receivers[0] if severity == "page" else self.receivers[1]
        if given is not None:
            return given
        owner = receiver_name(self.team or "") or self.name
        return f"{owner}-{severity}"

    @property
    def dashboard_uid(self) -> str:
        """`obskit-<name>`; past Grafana's 40-character limit, a prefix and a hash of the name,
        so two long names that share a prefix never share a dashboard."""
        uid = f"obskit-{self.name}"
        if len(uid) <= MAX_UID:
            return uid
        digest = hashlib.sha256(self.name.encode()).hexdigest()[:10]
        return f"{uid[: MAX_UID - len(digest) - 1]}-{digest}"

    @property
    def dashboard_url(self) -> str | None:
        if self.grafana_url is None:
            return None
        return f"{self.grafana_url.rstrip('/')}/d/{self.dashboard_uid}"


def format_decimal(value: Decimal) -> str:
    """Shortest plain decimal (no exponent) with at most 12 significant digits: 0.001, 14.4."""
    rounded = +value.normalize() if value == 0 else round(value, 12 - value.adjusted() - 1)
    return format(rounded.normalize(), "f")


def format_le(value: float) -> str:
    """Format a bucket bound exactly as prometheus-client writes `le` (0.25, 1.0, 10.0)."""
    if value == float("inf"):
        return "+Inf"
    return repr(float(value))
