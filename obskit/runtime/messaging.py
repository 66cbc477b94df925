"""The messaging vocabulary: what every producer and consumer records, Celery's or a user's.

One message crossing a queue gives:
- on the producer side, a PRODUCER span `send <task>` and one count in
  messaging_client_sent_messages_total{messaging_system, messaging_destination_name, task}, and
  the headers that carry the context across: the correlation ID (`X-Request-ID`),
  `traceparent`, `tracestate`, `baggage` and the enqueue time (`X-Enqueued-At`);
- on the consumer side, a CONSUMER span `process <task>` (child of the producer span), the
  producer's correlation ID restored for every log line of the handler (a message without one
  gets a new ID), one `event: task` log line, one observation in
  messaging_process_duration_seconds{..., outcome} and, when the message says when it was
  enqueued, one in messaging_queue_wait_seconds (the freshness signal).

`inject`, `produce`, `consume` and `mark_duplicate` are the public API (`obskit.*`); the Celery
adapter uses `Consumption` and `begin_send` directly. Nothing here raises into the user's send
or handler: instrumentation errors are counted and logged once.
Spans are obskit's lean spans when obskit owns the provider (a few microseconds each).
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from collections.abc import Callable, Mapping, MutableMapping
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from opentelemetry.trace import SpanKind, Status, StatusCode

from obskit import semconv
from obskit.runtime import correlation, errors, later, state
from obskit.runtime.logs import exception_fields

if TYPE_CHECKING:
    from types import ModuleType

    from obskit.runtime.state import Obskit

F = TypeVar("F", bound=Callable[..., Any])

_MAX_HEADER: Final = 8192  # longer header values are ignored (hostile input), never parsed
_CID: Final = semconv.REQUEST_ID_HEADER
_ENQUEUED: Final = semconv.ENQUEUED_AT_HEADER
_TRACEPARENT: Final = semconv.TRACEPARENT_HEADER
_TRACESTATE: Final = semconv.TRACESTATE_HEADER
_BAGGAGE: Final = semconv.BAGGAGE_HEADER

_OWN: Final = (_CID, _TRACEPARENT, _TRACESTATE, _BAGGAGE, _ENQUEUED)
_PRODUCER: Final = SpanKind.PRODUCER
_CONSUMER: Final = SpanKind.CONSUMER
_ERROR: Final = Status(StatusCode.ERROR)
_LEVEL_NUMBERS: Final = {"info": 20, "warning": 30, "error": 40}
_TEMPLATE_LIMIT: Final = 1024
_FAILED: Final = frozenset({semconv.PROCESS_FAILURE, semconv.PROCESS_RETRY})
_OUTCOME_LEVELS: Final = {semconv.PROCESS_FAILURE: "error", semconv.PROCESS_RETRY: "warning"}

Headers = MutableMapping[str, Any] | list[tuple[str, bytes]]


def _runtime() -> Obskit | None:
    rt = state.current()
    return rt if rt is not None and rt.active else None


_provider: ModuleType | None = None


def _tracing() -> ModuleType:
    """obskit.runtime.tracing.provider, imported on first use (it loads the OTel SDK)."""
    global _provider  # noqa: PLW0603
    if _provider is None:
        from obskit.runtime.tracing import provider  # noqa: PLC0415

        _provider = provider
    return _provider


# ---------------------------------------------------------------------- headers ---


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value if len(value) <= _MAX_HEADER else None
    if isinstance(value, bytes | bytearray):
        if len(value) > _MAX_HEADER:
            return None
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def read_headers(headers: Any, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """obskit's headers (and `extra` names) found in `headers`, keyed by their canonical name.

    One pass: exact keys first, then one case-insensitive scan when some are missing. Values
    that are not text, undecodable or longer than 8 KiB are left out; never raises.
    """
    names = _OWN + extra if extra else _OWN
    found: dict[str, str] = {}
    if not headers:
        return found
    try:
        if type(headers) is dict or isinstance(headers, Mapping):  # a dict skips the ABC check
            for name in names:
                value = headers.get(name)
                if value is not None:
                    text = _text(value)
                    if text is not None:
                        found[name] = text
            if _CID in found or _TRACEPARENT in found or len(headers) > 256:
                return found  # written by obskit (its exact names): no case-insensitive scan
            items: Any = headers.items()
        else:
            items = headers
        wanted = {name.lower(): name for name in names if name not in found}
        for pair in items:
            key = pair[0]
            if isinstance(key, bytes):
                key = key.decode("latin-1")
            canonical = wanted.get(key.lower()) if isinstance(key, str) else None
            if canonical is not None and canonical not in found:
                text = _text(pair[1])
                if text is not None:
                    found[canonical] = text
    except (TypeError, ValueError, IndexError, AttributeError, UnicodeDecodeError):
        return found
    return found


def _put(headers: Any, values: Mapping[str, str]) -> None:
    """Write `values` into a mapping (as text) or a list of pairs (as bytes, replacing)."""
    if isinstance(headers, MutableMapping):
        for key, value in values.items():
            headers[key] = value
        return
    if isinstance(headers, list):
        names = {key.lower() for key in values}
        headers[:] = [
            pair for pair in headers if not (isinstance(pair[0], str) and pair[0].lower() in names)
        ]
        headers.extend((key, value.encode("utf-8")) for key, value in values.items())
        return
    raise TypeError(
        f"obskit.inject: expected a dict or a list of (key, bytes) pairs, got "
        f"{type(headers).__name__}"
    )


def context_headers(span: Any = None) -> dict[str, str]:
    """The headers that carry the current context across a queue (pure: no span, no count).

    The correlation ID is the current one, or a new one outside a request, so every log line
    the message causes shares one ID. `traceparent` names `span` (a producer span) when given,
    else the current span.
    """
    values: dict[str, str] = {_CID: correlation.correlation_id() or correlation.new_id()}
    rt = _runtime()
    if rt is not None and rt.tracing is not None:
        values.update(
            _tracing().outbound_headers(None if span is None else span.get_span_context())
        )
    values[_ENQUEUED] = _enqueued_at(time.time_ns())
    return values


def _enqueued_at(ns: int) -> str:
    """`X-Enqueued-At` for a moment in ns since the epoch: Unix seconds, six decimals (as
    `%.6f`, from integers)."""
    return f"{ns // 1_000_000_000}.{ns // 1000 % 1_000_000:06d}"


def inject(headers: Headers) -> Headers:
    """Write the correlation ID, trace context and enqueue time into `headers` (returned).

    `headers` is a dict (values written as text) or a list of `(key, bytes)` pairs as Kafka
    clients use (existing pairs with the same keys are replaced). Pure: no span, no count.
    """
    _put(headers, context_headers())
    return headers


# ----------------------------------------------------------------- metrics ---


def _count_sent(rt: Obskit, system: str, destination: str, task: str) -> None:
    metrics = rt.metrics
    if metrics is not None:
        metrics.messaging_sent(system, destination, task)


# ----------------------------------------------------------------- producer ---


class produce:
    """A PRODUCER span `send <task>` and the sent counter around one send; injects `headers`.
    One object per send (it holds that send's span).

        with obskit.produce("kafka", "orders", headers) as message:
            producer.send("orders", value, headers=message.headers)

    `headers` (a dict or a list of (key, bytes) pairs; a new dict when omitted) gets the
    headers `inject` writes, with `traceparent` naming the producer span. The message counts
    as sent when the block ends without an exception. `task` (default: `destination`) is the
    `task` label, the consumer's handler name.
    """

    __slots__ = ("_span", "_token", "destination", "headers", "system", "task")

    def __init__(
        self,
        system: str,
        destination: str,
        headers: Headers | None = None,
        *,
        task: str | None = None,
    ) -> None:
        self.system = _label("system", system)
        self.destination = _label("destination", destination)
        self.task = _label("task", task) if task is not None else self.destination
        if headers is not None and not isinstance(headers, MutableMapping | list):
            raise TypeError(
                "obskit.produce: headers must be a dict or a list of (key, bytes) pairs, got "
                f"{type(headers).__name__}"
            )
        self.headers: Headers = {} if headers is None else headers
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> produce:
        rt = _runtime()
        try:
            if rt is not None and rt.tracing is not None:
                self._span, self._token = start_producer_span(
                    rt, self.system, self.destination, self.task
                )
            _put(self.headers, context_headers())
        except Exception as exc:  # noqa: BLE001 - instrumentation never fails the send
            errors.record("messaging produce", exc)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        rt = _runtime()
        try:
            end_producer_span(self._span, self._token, exc)
            self._span = self._token = None
            if exc is None and rt is not None:
                _count_sent(rt, self.system, self.destination, self.task)
        except Exception as err:  # noqa: BLE001 - instrumentation never fails the send
            errors.record("messaging produce", err)

    async def __aenter__(self) -> produce:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def start_producer_span(
    rt: Obskit, system: str, destination: str, task: str, *, make_current: bool = True
) -> tuple[Any, Any]:
    """(span, context token): a PRODUCER span, child of the current span, made current unless
    `make_current=False` (then the token is None and `context_headers(span=...)` names it)."""
    return _send_span(
        rt.tracing, system, destination, task, correlation.correlation_id(),
        _tracing().current_span_context(), attach=make_current,
    )  # fmt: skip


def begin_send(
    rt: Obskit, system: str, destination: str, task: str, cid: str | None = None
) -> tuple[Any, dict[str, str]]:
    """One publish, in one call (the Celery adapter's path): (the pending PRODUCER span, the
    headers to write into the message); `end_send` ends the span once the publish is done.
    The span is a child of the current span and is not made current: `traceparent` names
    it. With obskit's own pipe only its IDs and start time exist until `end_send` (which
    can run later, in a batch); a user's tracer gets a real span now. `cid` is the message's
    own correlation ID when it already carries one (a retry); else the current one, or a
    new one outside a request."""
    if cid is None:
        cid = correlation.correlation_id() or correlation.new_id()
    values = {_CID: cid}
    pending: Any = None
    tracing = rt.tracing
    now = time.time_ns()
    if tracing is not None:
        api = _tracing()
        parent, baggage = api.context_for_send()
        if tracing.pipe is not None:
            ids = tracing.new_ids(parent)
            pending = (tracing, system, destination, task, cid, parent, ids, now)
            trace_id, span_id, state, sampled = ids
        else:
            pending, _ = _send_span(tracing, system, destination, task, cid, parent, attach=False)
            trace_id, span_id, state, sampled = _identity(pending)
        api.write_trace_headers(values, trace_id, span_id, 1 if sampled else 0, state)
        if baggage:
            api.inject_baggage(values)
    values[_ENQUEUED] = _enqueued_at(now)
    return pending, values


def end_send(pending: Any, end: int) -> None:
    """End `begin_send`'s PRODUCER span at `end` (ns since the epoch)."""
    if type(pending) is not tuple:
        if pending is not None:
            pending.end(end)
        return
    tracing, system, destination, task, cid, parent, ids, start = pending
    attributes = _send_attributes(system, destination, task, cid)
    tracing.finished_span(f"send {task}", _PRODUCER, parent, attributes, ids, start, end)


def _send_span(  # noqa: PLR0917
    tracing: Any,
    system: str,
    destination: str,
    task: str,
    cid: str | None,
    parent: Any,
    *,
    attach: bool,
) -> tuple[Any, Any]:
    attributes = _send_attributes(system, destination, task, cid)
    return tracing.begin_span(  # type: ignore[no-any-return]
        f"send {task}", _PRODUCER, parent, attributes, attach=attach
    )


def _send_attributes(system: str, destination: str, task: str, cid: str | None) -> dict[str, Any]:
    """A PRODUCER span's attributes: the fixed ones and the message's correlation ID."""
    attributes = _span_attributes("send", system, destination, task)
    if cid is not None:
        attributes[semconv.SPAN_CORRELATION_ID] = cid
    return attributes


def _identity(span: Any) -> tuple[int, int, Any, bool]:
    """(trace_id, span_id, trace_state, sampled) of a span; obskit's spans without a
    SpanContext."""
    ids = getattr(span, "ids", None)  # obskit's ServerSpan and UnsampledSpan
    if ids is not None:
        return ids[0], ids[1], ids[2], span.sampled
    ctx = span.get_span_context()
    return ctx.trace_id, ctx.span_id, ctx.trace_state, bool(ctx.trace_flags & 0x01)


_templates: dict[tuple[str, str, str, str], dict[str, Any]] = {}


def _span_attributes(operation: str, system: str, destination: str, task: str) -> dict[str, Any]:
    """A new dict holding a message span's fixed attributes (the template is built once per
    operation, system, destination and task)."""
    key = (operation, system, destination, task)
    template = _templates.get(key)
    if template is None:
        template = {
            "messaging.system": system,
            "messaging.destination.name": destination,
            "messaging.operation.name": operation,
            "messaging.operation.type": operation,
            semconv.SPAN_MESSAGING_TASK: task,
        }
        if len(_templates) < _TEMPLATE_LIMIT:
            _templates[key] = template
    return template.copy()


def end_producer_span(span: Any, token: Any, exc: BaseException | None) -> None:
    if span is None:
        return
    if exc is not None and span.is_recording():
        _mark_error(span, exc)
    span.end()
    if token is not None:
        _tracing().detach(token)


def _mark_error(span: Any, exc: BaseException) -> None:
    span.set_attribute("error.type", type(exc).__name__)
    span.set_status(_ERROR)
    if isinstance(exc, Exception):
        span.record_exception(exc)


# ----------------------------------------------------------------- consumer ---


_current: ContextVar[tuple[Consumption, ...]] = ContextVar("obskit_consumption", default=())
_open: ContextVar[tuple[Message, ...]] = ContextVar("obskit_consume", default=())


class Consumption:
    """The processing of one message: span, restored IDs, timing; `finish()` records it all.

    Started and finished in the same thread or task (the Celery adapter does so from
    task_prerun/task_postrun; `consume` from its block).
    """

    __slots__ = (
        "_cid",
        "_cid_token",
        "_fast_detach",
        "_later",
        "_span",
        "_span_token",
        "destination",
        "duplicate",
        "finished",
        "message_id",
        "outcome",
        "queue_wait",
        "retries",
        "rt",
        "start",
        "system",
        "task",
    )

    def __init__(
        self,
        rt: Obskit | None,
        system: str,
        destination: str,
        task: str,
        headers: Any,
        *,
        due: float | None = None,
        retries: int = 0,
        message_id: str | None = None,
        inherit: bool = False,
        defer: bool = False,
    ) -> None:
        self.rt = rt
        self.system = system
        self.destination = destination
        self.task = task
        self.retries = retries
        self.message_id = message_id
        self.duplicate = False
        self.finished = False
        self.outcome: str | None = None
        self.queue_wait: float | None = None
        self._span: Any = None
        self._span_token: Any = None
        self._cid: str | None = None
        self._cid_token: Any = None
        self._fast_detach = False
        self._later = defer
        try:
            self._begin(headers, due, inherit)
        except Exception as exc:  # noqa: BLE001 - instrumentation never fails the handler
            errors.record("messaging consume start", exc)
        _current.set((*_current.get(), self))
        self.start = time.perf_counter()

    def _begin(self, headers: Any, due: float | None, inherit: bool) -> None:
        rt = self.rt
        extra = _extra_id_headers(rt.config.request_id_headers if rt is not None else ())
        found = read_headers(headers, extra)
        raw_cid = found.get(_CID)
        if raw_cid is None:
            for name in extra:
                raw_cid = found.get(name)
                if raw_cid is not None:
                    break
        if raw_cid is not None:
            cid = correlation.accept(raw_cid)
        else:
            cid = (correlation.correlation_id() if inherit else None) or correlation.new_id()
        self._cid = cid
        self._cid_token = correlation.bind(correlation.RequestContext(cid))
        if rt is None:
            return
        now = time.time()
        enqueued = _timestamp(found.get(_ENQUEUED))
        if enqueued is not None and (due is None or enqueued > due):
            due = enqueued  # due: the later of the enqueue time and the eta
        if due is not None:
            self.queue_wait = max(0.0, now - due)
            if rt.metrics is not None:
                args = (self.system, self.destination, self.task, self.queue_wait)
                if self._later:
                    later.add(rt.metrics.queue_wait, args)
                else:
                    rt.metrics.queue_wait(*args)
        if rt.tracing is not None:
            self._start_span(rt, found, cid)

    def _start_span(self, rt: Obskit, found: dict[str, str], cid: str) -> None:
        api = _tracing()
        traceparent = found.get(_TRACEPARENT)
        parent = api.parse_traceparent(traceparent, found.get(_TRACESTATE)) if traceparent else None
        if parent is None:  # no producer: a child of the current span (eager mode), if any
            parent = api.current_span_context()
        baggage = found.get(_BAGGAGE)
        context = api.baggage_context(baggage) if baggage else None
        attributes = _span_attributes("process", self.system, self.destination, self.task)
        attributes[semconv.SPAN_CORRELATION_ID] = cid
        if self.message_id is not None:
            attributes["messaging.message.id"] = self.message_id
        if self.retries:
            attributes["messaging.retries"] = self.retries
        self._span, self._span_token = rt.tracing.begin_span(
            f"process {self.task}", _CONSUMER, parent, attributes, context
        )
        self._fast_detach = context is None and rt.tracing.pipe is not None  # attach_span's token

    @property
    def correlation_id(self) -> str | None:
        ctx = correlation.current()
        return None if ctx is None else ctx.correlation_id

    def finish(self, outcome: str, error: BaseException | None = None) -> None:
        """Record the outcome (duplicate wins when the handler marked the message)."""
        if self.finished:
            return
        self.finished = True
        duration = time.perf_counter() - self.start
        stack = _current.get()
        if stack and stack[-1] is self:
            _current.set(stack[:-1])
        elif self in stack:
            _current.set(tuple(c for c in stack if c is not self))
        if self.duplicate and outcome == semconv.PROCESS_SUCCESS:
            outcome = semconv.PROCESS_DUPLICATE
        self.outcome = outcome
        rt = self.rt
        if self._later and rt is not None:  # a worker's task: the bookkeeping in a batch
            span, self._span = self._span, None
            end = time.time_ns()
            try:
                later.add(self._record, (rt, span, outcome, duration, error, end))
            finally:
                self._close()
            return
        try:
            if rt is not None:
                self._record(rt, self._span, outcome, duration, error, None)
        except Exception as exc:  # noqa: BLE001 - instrumentation never fails the handler
            errors.record("messaging consume finish", exc)
        finally:
            self._close()

    def _record(  # noqa: PLR0917
        self,
        rt: Obskit,
        span: Any,
        outcome: str,
        duration: float,
        error: BaseException | None,
        end: int | None,
    ) -> None:
        """Outcome on the span, the histogram, the `event: task` line. `end` (ns since the
        epoch) when run later (obskit.runtime.later): the line is stamped with it and joins
        the batch's write, and the span ends there, after the rest (even when it failed)."""
        try:
            if span is not None and span.is_recording():
                span.set_attribute(semconv.SPAN_MESSAGING_OUTCOME, outcome)
                if outcome in _FAILED and error is not None:
                    _mark_error(span, error)
            if rt.metrics is not None:
                rt.metrics.process_duration(
                    self.system, self.destination, self.task, outcome, duration
                )
            self._write_line(rt.logs, span, outcome, duration, error, end)
        finally:
            if end is not None and span is not None:
                span.end(end)

    def _write_line(  # noqa: PLR0917
        self,
        logs: Any,
        span: Any,
        outcome: str,
        duration: float,
        error: BaseException | None,
        end: int | None,
    ) -> None:
        """The `event: task` line (stamped at `end` and batched when run later)."""
        level = _OUTCOME_LEVELS.get(outcome, "info")
        if _LEVEL_NUMBERS[level] < logs.level:
            return
        now = None if end is None else end / 1e9
        if self._cid is not None:  # the task's own IDs (a deferred line has no context)
            trace_hex = span_hex = None
            if span is not None:
                trace_id, span_id, _state, _sampled = _identity(span)
                trace_hex = f"{trace_id:032x}" if trace_id else None
                span_hex = f"{span_id:016x}"
            record = logs.head(
                level, semconv.TASK_LOGGER, semconv.EVENT_TASK, self._cid, trace_hex, span_hex, now
            )
        else:
            record = logs.record(level, semconv.TASK_LOGGER, semconv.EVENT_TASK)
        record[semconv.LOG_TASK] = self.task
        record[semconv.LOG_QUEUE] = self.destination
        record[semconv.LOG_OUTCOME] = outcome
        record[semconv.LOG_DURATION_MS] = round(duration * 1000.0, 3)
        record[semconv.LOG_RETRIES] = self.retries
        record[semconv.LOG_MESSAGING_SYSTEM] = self.system
        if self.message_id is not None:
            record[semconv.LOG_MESSAGE_ID] = self.message_id
        if self.queue_wait is not None:
            record[semconv.LOG_QUEUE_WAIT_MS] = round(self.queue_wait * 1000.0, 3)
        if error is not None:
            record["exception"] = exception_fields(error)
        if now is None:
            logs.write(record)
        else:
            logs.write_later(record)

    def _close(self) -> None:
        """End the span (unless `finish()` handed it to deferred work) and restore the
        context the message was started in."""
        span, token = self._span, self._span_token
        self._span = self._span_token = None
        try:
            if span is not None:
                span.end()
        finally:
            if token is not None:
                api = _tracing()
                (api.detach_span if self._fast_detach else api.detach)(token)
        if self._cid_token is not None:
            token, self._cid_token = self._cid_token, None
            try:
                correlation.unbind(token)
            except ValueError:  # finished in another context than started: clear it here
                correlation.bind(None)


@functools.lru_cache(maxsize=8)
def _extra_id_headers(configured: tuple[str, ...]) -> tuple[str, ...]:
    """The configured correlation-ID headers besides X-Request-ID (read from messages too)."""
    return tuple(name for name in configured if name != _CID)


def _timestamp(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def stack() -> tuple[Consumption, ...]:
    """The messages being processed in this thread or task, innermost last."""
    return _current.get()


def current() -> Consumption | None:
    """The message being processed in this thread or task, or None."""
    stack = _current.get()
    return stack[-1] if stack else None


def mark_duplicate() -> bool:
    """Mark the message being processed as a duplicate (`outcome="duplicate"`).

    Call it from an idempotent consumer (a Celery task or an `obskit.consume` handler) when it
    skips a message it has already processed. Returns False (and does nothing) outside one.
    """
    consumption = current()
    if consumption is None:
        return False
    consumption.duplicate = True
    return True


class consume:
    """Process one message as a Celery task is: CONSUMER span, restored correlation ID,
    `event: task` log line, messaging_process_duration_seconds and queue wait.

    As a context manager (sync or async), with the message's headers:

        with obskit.consume("kafka", "orders", "charge", msg.headers()) as message:
            charge(msg.value())

    As a decorator (sync or async), with `headers` a function of the handler's arguments:

        @obskit.consume("kafka", "orders", headers=lambda msg: msg.headers())
        def charge(msg): ...

    The outcome is `success` when the block ends normally, `failure` when it raises (the
    exception propagates unchanged), `duplicate` after `obskit.mark_duplicate()`, and `retry`
    after `message.retry()` (the message will be redelivered). `handler` (the `task` label)
    defaults to the decorated function's name, or to `destination`.
    """

    __slots__ = ("destination", "handler", "headers", "retries", "system")

    def __init__(
        self,
        system: str,
        destination: str,
        handler: str | None = None,
        headers: Any = None,
        *,
        retries: int = 0,
    ) -> None:
        self.system = _label("system", system)
        self.destination = _label("destination", destination)
        self.handler = _label("handler", handler) if handler is not None else None
        self.headers = headers
        self.retries = retries

    # -- decorator ------------------------------------------------------------------
    def __call__(self, func: F) -> F:
        handler = self.handler or getattr(func, "__name__", None) or self.destination
        bound = consume(self.system, self.destination, handler, self.headers, retries=self.retries)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                message = bound._start(bound._carrier(args, kwargs))
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    message.end(exc)
                    raise
                message.end(None)
                return result

            return cast("F", async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            message = bound._start(bound._carrier(args, kwargs))
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                message.end(exc)
                raise
            message.end(None)
            return result

        return cast("F", wrapper)

    def _carrier(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        extract = self.headers
        if not callable(extract):
            return extract
        try:
            return extract(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a broken extractor never fails the handler
            errors.record("messaging consume headers", exc)
            return None

    def _start(self, headers: Any) -> Message:
        consumption = Consumption(
            _runtime(),
            self.system,
            self.destination,
            self.handler or self.destination,
            headers,
            retries=self.retries,
        )
        return Message(consumption, self)

    # -- context manager --------------------------------------------------------------
    def __enter__(self) -> Message:
        message = self._start(self._carrier((), {}))
        _open.set((*_open.get(), message))
        return message

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        opened = _open.get()
        for index in range(len(opened) - 1, -1, -1):
            if opened[index].owner is self:
                message = opened[index]
                _open.set(opened[:index] + opened[index + 1 :])
                break
        else:  # exited in another context than it was entered: nothing to close here
            errors.record("messaging consume", RuntimeError("consume block not open here"))
            return
        message.end(exc)

    async def __aenter__(self) -> Message:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class Message:
    """What a `consume` block yields: the restored correlation ID and the outcome switches."""

    __slots__ = ("consumption", "owner", "retrying")

    def __init__(self, consumption: Consumption, owner: consume) -> None:
        self.consumption = consumption
        self.owner = owner
        self.retrying = False

    def end(self, exc: BaseException | None) -> None:
        if self.retrying:
            outcome = semconv.PROCESS_RETRY
        elif exc is not None:
            outcome = semconv.PROCESS_FAILURE
        else:
            outcome = semconv.PROCESS_SUCCESS
        self.consumption.finish(outcome, exc)

    @property
    def correlation_id(self) -> str | None:
        return self.consumption.correlation_id

    @property
    def queue_wait(self) -> float | None:
        """Seconds the message waited since it was enqueued (None when it does not say)."""
        return self.consumption.queue_wait

    def retry(self) -> None:
        """The message will be redelivered: record `outcome="retry"` instead of failure."""
        self.retrying = True

    def mark_duplicate(self) -> None:
        """Same as `obskit.mark_duplicate()` for this message."""
        self.consumption.duplicate = True


def _label(what: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"obskit messaging: {what} must be a non-empty string, got {value!r}")
    return value
