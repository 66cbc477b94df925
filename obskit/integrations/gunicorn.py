"""gunicorn: its own log as obskit JSON, and the hooks pre-fork workers need.

Put one line in your `gunicorn.conf.py` (or run `gunicorn -c python:obskit.integrations.gunicorn`):

    from obskit.integrations.gunicorn import child_exit, logger_class, worker_exit  # noqa: F401

- `logger_class`: gunicorn's error log, in the master and in every worker (boot, signals,
  `WORKER TIMEOUT`, worker exits), written as obskit JSON lines to gunicorn's own destination
  (`--error-logfile`, stderr by default) at its `--log-level`, each with the `pid` of the
  process that wrote it. The master's lines carry the
  service named by `OBSKIT_SERVICE` / `OTEL_SERVICE_NAME` (or the one given to `init()` with
  `--preload`). gunicorn's access log is off while obskit writes its own access line (one per
  request, with route, IDs and duration); a worker where obskit is not initialised (or runs
  with `access_log=false`) writes gunicorn's access log, when one is configured, as JSON too.
- `worker_exit`: flushes the worker's spans, within `shutdown_timeout`, before it exits
  (SIGTERM, `max_requests` recycling, SIGHUP reload, worker timeout aborts excepted).
- `child_exit`: in the master, `prometheus_client.multiprocess.mark_process_dead(pid)` for a
  dead worker when `PROMETHEUS_MULTIPROC_DIR` is set (its live gauges leave the scrape).

gunicorn is imported only when gunicorn loads `Logger` (this module is read by gunicorn's
config loader, so it never runs in a process without gunicorn).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from obskit.runtime.logs import LogPipeline

logger_class: Final = "obskit.integrations.gunicorn.Logger"
"""gunicorn's `logger_class` setting: import this name into gunicorn.conf.py."""

_fallback: LogPipeline | None = None


def _pipeline() -> LogPipeline:
    """The running obskit's log pipeline, or one configured from the environment (the master
    without --preload never runs init())."""
    global _fallback  # noqa: PLW0603 - one lazily built pipeline per process
    from obskit.runtime import state  # noqa: PLC0415

    handle = state.current()
    if handle is not None and handle.active:
        return handle.logs
    if _fallback is None:
        from obskit.runtime.config import Config, ConfigError  # noqa: PLC0415
        from obskit.runtime.logs import LogPipeline  # noqa: PLC0415

        try:
            config = Config.from_env(os.environ)
        except ConfigError:
            config = Config()
        _fallback = LogPipeline(config)
    return _fallback


def _obskit_writes_access_lines() -> bool:
    from obskit.runtime import state  # noqa: PLC0415

    handle = state.current()
    return handle is not None and handle.active and handle.logs.access_log


def _with_pid(record: logging.LogRecord) -> bool:
    """A handler filter: every gunicorn line names the process (master or which worker)."""
    record.pid = record.process
    return True


def _logger_class() -> type:
    from gunicorn import glogging  # noqa: PLC0415

    from obskit.runtime.logs import JSONFormatter  # noqa: PLC0415

    class Logger(glogging.Logger):  # type: ignore[misc]
        """gunicorn's Logger with obskit JSON lines (destinations and levels unchanged)."""

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            formatter = JSONFormatter(_pipeline)
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(formatter)
                    if _with_pid not in handler.filters:
                        handler.addFilter(_with_pid)
                    handler._obskit = True  # the stdlib bridge leaves these in place

        def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
            if _obskit_writes_access_lines():
                return  # obskit's access line replaces gunicorn's
            super().access(resp, req, environ, request_time)

    Logger.__module__ = __name__
    return Logger


def __getattr__(name: str) -> Any:
    """`Logger` is built on first use, so importing this module never imports gunicorn."""
    if name == "Logger":
        cls = _logger_class()
        globals()["Logger"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook (in the worker, as it exits): flush this worker's spans."""
    from obskit.runtime import state  # noqa: PLC0415

    state.shutdown()


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook (in the master, after a worker died): drop its live multiprocess gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess  # noqa: PLC0415

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
