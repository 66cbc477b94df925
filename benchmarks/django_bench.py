"""The Django benchmark: bare Django, the hand-assembled peer stack and obskit, side by side.

Every variant serves the same Django project (`GET /items/<int:item_id>` returning JSON, no
database, `DEBUG=False`) through its WSGI handler, driven in-process (driver.WSGIDriver) in its
own worker process, interleaved with the others by benchmarks.inprocess like the FastAPI run.

- **django-peer**: django-prometheus (its before/after middleware), OpenTelemetry's
  `DjangoInstrumentor` with a `BatchSpanProcessor` and the OTLP/HTTP exporter to the live
  receiver, and django-structlog's `RequestMiddleware` with structlog rendering JSON through
  the stdlib (`ProcessorFormatter`, a `FileHandler`), plus the usual glue processor that puts
  trace_id/span_id on every line: each library configured the way its own docs show.
- **django-obskit**: the one line `obskit.init(application, service=...)`.

Each proves it did its job (histogram count = requests, one access line per request with the
IDs, spans counted on the wire) or the run fails.
"""

from __future__ import annotations

import logging
from typing import Any

from benchmarks.app import ROUTE_TEMPLATE
from benchmarks.driver import WSGIDriver
from benchmarks.variants import (
    Built,
    Context,
    Variant,
    VerificationError,
    verify_access_log,
)

urlpatterns: list[Any] = []  # ROOT_URLCONF is this module


def _item(request: Any, item_id: int) -> Any:
    from django.http import JsonResponse

    return JsonResponse({"item_id": item_id, "name": "widget", "price": 9.5})


def _configure(
    *, apps: tuple[str, ...] = (), middleware: tuple[str, ...] = (), logging_config: Any = None
) -> None:
    from django.conf import settings
    from django.urls import path

    urlpatterns[:] = [path("items/<int:item_id>", _item)]
    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=list(apps),
        MIDDLEWARE=list(middleware),
        DATABASES={},
        USE_TZ=True,
        LOGGING=logging_config or {"version": 1, "disable_existing_loggers": False},
    )


def _application() -> Any:
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise VerificationError(message)


def build_bare(ctx: Context) -> Built:
    _configure()

    def verify(driver: WSGIDriver) -> dict[str, Any]:
        return {"requests": driver.requests}

    return Built(app=_application(), verify=verify, wsgi=True)


# --- peer -------------------------------------------------------------------------------

_SPANS_ENDED = [0]


def build_peer(ctx: Context) -> Built:
    import structlog
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from benchmarks.peer import _add_trace_ids

    class Count(SpanProcessor):
        def on_end(self, span: Any) -> None:
            _SPANS_ENDED[0] += 1

    assert ctx.endpoint is not None
    provider = TracerProvider(resource=Resource.create({"service.name": ctx.service}))
    provider.add_span_processor(Count())
    exporter = OTLPSpanExporter(endpoint=ctx.endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.UnicodeDecoder(),
            _add_trace_ids,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    json_formatter = {
        "()": structlog.stdlib.ProcessorFormatter,
        "processor": structlog.processors.JSONRenderer(),
    }
    _configure(
        apps=("django_prometheus", "django_structlog"),
        middleware=(
            "django_prometheus.middleware.PrometheusBeforeMiddleware",
            "django_structlog.middlewares.RequestMiddleware",
            "django_prometheus.middleware.PrometheusAfterMiddleware",
        ),
        logging_config={
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": json_formatter},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "filename": str(ctx.log_path),
                    "formatter": "json",
                }
            },
            "loggers": {
                "django_structlog": {"handlers": ["file"], "level": "INFO", "propagate": False}
            },
        },
    )
    DjangoInstrumentor().instrument(tracer_provider=provider)  # before the handler is built
    app = _application()

    def finish() -> None:
        provider.shutdown()
        for handler in logging.getLogger("django_structlog").handlers:
            handler.flush()

    def verify(driver: WSGIDriver) -> dict[str, Any]:
        from prometheus_client import REGISTRY

        n = driver.requests
        out: dict[str, Any] = {"requests": n}
        count = REGISTRY.get_sample_value(
            "django_http_responses_total_by_status_total", {"status": "200"}
        )
        _check(count == n, f"django_http_responses_total_by_status_total={count} for {n}")
        out["metric_count"] = int(count or 0)
        out.update(
            verify_access_log(
                ctx.log_path,
                n,
                "request_finished",
                ("timestamp", "level", "request_id", "code", "trace_id", "span_id"),
            )
        )
        out["spans_created"] = _SPANS_ENDED[0]
        out["notes"] = ["2 log lines/req (request_started + request_finished)"]
        return out

    return Built(app=app, verify=verify, finish=finish, spans_per_request=1, wsgi=True)


# --- obskit -------------------------------------------------------------------------------

_OBSKIT_FIELDS = ("timestamp", "level", "logger", "event", "service", "correlation_id",
                  "trace_id", "span_id", "method", "route", "status")  # fmt: skip


def build_obskit(ctx: Context) -> Built:
    import obskit
    from obskit import semconv

    _configure()
    app = _application()
    stream = ctx.log_path.open("wb")
    handle = obskit.init(app, service=ctx.service, log_stream=stream)  # the user's one line
    pipe = handle.tracing.pipe if handle.tracing is not None else None

    def finish() -> None:
        obskit.shutdown()
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
        }

    def verify(driver: WSGIDriver) -> dict[str, Any]:
        from prometheus_client import REGISTRY

        n = driver.requests
        out: dict[str, Any] = {"requests": n}
        labels = {semconv.LABEL_METHOD: "GET", semconv.LABEL_ROUTE: ROUTE_TEMPLATE,
                  semconv.LABEL_STATUS: "200"}  # fmt: skip
        count = REGISTRY.get_sample_value(semconv.HTTP_SERVER_DURATION + semconv.COUNT, labels)
        _check(count == n, f"obskit histogram count={count} for {n} requests")
        out["metric_count"] = int(count or 0)
        out.update(verify_access_log(ctx.log_path, n, "request", _OBSKIT_FIELDS))
        _check(out["log_sample"]["route"] == ROUTE_TEMPLATE, f"route: {out['log_sample']}")
        stats = selfmetrics()
        out["selfmetrics"] = stats
        out["spans_created"] = stats.get("spans_finished", 0)
        _check(out["spans_created"] == n, f"{stats} for {n} requests")
        return out

    return Built(app=app, verify=verify, finish=finish, spans_per_request=1,
                 selfmetrics=selfmetrics, wsgi=True)  # fmt: skip


DJANGO_VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "django-bare", "bare Django (WSGI handler, no middleware)", build_bare, group="django"
        ),
        Variant(
            "django-peer",
            "Django peer stack (django-prometheus + OTel DjangoInstrumentor/BSP/OTLP-HTTP"
            " + django-structlog JSON)",
            build_peer,
            traces=True,
            group="django",
        ),
        Variant(
            "django-obskit",
            "obskit full (obskit.init(application): JSON access log + correlation + 1 span"
            "/request over OTLP-HTTP + RED)",
            build_obskit,
            traces=True,
            needs_obskit=True,
            access_event="request",
            group="django",
        ),
    )
}
