"""obskit's lean server span and the request-path sampler.

The one server span per request (and a message's producer and consumer spans) is obskit's own
implementation of the OpenTelemetry Span API (so handlers can annotate it through
`trace.get_current_span()`), handed to the export pipe as it is when it ends (it reads like an
SDK `ReadableSpan`). It skips the SDK's per-attribute validation and locks, which cost about
35 us per request here, and builds no `SpanContext` or `ReadableSpan` on the request path;
values OTLP cannot carry are dropped, never raised.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from obskit.runtime.config import Config

if TYPE_CHECKING:
    from obskit.runtime.tracing.provider import Tracing

UNSET: Final = Status(StatusCode.UNSET)
_SERVER: Final = SpanKind.SERVER
_TRACE_ID_LIMIT: Final = (1 << 64) - 1
_NOT_SAMPLED: Final = TraceFlags(TraceFlags.DEFAULT)
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_time_ns = time.time_ns


def fast_sampler(config: Config) -> Any:
    """The configured sampler as a plain function (parent, trace_id) -> sampled.

    Same decisions as the SDK's standard samplers (used for every other span), without
    building SamplingResult objects on the request path.
    """
    name = config.sampler
    bound = round(config.sampler_arg * (_TRACE_ID_LIMIT + 1))
    root: Any
    if name.endswith("always_on"):
        root = _always
    elif name.endswith("always_off"):
        root = _never
    else:

        def root(trace_id: int) -> bool:
            return trace_id & _TRACE_ID_LIMIT < bound

    if not name.startswith("parentbased_"):
        return lambda parent, trace_id: root(trace_id)

    def parent_based(parent: SpanContext | None, trace_id: int) -> bool:
        if parent is not None:
            return bool(parent.trace_flags & 0x01)
        return bool(root(trace_id))

    return parent_based


def _always(trace_id: int) -> bool:
    return True


def _never(trace_id: int) -> bool:
    return False


def _valid_attribute(value: Any) -> bool:
    if isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, (str, bool, int, float)) for v in value)
    return False


def bounded(value: Any, limit: int) -> Any:
    """`value` with strings cut to `limit` characters (each string of a sequence too): what the
    SDK does with OTEL_[SPAN_]ATTRIBUTE_VALUE_LENGTH_LIMIT."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit]
    if isinstance(value, (list, tuple)):
        return [v[:limit] if isinstance(v, str) else v for v in value]
    return value


class UnsampledSpan(NonRecordingSpan):
    """The server span of a request whose trace is sampled out: IDs only, nothing recorded.

    Builds its `SpanContext` only when someone asks for it (a log line, an outbound call):
    most sampled-out requests never do, and obskit formats the IDs from the integers.
    """

    sampled: Final = False

    def __init__(self, trace_id: int, span_id: int, state: TraceState | None) -> None:
        self.ids = (trace_id, span_id, state)
        """(trace_id, span_id, trace_state), as `ServerSpan.ids`."""
        self._context: SpanContext | None = None  # type: ignore[assignment]

    def get_span_context(self) -> SpanContext:
        context = self._context
        if context is None:
            trace_id, span_id, state = self.ids
            context = self._context = SpanContext(trace_id, span_id, False, _NOT_SAMPLED, state)
        return context

    def __repr__(self) -> str:
        return f"UnsampledSpan({self.get_span_context()})"


class ServerSpan(Span):
    """obskit's lean recording span: the one server span per request, and the producer and
    consumer spans of messages (`kind`).

    Implements the OpenTelemetry Span API (so `trace.get_current_span().set_attribute(...)`
    works in handlers). Attribute values that OTLP cannot carry are dropped, never raised.
    When it ends it goes to the export pipe as it is: it has the fields a `ReadableSpan` has
    (`name`, `kind`, `parent`, `attributes`, `events`, `status`, `start_time`, `end_time`...),
    which obskit's OTLP encoder reads directly; any other exporter gets `readable()`, built
    in the export thread. Its `SpanContext` is built only when someone asks for it (`ids`
    holds the trace and span IDs).
    """

    __slots__ = (
        "_context",
        "_ended",
        "_tracing",
        "attributes",
        "end_time",
        "events",
        "ids",
        "kind",
        "name",
        "parent",
        "start_time",
        "status",
    )

    sampled: Final = True
    links: Final[tuple[()]] = ()
    dropped_attributes: Final = 0
    dropped_events: Final = 0
    dropped_links: Final = 0

    def __init__(  # noqa: PLR0917 - one call per span on the request path
        self,
        tracing: Tracing,
        name: str,
        trace_id: int,
        span_id: int,
        state: TraceState | None,
        parent: SpanContext | None,
        kind: SpanKind = _SERVER,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        self._tracing = tracing
        self.kind = kind
        self.name = name
        self.ids = (trace_id, span_id, state)
        """(trace_id, span_id, trace_state): the span's identity without a SpanContext."""
        self._context: SpanContext | None = None
        self.parent = parent
        self.start_time = _time_ns()
        self.end_time: int | None = None
        self.attributes: dict[str, Any] = {} if attributes is None else attributes
        self.events: list[Event] | tuple[()] = ()  # a list from the first event on
        self.status = UNSET
        self._ended = False

    def get_span_context(self) -> SpanContext:
        context = self._context
        if context is None:
            trace_id, span_id, state = self.ids
            context = self._context = SpanContext(trace_id, span_id, False, _SAMPLED, state)
        return context

    @property
    def context(self) -> SpanContext:
        return self.get_span_context()

    @property
    def resource(self) -> Any:
        return self._tracing.resource

    @property
    def instrumentation_scope(self) -> Any:
        return self._tracing.scope

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: Any) -> None:
        if not self._ended and isinstance(key, str) and _valid_attribute(value):
            limit = self._tracing.attribute_limit
            if limit is not None:
                value = bounded(value, limit)
            self.attributes[key] = list(value) if isinstance(value, tuple) else value

    def set_known(self, attributes: dict[str, Any]) -> None:
        """obskit's own (already valid) attributes, in one update."""
        self.attributes.update(attributes)

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        if not self._ended:
            clean = {k: v for k, v in (attributes or {}).items() if _valid_attribute(v)}
            limit = self._tracing.event_attribute_limit
            if limit is not None:
                clean = {k: bounded(v, limit) for k, v in clean.items()}
            event = Event(name, clean, timestamp or _time_ns())
            events = self.events
            if isinstance(events, list):
                events.append(event)
            else:
                self.events = [event]

    def update_name(self, name: str) -> None:
        if not self._ended:
            self.name = name

    def is_recording(self) -> bool:
        return not self._ended

    def set_status(self, status: Any, description: str | None = None) -> None:
        if not self._ended:
            self.status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Any = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        attrs = {
            "exception.type": type(exception).__name__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
        }
        attrs.update(attributes or {})
        self.add_event("exception", attrs, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self.end_time = end_time or _time_ns()
        pipe = self._tracing.pipe
        if pipe is not None:
            pipe.on_end(self)

    def readable(self) -> ReadableSpan:
        """The SDK's `ReadableSpan` of this (ended) span, for exporters other than obskit's."""
        return ReadableSpan(
            self.name,
            self.get_span_context(),
            self.parent,
            self.resource,
            self.attributes,
            self.events,
            (),
            self.kind,
            None,
            self.status,
            self.start_time,
            self.end_time,
            self.instrumentation_scope,
        )


Finished = ReadableSpan | ServerSpan
"""What the export pipe queues: SDK spans (the user's tracer) and obskit's lean spans."""
