"""Service manifests: YAML -> validated specs -> frozen model objects, errors with file:line.

The YAML is composed into nodes (so every key and value keeps its line), converted to plain
data with a path -> line map, validated by pydantic models that forbid unknown keys, and then
checked for what pydantic cannot see (duplicate names, thresholds that are not buckets). Every
problem becomes one `Problem(file, line, message)`; `load()` raises `ManifestError` carrying all of
them, never a traceback.

Directory rule: in a directory, the manifests are the files named `obskit.yaml`, `obskit.yml`,
`*.obskit.yaml` or `*.obskit.yml`, found recursively (hidden directories skipped), sorted by path.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Final, Union, get_args, get_origin

import promql_parser
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from obskit import semconv
from obskit.generator.model import (
    DEFAULT_BREAKER_OPEN_FOR,
    DEFAULT_FLAPPING_TRANSITIONS,
    DEFAULT_FLAPPING_WINDOW,
    DEFAULT_FOR,
    DEFAULT_OUTBOX_FOR,
    DEFAULT_OUTBOX_OLDER_THAN,
    DEFAULT_RETRY_FOR,
    DEFAULT_RETRY_MIN_CALL_RATE,
    DEFAULT_RETRY_RATIO,
    DEFAULT_RETRY_WINDOW,
    DEFAULT_SEVERITY_LABEL,
    DEFAULT_STALLED_AFTER,
    DEFAULT_STALLED_FOR,
    DEFAULT_WINDOW,
    DURATION_PATTERN,
    LABEL_SEVERITY,
    LABEL_TEAM,
    MAX_FOR,
    MAX_SLO_WINDOW,
    MIN_SLO_WINDOW,
    RECEIVER_PATTERN,
    RULE_LABELS,
    SEVERITIES,
    SHORT_DURATION_PATTERN,
    SLO,
    SUBJECT_LABELS,
    AlertPolicy,
    Background,
    Dependency,
    Duration,
    Labels,
    Resilience,
    Service,
    SLIKind,
    check_label_value,
    check_receiver,
    check_url,
    format_le,
)
from obskit.generator.parallel import fork_map
from obskit.generator.selectors import example_labels

MANIFEST_NAMES: Final = ("obskit.yaml", "obskit.yml")
MANIFEST_SUFFIXES: Final = (".obskit.yaml", ".obskit.yml")

NAME_PATTERN: Final = r"^[a-z][a-z0-9_-]*$"
MAX_NAME: Final = 128
"""Longest service or SLO name: a service name is a directory name (255 bytes at most)."""
LABEL_NAME_PATTERN: Final = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
URL_PATTERN: Final = r"^https?://\S+$"
ADDRESS_PATTERN: Final = r"^[A-Za-z0-9._\[\]:-]+$"
MAX_BUCKET: Final = 1e6
MAX_LABEL_VALUE: Final = 200

MAX_FILE_BYTES: Final = 1024 * 1024
"""Limits that bound the time and memory of loading one manifest file (issue 13): a manifest
is a few KB; 1 MiB holds thousands of services."""
MAX_DEPTH: Final = 64
"""Deepest nesting of mappings and sequences (a manifest needs about 8)."""
MAX_NODES: Final = 50_000
"""Most YAML nodes (scalars, mappings, sequences) in one file, counted after alias expansion:
each use of an alias counts the whole subtree it names, so an alias bomb is stopped before it
is expanded."""


def check_duration(text: str) -> str:
    """Return `text` if it is a duration Prometheus accepts (`Duration.parse`)."""
    Duration.parse(text)
    return text


def check_for(text: str) -> str:
    """Return `text` if it is a valid alert `for:` (seconds allowed, at most MAX_FOR)."""
    Duration.parse(text, at_most=MAX_FOR, seconds=True)
    return text


# Reusable field types: every manifest field that reaches a rule uses one of these (see
# /work/notes/validation.md). Names and label values never carry template delimiters.
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=MAX_NAME)]
LabelValue = Annotated[str, AfterValidator(check_label_value)]
"""A text that becomes an alert label value: `{{`/`}}` rejected."""
DurationText = Annotated[
    str, AfterValidator(check_duration), Field(json_schema_extra={"pattern": DURATION_PATTERN})
]
"""A duration like 5m, 6h, 30d, within Prometheus's range."""
ForDuration = Annotated[
    str, AfterValidator(check_for), Field(json_schema_extra={"pattern": SHORT_DURATION_PATTERN})
]
"""An alert `for:`: `30s`, `2m` ... at most MAX_FOR."""

URLText = Annotated[
    str, AfterValidator(check_url), Field(json_schema_extra={"pattern": URL_PATTERN})
]
"""An absolute http(s) URL."""
BaseURLText = Annotated[
    str,
    AfterValidator(partial(check_url, base=True)),
    Field(json_schema_extra={"pattern": URL_PATTERN}),
]
"""An absolute http(s) URL obskit appends a path to (no query, no fragment)."""

SeriesLabel = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_VALUE)]
"""A label value of the runtime's series (a breaker, operation, task or queue name), matched in
a selector (escaped), never written as an alert label."""

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input, at one place."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


class ManifestError(Exception):
    """Raised with every problem found; `str()` is one line per problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# --------------------------------------------------------------------------- specs (pydantic)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class AvailabilitySpec(_Spec):
    """Share of inbound requests that are not answered with a 5xx status."""


class LatencySpec(_Spec):
    """Share of inbound requests served within `threshold` seconds."""

    threshold: float = Field(gt=0, description="Seconds; must be a histogram bucket boundary.")


Tasks = list[SeriesLabel] | None
TASKS_FIELD: Final = "Only these `task` values (Celery task names); default: every task."
QUEUES_FIELD: Final = "Only these `messaging_destination_name` values (queues); default: all."


class ProcessingSpec(_Spec):
    """Share of processed messages that succeeded: success / (success + failure). Retries and
    duplicates count on neither side."""

    tasks: Tasks = Field(default=None, min_length=1, description=TASKS_FIELD)
    queues: Tasks = Field(default=None, min_length=1, description=QUEUES_FIELD)


class FreshnessSpec(_Spec):
    """Share of messages whose queue wait (from when they became due to the start of their
    processing) is at most `threshold` seconds."""

    threshold: float = Field(
        gt=0, description="Seconds; must be a bucket boundary of the queue-wait histogram."
    )
    tasks: Tasks = Field(default=None, min_length=1, description=TASKS_FIELD)
    queues: Tasks = Field(default=None, min_length=1, description=QUEUES_FIELD)


SLI_KINDS: Final = ("availability", "latency", "processing", "freshness")


class SLISpec(_Spec):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})
    availability: AvailabilitySpec | None = None
    latency: LatencySpec | None = None
    processing: ProcessingSpec | None = None
    freshness: FreshnessSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SLISpec:
        chosen = [k for k in SLI_KINDS if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(f"sli needs exactly one of: {', '.join(SLI_KINDS)}")
        return self

    @property
    def kind(self) -> SLIKind:
        return next(k for k in SLI_KINDS if getattr(self, k) is not None)


def _objective_range(value: float) -> float:
    if not 0 < value < 100:
        raise ValueError(f"objective must be strictly between 0 and 100 (percent), got {value}")
    return value


def _window_parses(value: str) -> str:
    window = Duration.parse(value)
    if not MIN_SLO_WINDOW <= window <= MAX_SLO_WINDOW:
        raise ValueError(
            f"window must be between {MIN_SLO_WINDOW} and {MAX_SLO_WINDOW}, got {value}"
        )
    return value


Objective = Annotated[
    float,
    AfterValidator(_objective_range),
    Field(
        description="Percent, strictly between 0 and 100, e.g. 99.9.",
        json_schema_extra={"exclusiveMinimum": 0, "exclusiveMaximum": 100},
    ),
]
Window = Annotated[
    str,
    AfterValidator(_window_parses),
    Field(
        description="SLO period, e.g. 30d or 4w (3d to 365d).",
        json_schema_extra={"pattern": DURATION_PATTERN},
    ),
]


class SLOSpec(_Spec):
    name: Annotated[Name, Field(description="Unique within the service.")]
    objective: Objective
    window: Window = str(DEFAULT_WINDOW)
    description: str | None = None
    sli: SLISpec
    routes: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        description="Only these http_route values (route templates; availability and latency).",
    )

    @model_validator(mode="after")
    def _routes_are_http(self) -> SLOSpec:
        if self.routes is not None and self.sli.kind not in ("availability", "latency"):
            raise ValueError(
                f"routes apply to availability and latency SLIs; a {self.sli.kind} SLI names "
                f"its `tasks:` (and `queues:`) inside `sli.{self.sli.kind}`"
            )
        return self


LabelMap = dict[Annotated[str, Field(pattern=LABEL_NAME_PATTERN)], LabelValue]


def _threshold_duration(value: str) -> str:
    Duration.parse(value, at_most=MAX_FOR, seconds=True)
    return value


ThresholdDuration = Annotated[
    str,
    AfterValidator(_threshold_duration),
    Field(json_schema_extra={"pattern": SHORT_DURATION_PATTERN}),
]
"""An alert threshold duration: `30s`, `5m`, `1h` ... at most MAX_FOR (the unit tests replay
each threshold at a fine step)."""


class BreakerOpenSpec(_Spec):
    """ObskitCircuitBreakerOpen: not closed for `for` while calls keep arriving."""

    model_config = ConfigDict(populate_by_name=True)
    for_: ThresholdDuration = Field(
        default=str(DEFAULT_BREAKER_OPEN_FOR),
        alias="for",
        description="How long the breaker must stay open or half-open, with calls arriving.",
    )
    labels: LabelMap = Field(default_factory=dict, description="Labels on this alert.")


class FlappingSpec(_Spec):
    """ObskitCircuitBreakerFlapping: at least `transitions` transitions to open in `window`."""

    transitions: int = Field(default=DEFAULT_FLAPPING_TRANSITIONS, ge=1, le=1_000_000)
    window: ThresholdDuration = str(DEFAULT_FLAPPING_WINDOW)
    labels: LabelMap = Field(default_factory=dict, description="Labels on this alert.")


class RetryStormSpec(_Spec):
    """ObskitRetryStorm: retries / calls over `window` above `ratio` while at least
    `min_call_rate` calls per second arrive, for `for`."""

    model_config = ConfigDict(populate_by_name=True)
    ratio: float = Field(default=float(DEFAULT_RETRY_RATIO), gt=0, le=1_000_000)
    window: ThresholdDuration = str(DEFAULT_RETRY_WINDOW)
    min_call_rate: float = Field(
        default=float(DEFAULT_RETRY_MIN_CALL_RATE),
        ge=0,
        le=1_000_000,
        description="Logical calls per second (over `window`) below which no storm is reported.",
    )
    for_: ThresholdDuration = Field(default=str(DEFAULT_RETRY_FOR), alias="for")
    labels: LabelMap = Field(default_factory=dict, description="Labels on this alert.")


class ResilienceSpec(_Spec):
    """Thresholds of the circuit-breaker and retry alerts (defaults shown)."""

    breaker_open: BreakerOpenSpec = Field(default_factory=BreakerOpenSpec)
    flapping: FlappingSpec = Field(default_factory=FlappingSpec)
    retry_storm: RetryStormSpec = Field(default_factory=RetryStormSpec)
    labels: LabelMap = Field(
        default_factory=dict, description="Labels on all three alerts (default: ticket labels)."
    )


class TasksStalledSpec(_Spec):
    """ObskitTasksStalled: over `after`, messages of a task were published (by any job) and
    none were processed; held for `for`."""

    model_config = ConfigDict(populate_by_name=True)
    after: ThresholdDuration = Field(
        default=str(DEFAULT_STALLED_AFTER),
        description="Window over which published messages and no processing are looked for.",
    )
    for_: ThresholdDuration = Field(
        default=str(DEFAULT_STALLED_FOR),
        alias="for",
        description="How long it must hold (absorbs the lag between a publish and its processing).",
    )
    labels: LabelMap = Field(default_factory=dict, description="Labels on this alert.")


class OutboxStaleSpec(_Spec):
    """ObskitOutboxStale: the oldest pending row is older than `older_than`, for `for`."""

    model_config = ConfigDict(populate_by_name=True)
    older_than: ThresholdDuration = str(DEFAULT_OUTBOX_OLDER_THAN)
    for_: ThresholdDuration = Field(default=str(DEFAULT_OUTBOX_FOR), alias="for")
    labels: LabelMap = Field(default_factory=dict, description="Labels on this alert.")


class BackgroundSpec(_Spec):
    """Background work: the tasks this service processes and the outboxes it exposes."""

    tasks: Tasks = Field(
        default=None,
        min_length=1,
        description="`task` values this service processes: one ObskitTasksStalled each.",
    )
    outboxes: Tasks = Field(
        default=None,
        min_length=1,
        description="`outbox` names (obskit.watch_outbox) it exposes: the dashboard's panels.",
    )
    publishers: str | None = Field(
        default=None,
        description="PromQL label matchers narrowing the sent counter (default: any job's).",
    )
    tasks_stalled: TasksStalledSpec = Field(default_factory=TasksStalledSpec)
    outbox_stale: OutboxStaleSpec = Field(default_factory=OutboxStaleSpec)
    labels: LabelMap = Field(
        default_factory=dict, description="Labels on both alerts (default: the ticket labels)."
    )


class DependencySLOSpec(_Spec):
    """Client-side SLO: calls to the dependency that got a response below 500, over all calls
    (breaker rejections count as bad calls)."""

    name: Name | None = Field(
        default=None, description="Default: the dependency's name. Unique among the SLOs."
    )
    objective: Objective
    window: Window = str(DEFAULT_WINDOW)
    description: str | None = None
    labels: LabelMap = Field(
        default_factory=dict,
        description="Labels on its alerts (default: the ticket labels, severity warning).",
    )


class DependencySpec(_Spec):
    """A dependency as an object; a plain string is the same as `{address: <string>}`."""

    name: Name | None = Field(
        default=None, description="The `dependency` label on its alerts (default: the address)."
    )
    address: Annotated[str, Field(pattern=ADDRESS_PATTERN)] = Field(
        description='server_address ("host:port"); a bare host matches any port.'
    )
    breakers: list[SeriesLabel] | None = Field(
        default=None, min_length=1, description="`breaker` names protecting calls to it."
    )
    breaker: SeriesLabel | None = Field(default=None, description="Shorthand for one breaker.")
    operations: list[SeriesLabel] | None = Field(
        default=None,
        min_length=1,
        description="`operation` names (module.qualname) of the retried calls to it.",
    )
    operation: SeriesLabel | None = Field(default=None, description="Shorthand for one.")
    slo: DependencySLOSpec | None = None
    resilience: ResilienceSpec | None = Field(
        default=None, description="Overrides the service's `resilience:` for this dependency."
    )

    @model_validator(mode="after")
    def _one_spelling(self) -> DependencySpec:
        for one, several in (("breaker", "breakers"), ("operation", "operations")):
            if getattr(self, one) is not None and getattr(self, several) is not None:
                raise ValueError(f"give either {one!r} or {several!r}, not both")
        return self

    @property
    def breaker_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.breakers or ([self.breaker] if self.breaker else [])))

    @property
    def operation_names(self) -> tuple[str, ...]:
        names = self.operations or ([self.operation] if self.operation else [])
        return tuple(dict.fromkeys(names))


_ADDRESS_RE: Final = re.compile(ADDRESS_PATTERN)


def _address_only(value: Any) -> Any:
    """A dependency given as a string is the object `{address: <string>}`."""
    if isinstance(value, str):
        if not _ADDRESS_RE.match(value):
            raise ValueError(
                f"{value!r} is not a server_address: use host or host:port (letters, digits "
                "and . _ - : [ ])"
            )
        return {"address": value}
    if not isinstance(value, dict):
        raise ValueError(
            "a dependency is a server_address string or a mapping with `address:` (and "
            f"optionally name, breakers, operations, slo, resilience), got {value!r}"
        )
    return value


DependencyItem = Annotated[DependencySpec, BeforeValidator(_address_only)]


class SeveritySpec(_Spec):
    model_config = ConfigDict(populate_by_name=True)
    labels: LabelMap = Field(default_factory=dict, description="Labels on this severity's alerts.")
    for_: ForDuration | None = Field(
        default=None,
        alias="for",
        description=f"Alert `for` duration, e.g. 2m or 30s (at most {MAX_FOR}).",
    )


ReceiverName = Annotated[
    str, AfterValidator(check_receiver), Field(json_schema_extra={"pattern": RECEIVER_PATTERN})
]
"""An Alertmanager receiver name (its integrations stay in the user's Alertmanager config)."""


class ReceiversSpec(_Spec):
    page: ReceiverName | None = Field(
        default=None,
        description="Receiver of page alerts (default: <team>-page, or <service>-page).",
    )
    ticket: ReceiverName | None = Field(
        default=None,
        description="Receiver of ticket alerts (default: <team>-ticket, or <service>-ticket).",
    )

    @field_validator("page", "ticket", mode="before")
    @classmethod
    def _a_name(cls, value: Any) -> Any:
        if isinstance(value, dict | list):
            raise ValueError(
                "give the receiver's name only: its integrations (URLs, keys) stay in your own "
                "Alertmanager config (`obskit merge-alertmanager` joins the two)"
            )
        return value


class AlertingSpec(_Spec):
    labels: LabelMap = Field(default_factory=dict, description="Extra labels on every alert.")
    page: SeveritySpec = Field(default_factory=SeveritySpec)
    ticket: SeveritySpec = Field(default_factory=SeveritySpec)
    receivers: ReceiversSpec = Field(
        default_factory=ReceiversSpec,
        description="Alertmanager receiver names of page and ticket alerts.",
    )


class LinksSpec(_Spec):
    logs: bool = Field(default=False, description="Add a Loki datasource variable and log link.")
    traces: bool = Field(default=False, description="Add a Tempo datasource variable and link.")


class ServiceSpec(_Spec):
    service: Name
    team: LabelValue | None = None
    selector: str | None = Field(
        default=None, description='PromQL label matchers; default job="<service>".'
    )
    runbook_url: URLText | None = None
    grafana_url: BaseURLText | None = Field(
        default=None, description="Grafana base URL; alerts then link the dashboard."
    )
    slos: list[SLOSpec] = Field(default_factory=list)
    alerting: AlertingSpec = Field(default_factory=AlertingSpec)
    dependencies: list[DependencyItem] = Field(
        default_factory=list,
        description=(
            'server_address strings ("host:port"; a bare host matches any port), or objects '
            "naming a dependency's address, breakers, retried operations and client-side SLO."
        ),
        json_schema_extra=lambda schema: schema.update(
            items={"anyOf": [{"type": "string", "pattern": ADDRESS_PATTERN}, schema["items"]]}
        ),
    )
    resilience: ResilienceSpec = Field(default_factory=ResilienceSpec)
    buckets: list[float] | None = Field(
        default=None,
        min_length=1,
        description="The service's histogram buckets when not obskit's defaults.",
    )
    queue_wait_buckets: list[float] | None = Field(
        default=None,
        min_length=1,
        description="The queue-wait histogram's buckets when not obskit's defaults.",
    )
    background: BackgroundSpec | None = None
    links: LinksSpec = Field(default_factory=LinksSpec)

    @field_validator("buckets", "queue_wait_buckets")
    @classmethod
    def _buckets_sane(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            if any(not 0 < b < MAX_BUCKET for b in value):
                raise ValueError(f"buckets must be positive and below {MAX_BUCKET:g}")
            if list(value) != sorted(set(value)):
                raise ValueError("buckets must be strictly increasing")
        return value


class ServicesFile(_Spec):
    services: list[ServiceSpec] = Field(min_length=1)


# --------------------------------------------------------------------------- YAML with lines


class _Lines:
    """Path -> line for every mapping key, value and sequence item of one document."""

    def __init__(self) -> None:
        self.lines: dict[Path_, int] = {}

    def line(self, path: Path_) -> int:
        """Line of `path`, or of its nearest ancestor that exists (missing keys)."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)


def _to_data(
    loader: yaml.SafeLoader, node: yaml.Node, path: Path_, lines: _Lines, problems: list[str]
) -> Any:
    lines.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                key = str(key)
            child = (*path, str(key))
            if key in out:
                problems.append(f"{key_node.start_mark.line + 1}\0duplicate key {key!r}")
            lines.lines[child] = key_node.start_mark.line + 1
            out[key] = _to_data(loader, value_node, child, lines, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_data(loader, item, (*path, index), lines, problems)
            for index, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


_TOO_MANY: Final = f"manifest too large: obskit reads at most {MAX_NODES} YAML nodes per file"
_TOO_DEEP: Final = f"manifest nested too deep: obskit reads at most {MAX_DEPTH} levels"
_EXPANDED: Final = " once its aliases are expanded (an alias bomb?)"


class _LimitExceeded(Exception):
    """A manifest beyond MAX_DEPTH / MAX_NODES (or with a recursive alias)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader that stops composing past MAX_DEPTH levels or MAX_NODES nodes, before
    PyYAML's recursive composer can hit Python's recursion limit or fill memory."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _LimitExceeded(self._line(), _TOO_MANY)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _LimitExceeded(self._line(), _TOO_DEEP)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _line(self) -> int:
        return int(self.peek_event().start_mark.line) + 1  # type: ignore[no-untyped-call]


def _check_expansion(root: yaml.Node) -> None:
    """Raise _LimitExceeded when the document, with every alias expanded where it is used,
    would exceed MAX_NODES nodes or MAX_DEPTH levels, or when an alias contains itself.

    Walks the composed graph once (an anchored node is measured once, then reused), so an
    alias bomb is measured in microseconds instead of being expanded."""
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, height), expanded
    in_progress: set[int] = set()

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        key = id(node)
        known = measured.get(key)
        if known is None:
            if key in in_progress:
                message = "invalid YAML: recursive alias (the anchored node contains itself)"
                raise _LimitExceeded(node.start_mark.line + 1, message)
            if depth > MAX_DEPTH:
                raise _LimitExceeded(node.start_mark.line + 1, _TOO_DEEP + _EXPANDED)
            in_progress.add(key)
            if isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            else:
                children = []
            nodes, height = 1, 1
            for child in children:
                child_nodes, child_height = measure(child, depth + 1)
                nodes += child_nodes
                height = max(height, child_height + 1)
                if nodes > MAX_NODES:
                    raise _LimitExceeded(node.start_mark.line + 1, _TOO_MANY + _EXPANDED)
            in_progress.discard(key)
            known = measured[key] = (nodes, height)
        if depth + known[1] - 1 > MAX_DEPTH:
            raise _LimitExceeded(node.start_mark.line + 1, _TOO_DEEP + _EXPANDED)
        return known

    measure(root, 1)


def _parse_yaml(text: str, file: str) -> tuple[Any, _Lines]:
    """Compose one YAML document into data and a line map; raise ManifestError on bad YAML
    or on a document beyond the loading limits (MAX_DEPTH, MAX_NODES)."""
    lines = _Lines()
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        message = f"invalid YAML: control character U+{exc.character:04X} is not allowed"
        raise ManifestError([Problem(file, line, message)]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise ManifestError([Problem(file, 1, "file is empty: expected a service manifest")])
        _check_expansion(node)
        duplicates: list[str] = []
        data = _to_data(loader, node, (), lines, duplicates)
    except _LimitExceeded as exc:
        raise ManifestError([Problem(file, exc.line, exc.message)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        mark_line = mark.line + 1 if mark is not None else None
        reason = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ManifestError([Problem(file, mark_line, f"invalid YAML: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise ManifestError([Problem(file, None, f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if duplicates:
        problems = []
        for entry in duplicates:
            line_text, message = entry.split("\0", 1)
            problems.append(Problem(file, int(line_text), message))
        raise ManifestError(problems)
    return data, lines


# --------------------------------------------------------------------------- error mapping


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated layers down to the model, list or dict type."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            args = [a for a in get_args(annotation) if a is not NoneType]
            annotation = args[0]
        else:
            return annotation


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The spec class that owns the mapping at `loc` (to list its keys for did-you-mean)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {f.alias or name: f for name, f in current.model_fields.items()}
            if not isinstance(part, str) or part not in fields:
                return None
            current = fields[part].annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return sorted(f.alias or name for name, f in model.model_fields.items())


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _known_and_close(root: type[BaseModel], loc: tuple[str | int, ...]) -> tuple[list[str], str]:
    """The keys allowed beside the unknown key at `loc`, and the closest of them (or "")."""
    owner = _model_at(root, loc[:-1])
    known = _keys_of(owner) if owner is not None else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return known, close[0] if close else ""


def _message(error: Any, root: type[BaseModel]) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known, close = _known_and_close(root, loc)
        hint = f" (did you mean {close!r}?)" if close else ""
        where = f" in {_dotted(loc[:-1])}" if loc[:-1] else ""
        return f"unknown key {key!r}{where}{hint}; allowed keys: {', '.join(known)}"
    if kind == "missing":
        return f"missing required key {_dotted(loc)!r}"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    got = error.get("input")
    if (kind.endswith("_type") or kind == "string_pattern_mismatch") and not isinstance(
        got, dict | list
    ):
        message = f"{message}, got {got!r}"
    return f"{_dotted(loc)}: {message}"


def _validate(data: Any, lines: _Lines, file: str) -> list[tuple[ServiceSpec, Path_]]:
    if not isinstance(data, dict):
        raise ManifestError(
            [Problem(file, 1, "expected a mapping with 'service:' (or 'services:') at top level")]
        )
    root: type[BaseModel] = ServicesFile if "services" in data else ServiceSpec
    try:
        spec = root.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # `objectiv: 99` is one problem: the did-you-mean says it; no "missing 'objective'" too.
        misspelt = {
            (*e["loc"][:-1], close)
            for e in errors
            if e["type"] == "extra_forbidden"
            and (close := _known_and_close(root, tuple(e["loc"]))[1])
        }
        problems = [
            Problem(file, lines.line(tuple(e["loc"])), _message(e, root))
            for e in errors
            if not (e["type"] == "missing" and tuple(e["loc"]) in misspelt)
        ]
        raw = data.get("services") if root is ServicesFile else [data]
        for index, item in enumerate(raw if isinstance(raw, list) else []):
            if isinstance(item, dict):
                base: Path_ = ("services", index) if root is ServicesFile else ()
                problems.extend(_raw_problems(item, base, lines, file))
        raise ManifestError(sorted(problems, key=lambda p: p.line or 0)) from None
    if isinstance(spec, ServicesFile):
        return [(s, ("services", i)) for i, s in enumerate(spec.services)]
    assert isinstance(spec, ServiceSpec)
    return [(spec, ())]


# --------------------------------------------------------------------------- semantic checks


def _check_selector(selector: str) -> str | None:
    """Return an error message when `selector` is not a list of PromQL label matchers."""
    try:
        node = promql_parser.parse("{" + selector + "}")
    except ValueError as exc:
        return f"selector is not valid PromQL label matchers: {exc}"
    if not isinstance(node, promql_parser.VectorSelector) or node.name:
        return 'selector must be label matchers only, e.g. job="checkout"'
    if any(m.name == "__name__" for m in node.matchers.matchers):
        return "selector must not match __name__: obskit chooses the metric of each query"
    try:
        example_labels(selector)
    except (ValueError, re.error) as exc:
        return f"selector: {exc}"
    return None


SLOFacts = list[tuple[str | None, str | None, float | None]]
"""Per SLO, in order: its name, its SLI kind and its threshold (None when unknown or none)."""


@dataclass(frozen=True)
class Histogram:
    """The buckets a threshold of one SLI kind must be one of, and how to name them."""

    buckets: tuple[float, ...]
    custom: bool
    key: str
    """The manifest key that declares them."""
    what: str
    """How the message names the histogram and its buckets."""

    def problem(self, kind: str, threshold: float) -> str:
        listed = ", ".join(format_le(b) for b in self.buckets)
        origin = f"the manifest's {self.what}" if self.custom else f"obskit's default {self.what}"
        where = "a histogram bucket" if kind == "latency" else f"a {self.what[:-1]}"
        return (
            f"{kind} threshold {threshold:g} is not {where} boundary; {origin} are: {listed} "
            f"(declare `{self.key}:` if the service uses custom ones)"
        )


def _slo_problems(facts: SLOFacts, histograms: dict[str, Histogram]) -> Iterator[tuple[Path_, str]]:
    """Duplicate SLO names and thresholds that are not buckets, as (path in service, message).
    `histograms`: SLI kind -> the histogram its threshold must be a bucket of."""
    seen: dict[str, int] = {}
    for index, (name, kind, threshold) in enumerate(facts):
        if name is not None:
            if name in seen:
                yield (
                    ("slos", index, "name"),
                    f"duplicate SLO name {name!r} (also slos[{seen[name]}])",
                )
            seen.setdefault(name, index)
        histogram = histograms.get(kind or "")
        if threshold is not None and histogram is not None and threshold not in histogram.buckets:
            yield (
                ("slos", index, "sli", kind or "", "threshold"),
                histogram.problem(kind or "", threshold),
            )


def _histograms(
    buckets: Sequence[float] | None, wait: Sequence[float] | None
) -> dict[str, Histogram]:
    """The histograms of the latency and freshness thresholds (defaults unless declared)."""
    return {
        "latency": Histogram(
            tuple(buckets) if buckets is not None else semconv.DEFAULT_BUCKETS,
            buckets is not None,
            "buckets",
            "buckets",
        ),
        "freshness": Histogram(
            tuple(wait) if wait is not None else semconv.DEFAULT_QUEUE_WAIT_BUCKETS,
            wait is not None,
            "queue_wait_buckets",
            "queue-wait buckets",
        ),
    }


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < MAX_BUCKET
    return float(value) if ok else None


def _raw_buckets(raw: Any) -> tuple[float, ...] | None:
    """Valid buckets from raw data, or None when absent; `()` when present but invalid."""
    if raw is None:
        return None
    parsed = [_number(b) for b in raw] if isinstance(raw, list) else [None]
    valid = [b for b in parsed if b is not None]
    return tuple(valid) if len(valid) == len(parsed) and valid else ()


def _raw_problems(data: dict[str, Any], base: Path_, lines: _Lines, file: str) -> list[Problem]:
    """The checks of `_build` that raw data still allows when the spec itself did not validate,
    so a file's structural and semantic problems are reported in one run."""
    raw_slos = data.get("slos")
    if not isinstance(raw_slos, list):
        return []
    buckets = _raw_buckets(data.get("buckets"))
    wait = _raw_buckets(data.get("queue_wait_buckets"))
    histograms = {
        kind: histogram
        for kind, histogram in _histograms(buckets, wait).items()
        if histogram.buckets  # invalid buckets: already an error, no threshold check
    }
    facts: SLOFacts = []
    for item in raw_slos:
        slo: dict[str, Any] = item if isinstance(item, dict) else {}
        name = slo.get("name") if isinstance(slo.get("name"), str) else None
        sli = slo.get("sli")
        sli = sli if isinstance(sli, dict) else {}
        kind = next((k for k in ("latency", "freshness") if isinstance(sli.get(k), dict)), None)
        threshold = _number(sli[kind].get("threshold")) if kind is not None else None
        facts.append((name, kind, threshold))
    return [
        Problem(file, lines.line((*base, *path)), message)
        for path, message in _slo_problems(facts, histograms)
    ]


def _build(
    spec: ServiceSpec, base: Path_, lines: _Lines, file: str
) -> tuple[Service, list[Problem]]:
    problems: list[Problem] = []

    def problem(path: Path_, message: str) -> None:
        problems.append(Problem(file, lines.line((*base, *path)), message))

    selector = spec.selector if spec.selector is not None else f'job="{spec.service}"'
    if spec.selector is not None and (message := _check_selector(spec.selector)):
        problem(("selector",), message)
    histograms = _histograms(spec.buckets, spec.queue_wait_buckets)
    slos: list[SLO] = []
    for slo in spec.slos:
        kind = slo.sli.kind
        threshold = slo.sli.latency.threshold if slo.sli.latency is not None else None
        tasks: tuple[str, ...] = ()
        queues: tuple[str, ...] = ()
        task_sli = slo.sli.processing or slo.sli.freshness
        if task_sli is not None:
            tasks = tuple(dict.fromkeys(task_sli.tasks or ()))
            queues = tuple(dict.fromkeys(task_sli.queues or ()))
        if slo.sli.freshness is not None:
            threshold = slo.sli.freshness.threshold
        slos.append(
            SLO(
                name=slo.name,
                objective=Decimal(str(slo.objective)),
                window=Duration.parse(slo.window),
                description=slo.description or "",
                kind=kind,
                threshold=threshold,
                routes=tuple(dict.fromkeys(slo.routes or ())),
                tasks=tasks,
                queues=queues,
            )
        )
    facts: SLOFacts = [(slo.name, slo.kind, slo.threshold) for slo in slos]
    for path, message in _slo_problems(facts, histograms):
        problem(path, message)
    common = dict(spec.alerting.labels)

    def check_labels(path: Path_, labels: dict[str, str]) -> None:
        for reserved in sorted((RULE_LABELS | SUBJECT_LABELS) & labels.keys()):
            problem((*path, reserved), f"label {reserved!r} is set by obskit")

    check_labels(("alerting", "labels"), common)
    check_labels(("alerting", "page", "labels"), spec.alerting.page.labels)
    check_labels(("alerting", "ticket", "labels"), spec.alerting.ticket.labels)
    severities = [
        (spec.alerting.labels | spec.alerting.page.labels).get(
            LABEL_SEVERITY, DEFAULT_SEVERITY_LABEL["page"]
        ),
        (spec.alerting.labels | spec.alerting.ticket.labels).get(
            LABEL_SEVERITY, DEFAULT_SEVERITY_LABEL["ticket"]
        ),
    ]
    if severities[0] == severities[1]:
        where = next(
            (
                path
                for path, labels in (
                    (("alerting", "ticket", "labels", LABEL_SEVERITY), spec.alerting.ticket.labels),
                    (("alerting", "page", "labels", LABEL_SEVERITY), spec.alerting.page.labels),
                    (("alerting", "labels", LABEL_SEVERITY), spec.alerting.labels),
                )
                if LABEL_SEVERITY in labels
            ),
            ("alerting",),
        )
        problem(
            where,
            f"page and ticket alerts both carry severity {severities[0]!r}: the Alertmanager "
            "routes tell them apart by severity; give them different values",
        )
    policies = []
    for severity in SEVERITIES:
        sev = spec.alerting.page if severity == "page" else spec.alerting.ticket
        labels = {LABEL_SEVERITY: DEFAULT_SEVERITY_LABEL[severity]}
        if spec.team is not None:
            labels[LABEL_TEAM] = spec.team
        labels.update(common)
        labels.update(sev.labels)
        policies.append(
            AlertPolicy(
                severity=severity,
                labels=tuple(sorted(labels.items())),
                for_=Duration.parse(sev.for_, seconds=True) if sev.for_ else DEFAULT_FOR[severity],
            )
        )
    ticket_labels = policies[1].labels
    check_resilience_labels(("resilience",), spec.resilience, check_labels)
    resilience = _merge_resilience(spec.resilience, Resilience().with_labels(ticket_labels))
    dependencies: list[Dependency] = []
    dependency_paths: list[Path_] = []
    seen_dependencies: dict[str, tuple[int, DependencySpec]] = {}
    slo_names: dict[str, Path_] = {
        slo.name: ("slos", index, "name") for index, slo in enumerate(spec.slos)
    }
    for index, dep in enumerate(spec.dependencies):
        at: Path_ = ("dependencies", index)
        name = dep.name or dep.address
        if name in seen_dependencies:
            first, earlier = seen_dependencies[name]
            if earlier != dep:  # the same entry twice (e.g. one address string) is merged
                problem(at, f"duplicate dependency name {name!r} (also dependencies[{first}])")
            continue
        seen_dependencies[name] = (index, dep)
        breakers, operations = dep.breaker_names, dep.operation_names
        own: Resilience | None = None
        if dep.resilience is not None:
            check_resilience_labels((*at, "resilience"), dep.resilience, check_labels)
            if not breakers and not operations:
                problem(
                    (*at, "resilience"),
                    f"dependency {name!r} lists no breakers and no operations for its "
                    "`resilience:` thresholds to apply to (add `breakers:` or `operations:`)",
                )
        if breakers or operations:
            own = _merge_resilience(dep.resilience, resilience)
        dependency = Dependency(
            name=name,
            address=dep.address,
            breakers=breakers,
            operations=operations,
            resilience=own,
        )
        dependencies.append(dependency)
        dependency_paths.append(at)
        if dep.slo is not None:
            check_labels((*at, "slo", "labels"), dep.slo.labels)
            slo_name = dep.slo.name or name
            if slo_name in slo_names:
                also = _dotted(slo_names[slo_name][:-1])
                problem(
                    (*at, "slo", "name") if dep.slo.name else (*at, "slo"),
                    f"duplicate SLO name {slo_name!r} (also {also}); "
                    "give this dependency's SLO a `name:`",
                )
            slo_names.setdefault(slo_name, (*at, "slo", "name"))
            slos.append(
                SLO(
                    name=slo_name,
                    objective=Decimal(str(dep.slo.objective)),
                    window=Duration.parse(dep.slo.window),
                    description=dep.slo.description or "",
                    kind="client",
                    threshold=None,
                    routes=(),
                    dependency=dependency,
                    labels=_sorted({**dict(ticket_labels), **dep.slo.labels}),
                )
            )
    for path, message in _listed_twice(dependencies, dependency_paths):
        problem(path, message)
    service = Service(
        name=spec.service,
        source=file,
        selector=selector,
        team=spec.team,
        runbook_url=spec.runbook_url,
        grafana_url=spec.grafana_url,
        slos=tuple(slos),
        policies=(policies[0], policies[1]),
        dependencies=tuple(dependencies),
        buckets=histograms["latency"].buckets,
        queue_wait_buckets=histograms["freshness"].buckets,
        logs=spec.links.logs,
        traces=spec.links.traces,
        line=lines.line((*base, "service")),
        receivers=(spec.alerting.receivers.page, spec.alerting.receivers.ticket),
        resilience=resilience,
        background=_background(spec.background, ticket_labels, check_labels, problem),
    )
    return service, problems


def _background(
    spec: BackgroundSpec | None,
    ticket_labels: Labels,
    check: Callable[[Path_, dict[str, str]], None],
    problem: Callable[[Path_, str], None],
) -> Background:
    """The `background:` block (defaults when absent), its alerts labelled like tickets."""
    if spec is None:
        return Background(tasks_stalled_labels=ticket_labels, outbox_stale_labels=ticket_labels)
    at: Path_ = ("background",)
    check((*at, "labels"), spec.labels)
    check((*at, "tasks_stalled", "labels"), spec.tasks_stalled.labels)
    check((*at, "outbox_stale", "labels"), spec.outbox_stale.labels)
    if spec.publishers is not None and (message := _check_selector(spec.publishers)):
        problem((*at, "publishers"), message.replace("selector", "publishers", 1))
    common = {**dict(ticket_labels), **spec.labels}
    return Background(
        declared=True,
        tasks=tuple(dict.fromkeys(spec.tasks or ())),
        outboxes=tuple(dict.fromkeys(spec.outboxes or ())),
        stalled_after=Duration.parse(spec.tasks_stalled.after, seconds=True),
        stalled_for=Duration.parse(spec.tasks_stalled.for_, seconds=True),
        publishers=spec.publishers,
        outbox_older_than=Duration.parse(spec.outbox_stale.older_than, seconds=True),
        outbox_for=Duration.parse(spec.outbox_stale.for_, seconds=True),
        tasks_stalled_labels=_sorted({**common, **spec.tasks_stalled.labels}),
        outbox_stale_labels=_sorted({**common, **spec.outbox_stale.labels}),
    )


def _sorted(labels: dict[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def check_resilience_labels(
    path: Path_, spec: ResilienceSpec, check: Callable[[Path_, dict[str, str]], None]
) -> None:
    check((*path, "labels"), spec.labels)
    for block in ("breaker_open", "flapping", "retry_storm"):
        check((*path, block, "labels"), getattr(spec, block).labels)


def _merge_resilience(spec: ResilienceSpec | None, inherited: Resilience) -> Resilience:
    """`inherited` with what `spec` sets explicitly (a dependency overrides only what it says)."""
    if spec is None:
        return inherited
    opened, flapping, storm = spec.breaker_open, spec.flapping, spec.retry_storm

    def given(block: BaseModel, field: str) -> bool:
        return field in block.model_fields_set and field in type(block).model_fields

    def labels(inherited_labels: Labels, block: BaseModel) -> Labels:
        extra = getattr(block, "labels", {})
        return _sorted({**dict(inherited_labels), **spec.labels, **extra})

    def duration(block: BaseModel, field: str, current: Duration) -> Duration:
        return (
            Duration.parse(getattr(block, field), seconds=True) if given(block, field) else current
        )

    def decimal(block: BaseModel, field: str, current: Decimal) -> Decimal:
        return Decimal(str(getattr(block, field))) if given(block, field) else current

    return Resilience(
        breaker_open_for=duration(opened, "for_", inherited.breaker_open_for),
        flapping_transitions=(
            flapping.transitions
            if given(flapping, "transitions")
            else inherited.flapping_transitions
        ),
        flapping_window=duration(flapping, "window", inherited.flapping_window),
        retry_ratio=decimal(storm, "ratio", inherited.retry_ratio),
        retry_window=duration(storm, "window", inherited.retry_window),
        retry_min_call_rate=decimal(storm, "min_call_rate", inherited.retry_min_call_rate),
        retry_for=duration(storm, "for_", inherited.retry_for),
        breaker_open_labels=labels(inherited.breaker_open_labels, opened),
        flapping_labels=labels(inherited.flapping_labels, flapping),
        retry_storm_labels=labels(inherited.retry_storm_labels, storm),
    )


def _listed_twice(
    dependencies: Sequence[Dependency], paths: Sequence[Path_]
) -> Iterator[tuple[Path_, str]]:
    """A breaker or operation belongs to one dependency: its alerts carry one `dependency`."""
    for kind in ("breakers", "operations"):
        owner: dict[str, str] = {}
        for dep, path in zip(dependencies, paths, strict=True):
            for value in getattr(dep, kind):
                if value in owner:
                    yield (
                        (*path, kind),
                        f"{kind[:-1]} {value!r} is listed by dependencies {owner[value]!r} and "
                        f"{dep.name!r}; list it under one",
                    )
                owner.setdefault(value, dep.name)


# --------------------------------------------------------------------------- public API


def loads(text: str, file: str = "<string>") -> list[Service]:
    """Parse and validate one manifest's text; raise ManifestError listing every problem."""
    data, lines = _parse_yaml(text, file)
    specs = _validate(data, lines, file)
    services: list[Service] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for spec, base in specs:
        service, found = _build(spec, base, lines, file)
        problems.extend(found)
        if service.name in seen:
            problems.append(
                Problem(
                    file,
                    service.line,
                    f"duplicate service name {service.name!r} (also line {seen[service.name]})",
                )
            )
        seen.setdefault(service.name, service.line)
        services.append(service)
    if problems:
        raise ManifestError(sorted(problems, key=lambda p: p.line or 0))
    return services


def load(path: Path) -> list[Service]:
    """Read and validate one manifest file."""
    file = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ManifestError([Problem(file, None, "no such file")]) from None
    except IsADirectoryError:
        raise ManifestError([Problem(file, None, "is a directory")]) from None
    except OSError as exc:
        raise ManifestError([Problem(file, None, f"cannot read: {exc.strerror}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        message = f"file too large: obskit reads manifests of at most {MAX_FILE_BYTES} bytes"
        raise ManifestError([Problem(file, None, message)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError([Problem(file, None, f"not UTF-8 text: {exc.reason}")]) from None
    if not text.strip():
        raise ManifestError([Problem(file, 1, "file is empty: expected a service manifest")])
    return loads(text, file)


def _is_manifest(path: Path) -> bool:
    return path.name in MANIFEST_NAMES or path.name.endswith(MANIFEST_SUFFIXES)


def discover(paths: Iterable[Path]) -> Iterator[Path]:
    """Files as given; directories expanded to the manifests they hold (see module doc)."""
    for path in paths:
        if path.is_dir():
            found = [
                p
                for p in path.rglob("*")
                if p.is_file()
                and _is_manifest(p)
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            ]
            yield from sorted(found)
        else:
            yield path


def _load_file(path: Path) -> tuple[list[Service], list[Problem]]:
    try:
        return load(path), []
    except ManifestError as exc:
        return [], list(exc.problems)


def load_all(paths: Sequence[Path], jobs: int = 1) -> list[Service]:
    """Load every manifest under `paths` (files parsed by up to `jobs` processes); raise one
    ManifestError with every problem of all."""
    services: list[Service] = []
    problems: list[Problem] = []
    files = list(discover(paths))
    for path in paths:
        if path.is_dir() and not any(_under(f, path) for f in files):
            problems.append(
                Problem(str(path), None, "no manifest here (obskit.yaml or *.obskit.yaml)")
            )
    unique: dict[Path, Path] = {}
    for file in files:  # named twice (e.g. a file and its directory): load once
        unique.setdefault(file.resolve(), file)
    owners: dict[str, str] = {}
    for file, (loaded, found) in zip(
        unique.values(), fork_map(_load_file, list(unique.values()), jobs), strict=True
    ):
        problems.extend(found)
        for service in loaded:
            if service.name in owners:
                problems.append(
                    Problem(
                        str(file),
                        service.line,
                        f"duplicate service name {service.name!r} (also in {owners[service.name]})",
                    )
                )
                continue
            owners[service.name] = f"{file}:{service.line}"
            services.append(service)
    if problems:
        raise ManifestError(problems)
    return services


def _under(file: Path, directory: Path) -> bool:
    try:
        file.relative_to(directory)
    except ValueError:
        return False
    return True


def json_schema() -> dict[str, Any]:
    """JSON Schema of a manifest file (one service, or `services:` holding several)."""
    single = ServiceSpec.model_json_schema(by_alias=True)
    several = ServicesFile.model_json_schema(by_alias=True)
    defs = {**single.pop("$defs", {}), **several.pop("$defs", {})}
    defs["ServiceSpec"] = single
    defs["ServicesFile"] = several
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "obskit service manifest",
        "anyOf": [{"$ref": "#/$defs/ServiceSpec"}, {"$ref": "#/$defs/ServicesFile"}],
        "$defs": dict(sorted(defs.items())),
    }
