"""Traces: TracerProvider, sampler, OTLP exporter and a bounded, counted export pipeline.

obskit builds its own `TracerProvider` and, by default, does NOT install it as the global
OpenTelemetry provider (`set_global_tracer_provider=False`): FastAPI >= 0.13x switches on its
own native spans as soon as a global provider exists, and obskit already emits the one server
span per request. A provider the user set globally is never replaced; pass
`tracer_provider=...` to make obskit use yours.

Finished spans go to `SpanPipe`: a bounded deque (appending is all the request thread does),
drained by one daemon thread that exports batches. Spans that do not fit are dropped and
counted, never blocking a request; export failures are counted and logged at most once per
interval. Counters are exposed as obskit_spans_* metrics.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import random
import re
import threading
import time
import traceback
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
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

from obskit import __version__, logs
from obskit.config import Config

if TYPE_CHECKING:
    from opentelemetry.context import Context

__all__ = ["ServerSpan", "Status", "StatusCode", "Tracing"]

_log = logging.getLogger("obskit")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_EXPORTER_LOGGERS: Final = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
)
INSTRUMENTATION_NAME: Final = "obskit"
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED: Final = TraceFlags(TraceFlags.DEFAULT)
_UNSET: Final = Status(StatusCode.UNSET)
_SERVER: Final = SpanKind.SERVER
_TRACE_ID_LIMIT: Final = (1 << 64) - 1
_getrandbits = random.getrandbits
_time_ns = time.time_ns


def build_sampler(config: Config) -> Sampler:
    name = config.sampler
    root: Sampler
    if name.endswith("always_on"):
        root = ALWAYS_ON
    elif name.endswith("always_off"):
        root = ALWAYS_OFF
    else:
        root = TraceIdRatioBased(config.sampler_arg)
    return ParentBased(root) if name.startswith("parentbased_") else root


def build_resource(config: Config) -> Resource:
    attrs: dict[str, Any] = dict(config.resource_attributes)
    attrs["service.name"] = config.service
    if config.version:
        attrs["service.version"] = config.version
    if config.environment:
        attrs["deployment.environment.name"] = config.environment
    attrs.setdefault("service.instance.id", str(uuid.uuid4()))
    attrs.setdefault("telemetry.distro.name", "obskit")
    return Resource.create(attrs)


def build_exporter(config: Config) -> SpanExporter:
    headers = dict(config.otlp_headers) or None
    if config.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(
            endpoint=config.otlp_endpoint, headers=headers, timeout=config.otlp_timeout
        )
    from obskit.otlp import OTLPHttpExporter  # noqa: PLC0415

    return OTLPHttpExporter(
        config.otlp_endpoint,
        headers=headers,
        timeout=config.otlp_timeout,
        compression=config.otlp_compression,
    )


def fast_sampler(config: Config) -> Any:
    """The configured sampler as a plain function (parent, trace_id) -> sampled.

    Same decisions as the SDK's standard samplers (used for every other span), without
    building SamplingResult objects on the request path.
    """
    name = config.sampler
    bound = round(config.sampler_arg * (_TRACE_ID_LIMIT + 1))

    def root(trace_id: int) -> bool:
        if name.endswith("always_on"):
            return True
        if name.endswith("always_off"):
            return False
        return trace_id & _TRACE_ID_LIMIT < bound

    if not name.startswith("parentbased_"):
        return lambda parent, trace_id: root(trace_id)

    def parent_based(parent: SpanContext | None, trace_id: int) -> bool:
        if parent is not None:
            return bool(parent.trace_flags & 0x01)
        return root(trace_id)

    return parent_based


def _valid_attribute(value: Any) -> bool:
    if isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, (str, bool, int, float)) for v in value)
    return False


class ServerSpan(Span):
    """obskit's lean recording span for the one server span per request.

    Implements the OpenTelemetry Span API (so `trace.get_current_span().set_attribute(...)`
    works in handlers) and is handed to the export pipe as an SDK `ReadableSpan` when it ends.
    Attribute values that OTLP cannot carry are dropped, never raised.
    """

    __slots__ = (
        "_attrs",
        "_ctx",
        "_ended",
        "_events",
        "_name",
        "_parent",
        "_start",
        "_status",
        "_tracing",
    )

    def __init__(
        self, tracing: Tracing, name: str, ctx: SpanContext, parent: SpanContext | None
    ) -> None:
        self._tracing = tracing
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
            self._attrs[key] = list(value) if isinstance(value, tuple) else value

    def set_known(self, attributes: dict[str, Any]) -> None:
        """obskit's own (already valid) attributes, in one update."""
        self._attrs.update(attributes)

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        if not self._ended:
            clean = {k: v for k, v in (attributes or {}).items() if _valid_attribute(v)}
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
                _SERVER,
                None,
                self._status,
                self._start,
                end_time or _time_ns(),
                tracing.scope,
            )
        )


class _OncePerInterval(logging.Filter):
    """Lets one record per interval through (the exporter's own error logs)."""

    def __init__(self, interval: float) -> None:
        super().__init__()
        self.interval = interval
        self._last = -1e18

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False


class SpanPipe(SpanProcessor):
    """Bounded queue + one export thread; never blocks the caller, counts every loss."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue: int = 8192,
        batch_size: int = 512,
        interval: float = 1.0,
        error_interval: float = 60.0,
    ) -> None:
        self.exporter = exporter
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._max = max_queue
        self._batch = batch_size
        self._interval = interval
        self._error_interval = error_interval
        self._last_error = -1e18
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        self._stopping = False
        self._finished = itertools.count()
        self._dropped_full = itertools.count()
        self.exported = 0
        self.failed_batches = 0
        self.dropped_export = 0
        self.dropped_shutdown = 0
        self._thread = self._start_thread()
        # pre-fork servers (gunicorn --preload): threads do not survive fork(), restart ours
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def _start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="obskit-span-export", daemon=True)
        thread.start()
        return thread

    def _after_fork(self) -> None:
        self._queue = collections.deque()
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        self._finished = itertools.count()
        self._dropped_full = itertools.count()
        self.exported = self.failed_batches = self.dropped_export = self.dropped_shutdown = 0
        reset = getattr(self.exporter, "after_fork", None)
        if reset is not None:
            reset()
        if not self._stopping:
            self._thread = self._start_thread()

    # -- counters (read at scrape time) ---------------------------------------------
    @staticmethod
    def _peek(counter: itertools.count[int]) -> int:
        return int(repr(counter)[6:-1])  # count(N) -> N, without advancing it

    @property
    def finished(self) -> int:
        """Sampled spans that ended (queued or dropped)."""
        return self._peek(self._finished)

    @property
    def dropped_queue_full(self) -> int:
        return self._peek(self._dropped_full)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- SpanProcessor -----------------------------------------------------------------
    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        next(self._finished)
        queue = self._queue
        if self._stopping or len(queue) >= self._max:
            next(self._dropped_full)
            return
        queue.append(span)
        if len(queue) == self._batch:
            self._wake.set()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000.0
        self._drain(deadline)
        return not self._queue

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush what fits in `timeout` seconds, then stop; the rest counts as dropped."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        remaining = len(self._queue)
        self._queue.clear()
        self.dropped_shutdown += remaining
        if not self._thread.is_alive():
            self.exporter.shutdown()
        else:  # an export is hanging: leave the daemon thread, never block shutdown
            threading.Thread(target=self.exporter.shutdown, daemon=True).start()

    # -- export thread ------------------------------------------------------------------
    def _run(self) -> None:
        # Our own export requests (requests/httpx inside the exporter) are never instrumented.
        otel_context.attach(
            otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
        )
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain(None)
        self._drain(None)

    def _drain(self, deadline: float | None) -> None:
        """Export queued batches, one exporter call at a time (the exporter is not shared)."""
        queue = self._queue
        while queue:
            wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._export_lock.acquire(timeout=wait):
                return
            try:
                take = min(len(queue), self._batch)
                batch = [queue.popleft() for _ in range(take)]
                if batch:
                    self._export(batch)
            finally:
                self._export_lock.release()
            if deadline is not None and time.monotonic() > deadline:
                return

    def _export(self, batch: Sequence[ReadableSpan]) -> None:
        try:
            result = self.exporter.export(batch)
        except Exception as exc:  # noqa: BLE001 - an exporter bug must not kill the thread
            result = SpanExportResult.FAILURE
            self._report(f"span export raised {type(exc).__name__}: {exc}")
        if result is SpanExportResult.SUCCESS:
            self.exported += len(batch)
        else:
            self.failed_batches += 1
            self.dropped_export += len(batch)
            reason = getattr(self.exporter, "last_error", None)
            self._report(
                f"span export failed ({reason or 'exporter returned FAILURE'}); "
                f"{len(batch)} spans dropped"
            )

    def _report(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_error >= self._error_interval:
            self._last_error = now
            _log.warning(
                "%s (further export errors suppressed for %.0fs; see "
                "obskit_span_export_failures_total)",
                message,
                self._error_interval,
            )


class Tracing:
    """The tracer obskit uses, its provider and (when obskit built it) its pipe."""

    def __init__(
        self, config: Config, tracer_provider: Any = None, span_exporter: Any = None
    ) -> None:
        self.pipe: SpanPipe | None = None
        self._filters: list[tuple[logging.Logger, logging.Filter]] = []
        self.owned = tracer_provider is None
        if tracer_provider is None:
            self.provider = TracerProvider(
                resource=build_resource(config),
                sampler=build_sampler(config),
                shutdown_on_exit=False,
            )
            self.pipe = SpanPipe(
                span_exporter if span_exporter is not None else build_exporter(config),
                max_queue=config.span_queue_size,
                batch_size=config.span_batch_size,
                interval=config.span_export_interval,
                error_interval=config.export_error_interval,
            )
            self.provider.add_span_processor(self.pipe)
            for name in _EXPORTER_LOGGERS:
                logger = logging.getLogger(name)
                flt = _OncePerInterval(config.export_error_interval)
                logger.addFilter(flt)
                self._filters.append((logger, flt))
        else:
            self.provider = tracer_provider
        self.tracer = self.provider.get_tracer(INSTRUMENTATION_NAME, __version__)
        self.resource = getattr(self.provider, "resource", None)
        self.scope = InstrumentationScope(INSTRUMENTATION_NAME, __version__)
        self._sample = fast_sampler(config)
        self.global_set = False
        if config.set_global_tracer_provider and self.owned:
            current = trace.get_tracer_provider()
            if isinstance(current, trace.ProxyTracerProvider):
                trace.set_tracer_provider(self.provider)
                self.global_set = True
            else:
                _log.warning("obskit: a global TracerProvider is already set; leaving it alone")

    def start_server_span(self, name: str, parent: SpanContext | None) -> Span:
        """The request's server span: obskit's lean span when obskit owns the provider."""
        if self.pipe is None:  # the user's provider: go through its tracer and processors
            parent_ctx = trace.set_span_in_context(NonRecordingSpan(parent)) if parent else None
            return self.tracer.start_span(name, context=parent_ctx, kind=_SERVER)
        trace_id = parent.trace_id if parent is not None else _getrandbits(128) or 1
        span_id = _getrandbits(64) or 1
        state = parent.trace_state if parent is not None else None
        if self._sample(parent, trace_id):
            return ServerSpan(
                self, name, SpanContext(trace_id, span_id, False, _SAMPLED, state), parent
            )
        return NonRecordingSpan(SpanContext(trace_id, span_id, False, _NOT_SAMPLED, state))

    def shutdown(self, timeout: float) -> None:
        if self.pipe is not None:
            self.pipe.shutdown(timeout)
        for logger, flt in self._filters:
            logger.removeFilter(flt)
        self._filters.clear()


# ------------------------------------------------------------------- propagation ---


def parse_traceparent(value: str, tracestate: str | None = None) -> SpanContext | None:
    """A remote SpanContext from a W3C traceparent header, or None when it is malformed."""
    match = _TRACEPARENT.fullmatch(value.strip().lower())
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id = int(trace_hex, 16)
    span_id = int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    state = None
    if tracestate:
        try:
            state = TraceState.from_header([tracestate])
        except ValueError:
            state = None
    return SpanContext(
        trace_id,
        span_id,
        is_remote=True,
        trace_flags=TraceFlags(int(flags_hex, 16) & 0x01),
        trace_state=state,
    )


def baggage_context(baggage: str) -> Context:
    """An OTel context carrying the inbound W3C baggage."""
    from opentelemetry.baggage.propagation import W3CBaggagePropagator  # noqa: PLC0415

    return W3CBaggagePropagator().extract({"baggage": baggage})


def outbound_headers() -> dict[str, str]:
    """traceparent (+ tracestate, baggage) for the current OTel context."""
    headers: dict[str, str] = {}
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        headers["traceparent"] = (
            f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
            f"{int(span_context.trace_flags):02x}"
        )
        if span_context.trace_state:
            headers["tracestate"] = span_context.trace_state.to_header()
    from opentelemetry import baggage  # noqa: PLC0415

    entries = baggage.get_all()
    if entries:
        from opentelemetry.baggage.propagation import W3CBaggagePropagator  # noqa: PLC0415

        W3CBaggagePropagator().inject(headers)
    return headers


def current_span_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) hex of the current span, or None when there is none."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"


def install_log_hook() -> None:
    logs.set_span_ids_hook(current_span_ids)


def attach(span: Any, parent: Context | None) -> object:
    return otel_context.attach(trace.set_span_in_context(span, parent))


def detach(token: Any) -> None:
    otel_context.detach(token)
