"""Structured logs: one renderer for structlog loggers, the stdlib bridge and the access log.

Every line carries timestamp (ISO-8601 UTC), level, logger, event, service and, inside a
request, correlation_id, trace_id and span_id. JSON lines are rendered by orjson straight to
bytes and written with one write per line. A value that cannot be serialized is rendered as
its repr (or a placeholder), never raised. Keys that look secret are redacted (the rule of
obskit.runtime.redact). A field named like a fixed one (`level`, `service`, `trace_id`...) never
overrides it: it is written as `user_<name>`.

obskit never touches structlog's global configuration: `get_logger()` wraps obskit's own
processor chain. The stdlib bridge is installed on the root logger only when the root logger
has no handlers (nobody configured logging on purpose).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Final

import orjson

from obskit import semconv
from obskit.runtime import later
from obskit.runtime.config import Config
from obskit.runtime.correlation import current as _current_request
from obskit.runtime.redact import redactor

REDACTED: Final = "[REDACTED]"
ACCESS_LOGGER: Final = "obskit.access"
_LEVELS: Final = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_JSON_OPTS: Final = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE
_SERVER_LOGGERS: Final = ("uvicorn", "uvicorn.error", "gunicorn", "gunicorn.error")
_SERVER_ACCESS_LOGGERS: Final = ("uvicorn.access", "gunicorn.access")
_RESERVED: Final = frozenset(
    (
        semconv.LOG_TIMESTAMP,
        semconv.LOG_LEVEL,
        semconv.LOG_LOGGER,
        semconv.LOG_EVENT,
        semconv.LOG_SERVICE,
        semconv.LOG_CORRELATION_ID,
        semconv.LOG_TRACE_ID,
        semconv.LOG_SPAN_ID,
    )
)
_WRITTEN: Final = "_obskit_written"  # set on a stdlib record once obskit wrote it
_RECORD_ATTRS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    _WRITTEN,
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-colored copy of the message
}

_MAX_DEPTH: Final = 8  # nesting redacted; deeper containers are replaced, never leaked
_ts_cache: tuple[int, str, int, str] = (-1, "", -1, "")  # ms, stamp, second, prefix
_MILLIS: Final = tuple(f".{milli:03d}Z" for milli in range(1000))  # a stamp's tail, per ms


def timestamp(now: float | None = None) -> str:
    """The current time (or Unix time `now`) as ISO-8601 UTC with milliseconds (cached per
    millisecond)."""
    global _ts_cache  # noqa: PLW0603 - a tiny cache, replaced atomically
    ms = int((time.time() if now is None else now) * 1000)
    cached = _ts_cache
    if cached[0] == ms:
        return cached[1]
    sec, milli = divmod(ms, 1000)
    prefix = cached[3] if cached[2] == sec else time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    stamp = prefix + _MILLIS[milli]
    _ts_cache = (ms, stamp, sec, prefix)
    return stamp


def _default(obj: Any) -> Any:
    """orjson fallback: anything it cannot serialize becomes a string, never an error."""
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, BaseException):
        return f"{type(obj).__name__}: {obj}"
    try:
        return repr(obj)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not break logging
        return f"<unrepresentable {type(obj).__name__}>"


def _text(value: Any) -> str:
    """str() that never raises and is valid UTF-8 (lone surrogates replaced)."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break logging
        return f"<unrepresentable {type(value).__name__}>"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _scrub(value: Any, depth: int = 0) -> Any:
    """Last-resort conversion when orjson rejects a structure (huge ints, cycles, surrogates)."""
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if depth > 8:
        return "<too deep>"
    if isinstance(value, Mapping):
        return {_text(k): _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, depth + 1) for v in value]
    return _default(value)


def dumps(record: Mapping[str, Any]) -> bytes:
    """One JSON line (with newline); never raises."""
    try:
        return orjson.dumps(record, default=_default, option=_JSON_OPTS)
    except (orjson.JSONEncodeError, TypeError):
        pass
    try:
        return orjson.dumps(_scrub(record), default=_default, option=_JSON_OPTS)
    except Exception:  # noqa: BLE001 - whatever the values do, a line is written
        head = {k: _text(record.get(k)) for k in (semconv.LOG_TIMESTAMP, semconv.LOG_LEVEL)}
        return orjson.dumps({**head, semconv.LOG_EVENT: "<unserializable log record>"},
                            option=_JSON_OPTS)  # fmt: skip


class Sink:
    """Writes whole lines to a text or binary stream, each line as soon as it is logged.

    A stream backed by a file descriptor (stdout, a file, a pipe) gets exactly one `write(2)`
    per line, straight to the descriptor: lines from threads and worker processes sharing it
    never interleave, and nothing waits in a buffer. Other streams get write + flush.
    """

    __slots__ = ("_lock", "_write", "is_tty")

    def __init__(self, stream: Any) -> None:
        self._lock = threading.Lock()
        self.is_tty = bool(getattr(stream, "isatty", lambda: False)())
        buffer = getattr(stream, "buffer", None)
        fd = _fileno(stream)
        if fd is not None:
            self._write = self._fd_writer(stream, fd)
        elif isinstance(stream, io.TextIOBase) and buffer is not None:
            stream.flush()
            self._write = self._binary_writer(buffer)
        elif isinstance(stream, (io.RawIOBase, io.BufferedIOBase)) or _is_binary(stream):
            self._write = self._binary_writer(stream)
        else:
            self._write = self._text_writer(stream)

    @staticmethod
    def _fd_writer(stream: Any, fd: int) -> Callable[[bytes], None]:
        write = os.write

        def write_line(line: bytes) -> None:
            if stream.closed:  # never write to a descriptor number that may be reused
                return
            written = write(fd, line)
            while written < len(line):
                line = line[written:]
                written = write(fd, line)

        return write_line

    def _binary_writer(self, stream: Any) -> Callable[[bytes], None]:
        flush = getattr(stream, "flush", None)
        write = stream.write
        if flush is None:
            return write  # type: ignore[no-any-return]

        def write_line(line: bytes) -> None:
            write(line)
            flush()

        return write_line

    def _text_writer(self, stream: Any) -> Callable[[bytes], None]:
        lock = self._lock
        flush = getattr(stream, "flush", None)

        def write_line(line: bytes) -> None:
            text = line.decode("utf-8", "replace")
            with lock:
                stream.write(text)
                if flush is not None:
                    flush()

        return write_line

    def write(self, line: bytes) -> None:
        try:  # noqa: SIM105 - cheaper than contextlib.suppress on the hot path
            self._write(line)
        except (OSError, ValueError):
            pass  # a closed or broken stream must never fail the caller


def _fileno(stream: Any) -> int | None:
    """The descriptor behind a real file/pipe/tty stream (after flushing its buffers)."""
    try:
        fd = int(stream.fileno())
    except (AttributeError, OSError, ValueError, TypeError):
        return None
    stream.flush()
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        buffer.flush()
    return fd


def _is_binary(stream: Any) -> bool:
    mode = getattr(stream, "mode", "")
    return isinstance(mode, str) and "b" in mode


class LogPipeline:
    """Renders and writes log records for one obskit configuration."""

    def __init__(self, config: Config, stream: Any = None) -> None:
        self.service = config.service
        self.sink = Sink(stream if stream is not None else (config.log_stream or sys.stdout))
        fmt = config.log_format
        self.json = fmt == "json" or (fmt == "auto" and not self.sink.is_tty)
        self.level = _LEVELS[config.log_level]
        self.access_log = config.access_log
        # access lines are info (error for 5xx): the lowest status the level threshold lets out
        self._access_min_status = 0 if self.level <= 20 else 500 if self.level <= 40 else 1000
        self.is_secret = redactor(tuple(config.redact_keys)).is_secret
        """The one secret-key rule (obskit.runtime.redact): case, `-`, `_` ignored."""

    # -- redaction ---------------------------------------------------------------

    def redact(self, fields: MutableMapping[str, Any]) -> None:
        """Redact secret-looking keys in place, at any depth of nested mappings and lists
        (nested containers are copied, never modified)."""
        for key, value in fields.items():
            if self.is_secret(key if isinstance(key, str) else _text(key)):
                fields[key] = REDACTED
            elif isinstance(value, (Mapping, list, tuple)):
                fields[key] = self._redacted(value, 1)

    def _redacted(self, value: Any, depth: int) -> Any:
        if isinstance(value, Mapping):
            if depth > _MAX_DEPTH:
                return "<too deep>"
            return {
                k: REDACTED
                if self.is_secret(k if isinstance(k, str) else _text(k))
                else self._redacted(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)) and any(
            isinstance(v, (Mapping, list, tuple)) for v in value
        ):
            if depth > _MAX_DEPTH:
                return "<too deep>"
            return [self._redacted(v, depth + 1) for v in value]
        return value

    # -- records -----------------------------------------------------------------
    def record(self, level: str, logger: str | None, event: Any) -> dict[str, Any]:
        """The fixed head of every line, with the request's IDs when inside one."""
        ctx = _current_request()
        trace_id, span_id = _current_span_ids(ctx)
        return self.head(
            level, logger, event, None if ctx is None else ctx.correlation_id, trace_id, span_id
        )

    def head(  # noqa: PLR0917 - hot path: positional on purpose
        self,
        level: str,
        logger: str | None,
        event: Any,
        correlation_id: str | None,
        trace_id: str | None,
        span_id: str | None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """A line's fixed head with the IDs given (`record()` looks them up), stamped now or
        at Unix time `now` (a line written later than it happened)."""
        rec: dict[str, Any] = {
            semconv.LOG_TIMESTAMP: timestamp(now),
            semconv.LOG_LEVEL: level,
            semconv.LOG_LOGGER: logger,
            semconv.LOG_EVENT: event,
            semconv.LOG_SERVICE: self.service,
        }
        if correlation_id is not None:
            rec[semconv.LOG_CORRELATION_ID] = correlation_id
        if trace_id is not None:
            rec[semconv.LOG_TRACE_ID] = trace_id
            rec[semconv.LOG_SPAN_ID] = span_id
        return rec

    def write(self, rec: Mapping[str, Any]) -> None:
        self.sink.write(dumps(rec) if self.json else _console(rec))

    def write_later(self, rec: Mapping[str, Any]) -> None:
        """Write a line from work that obskit.runtime.later runs: rendered now, written with
        the batch's other lines in one write when the batch ends (one system call per batch,
        not per line: ~9 us a line to a file, measured inside a busy worker)."""
        later.write(self.sink, dumps(rec) if self.json else _console(rec))

    def emit(
        self,
        level: str,
        logger: str | None,
        event: Any,
        fields: Mapping[str, Any] | None = None,
        exc_info: Any = None,
        *,
        threshold: bool = True,
    ) -> None:
        """Write one line if `level` passes the threshold (always, with threshold=False: the
        caller's own levels decided, e.g. the handlers of a Django project's LOGGING)."""
        if threshold and _LEVELS.get(level, 20) < self.level:
            return
        rec = self.record(level, logger, event)
        if fields:
            self.add_fields(rec, fields)
        if exc_info:
            rec["exception"] = exception_fields(exc_info)
        self.write(rec)

    def add_fields(self, rec: dict[str, Any], fields: Mapping[str, Any]) -> None:
        """Add a caller's fields to a line's head, redacted. A caller's `level=`, `service=`,
        `trace_id=`... never overrides the line's own field: it is kept as user_<name>."""
        extra = dict(fields)
        self.redact(extra)
        for key, value in extra.items():
            rec[f"user_{key}" if key in _RESERVED else key] = value

    def access(  # noqa: PLR0917 - hot path: positional on purpose
        self,
        method: str,
        route: str,
        path: str,
        status: int,
        duration_s: float,
        correlation_id: str,
        trace_id: str | None,
        span_id: str | None,
        error: BaseException | None = None,
    ) -> None:
        """The one access-log line per request (fast path: fixed fields, no redaction).

        When the request failed with an exception, the line carries it as `exception`, so the
        traceback is logged with the request's correlation_id and trace_id (the server's own
        traceback line is written after the request context is gone).
        """
        if status < self._access_min_status:
            return
        rec: dict[str, Any] = {
            semconv.LOG_TIMESTAMP: timestamp(),
            semconv.LOG_LEVEL: "error" if status >= 500 else "info",
            semconv.LOG_LOGGER: ACCESS_LOGGER,
            semconv.LOG_EVENT: "request",
            semconv.LOG_SERVICE: self.service,
            semconv.LOG_CORRELATION_ID: correlation_id,
        }
        if trace_id is not None:
            rec[semconv.LOG_TRACE_ID] = trace_id
            rec[semconv.LOG_SPAN_ID] = span_id
        rec["method"] = method
        rec["route"] = route
        rec["path"] = path
        rec["status"] = status
        # microsecond resolution; same value as round(ms, 3) but cheaper on the request path
        rec["duration_ms"] = int(duration_s * 1_000_000.0 + 0.5) / 1000.0
        if error is not None:
            rec["exception"] = exception_fields(error)
        if not self.json:
            self.sink.write(_console(rec))
            return
        try:  # the fields are plain str/int/float: orjson without a fallback, unless it fails
            line = orjson.dumps(rec, option=_JSON_OPTS)
        except (orjson.JSONEncodeError, TypeError):
            line = dumps(rec)
        self.sink.write(line)


def _current_span_ids(ctx: Any) -> tuple[str | None, str | None]:
    """trace_id/span_id of the current span; the request's own IDs when no span is current."""
    span_ids = _span_ids_hook
    if span_ids is not None:
        found = span_ids()
        if found is not None:
            return found
    if ctx is not None and ctx.trace_id is not None:
        return ctx.trace_id, ctx.span_id
    return None, None


_span_ids_hook: Callable[[], tuple[str, str] | None] | None = None


def set_span_ids_hook(hook: Callable[[], tuple[str, str] | None] | None) -> None:
    """tracing.py installs a reader of the current OTel span (keeps this module OTel-free)."""
    global _span_ids_hook  # noqa: PLW0603
    _span_ids_hook = hook


def exception_fields(exc_info: Any) -> dict[str, str]:
    """An exception as structured fields: type, message, stacktrace."""
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple) or exc_info[0] is None:
        return {}
    etype, value, tb = exc_info
    try:
        message = str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break logging
        message = "<unprintable>"
    return {
        "type": getattr(etype, "__name__", str(etype)),
        "message": message,
        "stacktrace": "".join(traceback.format_exception(etype, value, tb)),
    }


def _console(rec: Mapping[str, Any]) -> bytes:
    """Readable one-line rendering for a terminal; never raises."""
    try:
        return _console_line(rec)
    except Exception:  # noqa: BLE001 - a broken __str__/__format__ must not break logging
        return _console_line(orjson.loads(dumps(rec)))


def _console_line(rec: Mapping[str, Any]) -> bytes:
    head = (
        f"{rec.get(semconv.LOG_TIMESTAMP, '')} {str(rec.get(semconv.LOG_LEVEL, '')).upper():<7} "
        f"[{rec.get(semconv.LOG_LOGGER) or '-'}] {rec.get(semconv.LOG_EVENT)}"
    )
    parts = [head]
    for key, value in rec.items():
        if key in (
            semconv.LOG_TIMESTAMP,
            semconv.LOG_LEVEL,
            semconv.LOG_LOGGER,
            semconv.LOG_EVENT,
            "exception",
        ):
            continue
        parts.append(f"{key}={_default(value) if not isinstance(value, str) else value}")
    line = "  ".join(parts) + "\n"
    exc = rec.get("exception")
    if isinstance(exc, Mapping) and exc.get("stacktrace"):
        line += str(exc["stacktrace"])
    return line.encode("utf-8", "replace")


# ----------------------------------------------------------------- the active pipeline ---

_active: LogPipeline | None = None


def activate(pipeline: LogPipeline | None) -> None:
    global _active  # noqa: PLW0603
    _active = pipeline


def active() -> LogPipeline:
    """The pipeline configured by init(), or a default one (stdout) before init()."""
    global _active  # noqa: PLW0603
    pipeline = _active
    if pipeline is None:
        pipeline = _active = LogPipeline(Config())
    return pipeline


# ---------------------------------------------------------------------- structlog ---


class _SinkLogger:
    """structlog's final "logger": the rendered line is already written by the renderer."""

    def _noop(self, *args: Any, **kwargs: Any) -> None:
        return None

    msg = debug = info = warning = warn = error = critical = exception = fatal = log = _noop


class _Render:
    """structlog's last processor: hands the event to obskit's pipeline (which writes it)."""

    __slots__ = ("name",)

    def __init__(self, name: str | None) -> None:
        self.name = name

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
        return _render(self.name, method_name, event_dict)


def _render(logger_name: str | None, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
    pipeline = active()
    # the method decides the level and get_logger() the logger: `level=`/`logger=` keyword
    # arguments stay in event_dict and are written as user_level/user_logger
    level = _METHOD_LEVEL.get(method_name, "info")
    event = event_dict.pop("event", None)
    exc_info = event_dict.pop("exc_info", None)
    if method_name == "exception" and exc_info is None:
        exc_info = True
    exc = event_dict.pop("exception", None)
    if exc_info is None and isinstance(exc, BaseException):
        exc_info = exc
    elif exc is not None:
        event_dict["exception"] = exc
    pipeline.emit(level, logger_name, event, event_dict, exc_info)
    return ""


_METHOD_LEVEL: Final = {
    "debug": "debug",
    "info": "info",
    "msg": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
    "exception": "error",
    "critical": "critical",
    "fatal": "critical",
}


def get_logger(name: str | None = None) -> Any:
    """A structlog bound logger writing through obskit's pipeline (no global structlog setup)."""
    import structlog  # noqa: PLC0415 - lazy: importing obskit stays fast

    # no level fixed here: the active pipeline filters, so loggers created before init()
    # follow the log_level given to init()
    wrapper = structlog.make_filtering_bound_logger(0)
    return structlog.wrap_logger(
        _SinkLogger(),
        processors=[structlog.contextvars.merge_contextvars, _Render(name)],
        wrapper_class=wrapper,
        context_class=dict,
        cache_logger_on_first_use=True,
    )


# ------------------------------------------------------------------- stdlib bridge ---


class StdlibHandler(logging.Handler):
    """Routes stdlib `logging` records (uvicorn, gunicorn, libraries) through obskit.

    A record is written once, however many obskit handlers it reaches on its way up the
    logger tree. With `threshold=False` the handler's own level (and the loggers' levels)
    decide alone, not obskit's `log_level`.
    """

    def __init__(self, level: int = logging.NOTSET, *, threshold: bool = True) -> None:
        super().__init__(level)
        self.threshold = threshold

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, _WRITTEN, False):
            return
        fields = stdlib_fields(record)
        pipeline = active()
        if self.threshold and _LEVELS.get(fields[0], 20) < pipeline.level:
            return
        setattr(record, _WRITTEN, True)
        pipeline.emit(*fields, threshold=False)


def stdlib_fields(record: logging.LogRecord) -> tuple[str, str, Any, dict[str, Any], Any]:
    """(level, logger, event, extra fields, exc_info) of a stdlib record, for emit()."""
    try:
        event = record.getMessage()
    except (TypeError, ValueError):
        event = str(record.msg)
    extra = {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS}
    level = record.levelname.lower()
    return level if level in _LEVELS else "info", record.name, event, extra, record.exc_info


class JSONFormatter(logging.Formatter):
    """Renders a stdlib record as one obskit line (no newline) for a handler obskit does not
    own, e.g. gunicorn's error log: the handler keeps its destination, level and filters.

    `pipeline` returns the pipeline whose service and format apply (default: the active one).
    Handlers carrying it are marked `_obskit`, so the stdlib bridge leaves them in place.
    """

    def __init__(self, pipeline: Callable[[], LogPipeline] | None = None) -> None:
        super().__init__()
        self._pipeline = pipeline or active

    def format(self, record: logging.LogRecord) -> str:
        pipeline = self._pipeline()
        level, logger, event, extra, exc_info = stdlib_fields(record)
        rec = pipeline.record(level, logger, event)
        if extra:
            pipeline.add_fields(rec, extra)
        if exc_info:
            rec["exception"] = exception_fields(exc_info)
        line = dumps(rec) if pipeline.json else _console(rec)
        return line.decode("utf-8", "replace").rstrip("\n")


class _NoWerkzeugRequestLines(logging.Filter):
    """Drops the werkzeug dev server's per-request lines: obskit writes the access line.

    (They would duplicate it and log the excluded health checks; werkzeug's other lines pass.)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.endswith('"%s" %s %s'))


class StdlibBridge:
    """Installs StdlibHandler on the root logger when nobody configured logging."""

    def __init__(self, level: str) -> None:
        self.handler = StdlibHandler(level=_LEVELS[level])
        self.installed = False
        self._saved: list[tuple[logging.Logger, list[logging.Handler], bool, bool]] = []
        self._saved_root_level = logging.root.level
        self._werkzeug_filter = _NoWerkzeugRequestLines()

    def install(self) -> bool:
        root = logging.getLogger()
        if root.handlers:
            return False  # the user configured logging: leave it alone
        root.addHandler(self.handler)
        self._saved_root_level = root.level
        root.setLevel(self.handler.level)
        self.installed = True
        self.reroute_servers()
        return True

    def reroute_servers(self) -> None:
        """Send uvicorn/gunicorn logs through obskit; their access logs are obskit's now."""
        if not self.installed:
            return
        for name in _SERVER_LOGGERS:
            logger = logging.getLogger(name)
            if logger.handlers and all(getattr(h, "_obskit", False) for h in logger.handlers):
                continue  # already obskit JSON (gunicorn with obskit's logger class)
            if logger.handlers or not logger.propagate:
                self._save(logger)
                logger.propagate = True
        for name in _SERVER_ACCESS_LOGGERS:
            logger = logging.getLogger(name)
            if not logger.disabled:
                self._save(logger)
                logger.propagate = False
                logger.disabled = True
        logging.getLogger("werkzeug").addFilter(self._werkzeug_filter)  # no-op when present

    def reclaim(self, logger: logging.Logger) -> None:
        """A library configured `logger` after init() (Celery does in its workers): route its
        records through obskit again. For the root logger: obskit's handler back, the others
        removed; for any other: its handlers removed and propagation on."""
        if not self.installed:
            return
        root = logging.getLogger()
        if logger is root:
            for handler in list(root.handlers):
                if handler is not self.handler:
                    root.removeHandler(handler)
            if self.handler not in root.handlers:
                root.addHandler(self.handler)
            return
        if logger.handlers or not logger.propagate:
            self._save(logger)
            logger.propagate = True

    def _save(self, logger: logging.Logger) -> None:
        self._saved.append((logger, list(logger.handlers), logger.propagate, logger.disabled))
        for handler in list(logger.handlers):
            logger.removeHandler(handler)

    def uninstall(self) -> None:
        root = logging.getLogger()
        if self.installed:
            root.removeHandler(self.handler)
            root.setLevel(self._saved_root_level)
            logging.getLogger("werkzeug").removeFilter(self._werkzeug_filter)
        for logger, handlers, propagate, disabled in reversed(self._saved):
            for handler in handlers:
                logger.addHandler(handler)
            logger.propagate = propagate
            logger.disabled = disabled
        self._saved.clear()
        self.installed = False
