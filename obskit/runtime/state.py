"""The only mutable globals: the active obskit handle, created by init() and torn down by reset().

Rules obskit follows here:
- nothing happens at import; everything is created by `init()`;
- a TracerProvider the user set globally is never replaced (obskit keeps its own provider and,
  unless `set_global_tracer_provider=True`, does not set a global one at all);
- stdlib logging is bridged only when the root logger has no handlers;
- structlog's global configuration is never touched;
- `reset()` undoes everything `init()` did (for tests).
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import threading
import warnings
from typing import TYPE_CHECKING, Any

from obskit.runtime import later
from obskit.runtime.config import Config, ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

_lock = threading.RLock()
_handle: Obskit | None = None
_atexit_registered = False
_log = logging.getLogger("obskit")


class Obskit:
    """Handle returned by `obskit.init()`: the live configuration and its parts."""

    def __init__(
        self,
        config: Config,
        *,
        registry: Any = None,
        tracer_provider: Any = None,
        span_exporter: Any = None,
    ) -> None:
        from obskit.runtime import logs  # noqa: PLC0415

        self.config = config
        self.request_limit = config.request_value_limit  # read on every request
        self.active = True
        self.app: Any = None
        self._instrumented: list[tuple[Any, Any]] = []  # (app given, app to serve)
        self._undo: list[Callable[[], None]] = []  # what adapters changed in place (reset)
        self._metrics_server: Any = None
        self.logs = logs.LogPipeline(config)
        self.bridge: logs.StdlibBridge | None = None
        self.tracing: Any = None
        self.metrics: Any = None
        logs.activate(self.logs)
        try:
            self._start(registry, tracer_provider, span_exporter)
        except BaseException:
            self.close()  # a failed init() leaves nothing behind: init() can be called again
            raise

    def _start(self, registry: Any, tracer_provider: Any, span_exporter: Any) -> None:
        from obskit.runtime import client, logs  # noqa: PLC0415

        config = self.config
        if config.capture_stdlib_logs:
            self.bridge = logs.StdlibBridge(config.log_level)
            self.bridge.install()
        if config.traces_enabled:
            from obskit.runtime.tracing.provider import Tracing, install_log_hook  # noqa: PLC0415

            self.tracing = Tracing(config, tracer_provider, span_exporter)
            install_log_hook()
        if config.metrics_enabled:
            from prometheus_client import REGISTRY  # noqa: PLC0415

            from obskit.runtime.metrics import Metrics  # noqa: PLC0415

            self.metrics = Metrics(config, registry if registry is not None else REGISTRY)
            if self.tracing is not None:
                self.metrics.self_metrics.pipe = self.tracing.pipe
            if config.metrics_port is not None:
                self._metrics_server = _metrics_listener(self.metrics, config, config.metrics_port)
        client.bind(self)
        from obskit.runtime import resilience  # noqa: PLC0415

        resilience.bind(self)
        from obskit.integrations import instrument_libraries  # noqa: PLC0415

        instrument_libraries(self)

    @property
    def metrics_port(self) -> int | None:
        """The port the separate metrics server listens on (None when served on the app)."""
        return None if self._metrics_server is None else int(self._metrics_server.port)

    # -- apps -------------------------------------------------------------------------
    def instrument(self, app: Any) -> Any:
        """Instrument an app in place when possible; returns what should be served."""
        for seen, served in self._instrumented:
            if app is seen or app is served:  # the same app again: what was served before
                return served
        from obskit.integrations import instrument_app  # noqa: PLC0415

        served = instrument_app(app, self)
        self._instrumented.append((app, served))
        return served

    def on_close(self, undo: Callable[[], None]) -> None:
        """Run `undo` when this handle is closed (reset): an adapter's in-place changes."""
        self._undo.append(undo)

    # -- lifecycle --------------------------------------------------------------------
    def shutdown(self, timeout: float | None = None) -> None:
        """Flush and stop exporting within `timeout` seconds (default: shutdown_timeout)."""
        bound = self.config.shutdown_timeout if timeout is None else timeout
        later.run(bound)  # a worker's queued task bookkeeping first: it ends spans
        if self.tracing is not None:
            self.tracing.shutdown(bound)

    def flush(self, timeout: float | None = None) -> None:
        """Export pending spans now, within `timeout` seconds; telemetry keeps working.

        Called when an ASGI server shuts the app down (lifespan): uvicorn re-raises SIGTERM
        after its graceful shutdown, so the process dies without running atexit handlers.
        """
        bound = self.config.shutdown_timeout if timeout is None else timeout
        later.run(bound)
        pipe = self.tracing.pipe if self.tracing is not None else None
        if pipe is not None:
            pipe.force_flush(int(bound * 1000))

    def close(self) -> None:
        """Undo everything (reset): spans flushed, patches and handlers removed."""
        from obskit.runtime import logs  # noqa: PLC0415

        self.active = False
        self.shutdown(min(self.config.shutdown_timeout, 2.0))
        from obskit.integrations import uninstrument_libraries  # noqa: PLC0415
        from obskit.runtime import client, resilience  # noqa: PLC0415

        client.bind(None)
        resilience.bind(None)
        uninstrument_libraries()
        while self._undo:
            undo = self._undo.pop()
            try:
                undo()
            except Exception as exc:  # noqa: BLE001 - reset must finish
                from obskit.runtime import errors  # noqa: PLC0415

                errors.record("undo instrumentation", exc)
        if self._metrics_server is not None:
            self._metrics_server.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.bridge is not None:
            self.bridge.uninstall()
        if self.tracing is not None:
            logs.set_span_ids_hook(None)
        logs.activate(None)


def _metrics_listener(metrics: Any, config: Config, port: int) -> Any:
    """The separate /metrics listener; with worker processes, the first worker's serves all."""
    from obskit.runtime.metrics_server import MetricsServer  # noqa: PLC0415

    try:
        return MetricsServer(metrics.registry, config.metrics_host, port)
    except OSError as exc:
        if metrics.multiprocess and exc.errno == errno.EADDRINUSE:
            _log.info(
                "obskit: metrics port %s is served by another worker "
                "(PROMETHEUS_MULTIPROC_DIR: it reports every worker's metrics)",
                port,
            )
            return None
        raise ConfigError(
            f"metrics_port: cannot listen on {config.metrics_host}:{port} ({exc.strerror or exc})"
        ) from None


def current() -> Obskit | None:
    return _handle


def init(
    app: Any = None,
    *,
    service: str | None = None,
    version: str | None = None,
    environment: str | None = None,
    registry: Any = None,
    tracer_provider: Any = None,
    span_exporter: Any = None,
    environ: Any = None,
    **settings: Any,
) -> Obskit:
    """See obskit.init."""
    global _handle, _atexit_registered  # noqa: PLW0603
    with _lock:
        if _handle is not None:
            warnings.warn(
                "obskit.init() called again: returning the existing handle "
                "(settings of the second call are ignored)",
                RuntimeWarning,
                stacklevel=3,
            )
            if app is not None:
                _handle.app = _handle.instrument(app)
            return _handle
        overrides = dict(settings, service=service, version=version, environment=environment)
        config = Config.resolve(overrides, os.environ if environ is None else environ)
        handle = Obskit(
            config, registry=registry, tracer_provider=tracer_provider, span_exporter=span_exporter
        )
        try:
            if app is not None:
                handle.app = handle.instrument(app)
        except BaseException:
            handle.close()
            raise
        _handle = handle
        if not _atexit_registered:
            atexit.register(_at_exit)
            _atexit_registered = True
        return handle


def shutdown(timeout: float | None = None) -> None:
    with _lock:
        if _handle is not None:
            _handle.shutdown(timeout)


def reset() -> None:
    """Undo init() completely (tests): the next init() starts from scratch."""
    global _handle
    with _lock:
        handle, _handle = _handle, None
        if handle is not None:
            handle.close()
        from obskit.integrations import forget_workers  # noqa: PLC0415
        from obskit.runtime import errors, outbox  # noqa: PLC0415

        forget_workers()
        outbox.reset()

        errors.reset()


def _at_exit() -> None:
    handle = _handle
    if handle is not None:
        handle.shutdown()
