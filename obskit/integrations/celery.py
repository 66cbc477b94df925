"""Celery: publishing and processing tasks through Celery's signals, in the messaging vocabulary.

Two parts:
- the **library adapter** (`instrument()`, activated whenever celery is imported in a process
  where obskit runs, before or after `init()`): `before_task_publish`/`after_task_publish` give
  the PRODUCER span, the headers (correlation ID, trace context, enqueue time) and the sent
  count; `task_prerun`/`task_postrun` give the CONSUMER span, the restored correlation ID, the
  `event: task` line and the processing and queue-wait histograms; `task_unknown` and
  `task_rejected` count poisoned messages as failures (task `__unknown__` when the name is not
  a registered task).
- the **worker start-up** (`configure_worker(app, settings)`, what `obskit.init(celery_app, ...)`
  does): nothing happens until Celery starts a worker in this process (`worker_init`, or
  `worker_process_init` in a pool child started by spawn). Only then is obskit initialised
  with those settings, unless this process already called `init()` itself, which is left
  alone. Web processes import the same module to publish and stay untouched.

In a worker obskit also takes Celery's logging back (Celery empties the root logger's handlers
and installs its own: `after_setup_logger` puts obskit's back, so Celery's and the tasks' logs
are JSON), flushes spans when a pool process or the worker stops, and, for the prefork pool,
makes the metrics cover every pool process (prometheus-client's multi-process mode, in a
private directory when PROMETHEUS_MULTIPROC_DIR is not set).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
from datetime import UTC, datetime
from threading import get_ident
from time import time_ns
from typing import TYPE_CHECKING, Any, Final

from obskit import semconv
from obskit.runtime import errors, later, messaging, state

if TYPE_CHECKING:
    from obskit.runtime.state import Obskit

LIBRARY: Final = "celery"
SYSTEM: Final = semconv.MESSAGING_SYSTEM_CELERY
_UID: Final = "obskit.celery"
_log = logging.getLogger("obskit")

# (thread, task id) -> (pending span, task, destination) of publishes whose after_task_publish is
# pending. Both signals come from one synchronous send_task_message call in one thread, so one
# dict serves every thread (even two publishing the same task ID at once); bounded, for
# publishes that raised (no after_task_publish).
_publishing: dict[tuple[int, str], tuple[Any, str, str]] = {}
_MAX_PENDING: Final = 1024


def _runtime() -> Obskit | None:
    rt = state.current()
    return rt if rt is not None and rt.active else None


# ------------------------------------------------------------------- publishing ---


def _destination(routing_key: Any, exchange: Any, default: str = "celery") -> str:
    if type(routing_key) is str and routing_key:  # what Celery passes
        return routing_key
    for value in (routing_key, exchange):
        if isinstance(value, str) and value:
            return value
        name = getattr(value, "name", None)
        if isinstance(name, str) and name:
            return name
    return default


def _before_publish(
    sender: Any = None,
    headers: Any = None,
    routing_key: Any = None,
    exchange: Any = None,
    body: Any = None,
    **_: Any,
) -> None:
    rt = _runtime()
    if rt is None or not isinstance(headers, dict):
        return
    try:
        task = sender if isinstance(sender, str) and sender else str(headers.get("task") or "")
        task = task or semconv.UNKNOWN_TASK
        destination = _destination(routing_key, exchange)
        cid = headers.get(semconv.REQUEST_ID_HEADER)  # a retry's, or the caller's: kept
        pending, values = messaging.begin_send(
            rt, SYSTEM, destination, task, cid if isinstance(cid, str) else None
        )
        headers.update(values)
        publishing = _publishing
        if len(publishing) >= _MAX_PENDING:
            _forget_oldest(publishing)
        publishing[(get_ident(), _message_id(headers, body))] = (pending, task, destination)
    except Exception as exc:  # noqa: BLE001 - instrumentation never fails a publish
        errors.record("celery before_task_publish", exc)


def _forget_oldest(pending: dict[tuple[int, str], tuple[Any, str, str]]) -> None:
    try:
        del pending[next(iter(pending))]
    except (KeyError, RuntimeError, StopIteration):  # another thread changed it meanwhile
        return


def _after_publish(sender: Any = None, headers: Any = None, body: Any = None, **_: Any) -> None:
    if not _publishing:
        return
    try:
        entry = _publishing.pop((get_ident(), _message_id(headers, body)), None)
        if entry is None:
            return
        later.add(_sent, (_runtime(), entry, time_ns()))
    except Exception as exc:  # noqa: BLE001 - instrumentation never fails a publish
        errors.record("celery after_task_publish", exc)


def _sent(rt: Obskit | None, entry: tuple[Any, str, str], end: int) -> None:
    """A publish's bookkeeping, run later (obskit.runtime.later): span end, sent count."""
    pending, task, destination = entry
    messaging.end_send(pending, end)
    if rt is not None and rt.metrics is not None:
        rt.metrics.messaging_sent(SYSTEM, destination, task)


def _message_id(headers: Any, body: Any) -> str:
    found = headers.get("id") if isinstance(headers, dict) else None
    if isinstance(found, str):  # what Celery passes
        return found
    if isinstance(body, dict) and isinstance(body.get("id"), str):  # task protocol 1
        return str(body["id"])
    return ""


# ------------------------------------------------------------------- processing ---


def _eta(value: Any) -> float | None:
    """The task's eta as a Unix time (Celery writes ISO-8601; naive means UTC)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _task_prerun(sender: Any = None, task_id: Any = None, task: Any = None, **_: Any) -> None:
    rt = _runtime()
    if rt is None or task is None:
        return
    try:
        request = task.request
        eager = bool(getattr(request, "is_eager", False))
        delivery = getattr(request, "delivery_info", None) or {}
        destination = delivery.get("routing_key") or delivery.get("exchange")
        if not isinstance(destination, str) or not destination:
            destination = _default_queue(task)
        headers = getattr(request, "headers", None) or {}
        messaging.Consumption(
            rt,
            SYSTEM,
            destination,
            str(getattr(task, "name", None) or semconv.UNKNOWN_TASK),
            None if eager else headers,
            due=None if eager else _eta(getattr(request, "eta", None)),
            retries=int(getattr(request, "retries", 0) or 0),
            message_id=str(task_id) if task_id is not None else None,
            inherit=eager,
            defer=not eager,  # a worker's: its line, metrics and span end in a batch
        )
    except Exception as exc:  # noqa: BLE001 - instrumentation never fails a task
        errors.record("celery task_prerun", exc)


def _default_queue(task: Any) -> str:
    queue = getattr(task, "queue", None)
    if isinstance(queue, str) and queue:
        return queue
    app = getattr(task, "app", None)
    default = getattr(getattr(app, "conf", None), "task_default_queue", None)
    return default if isinstance(default, str) and default else "celery"


_STATES: Final = {
    "SUCCESS": semconv.PROCESS_SUCCESS,
    "IGNORED": semconv.PROCESS_SUCCESS,  # self.replace() and Ignore: handled, not failed
    "RETRY": semconv.PROCESS_RETRY,
    "FAILURE": semconv.PROCESS_FAILURE,
}


def _task_postrun(
    sender: Any = None, task_id: Any = None, retval: Any = None, state: Any = None, **_: Any
) -> None:
    consumption = _find(task_id)  # from the top of the stack: the task's own, mostly
    if consumption is None:
        return
    try:
        outcome = _STATES.get(str(state), semconv.PROCESS_FAILURE)
        error = retval if isinstance(retval, BaseException) else None
        if state == "REJECTED":  # Reject(requeue=True) comes back; without requeue it is gone
            outcome = (
                semconv.PROCESS_RETRY
                if getattr(retval, "requeue", False)
                else semconv.PROCESS_FAILURE
            )
        elif state == "RETRY" and error is not None:
            error = getattr(error, "exc", None) or error
        consumption.finish(outcome, error)
    except Exception as exc:  # noqa: BLE001 - instrumentation never fails a task
        errors.record("celery task_postrun", exc)


def _find(task_id: Any) -> messaging.Consumption | None:
    wanted = str(task_id) if task_id is not None else None
    for consumption in reversed(messaging.stack()):
        if consumption.message_id == wanted and consumption.system == SYSTEM:
            return consumption
    return None


def _poisoned(sender: Any = None, message: Any = None, exc: Any = None, **_: Any) -> None:
    """A message the worker cannot run (unknown task, invalid message): a failure, counted."""
    rt = _runtime()
    if rt is None:
        return
    try:
        headers = getattr(message, "headers", None) or {}
        delivery = getattr(message, "delivery_info", None) or {}
        name = headers.get("task") if isinstance(headers, dict) else None
        tasks = getattr(getattr(sender, "app", None), "tasks", {})
        task = name if isinstance(name, str) and name in tasks else semconv.UNKNOWN_TASK
        consumption = messaging.Consumption(
            rt,
            SYSTEM,
            _destination(delivery.get("routing_key"), delivery.get("exchange")),
            task,
            headers,
            message_id=str(headers.get("id")) if isinstance(headers, dict) else None,
        )
        consumption.finish(
            semconv.PROCESS_FAILURE,
            exc if isinstance(exc, BaseException) else ValueError("message rejected"),
        )
    except Exception as err:  # noqa: BLE001 - instrumentation never fails the consumer
        errors.record("celery poisoned message", err)


# ------------------------------------------------------------ library adapter ---


def _signals() -> list[tuple[Any, Any]]:
    from celery import signals  # noqa: PLC0415

    return [
        (signals.before_task_publish, _before_publish),
        (signals.after_task_publish, _after_publish),
        (signals.task_prerun, _task_prerun),
        (signals.task_postrun, _task_postrun),
        (signals.task_unknown, _poisoned),
        (signals.task_rejected, _poisoned),
    ]


def instrument() -> None:
    """Connect obskit's receivers to Celery's publish and task signals (idempotent)."""
    for signal, receiver in _signals():
        signal.connect(receiver, weak=False, dispatch_uid=f"{_UID}.{receiver.__name__}")


def uninstrument() -> None:
    for signal, receiver in _signals():
        signal.disconnect(receiver, dispatch_uid=f"{_UID}.{receiver.__name__}")
    _publishing.clear()


# --------------------------------------------------------------- worker start-up ---


class _Worker:
    """What `obskit.init(celery_app, ...)` asked for, applied when a worker starts here."""

    def __init__(self, app: Any, settings: dict[str, Any]) -> None:
        self.app = app
        self.settings = settings
        self.lock = threading.Lock()
        self.started = False
        self.owned = False  # obskit was initialised by the worker start (not by the process)
        self.private_dir: str | None = None


_worker: _Worker | None = None


def is_celery_app(app: Any) -> bool:
    """True for a `celery.Celery` application (checked without importing celery)."""
    module = sys.modules.get("celery")
    celery_cls = getattr(module, "Celery", None) if module is not None else None
    return isinstance(celery_cls, type) and isinstance(app, celery_cls)


def configure_worker(app: Any, settings: dict[str, Any]) -> Obskit | None:
    """`obskit.init(celery_app, ...)`: initialise obskit when a worker starts in this process.

    Returns the process's current handle (None until a worker starts here, in a process that
    did not call `init()` itself).
    """
    global _worker  # noqa: PLW0603
    from celery import signals  # noqa: PLC0415

    if _worker is not None:
        if _worker.app is not app:
            _log.warning("obskit: init() for a second Celery app ignored (one worker per process)")
        return _runtime()
    _worker = _Worker(app, settings)
    for signal, receiver in (
        (signals.worker_init, _on_worker_init),
        (signals.worker_process_init, _on_process_init),
        (signals.after_setup_logger, _on_logging_setup),
        (signals.after_setup_task_logger, _on_logging_setup),
        (signals.worker_process_shutdown, _on_process_shutdown),
        (signals.worker_shutdown, _on_worker_shutdown),
    ):
        signal.connect(receiver, weak=False, dispatch_uid=f"{_UID}.{receiver.__name__}")
    return _runtime()


def _start(pool: Any) -> None:
    worker = _worker
    if worker is None:
        return
    with worker.lock:
        if worker.started:
            return
        worker.started = True
        if state.current() is not None:
            return  # this process called init() itself: leave it alone
        if _is_prefork(pool):
            worker.private_dir = _multiprocess_dir()
        try:
            state.init(None, **worker.settings)
        except Exception:
            _remove_private_dir(worker)
            raise
        worker.owned = True


def _is_prefork(pool: Any) -> bool:
    name = pool if isinstance(pool, str) else getattr(pool, "__module__", "") or ""
    return name.endswith(("prefork", "processes")) or name == "celery.concurrency.prefork"


def _multiprocess_dir() -> str | None:
    """Make prometheus-client record the pool processes' metrics in shared files.

    Uses PROMETHEUS_MULTIPROC_DIR when set; otherwise creates a private directory for this
    worker (removed at worker shutdown) and sets the variable, which the pool processes
    inherit. That only works before prometheus-client is imported: if it already is, the
    worker's metrics would miss the pool processes, and obskit says so.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    if "prometheus_client" in sys.modules:
        _log.warning(
            "obskit: prometheus_client was imported before the Celery worker started, so the "
            "worker's metrics cannot cover its prefork pool processes; set "
            "PROMETHEUS_MULTIPROC_DIR to an empty directory before starting the worker"
        )
        return None
    path = tempfile.mkdtemp(prefix="obskit-celery-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def _remove_private_dir(worker: _Worker) -> None:
    path, worker.private_dir = worker.private_dir, None
    if path is not None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == path:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(path, ignore_errors=True)


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    _start(getattr(sender, "pool_cls", None))


def _on_process_init(sender: Any = None, **_: Any) -> None:
    _start(None)  # a spawned pool child (a forked one inherited the parent's start)


def _on_logging_setup(sender: Any = None, logger: Any = None, **_: Any) -> None:
    """Celery configured its loggers: route them (and the root logger) through obskit again."""
    rt = _runtime()
    if rt is None or rt.bridge is None or not rt.bridge.installed:
        return
    try:
        if isinstance(logger, logging.Logger):
            rt.bridge.reclaim(logger)
        from billiard.util import get_logger as multiprocessing_logger  # noqa: PLC0415

        rt.bridge.reclaim(multiprocessing_logger())
    except Exception as exc:  # noqa: BLE001 - logging stays Celery's, the worker runs
        errors.record("celery logging setup", exc)


def _on_process_shutdown(**_: Any) -> None:
    """A pool process exits through os._exit (no atexit): flush its spans now."""
    rt = _runtime()
    if rt is not None:
        rt.shutdown()


def _on_worker_shutdown(**_: Any) -> None:
    rt = _runtime()
    if rt is not None:
        rt.shutdown()
    worker = _worker
    if worker is not None and worker.private_dir is not None:
        _remove_private_dir(worker)


def reset() -> None:
    """Forget the worker configuration (tests)."""
    global _worker  # noqa: PLW0603
    if _worker is None:
        return
    from celery import signals  # noqa: PLC0415

    for signal, receiver in (
        (signals.worker_init, _on_worker_init),
        (signals.worker_process_init, _on_process_init),
        (signals.after_setup_logger, _on_logging_setup),
        (signals.after_setup_task_logger, _on_logging_setup),
        (signals.worker_process_shutdown, _on_process_shutdown),
        (signals.worker_shutdown, _on_worker_shutdown),
    ):
        signal.disconnect(receiver, dispatch_uid=f"{_UID}.{receiver.__name__}")
    _remove_private_dir(_worker)
    _worker = None
