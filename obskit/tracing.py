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
import re
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from obskit import logs
from obskit.config import Config

if TYPE_CHECKING:
    from opentelemetry.context import Context

_log = logging.getLogger("obskit")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_EXPORTER_LOGGERS: Final = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
)
INSTRUMENTATION_NAME: Final = "obskit"


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
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )

    return OTLPSpanExporter(
        endpoint=config.otlp_endpoint, headers=headers, timeout=config.otlp_timeout
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
        self._stopping = False
        self._finished = itertools.count()
        self._dropped_full = itertools.count()
        self.exported = 0
        self.failed_batches = 0
        self.dropped_export = 0
        self.dropped_shutdown = 0
        self._thread = threading.Thread(target=self._run, name="obskit-span-export", daemon=True)
        self._thread.start()

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
        queue = self._queue
        while queue:
            take = min(len(queue), self._batch)
            batch = [queue.popleft() for _ in range(take)]
            self._export(batch)
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
            self._report(f"span export failed; {len(batch)} spans dropped")

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
        self.tracer = self.provider.get_tracer(INSTRUMENTATION_NAME)
        self.global_set = False
        if config.set_global_tracer_provider and self.owned:
            current = trace.get_tracer_provider()
            if isinstance(current, trace.ProxyTracerProvider):
                trace.set_tracer_provider(self.provider)
                self.global_set = True
            else:
                _log.warning("obskit: a global TracerProvider is already set; leaving it alone")

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


def parent_context(
    traceparent: str | None, tracestate: str | None, baggage: str | None
) -> Context | None:
    """The OTel context an inbound request continues (None: start a new trace)."""
    ctx: Context | None = None
    if traceparent:
        span_context = parse_traceparent(traceparent, tracestate)
        if span_context is not None:
            ctx = trace.set_span_in_context(NonRecordingSpan(span_context))
    if baggage:
        from opentelemetry.baggage.propagation import W3CBaggagePropagator  # noqa: PLC0415

        ctx = W3CBaggagePropagator().extract({"baggage": baggage}, context=ctx)
    return ctx


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
