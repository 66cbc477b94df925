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

import logging
import os
import random
import re
import uuid
import weakref
from contextvars import ContextVar
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
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
    TraceFlags,
    TraceState,
)

from obskit import __version__
from obskit.runtime import errors, logs
from obskit.runtime.config import Config
from obskit.runtime.tracing.pipe import SpanPipe, _OncePerInterval
from obskit.runtime.tracing.span import ServerSpan, UnsampledSpan, fast_sampler

_log = logging.getLogger("obskit")
_VERSION_00 = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_EXPORTER_LOGGERS: Final = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
)
_REQUEST_WARNING_LOGGERS: Final = (
    "opentelemetry.baggage.propagation",  # inbound `baggage` headers (and message headers)
    "opentelemetry.trace.span",  # inbound `tracestate`
    "opentelemetry.attributes",  # attribute values
)
"""OpenTelemetry loggers whose warnings a request's (or message's) content can trigger, e.g. a
100 KB `baggage` header: 0.1 wrote a 100 KB warning line on every such request."""
_WARNING_TEXT_LIMIT: Final = 512
INSTRUMENTATION_NAME: Final = "obskit"
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED: Final = TraceFlags(TraceFlags.DEFAULT)
_SERVER: Final = SpanKind.SERVER
_getrandbits = random.getrandbits


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


_INSTANCE_ID: Final = "service.instance.id"


def build_resource(config: Config) -> Resource:
    attrs: dict[str, Any] = dict(config.resource_attributes)
    attrs["service.name"] = config.service
    if config.version:
        attrs["service.version"] = config.version
    if config.environment:
        attrs["deployment.environment.name"] = config.environment
    attrs.setdefault(_INSTANCE_ID, str(uuid.uuid4()))
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
    from obskit.runtime.tracing.otlp import OTLPHttpExporter  # noqa: PLC0415

    return OTLPHttpExporter(
        config.otlp_endpoint,
        headers=headers,
        timeout=config.otlp_timeout,
        compression=config.otlp_compression,
    )


def build_span_limits(config: Config) -> SpanLimits:
    """The SDK's span limits, with the attribute length limits read from `config` (so
    `Config.from_env(environ)` decides, not os.environ); counts keep the SDK's defaults."""
    unset = SpanLimits.UNSET
    general = config.attribute_value_length_limit
    span = config.span_attribute_value_length_limit
    return SpanLimits(
        max_attribute_length=unset if general is None else general,
        max_span_attribute_length=unset if span is None else span,
    )


class RequestWarnings(_OncePerInterval):
    """Rate-limits warnings whose text a request chose (log amplification): one record per
    interval per logger, its message cut to a few hundred characters; like export errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not super().filter(record):
            return False
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            text = str(record.msg)
        if len(text) > _WARNING_TEXT_LIMIT:
            text = f"{text[:_WARNING_TEXT_LIMIT]}... ({len(text)} characters)"
        record.msg = (
            f"{text} (obskit: warnings caused by request content are rate-limited to one per "
            f"{self.interval:.0f}s per logger)"
        )
        record.args = None
        return True


def _renew_instance(tracing: Tracing | None) -> None:
    """In a forked child: a new service.instance.id for `tracing`'s spans (never raises)."""
    if tracing is None or tracing.resource is None:
        return
    try:
        old = tracing.resource
        resource = Resource({**old.attributes, _INSTANCE_ID: str(uuid.uuid4())}, old.schema_url)
        tracing.resource = resource  # obskit's lean spans
        # the SDK's spans read the resource from the provider and its tracers (no setter)
        tracing.provider._resource = resource
        tracing.tracer.resource = resource  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - a fork hook must never fail the child
        errors.record("tracing instance id after fork", exc)


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
                span_limits=build_span_limits(config),
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
        for name in _REQUEST_WARNING_LOGGERS:
            logger = logging.getLogger(name)
            flt = RequestWarnings(config.export_error_interval)
            logger.addFilter(flt)
            self._filters.append((logger, flt))
        self.attribute_limit = config.span_attribute_limit
        """Longest string a lean span's attribute keeps (None: no limit), as the SDK's."""
        self.event_attribute_limit = config.attribute_value_length_limit
        self.tracer = self.provider.get_tracer(INSTRUMENTATION_NAME, __version__)
        self.resource = getattr(self.provider, "resource", None)
        self.scope = InstrumentationScope(INSTRUMENTATION_NAME, __version__)
        self._sample = fast_sampler(config)
        if self.owned and _INSTANCE_ID not in config.resource_attributes:
            # A pre-fork server (gunicorn --preload, Celery's prefork pool) forks after init():
            # each child is an instance of its own, so it gets its own service.instance.id.
            # (weakly: a handle that reset() dropped is not kept alive by the hook)
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _renew_instance(ref()))
        self.global_set = False
        if config.set_global_tracer_provider and self.owned:
            current = trace.get_tracer_provider()
            if isinstance(current, trace.ProxyTracerProvider):
                trace.set_tracer_provider(self.provider)
                self.global_set = True
            else:
                _log.warning("obskit: a global TracerProvider is already set; leaving it alone")

    def start_server_span(self, name: str, parent: SpanContext | None) -> Span:
        """The request's server span from the user's provider (its tracer and processors)."""
        parent_ctx = trace.set_span_in_context(NonRecordingSpan(parent)) if parent else None
        return self.tracer.start_span(name, context=parent_ctx, kind=_SERVER)

    def begin_server_span(
        self, name: str, parent: SpanContext | None, context: Context | None = None
    ) -> tuple[Span, object, str, str, bool]:
        """(span, context token, trace_id hex, span_id hex, sampled): a request's lean server
        span, made current (in `context`, e.g. the inbound baggage, when given). One call on
        the request path; only when obskit owns the provider (else `start_server_span`)."""
        trace_id = parent.trace_id if parent is not None else _getrandbits(128) or 1
        span_id = _getrandbits(64) or 1
        state = parent.trace_state if parent is not None else None
        span: Span
        if self._sample(parent, trace_id):
            span = ServerSpan(self, name, trace_id, span_id, state, parent)
            sampled = True
        else:
            span = UnsampledSpan(trace_id, span_id, state)
            sampled = False
        token = attach_span(span) if context is None else attach(span, context)
        return span, token, f"{trace_id:032x}", f"{span_id:016x}", sampled

    def begin_span(
        self,
        name: str,
        kind: SpanKind,
        parent: SpanContext | None,
        attributes: dict[str, Any],
        context: Context | None = None,
        *,
        attach: bool = True,
    ) -> tuple[Span, object]:
        """(span, context token): a span of `kind` (a message's producer or consumer), child of
        `parent` (a remote span context, or the current span's), made current in `context`
        (token None with `attach=False`). obskit's lean span when it owns the provider (it
        keeps `attributes`, a dict the caller gives away), else one from the user's tracer."""
        make_current = attach
        if self.pipe is None:
            parent_ctx = trace.set_span_in_context(NonRecordingSpan(parent)) if parent else None
            span = self.tracer.start_span(name, parent_ctx, kind, attributes)
            return span, (_attach(span, context) if make_current else None)
        trace_id, span_id, state, sampled = self.new_ids(parent)
        lean: Span
        if sampled:
            lean = ServerSpan(self, name, trace_id, span_id, state, parent, kind, attributes)
        else:
            lean = UnsampledSpan(trace_id, span_id, state)
        if not make_current:
            return lean, None
        return lean, (attach_span(lean) if context is None else _attach(lean, context))

    def new_ids(self, parent: SpanContext | None) -> tuple[int, int, TraceState | None, bool]:
        """(trace_id, span_id, trace_state, sampled) of a new lean span, child of `parent`."""
        trace_id = parent.trace_id if parent is not None else _getrandbits(128) or 1
        state = parent.trace_state if parent is not None else None
        return trace_id, _getrandbits(64) or 1, state, self._sample(parent, trace_id)

    def finished_span(  # noqa: PLR0917
        self,
        name: str,
        kind: SpanKind,
        parent: SpanContext | None,
        attributes: dict[str, Any],
        ids: tuple[int, int, TraceState | None, bool],
        start: int,
        end: int,
    ) -> None:
        """A lean span that ran from `start` to `end` (ns), with `new_ids`'s `ids`, built once
        it is over and handed to the pipe (a publish's, in a batch); nothing when not
        sampled."""
        trace_id, span_id, state, sampled = ids
        if sampled and self.pipe is not None:
            span = ServerSpan(self, name, trace_id, span_id, state, parent, kind, attributes)
            span.start_time = start
            span.end(end)

    def shutdown(self, timeout: float) -> None:
        if self.pipe is not None:
            self.pipe.shutdown(timeout)
        for logger, flt in self._filters:
            logger.removeFilter(flt)
        self._filters.clear()


# ------------------------------------------------------------------- propagation ---


def parse_traceparent(value: str, tracestate: str | None = None) -> SpanContext | None:
    """A remote SpanContext from a W3C traceparent header, or None when it is malformed."""
    if _VERSION_00.fullmatch(value) is not None:  # what W3C tracers write: no copy, no groups
        trace_id = int(value[3:35], 16)
        span_id = int(value[36:52], 16)
        flags_hex = value[53:]
    else:
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
    state = _NO_STATE
    if tracestate:
        try:
            state = TraceState.from_header([tracestate])
        except ValueError:
            state = _NO_STATE
    flags = _SAMPLED if int(flags_hex, 16) & 0x01 else _NOT_SAMPLED
    if _TUPLE_CONTEXTS:  # IDs checked above: valid (the constructor's one computed field)
        return _new_tuple(SpanContext, (trace_id, span_id, True, flags, state, True))
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags, trace_state=state)


_NO_STATE: Final = SpanContext(1, 1, False).trace_state  # what SpanContext puts for None
_new_tuple = tuple.__new__


def _tuple_contexts() -> bool:
    """True when a SpanContext is the plain tuple (trace_id, span_id, is_remote, trace_flags,
    trace_state, is_valid) the OTel API builds in `__new__`: then a remote context whose IDs
    were just checked is built without that Python call (one per message consumed). Checked
    against the API's own constructor; any difference (a future layout) keeps the constructor.
    """
    state = TraceState([("k", "v")])
    for args in ((7, 9, True, _SAMPLED, state), (7, 9, True, _NOT_SAMPLED, _NO_STATE)):
        made = SpanContext(*args)
        fast = _new_tuple(SpanContext, (*args, True))
        if not (
            type(made) is type(fast) is SpanContext
            and tuple(made) == tuple(fast)
            and made == fast
            and (fast.trace_id, fast.span_id, fast.is_remote) == (7, 9, True)
            and fast.trace_flags is args[3]
            and fast.trace_state is args[4]
            and fast.is_valid is True
        ):
            return False
    return True


_TUPLE_CONTEXTS: Final = _tuple_contexts()


def baggage_context(baggage: str) -> Context:
    """An OTel context carrying the inbound W3C baggage."""
    from opentelemetry.baggage.propagation import W3CBaggagePropagator  # noqa: PLC0415

    return W3CBaggagePropagator().extract({"baggage": baggage})


def outbound_headers(span_context: SpanContext | None = None) -> dict[str, str]:
    """traceparent (+ tracestate, baggage) for the current OTel context; `span_context` (a
    message's producer span, not made current) names the parent instead of the current span."""
    headers: dict[str, str] = {}
    if span_context is None:
        span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        write_trace_headers(
            headers,
            span_context.trace_id,
            span_context.span_id,
            int(span_context.trace_flags),
            span_context.trace_state,
        )
    if has_baggage():
        inject_baggage(headers)
    return headers


def write_trace_headers(
    headers: dict[str, str], trace_id: int, span_id: int, flags: int, state: TraceState | None
) -> None:
    """`traceparent` (and `tracestate` when there is one) naming this span, into `headers`."""
    headers["traceparent"] = f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"
    if state:
        headers["tracestate"] = state.to_header()


def current_span_context(context: Context | None = None) -> SpanContext | None:
    """The current span's context (or `context`'s) when it is valid (a parent for a new
    span), else None."""
    key, var = _SPAN_KEY, _CONTEXT_VAR
    span: Any
    if key is None or var is None:
        span = trace.get_current_span(context)
    else:
        span = (var.get() if context is None else context).get(key)
    if span is None:
        return None
    ctx: SpanContext = span.get_span_context()
    return ctx if ctx.is_valid else None


def context_for_send() -> tuple[SpanContext | None, bool]:
    """(the current span's context when valid, whether the current context carries baggage)
    for a message being sent, in one read of the context."""
    key, var, baggage_key = _SPAN_KEY, _CONTEXT_VAR, _BAGGAGE_KEY
    if key is None or var is None or baggage_key is None:
        return current_span_context(), has_baggage()
    context = var.get()
    return current_span_context(context), bool(context.get(baggage_key))


def has_baggage() -> bool:
    """True when the current OTel context carries baggage (to propagate)."""
    key, var = _BAGGAGE_KEY, _CONTEXT_VAR
    if key is not None and var is not None:
        return bool(var.get().get(key))
    from opentelemetry import baggage  # noqa: PLC0415

    return bool(baggage.get_all())


def inject_baggage(headers: dict[str, str]) -> None:
    from opentelemetry.baggage.propagation import W3CBaggagePropagator  # noqa: PLC0415

    W3CBaggagePropagator().inject(headers)


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


_attach = attach  # for methods with an `attach` parameter


def _find_span_key() -> str | None:
    """The context key the OTel API keeps the current span under, found through its public API.

    `trace.set_span_in_context` adds exactly one key; knowing it lets the request path build
    the new context in one step. None (use the public calls) if the API ever behaves otherwise.
    """
    probe = NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
    keys = list(trace.set_span_in_context(probe, Context()))
    if len(keys) != 1 or trace.get_current_span(Context({keys[0]: probe})) is not probe:
        return None
    return keys[0]


_SPAN_KEY = _find_span_key()


def _find_context_var() -> ContextVar[Context] | None:
    """The ContextVar behind OTel's default runtime context (a private name), or None.

    Setting it directly skips two call layers on each attach and detach. Only used after
    checking that a context attached through the public API is exactly what it holds; any
    other runtime context (OTEL_PYTHON_CONTEXT) or a future change means the public calls.
    """
    var = getattr(getattr(otel_context, "_RUNTIME_CONTEXT", None), "_current_context", None)
    if not isinstance(var, ContextVar):
        return None
    probe = Context()
    token = otel_context.attach(probe)
    try:
        found = var.get(None) is probe
    finally:
        otel_context.detach(token)
    return var if found else None


_CONTEXT_VAR = _find_context_var()


def _find_baggage_key() -> str | None:
    """The context key OTel keeps baggage under, found through its public API (None: use the
    public calls). Lets `has_baggage` answer with one lookup on every publish."""
    from opentelemetry import baggage  # noqa: PLC0415

    probe = baggage.set_baggage("obskit.probe", "1", Context())
    keys = list(probe)
    if len(keys) != 1 or dict(baggage.get_all(Context({keys[0]: probe[keys[0]]}))) != {
        "obskit.probe": "1"
    }:
        return None
    return keys[0]


_BAGGAGE_KEY = _find_baggage_key()


def attach_span(span: Any) -> object:
    """Make `span` current in the OTel context (the same as `attach(span, None)`, cheaper)."""
    key = _SPAN_KEY
    if key is None:
        return otel_context.attach(trace.set_span_in_context(span))
    var = _CONTEXT_VAR
    if var is None:
        current = otel_context.get_current()
        return otel_context.attach(
            Context({**current, key: span}) if current else Context({key: span})
        )
    current = var.get()
    return var.set(Context({**current, key: span}) if current else Context({key: span}))


def detach_span(token: Any) -> None:
    """Undo `attach_span` (the request's own token, in the request's own context)."""
    var = _CONTEXT_VAR
    if var is None:
        otel_context.detach(token)
        return
    try:
        var.reset(token)
    except (ValueError, RuntimeError) as exc:  # a token from elsewhere: what OTel would log
        errors.record("context detach", exc)


def detach(token: Any) -> None:
    otel_context.detach(token)
