"""Outbox watching: `obskit.watch_outbox(name, probe)`, read by a collector at scrape time.

A transactional outbox falls behind silently: the service keeps answering while its relay is
stuck. The probe the user gives (`probe() -> (pending rows, oldest row's creation time)`) is
called at scrape time, in a helper thread, for at most `timeout` seconds, and exposed as
obskit_outbox_pending{outbox} and obskit_outbox_oldest_age_seconds{outbox}. A probe that
raises, returns something else or hangs is counted in obskit_instrumentation_errors_total and
logged at most once per interval; that outbox's series are then absent from the scrape (never
a stale or made-up value), and the rest of the scrape is unaffected. While a hung probe is
still running, the next scrapes do not start another one.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Final

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from obskit import semconv
from obskit.runtime import errors

Probe = Callable[[], "tuple[int, datetime | float | None]"]
_NAME_LIMIT: Final = 128


class ProbeError(RuntimeError):
    """What an outbox probe did wrong (raised, returned the wrong thing, ran out of time)."""


class _Watch:
    __slots__ = ("_running", "name", "probe", "timeout")

    def __init__(self, name: str, probe: Probe, timeout: float) -> None:
        self.name = name
        self.probe = probe
        self.timeout = timeout
        self._running: threading.Thread | None = None

    def read(self) -> tuple[int, float] | None:
        """(pending, oldest age in seconds) now, or None after recording why not."""
        where = f"outbox probe {self.name!r}"
        running = self._running
        if running is not None and running.is_alive():
            errors.record(where, ProbeError(f"still running after {self.timeout:g}s (hung?)"))
            return None
        box: list[Any] = []

        def call() -> None:
            try:
                box.append(("ok", self.probe()))
            except BaseException as exc:  # noqa: BLE001 - reported by the scrape, below
                box.append(("error", exc))

        thread = threading.Thread(target=call, name=f"obskit-outbox-{self.name}", daemon=True)
        self._running = thread
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            errors.record(where, ProbeError(f"did not return within {self.timeout:g}s"))
            return None
        self._running = None
        kind, value = box[0] if box else ("error", ProbeError("returned nothing"))
        if kind == "error":
            errors.record(where, value)
            return None
        try:
            return _validate(value, time.time())
        except ProbeError as exc:
            errors.record(where, exc)
            return None


def _validate(value: Any, now: float) -> tuple[int, float]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ProbeError(f"expected (pending, oldest), got {type(value).__name__}")
    pending, oldest = value
    if isinstance(pending, bool) or not isinstance(pending, int) or pending < 0:
        raise ProbeError(f"pending: expected an integer >= 0, got {pending!r}")
    if oldest is None:
        return pending, 0.0
    if isinstance(oldest, datetime):
        moment = oldest if oldest.tzinfo is not None else oldest.replace(tzinfo=UTC)
        created = moment.timestamp()
    elif isinstance(oldest, int | float) and not isinstance(oldest, bool):
        created = float(oldest)
    else:
        raise ProbeError(
            f"oldest: expected a datetime, Unix seconds or None, got {type(oldest).__name__}"
        )
    if not math.isfinite(created):
        raise ProbeError(f"oldest: expected a finite time, got {oldest!r}")
    return pending, max(0.0, now - created)


_lock = threading.Lock()
_watches: dict[str, _Watch] = {}


def watch(name: str, probe: Probe, *, timeout: float = 2.0) -> None:
    """Register (or replace) the probe of outbox `name`; read at every scrape."""
    if not isinstance(name, str) or not name or len(name) > _NAME_LIMIT:
        raise ValueError(f"watch_outbox: name must be 1-{_NAME_LIMIT} characters, got {name!r}")
    if not callable(probe):
        raise TypeError("watch_outbox: probe must be a callable returning (pending, oldest)")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"watch_outbox: timeout must be a number of seconds > 0, got {timeout!r}")
    with _lock:
        _watches[name] = _Watch(name, probe, float(timeout))


def unwatch(name: str) -> None:
    with _lock:
        _watches.pop(name, None)


def reset() -> None:
    with _lock:
        _watches.clear()


class OutboxCollector(Collector):
    """obskit_outbox_pending / obskit_outbox_oldest_age_seconds, read from the probes."""

    def collect(self) -> Iterator[Metric]:
        with _lock:
            watches = sorted(_watches.values(), key=lambda w: w.name)
        pending = GaugeMetricFamily(
            semconv.OUTBOX_PENDING,
            "Rows waiting in the outbox (obskit.watch_outbox).",
            labels=[semconv.LABEL_OUTBOX],
        )
        age = GaugeMetricFamily(
            semconv.OUTBOX_OLDEST_AGE,
            "Age of the oldest row waiting in the outbox, seconds (0 when empty).",
            labels=[semconv.LABEL_OUTBOX],
        )
        for watch_ in watches:
            found = watch_.read()
            if found is not None:
                pending.add_metric([watch_.name], float(found[0]))
                age.add_metric([watch_.name], found[1])
        yield pending
        yield age
