"""Every benchmark variant: how to build it, and how it proves it did its job.

A variant is built inside its own worker process (benchmarks.worker), so global
state (TracerProvider, structlog, the Prometheus registry, obskit's handle) never
leaks from one variant into another. Each builder returns a `Built`, whose
`verify()` checks the telemetry the variant claims to produce: metric counts equal
to requests, one JSON log line per request in a real file, spans created (the
coordinator compares them with what the live OTLP receiver got).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.app import ROUTE_TEMPLATE, create_app
from benchmarks.driver import Driver


@dataclass(frozen=True)
class Context:
    name: str
    endpoint: str | None
    """OTLP/HTTP base URL of the live receiver (None for variants without traces)."""
    log_path: Path
    service: str = "bench"


@dataclass
class Built:
    app: Any
    verify: Callable[[Driver], dict[str, Any]]
    finish: Callable[[], None] = lambda: None
    """Flush and shut down (bounded); called once, after the last round."""
    spans_per_request: int = 0
    selfmetrics: Callable[[], dict[str, Any]] = dict
    """The variant's own telemetry-loss counters, if it has any."""
    wsgi: bool = False
    """A WSGI app (driven by driver.WSGIDriver) instead of an ASGI one."""


@dataclass(frozen=True)
class Variant:
    name: str
    title: str
    build: Callable[[Context], Built]
    traces: bool = False
    """Exports spans to a live receiver (the coordinator starts one for it)."""
    optional: bool = False
    """Only run when asked for (single peer components, A/B variants)."""
    needs_obskit: bool = False
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the worker process (e.g. OTEL_TRACES_SAMPLER)."""
    access_event: str | None = None
    """The `event` of its access-log lines (None: writes no access log)."""
    group: str = "fastapi"
    """Which app it instruments: variants are compared within their group (bare, peer)."""


class VerificationError(AssertionError):
    """A variant did not produce the telemetry it claims: its timing is meaningless."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise VerificationError(message)


# --- log file checks --------------------------------------------------------------


def count_access_lines(path: Path, event: str) -> tuple[int, dict[str, Any] | None]:
    """Number of JSON access-log lines in the file and the last one, parsed."""
    count = 0
    last = b""
    with path.open("rb") as fh:
        for line in fh:
            if f'"{event}"'.encode() in line:
                count += 1
                last = line
    return count, (orjson.loads(last) if last else None)


def verify_access_log(
    path: Path, requests: int, event: str, fields: tuple[str, ...]
) -> dict[str, Any]:
    lines, last = count_access_lines(path, event)
    _check(lines == requests, f"{lines} access-log lines for {requests} requests in {path}")
    assert last is not None
    missing = [f for f in fields if not last.get(f)]
    _check(not missing, f"access-log line lacks {missing}: {last}")
    return {"log_lines": lines, "log_sample": last}


# --- bare ----------------------------------------------------------------------------


def build_bare(ctx: Context) -> Built:
    def verify(driver: Driver) -> dict[str, Any]:
        return {"requests": driver.requests}

    return Built(app=create_app(), verify=verify)


# --- peer stack and its components ---------------------------------------------------

_PEER_LOG_FIELDS = ("timestamp", "level", "event", "correlation_id", "route", "status")


def _build_peer(ctx: Context, *, prom: bool, corrlog: bool, otel: bool) -> Built:
    from benchmarks import peer

    app = create_app()
    stream = ctx.log_path.open("wb") if corrlog else None
    if corrlog:
        assert stream is not None
        peer.add_correlation_and_access_log(app, stream)
    if prom:
        peer.add_prometheus_instrumentator(app)
    provider = None
    if otel:
        assert ctx.endpoint is not None
        provider = peer.add_opentelemetry(app, ctx.endpoint, ctx.service)

    def finish() -> None:
        if provider is not None:
            provider.shutdown()
        if stream is not None:
            stream.close()

    def verify(driver: Driver) -> dict[str, Any]:
        n = driver.requests
        out: dict[str, Any] = {"requests": n}
        if prom:
            from prometheus_client import REGISTRY

            count = REGISTRY.get_sample_value(
                "http_requests_total",
                {"handler": ROUTE_TEMPLATE, "method": "GET", "status": "2xx"},
            )
            _check(count == n, f"http_requests_total={count} for {n} requests")
            out["metric_count"] = int(count or 0)
        if corrlog:
            fields = _PEER_LOG_FIELDS + (("trace_id", "span_id") if otel else ())
            out.update(verify_access_log(ctx.log_path, n, peer.ACCESS_EVENT, fields))
        if otel:
            out["spans_created"] = peer.SPANS_ENDED[0]
        return out

    return Built(app=app, verify=verify, finish=finish, spans_per_request=3 if otel else 0)


def build_peer(ctx: Context) -> Built:
    return _build_peer(ctx, prom=True, corrlog=True, otel=True)


def build_peer_prom(ctx: Context) -> Built:
    return _build_peer(ctx, prom=True, corrlog=False, otel=False)


def build_peer_corrlog(ctx: Context) -> Built:
    return _build_peer(ctx, prom=False, corrlog=True, otel=False)


def build_peer_otel(ctx: Context) -> Built:
    return _build_peer(ctx, prom=False, corrlog=False, otel=True)


# --- obskit ---------------------------------------------------------------------------

_OBSKIT_LOG_FIELDS = (
    "timestamp",
    "level",
    "logger",
    "event",
    "service",
    "correlation_id",
    "trace_id",
    "span_id",
    "method",
    "route",
    "status",
)


def build_obskit(ctx: Context) -> Built:
    """The one line a user writes; OTLP endpoint, sampler, on/off come from the environment."""
    return _build_obskit(ctx)


RESILIENCE_LIBRARIES = ("tenacity", "stamina", "backoff", "pybreaker", "circuitbreaker")


def build_obskit_resilience(ctx: Context) -> Built:
    """obskit full in a service that imports the five retry/breaker libraries (issue 9): their
    adapters are active (the request itself retries nothing: what the adapters cost a request
    that does not use them)."""
    import importlib

    for name in RESILIENCE_LIBRARIES:
        importlib.import_module(name)
    built = _build_obskit(ctx)
    from obskit.integrations import _active

    active = sorted(m.LIBRARY for m in _active)
    _check(set(RESILIENCE_LIBRARIES) <= set(active), f"adapters active: {active}")
    return built


def build_obskit_stock_exporter(ctx: Context) -> Built:
    """A/B: obskit with the SDK's stock OTLP/HTTP exporter (stock protobuf encoding)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    assert ctx.endpoint is not None
    exporter = OTLPSpanExporter(endpoint=ctx.endpoint.rstrip("/") + "/v1/traces")
    return _build_obskit(ctx, span_exporter=exporter)


def build_obskit_null_exporter(ctx: Context) -> Built:
    """A/B: obskit with spans handed to an exporter that discards them (cost minus export)."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    return _build_obskit(ctx, span_exporter=Discard())


def _build_obskit(ctx: Context, **init_kwargs: Any) -> Built:
    import obskit
    from obskit import semconv

    app = create_app()
    stream = ctx.log_path.open("wb")
    handle = obskit.init(app, service=ctx.service, log_stream=stream, **init_kwargs)
    tracing = handle.tracing
    pipe = tracing.pipe if tracing is not None else None

    def finish() -> None:
        obskit.shutdown()  # default bound (shutdown_timeout, 5 s)
        stream.close()

    def selfmetrics() -> dict[str, Any]:
        if pipe is None:
            return {}
        return {
            "spans_finished": pipe.finished,
            "spans_exported": pipe.exported,
            "dropped_queue_full": pipe.dropped_queue_full,
            "dropped_export_failed": pipe.dropped_export,
            "dropped_shutdown": pipe.dropped_shutdown,
            "failed_batches": pipe.failed_batches,
        }

    def verify(driver: Driver) -> dict[str, Any]:
        from prometheus_client import REGISTRY

        n = driver.requests
        out: dict[str, Any] = {"requests": n}
        count = REGISTRY.get_sample_value(
            semconv.HTTP_SERVER_DURATION + semconv.COUNT,
            {
                semconv.LABEL_METHOD: "GET",
                semconv.LABEL_ROUTE: ROUTE_TEMPLATE,
                semconv.LABEL_STATUS: "200",
            },
        )
        _check(count == n, f"{semconv.HTTP_SERVER_DURATION} count={count} for {n} requests")
        out["metric_count"] = int(count or 0)
        fields = _OBSKIT_LOG_FIELDS if tracing is not None else _OBSKIT_LOG_FIELDS[:6]
        out.update(verify_access_log(ctx.log_path, n, "request", fields))
        _check(
            out["log_sample"]["route"] == ROUTE_TEMPLATE, f"access-log route: {out['log_sample']}"
        )
        if pipe is not None:
            stats = selfmetrics()
            out["selfmetrics"] = stats
            out["spans_created"] = stats["spans_finished"]
            if ctx.name.endswith("sampled-out"):
                _check(stats["spans_finished"] == 0, f"sampled out, yet spans ended: {stats}")
                out["notes"] = ["0 spans sampled"]
            else:
                _check(stats["spans_finished"] == n, f"{stats} for {n} requests")
        else:
            _check(ctx.name == "obskit-traces-off", "obskit built no tracing")
            out["notes"] = ["traces off"]
        return out

    return Built(
        app=app,
        verify=verify,
        finish=finish,
        spans_per_request=1 if tracing is not None else 0,
        selfmetrics=selfmetrics,
    )


BASELINE_VARIANT = "obskit-baseline"
BASELINE_ENV = "OBSKIT_BENCH_BASELINE"
"""Directory holding another obskit package (run.py --baseline DIR), e.g. an older commit."""

# --- registry ------------------------------------------------------------------------

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("bare", "bare FastAPI", build_bare),
        Variant(
            "peer",
            "peer stack (instrumentator + OTel FastAPIInstrumentor/BSP/OTLP-HTTP"
            " + asgi-correlation-id + structlog JSON access log)",
            build_peer,
            traces=True,
            access_event="request",
        ),
        Variant("peer-prom", "prometheus-fastapi-instrumentator", build_peer_prom, optional=True),
        Variant(
            "peer-corrlog",
            "asgi-correlation-id + structlog JSON access log (pure ASGI)",
            build_peer_corrlog,
            optional=True,
            access_event="request",
        ),
        Variant(
            "peer-otel",
            "OTel FastAPIInstrumentor + BatchSpanProcessor + OTLP/HTTP",
            build_peer_otel,
            traces=True,
            optional=True,
        ),
        Variant(
            "obskit",
            "obskit full (JSON access log + correlation + 1 span/request over OTLP-HTTP + RED)",
            build_obskit,
            traces=True,
            needs_obskit=True,
            access_event="request",
        ),
        Variant(
            "obskit-resilience",
            "obskit full, tenacity/stamina/backoff/pybreaker/circuitbreaker imported"
            " (their adapters active)",
            build_obskit_resilience,
            traces=True,
            needs_obskit=True,
            access_event="request",
            optional=True,
        ),
        Variant(
            BASELINE_VARIANT,
            "obskit full, from the --baseline checkout (before/after)",
            build_obskit,
            traces=True,
            needs_obskit=True,
            access_event="request",
            optional=True,
        ),
        Variant(
            BASELINE_VARIANT + "-sampled-out",
            "obskit, traces sampled out, from the --baseline checkout",
            build_obskit,
            traces=True,
            needs_obskit=True,
            access_event="request",
            optional=True,
            env={"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
        ),
        Variant(
            "obskit-stock-exporter",
            "obskit full, but the SDK's stock OTLP/HTTP exporter (A/B for the direct encoder)",
            build_obskit_stock_exporter,
            traces=True,
            needs_obskit=True,
            access_event="request",
            optional=True,
        ),
        Variant(
            "obskit-null-exporter",
            "obskit full, spans discarded instead of exported (A/B: the export's share)",
            build_obskit_null_exporter,
            needs_obskit=True,
            access_event="request",
            optional=True,
        ),
        Variant(
            "obskit-sampled-out",
            "obskit, traces sampled out (OTEL_TRACES_SAMPLER=traceidratio, ARG=0)",
            build_obskit,
            traces=True,
            needs_obskit=True,
            access_event="request",
            env={"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
        ),
        Variant(
            "obskit-traces-off",
            "obskit, traces off (OBSKIT_TRACES_ENABLED=false)",
            build_obskit,
            needs_obskit=True,
            access_event="request",
            env={"OBSKIT_TRACES_ENABLED": "false"},
        ),
    )
}


def access_event(name: str) -> str:
    event = VARIANTS[name].access_event
    assert event is not None, f"{name} writes no access log"
    return event


def default_variants(group: str = "fastapi") -> list[str]:
    return [
        v.name for v in VARIANTS.values() if v.group == group and not v.optional and _available(v)
    ]


# --- Django (benchmarks/django_bench.py), registered after the shared types above ------
from benchmarks.django_bench import DJANGO_VARIANTS  # noqa: E402

VARIANTS.update(DJANGO_VARIANTS)


def _available(v: Variant) -> bool:
    if not v.needs_obskit:
        return True
    import importlib.util

    return importlib.util.find_spec("obskit.runtime.state") is not None
