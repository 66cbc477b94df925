"""obskit: correlated logs, traces and RED metrics for a Python service in one line.

    import obskit
    obskit.init(app, service="checkout")

The public API is re-exported here lazily: importing obskit loads nothing heavy and
configures nothing. Every setting is in docs/settings.md.
"""

# ruff: noqa: PLC0415 - every import here is deliberately lazy (import obskit stays fast)
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, overload

__version__ = "0.1.0"

__all__ = [
    "Breaker",
    "Config",
    "ConfigError",
    "Obskit",
    "RetryCall",
    "__version__",
    "breaker",
    "consume",
    "correlation_id",
    "get_logger",
    "get_tracer",
    "init",
    "inject",
    "mark_duplicate",
    "observe",
    "produce",
    "reset",
    "retry_call",
    "shutdown",
    "watch_outbox",
]

if TYPE_CHECKING:
    from obskit.runtime.config import Config, ConfigError
    from obskit.runtime.messaging import Headers, consume, produce
    from obskit.runtime.observe import observe
    from obskit.runtime.outbox import Probe
    from obskit.runtime.resilience import Breaker, RetryCall
    from obskit.runtime.state import Obskit


class _CeleryApp(Protocol):
    """What obskit recognises as a Celery application (for the type of `init`)."""

    def send_task(self, name: str, *args: Any, **kwargs: Any) -> Any: ...

    @property
    def Worker(self) -> Any: ...


@overload
def init(
    app: _CeleryApp,
    *,
    service: str | None = None,
    version: str | None = None,
    environment: str | None = None,
    **settings: Any,
) -> Obskit | None: ...


@overload
def init(
    app: object = None,
    *,
    service: str | None = None,
    version: str | None = None,
    environment: str | None = None,
    **settings: Any,
) -> Obskit: ...


def init(
    app: Any = None,
    *,
    service: str | None = None,
    version: str | None = None,
    environment: str | None = None,
    **settings: Any,
) -> Obskit | None:
    """Instrument `app` (FastAPI/Starlette/Flask/ASGI/WSGI, or None) and start telemetry.

    Settings: keyword arguments (Config field names), then OBSKIT_*/OTEL_* environment
    variables, then defaults. Also accepts `registry=` (prometheus CollectorRegistry) and
    `tracer_provider=` (use your TracerProvider instead of obskit's). A second call warns and
    returns the same handle. For a bare ASGI/WSGI callable, serve `handle.app`.

    For a Celery app, nothing happens until a worker starts in this process: then obskit is
    initialised with these settings (unless this process called `init()` itself). Web
    processes that import the app's module to publish are left alone. Returns the process's
    handle, or None while it has none.
    """
    from obskit import integrations
    from obskit.runtime import state

    if app is not None and integrations.is_worker_app(app):
        settings = dict(settings, service=service, version=version, environment=environment)
        return integrations.configure_worker(app, settings)
    return state.init(app, service=service, version=version, environment=environment, **settings)


def inject(headers: Headers) -> Headers:
    """Write the correlation ID, trace context and enqueue time into a message's headers.

    `headers`: a dict, or a list of `(key, bytes)` pairs as Kafka clients use. Pure: no span,
    no count (`obskit.produce` adds those). Returns `headers`.
    """
    from obskit.runtime import messaging

    return messaging.inject(headers)


def mark_duplicate() -> bool:
    """Mark the message being processed (a Celery task, an `obskit.consume` block) a duplicate.

    Its outcome is then `duplicate`. Returns False outside a consumer.
    """
    from obskit.runtime import messaging

    return messaging.mark_duplicate()


def watch_outbox(name: str, probe: Probe, *, timeout: float = 2.0) -> None:
    """Expose an outbox's backlog at scrape time: obskit_outbox_pending{outbox} and
    obskit_outbox_oldest_age_seconds{outbox}.

    `probe()` returns (pending rows, creation time of the oldest: datetime or Unix seconds, or
    None). It runs at scrape time, at most `timeout` seconds; one that raises or hangs is
    counted in obskit_instrumentation_errors_total and never breaks the scrape.
    """
    from obskit.runtime import outbox

    outbox.watch(name, probe, timeout=timeout)


def shutdown(timeout: float | None = None) -> None:
    """Flush pending spans and stop exporting, within `timeout` seconds (also run at exit).

    Without `timeout`, the `shutdown_timeout` setting bounds it (OBSKIT_SHUTDOWN_TIMEOUT).
    """
    from obskit.runtime import state

    state.shutdown(timeout)


def reset() -> None:
    """Undo init() entirely (for tests)."""
    from obskit.runtime import state

    state.reset()


def get_logger(name: str | None = None) -> Any:
    """A structlog logger writing obskit's JSON lines (with correlation and trace IDs).

    Without a name, the `logger` field is the calling module's `__name__`.
    """
    from obskit.runtime import logs

    if name is None:
        import sys

        name = str(sys._getframe(1).f_globals.get("__name__") or "root")
    return logs.get_logger(name)


def get_tracer(name: str = "app") -> Any:
    """An OpenTelemetry tracer on obskit's provider (a no-op tracer before init or with traces off).

    obskit's provider is not global by default, so `opentelemetry.trace.get_tracer()` gives
    no-op spans unless `set_global_tracer_provider=True`; this one always records.
    """
    from obskit.runtime import state

    handle = state.current()
    if handle is None or handle.tracing is None:
        from opentelemetry import trace

        return trace.NoOpTracer()
    return handle.tracing.provider.get_tracer(name)


def correlation_id() -> str | None:
    """The current request's correlation ID, or None outside a request."""
    from obskit.runtime import correlation

    return correlation.correlation_id()


def retry_call(operation: str) -> RetryCall:
    """Signals for one logical call through a hand-rolled retry loop (the same ones the
    tenacity/stamina/backoff adapters emit)::

        call = obskit.retry_call("shop.charge")
        for attempt in range(1, 4):
            try:
                with call.attempt():      # outbound HTTP here carries resend_count from try 2
                    result = charge()
            except ConnectionError as exc:
                if attempt == 3:
                    call.failed(exc)       # exhausted (failed if it never retried)
                    raise
                call.retry(exc, wait=0.2)  # retry_scheduled: metric, log line, span event
                time.sleep(0.2)
            else:
                call.succeeded()           # success, or recovered after retries
                break
    """
    from obskit.runtime.resilience import RetryCall

    return RetryCall(operation)


def breaker(name: str, state: str = "closed") -> Breaker:
    """Signals for a hand-rolled circuit breaker named `name` (its state gauge exists from
    now on)::

        payments = obskit.breaker("payments")
        if breaker_is_open():
            payments.rejected()            # failed fast: the protected call did not run
        ...
        payments.success() / payments.failure()
        payments.set_state("open")         # transition: metric, log line, span event
    """
    from obskit.runtime.resilience import Breaker

    return Breaker(name, state)


def __getattr__(name: str) -> Any:
    if name in ("Config", "ConfigError"):
        from obskit.runtime import config

        return getattr(config, name)
    if name == "observe":
        from obskit.runtime.observe import observe

        return observe
    if name in ("Breaker", "RetryCall"):
        from obskit.runtime import resilience

        return getattr(resilience, name)
    if name in ("consume", "produce"):
        from obskit.runtime import messaging

        return getattr(messaging, name)
    if name == "Obskit":
        from obskit.runtime.state import Obskit

        return Obskit
    if name == "testing":
        import importlib

        return importlib.import_module("obskit.testing")
    raise AttributeError(f"module 'obskit' has no attribute {name!r}")
