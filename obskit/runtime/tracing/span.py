"""obskit's lean server span and the request-path sampler.

The one server span per request is obskit's own implementation of the OpenTelemetry Span API
(so handlers can annotate it through `trace.get_current_span()`), handed to the export pipe
as an SDK `ReadableSpan` when it ends. It skips the SDK's per-attribute validation and locks,
which cost about 35 us per request here; values OTLP cannot carry are dropped, never raised.
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

_UNSET: Final = Status(StatusCode.UNSET)
_SERVER: Final = SpanKind.SERVER
_TRACE_ID_LIMIT: Final = (1 << 64) - 1
_NOT_SAMPLED: Final = TraceFlags(TraceFlags.DEFAULT)
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

    def __init__(self, trace_id: int, span_id: int, state: TraceState | None) -> None:
        self._ids = (trace_id, span_id, state)
        self._context: SpanContext | None = None  # type: ignore[assignment]

    def get_span_context(self) -> SpanContext:
        context = self._context
        if context is None:
            trace_id, span_id, state = self._ids
            context = self._context = SpanContext(trace_id, span_id, False, _NOT_SAMPLED, state)
        return context

    def __repr__(self) -> str:
        return f"UnsampledSpan({self.get_span_context()})"


class ServerSpan(Span):
    """obskit's lean recording span: the one server span per request, and the producer and
    consumer spans of messages (`kind`).

    Implements the OpenTelemetry Span API (so `trace.get_current_span().set_attribute(...)`
    works in handlers) and is handed to the export pipe as an SDK `ReadableSpan` when it ends.
    Attribute values that OTLP cannot carry are dropped, never raised.
    """

    __slots__ = (
        "_attrs",
        "_ctx",
        "_ended",
        "_events",
        "_kind",
        "_name",
        "_parent",
        "_start",
        "_status",
        "_tracing",
    )

    def __init__(
        self,
        tracing: Tracing,
        name: str,
        ctx: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind = _SERVER,
    ) -> None:
        self._tracing = tracing
        self._kind = kind
        self._name = name
        self._ctx = ctx
        self._parent = parent
        self._start = _time_ns()
        self._attrs: dict[str, Any] = {}
        self._events: list[Event] = []
        self._status = _UNSET
        self._ended = False

    def get_span_context(self) -> SpanContext:
        return self._ctx

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: Any) -> None:
        if not self._ended and isinstance(key, str) and _valid_attribute(value):
            limit = self._tracing.attribute_limit
            if limit is not None:
                value = bounded(value, limit)
            self._attrs[key] = list(value) if isinstance(value, tuple) else value

    def set_known(self, attributes: dict[str, Any]) -> None:
        """obskit's own (already valid) attributes, in one update."""
        self._attrs.update(attributes)

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        if not self._ended:
            clean = {k: v for k, v in (attributes or {}).items() if _valid_attribute(v)}
            limit = self._tracing.event_attribute_limit
            if limit is not None:
                clean = {k: bounded(v, limit) for k, v in clean.items()}
            self._events.append(Event(name, clean, timestamp or _time_ns()))

    def update_name(self, name: str) -> None:
        self._name = name

    def is_recording(self) -> bool:
        return not self._ended

    def set_status(self, status: Any, description: str | None = None) -> None:
        self._status = status if isinstance(status, Status) else Status(status, description)

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
        tracing = self._tracing
        pipe = tracing.pipe
        if pipe is None:
            return
        pipe.on_end(
            ReadableSpan(
                self._name,
                self._ctx,
                self._parent,
                tracing.resource,
                self._attrs,
                self._events,
                (),
                self._kind,
                None,
                self._status,
                self._start,
                end_time or _time_ns(),
                tracing.scope,
            )
        )
