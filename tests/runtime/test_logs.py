"""Logs: fixed fields, never raising on odd values, redaction, exceptions, stdlib bridge rules."""

from __future__ import annotations

import io
import logging

import orjson
import structlog

import obskit
from obskit.runtime import logs


def _init(**settings):
    stream = io.BytesIO()
    settings = {"log_format": "json", "capture_stdlib_logs": False, **settings}
    obskit.init(
        None,
        service="svc",
        log_stream=stream,
        traces_enabled=False,
        metrics_enabled=False,
        environ={},
        **settings,
    )
    return stream


def _lines(stream):
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_has_the_fixed_fields():
    stream = _init()
    obskit.get_logger("app").info("hello", n=1)
    [line] = _lines(stream)
    assert line["event"] == "hello" and line["n"] == 1
    assert line["level"] == "info" and line["logger"] == "app" and line["service"] == "svc"
    assert line["timestamp"].endswith("Z") and line["timestamp"][10] == "T"
    assert "correlation_id" not in line  # outside a request


def test_a_logger_without_a_name_is_named_after_the_calling_module():
    stream = _init()
    obskit.get_logger().info("hello")
    [line] = _lines(stream)
    assert line["logger"] == __name__


def test_unserializable_values_are_rendered_never_raised():
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    cycle: list = []
    cycle.append(cycle)
    stream = _init()
    log = obskit.get_logger("app")
    log.info(
        "odd values",
        obj=object(),
        broken=Broken(),
        big=2**80,
        cycle=cycle,
        raw=b"\xff\x00",
        s={1, 2},
        nested={"deep": Broken()},
    )
    [line] = _lines(stream)
    assert line["broken"] == "<unrepresentable Broken>"
    assert line["big"] == str(2**80)
    assert "object object" in line["obj"]
    assert line["event"] == "odd values"


def test_broken_objects_and_lone_surrogates_anywhere_never_raise_in_json_or_console():
    """Keys and events whose str() raises, and strings with lone surrogates (surrogateescape'd
    file names, headers) still give exactly one line per call."""

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("str")

        __repr__ = __format__ = __str__  # type: ignore[assignment]

    calls = [
        lambda log: log.info(Broken()),
        lambda log: log.info("keys", mapping={Broken(): 1}),
        lambda log: log.info("bad \udcff name", path="/tmp/\udcff", **{"k\ud800": "v"}),
    ]
    for fmt in ("json", "console"):
        obskit.reset()
        stream = _init(log_format=fmt)
        log = obskit.get_logger("odd")
        for call in calls:
            call(log)
        lines = stream.getvalue().decode("utf-8").splitlines()
        assert len(lines) == len(calls), lines
        if fmt == "json":
            records = [orjson.loads(line) for line in lines]
            assert records[0]["event"] == "<unrepresentable Broken>"
            assert records[1]["mapping"] == {"<unrepresentable Broken>": 1}
            assert records[2]["path"].startswith("/tmp/") and records[2]["logger"] == "odd"


def test_secret_looking_keys_are_redacted_including_one_level_down():
    stream = _init()
    obskit.get_logger("app").info(
        "login",
        password="hunter2",
        Authorization="Bearer x",
        api_key="k",
        headers={"Cookie": "c", "accept": "json"},
        user="ann",
    )
    [line] = _lines(stream)
    assert line["password"] == line["Authorization"] == line["api_key"] == "[REDACTED]"
    assert line["headers"] == {"Cookie": "[REDACTED]", "accept": "json"}
    assert line["user"] == "ann"


def test_secret_keys_are_redacted_at_any_depth_without_touching_the_callers_objects():
    stream = _init()
    request = {"headers": {"Authorization": "Bearer x", "accept": "json"}, "id": 7}
    users = [{"name": "ann", "password": "p"}, ("plain", {"api_key": "k"})]
    obskit.get_logger("app").info("call", request=request, users=users)
    [line] = _lines(stream)
    assert line["request"] == {
        "headers": {"Authorization": "[REDACTED]", "accept": "json"},
        "id": 7,
    }
    assert line["users"] == [
        {"name": "ann", "password": "[REDACTED]"},
        ["plain", {"api_key": "[REDACTED]"}],
    ]
    assert request["headers"]["Authorization"] == "Bearer x"  # the caller's dict is unchanged


def test_redaction_keys_are_configurable():
    stream = _init(redact_keys="ssn")
    obskit.get_logger().info("x", ssn="123", password="shown")
    [line] = _lines(stream)
    assert line["ssn"] == "[REDACTED]" and line["password"] == "shown"


def test_exceptions_become_structured_fields():
    stream = _init()
    try:
        raise KeyError("missing")
    except KeyError:
        obskit.get_logger("app").exception("lookup failed")
    [line] = _lines(stream)
    assert line["level"] == "error"
    assert line["exception"]["type"] == "KeyError"
    assert "missing" in line["exception"]["message"]
    assert "Traceback" in line["exception"]["stacktrace"]


def test_level_threshold_applies_to_access_lines_too():
    """log_level=warning keeps 5xx access lines (error) and drops the 2xx/4xx ones (info)."""
    import asyncio

    from obskit.testing import capture

    from .test_hostile import _request

    async def app(scope, receive, send):
        status = int(scope["path"].strip("/"))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    seen = []
    for level in ("info", "warning", "critical"):
        with capture(app, log_level=level) as cap:
            for status in (200, 404, 503):
                asyncio.run(_request(cap.app, f"/{status}"))
            seen.append([line["status"] for line in cap.logs(logger="obskit.access")])
    assert seen == [[200, 404, 503], [503], []]


def test_level_threshold_filters_lower_levels():
    stream = _init(log_level="warning")
    log = obskit.get_logger()
    log.info("dropped")
    log.warning("kept")
    assert [line["event"] for line in _lines(stream)] == ["kept"]


def test_console_format_is_readable_text():
    stream = _init(log_format="console")
    obskit.get_logger("app").info("hello", order=5)
    text = stream.getvalue().decode()
    assert "INFO" in text and "[app] hello" in text and "order=5" in text
    assert not text.startswith("{")


def test_auto_format_is_json_when_not_a_tty():
    stream = _init(log_format="auto")
    obskit.get_logger().info("x")
    assert stream.getvalue().startswith(b"{")


def test_text_streams_are_supported():
    text = io.StringIO()
    obskit.init(
        None,
        service="svc",
        log_stream=text,
        log_format="json",
        traces_enabled=False,
        metrics_enabled=False,
        environ={},
    )
    obskit.get_logger().info("to text")
    assert orjson.loads(text.getvalue())["event"] == "to text"


def test_stdlib_logging_is_bridged_when_nobody_configured_it():
    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:
        root.removeHandler(handler)
    try:
        stream = _init(capture_stdlib_logs=True)
        logging.getLogger("library").warning("from %s", "stdlib", extra={"token": "t", "k": 1})
        [line] = _lines(stream)
        assert line["logger"] == "library" and line["event"] == "from stdlib"
        assert line["level"] == "warning" and line["service"] == "svc"
        assert line["token"] == "[REDACTED]" and line["k"] == 1
        obskit.reset()
        assert root.handlers == []
    finally:
        for handler in saved:
            root.addHandler(handler)


def test_a_user_configured_root_logger_is_left_alone():
    root = logging.getLogger()
    mine = logging.StreamHandler(io.StringIO())
    root.addHandler(mine)
    try:
        before = root.handlers[:]
        _init(capture_stdlib_logs=True)
        assert root.handlers == before
    finally:
        root.removeHandler(mine)


def test_structlog_global_configuration_is_never_touched():
    before = structlog.get_config()
    _init()
    obskit.get_logger().info("x")
    assert structlog.get_config() == before


def test_uvicorn_loggers_are_routed_through_obskit_and_its_access_log_silenced():
    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:
        root.removeHandler(handler)
    error_logger = logging.getLogger("uvicorn.error")
    access_logger = logging.getLogger("uvicorn.access")
    own = logging.StreamHandler(io.StringIO())
    error_logger.addHandler(own)
    error_logger.propagate = False
    try:
        stream = _init(capture_stdlib_logs=True)
        error_logger.info("Started server process")
        access_logger.info("GET / 200")
        lines = _lines(stream)
        assert [line["event"] for line in lines] == ["Started server process"]
        obskit.reset()
        assert own in error_logger.handlers and error_logger.propagate is False
        assert access_logger.disabled is False
    finally:
        error_logger.removeHandler(own)
        error_logger.propagate = True
        for handler in saved:
            root.addHandler(handler)


def test_timestamp_is_iso8601_utc_with_milliseconds():
    from datetime import UTC, datetime

    stamp = logs.timestamp()
    assert len(stamp) == len("2026-01-01T00:00:00.000Z") and stamp.endswith("Z")
    # the cached second and the per-millisecond tails, across a second's end and back
    base = 1_798_761_599  # 2026-12-31T23:59:59Z
    for ms in (0, 5, 42, 999, 1000, 1001, 1999, 0, 60_000 * 60 * 24 + 7):
        now = base + ms / 1000
        expected = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        assert logs.timestamp(now) == f"{expected}{int(now * 1000) % 1000:03d}Z"


def test_a_logger_created_before_init_follows_the_settings_given_to_init():
    early = obskit.get_logger("early")  # module-level loggers exist before init()
    stream = _init(log_level="debug")
    early.debug("now visible")
    [line] = _lines(stream)
    assert line["event"] == "now visible" and line["service"] == "svc"


def test_access_line_duration_is_milliseconds_to_the_microsecond():
    """duration_ms is the duration in ms rounded to 3 decimals (microseconds), as round() would."""
    import random

    stream = _init()
    pipeline = logs.active()
    rng = random.Random(5)
    durations = [0.0, 0.0000004, 0.0000005, 0.0123456, 1.5, 2.0004996, 86400.123456789]
    durations += [rng.uniform(0, 3) for _ in range(500)]
    for d in durations:
        pipeline.access("GET", "/r", "/r", 200, d, "cid", None, None)
    got = [line["duration_ms"] for line in _lines(stream)]
    for d, ms in zip(durations, got, strict=True):
        assert abs(ms - d * 1000.0) <= 0.0005 + 1e-9
        assert ms == round(ms, 3)  # no digits beyond the microsecond
        assert abs(ms - round(d * 1000.0, 3)) <= 0.001 + 1e-9


RESERVED = ("timestamp", "level", "logger", "event", "service", "correlation_id", "trace_id",
            "span_id")  # fmt: skip


def test_reserved_fields_cannot_be_overridden_by_keyword_arguments():
    """`log.info("x", level="critical")` wrote "level":"critical" on an info line in 0.1. The
    line's own fields win; the caller's value is kept as user_<name>."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    stream = io.BytesIO()
    obskit.init(None, service="svc", log_stream=stream, log_format="json", environ={},
                span_exporter=InMemorySpanExporter(), metrics_enabled=False,
                capture_stdlib_logs=False)  # fmt: skip
    with obskit.observe("op"):  # inside a span: trace_id/span_id are the line's own
        obskit.get_logger("app").info(
            "x",
            level="critical",
            logger="evil",
            service="other",
            timestamp="1970-01-01",
            correlation_id="forged",
            trace_id="0" * 32,
            span_id="1" * 16,
        )
    [line] = [r for r in _lines(stream) if r["event"] == "x"]
    assert line["level"] == "info" and line["logger"] == "app" and line["service"] == "svc"
    assert line["timestamp"] != "1970-01-01" and line["trace_id"] != "0" * 32
    assert line["span_id"] != "1" * 16
    assert line.get("correlation_id") != "forged"
    assert line["user_level"] == "critical" and line["user_logger"] == "evil"
    assert line["user_service"] == "other" and line["user_timestamp"] == "1970-01-01"
    assert line["user_correlation_id"] == "forged"
    assert (line["user_trace_id"], line["user_span_id"]) == ("0" * 32, "1" * 16)


def test_reserved_fields_from_bound_context_and_stdlib_extra_are_renamed_too():
    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:
        root.removeHandler(handler)
    try:
        stream = _init(capture_stdlib_logs=True)
        obskit.get_logger("app").bind(level="debug", service="x").warning("bound")
        structlog.contextvars.bind_contextvars(event="ctx", logger="ctx")
        try:
            obskit.get_logger("app").error("from context")
        finally:
            structlog.contextvars.clear_contextvars()
        logging.getLogger("lib").info("std", extra={"service": "other", "span_id": "s"})
        obskit.reset()
    finally:
        for handler in saved:
            root.addHandler(handler)
    bound, context, std = _lines(stream)
    assert (bound["level"], bound["service"], bound["event"]) == ("warning", "svc", "bound")
    assert (bound["user_level"], bound["user_service"]) == ("debug", "x")
    assert (context["event"], context["logger"], context["level"]) == (
        "from context",
        "app",
        "error",
    )
    assert context["user_logger"] == "ctx"
    assert (std["service"], std["user_service"], std["user_span_id"]) == ("svc", "other", "s")
    assert set(RESERVED) >= {k.removeprefix("user_") for k in std if k.startswith("user_")}


def test_a_handler_formatted_by_obskit_follows_the_same_field_rules():
    """logs.JSONFormatter (handlers obskit does not own, e.g. gunicorn's error log)."""
    _init()
    record = logging.LogRecord("gunicorn.error", logging.INFO, __file__, 1, "up", None, None)
    record.__dict__.update({"level": "x", "service": "y", "apiKey": "k"})
    line = orjson.loads(logs.JSONFormatter().format(record))
    assert (line["level"], line["service"]) == ("info", "svc")
    assert (line["user_level"], line["user_service"], line["apiKey"]) == ("x", "y", "[REDACTED]")
