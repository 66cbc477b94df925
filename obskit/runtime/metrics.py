"""RED metrics on a prometheus-client registry passed in (the global one is only the default).

Instruments are created at `init()`, never at import. Label children are cached per label
tuple, so the hot path is one dict lookup and one `observe`. Label values come only from
bounded sources: known methods (others become `_OTHER`), route templates (unmatched requests
share `__unmatched__`), status codes, URL authorities and exception class names.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from time import monotonic
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from obskit import __version__, semconv
from obskit.runtime import errors, later
from obskit.runtime.config import Config

if TYPE_CHECKING:
    from obskit.runtime.tracing.pipe import SpanPipe

_FLUSH_WAIT: Final = 1.0  # a scrape waits at most this long for a running batch (later.py)
_CACHE_LIMIT: Final = 10_000  # children cached; label values are bounded anyway


def multiprocess_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR when set (prometheus-client's multi-process mode)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _Observer:
    """A histogram with a per-label-tuple cache of `observe(value)` functions (`observer`)."""

    __slots__ = ("_bounds", "_cache", "_exemplar_at", "histogram")

    def __init__(self, histogram: Histogram, buckets: tuple[float, ...] = ()) -> None:
        self.histogram = histogram
        self._cache: dict[tuple[str, ...], Callable[..., None]] = {}
        self._bounds = buckets
        self._exemplar_at: dict[tuple[tuple[str, ...], int], float] = {}

    def observe_with_exemplar(self, labels: tuple[str, ...], value: float, trace_id: str) -> None:
        """Observe; attach a trace_id exemplar at most once a second per bucket.

        Prometheus keeps one exemplar per bucket, so refreshing it on every request only costs
        time; once a second per bucket keeps every bucket's exemplar recent.
        """
        observe = self.get(labels)
        key = (labels, bisect_left(self._bounds, value))
        now = monotonic()
        if now - self._exemplar_at.get(key, -10.0) >= 1.0:
            if len(self._exemplar_at) < _CACHE_LIMIT:
                self._exemplar_at[key] = now
            self.histogram.labels(*labels).observe(value, {"trace_id": trace_id})
        else:
            observe(value)

    def cached(self, labels: tuple[str, ...]) -> Callable[[float], None] | None:
        """The child's `observe(value)` if these labels were seen (and cached) before."""
        return self._cache.get(labels)

    def get(self, labels: tuple[str, ...]) -> Callable[[float], None]:
        observe = self._cache.get(labels)
        if observe is None:
            observe = observer(self.histogram.labels(*labels))
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[labels] = observe
        return observe


def observer(child: Any) -> Callable[[float], None]:
    """`observe(value)` for a histogram child on a per-call path: its sum's and its bucket's
    locked `inc`, the bucket found by bisection (Histogram.observe walks the bounds in a
    Python loop: a 30 s queue wait passes 10 of them); the same value holders under
    PROMETHEUS_MULTIPROC_DIR. The child's own `observe` for anything else (a NaN included,
    which it counts in no bucket), and when prometheus-client's internals are not as
    expected."""
    total = getattr(getattr(child, "_sum", None), "inc", None)
    buckets = getattr(child, "_buckets", None)
    bounds = getattr(child, "_upper_bounds", None)
    exact = child.observe
    if not (
        callable(total)
        and isinstance(buckets, list)
        and isinstance(bounds, list | tuple)
        and len(buckets) == len(bounds) > 0
        and bounds[-1] == math.inf
        and all(callable(getattr(b, "inc", None)) for b in buckets)
    ):
        return exact  # type: ignore[no-any-return]
    upper = tuple(bounds)
    incs = tuple(b.inc for b in buckets)
    find = bisect_left

    def observe(value: float) -> None:
        if value == value:  # noqa: PLR0124 - false for NaN only
            total(value)
            incs[find(upper, value)](1)
        else:
            exact(value)

    return observe


class _Gauges:
    """A one-label gauge (in-flight counts): `get(value)` is the child's `add(amount)`, cached
    per label value. `add(1)` when a request starts, `add(-1)` when it ends."""

    __slots__ = ("_cache", "gauge")

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self._cache: dict[str, Callable[[float], None]] = {}

    def get(self, value: str) -> Callable[[float], None]:
        add = self._cache.get(value)
        if add is None:
            add = adder(self.gauge.labels(value))
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[value] = add
        return add


def adder(child: Any) -> Callable[[float], None]:
    """`add(amount)` for a counter or gauge child on a per-call path: its value holder's own
    locked `inc` (what Counter.inc and Gauge.inc/dec end in, minus the checks they repeat on
    every call: observability, sign, exemplar; the same holder under PROMETHEUS_MULTIPROC_DIR),
    else the public `inc`."""
    value = getattr(child, "_value", None)
    inc = getattr(value, "inc", None)
    return inc if callable(inc) else child.inc  # type: ignore[no-any-return]


class Metrics:
    """obskit's instruments, registered on `registry` (unregistered again by `close()`)."""

    def __init__(self, config: Config, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.multiprocess = multiprocess_dir() is not None
        self.exemplars = config.exemplars and not self.multiprocess
        buckets = config.buckets
        self._collectors: list[Collector] = []
        self.server = _Observer(
            self._add(
                Histogram(
                    semconv.HTTP_SERVER_DURATION,
                    "Duration of inbound HTTP requests.",
                    semconv.SERVER_LABELS,
                    buckets=buckets,
                    registry=None,
                )
            ),
            tuple(buckets),
        )
        self.client = _Observer(
            self._add(
                Histogram(
                    semconv.HTTP_CLIENT_DURATION,
                    "Duration of outbound HTTP requests.",
                    semconv.CLIENT_LABELS,
                    buckets=buckets,
                    registry=None,
                )
            )
        )
        self.operation = _Observer(
            self._add(
                Histogram(
                    semconv.OPERATION_DURATION,
                    "Duration of operations wrapped with obskit.observe.",
                    semconv.OPERATION_LABELS,
                    buckets=buckets,
                    registry=None,
                )
            )
        )
        self.sent = self._add(
            Counter(
                semconv.MESSAGING_SENT.removesuffix("_total"),
                "Messages published (Celery tasks, obskit.produce).",
                semconv.MESSAGING_LABELS,
                registry=None,
            )
        )
        self._sent: dict[tuple[str, str, str], Callable[..., None]] = {}
        self.process = _Observer(
            self._add(
                Histogram(
                    semconv.MESSAGING_PROCESS_DURATION,
                    "Duration of message processing (Celery tasks, obskit.consume), by outcome.",
                    semconv.MESSAGING_PROCESS_LABELS,
                    buckets=config.process_buckets,
                    registry=None,
                )
            )
        )
        self.wait = _Observer(
            self._add(
                Histogram(
                    semconv.MESSAGING_QUEUE_WAIT,
                    "Time from when a message became due to the start of its processing.",
                    semconv.MESSAGING_LABELS,
                    buckets=config.queue_wait_buckets,
                    registry=None,
                )
            )
        )
        self.self_metrics = SelfMetrics(config)
        self._add(self.self_metrics)
        # In-flight gauges (saturation): livesum sums the live workers under
        # PROMETHEUS_MULTIPROC_DIR. One cached child per label value: inc/dec on the hot path.
        self.server_active = _Gauges(
            self._add(
                Gauge(
                    semconv.HTTP_SERVER_ACTIVE,
                    "Inbound HTTP requests in flight.",
                    (semconv.LABEL_METHOD,),
                    registry=None,
                    multiprocess_mode="livesum",
                )
            )
        )
        self.client_active = _Gauges(
            self._add(
                Gauge(
                    semconv.HTTP_CLIENT_ACTIVE,
                    "Outbound HTTP requests in flight.",
                    (semconv.LABEL_SERVER_ADDRESS,),
                    registry=None,
                    multiprocess_mode="livesum",
                )
            )
        )
        from obskit.runtime.resilience import ResilienceMetrics  # noqa: PLC0415

        self.resilience = ResilienceMetrics(None)
        for collector in self.resilience.collectors:
            self._add(collector)
        from obskit.runtime.outbox import OutboxCollector  # noqa: PLC0415

        self._add(OutboxCollector())

    def _add(self, collector: Any) -> Any:
        try:
            self.registry.register(collector)
        except ValueError:  # a name taken on the registry: leave nothing half-registered
            self.close()
            raise
        self._collectors.append(collector)
        return collector

    # -- messaging -------------------------------------------------------------------
    def messaging_sent(self, system: str, destination: str, task: str) -> None:
        key = (system, destination, task)
        inc = self._sent.get(key)
        if inc is None:
            inc = self.sent.labels(*key).inc
            if len(self._sent) < _CACHE_LIMIT:
                self._sent[key] = inc
        inc()

    def process_duration(
        self, system: str, destination: str, task: str, outcome: str, seconds: float
    ) -> None:
        key = (system, destination, task, outcome)
        observe = self.process.cached(key)
        if observe is None:
            # Every outcome of a task exists, at 0, from its first message on: a series born
            # at 1 shows no increase, so without this `rate()`/`increase()` (the SLO rules,
            # the alerts, the panels) would miss a known task's first failure or duplicate.
            for other in semconv.PROCESS_OUTCOMES:
                self.process.get((system, destination, task, other))
            observe = self.process.get(key)
        observe(seconds)

    def queue_wait(self, system: str, destination: str, task: str, seconds: float) -> None:
        self.wait.get((system, destination, task))(seconds)

    def close(self) -> None:
        for collector in self._collectors:
            try:
                self.registry.unregister(collector)
            except KeyError:
                continue
        self._collectors.clear()


class SelfMetrics(Collector):
    """obskit's own health, read at scrape time (no cost on the request path)."""

    def __init__(self, config: Config) -> None:
        self.pipe: SpanPipe | None = None
        self.service = config.service

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily(
            semconv.BUILD_INFO, "obskit version and service.", labels=["version", "service"]
        )
        build.add_metric([__version__, self.service], 1.0)
        yield build
        pipe = self.pipe
        finished = CounterMetricFamily(
            semconv.SPANS_FINISHED, "Sampled spans that ended (queued for export or dropped)."
        )
        exported = CounterMetricFamily(semconv.SPANS_EXPORTED, "Spans exported successfully.")
        dropped = CounterMetricFamily(
            semconv.SPANS_DROPPED, "Spans lost, by reason.", labels=[semconv.LABEL_REASON]
        )
        failures = CounterMetricFamily(
            semconv.SPAN_EXPORT_FAILURES, "Span export batches that failed."
        )
        queued = GaugeMetricFamily(semconv.SPANS_QUEUED, "Spans waiting for export.")
        if pipe is not None:
            finished.add_metric([], pipe.finished)
            exported.add_metric([], pipe.exported)
            dropped.add_metric(["queue_full"], pipe.dropped_queue_full)
            dropped.add_metric(["export_failed"], pipe.dropped_export)
            dropped.add_metric(["shutdown"], pipe.dropped_shutdown)
            failures.add_metric([], pipe.failed_batches)
            queued.add_metric([], pipe.queued)
        else:
            for family in (finished, exported, failures, queued):
                family.add_metric([], 0.0)
            for reason in ("queue_full", "export_failed", "shutdown"):
                dropped.add_metric([reason], 0.0)
        instrumentation = CounterMetricFamily(
            semconv.INSTRUMENTATION_ERRORS,
            "Errors inside obskit's instrumentation or a user hook (recorded, never raised).",
        )
        instrumentation.add_metric([], errors.total())
        yield from (finished, exported, dropped, failures, queued, instrumentation)


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """(body, content type) for a scrape; OpenMetrics (with exemplars) when asked for."""
    from prometheus_client import exposition as expo  # noqa: PLC0415

    later.run(_FLUSH_WAIT)  # a worker's queued observations count in this scrape
    source: Any = registry
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess  # noqa: PLC0415

        source = CollectorRegistry()
        multiprocess.MultiProcessCollector(source)  # type: ignore[no-untyped-call]
        source = _Merged((source, registry))
    encoder, content_type = expo.choose_encoder(accept or "")
    return encoder(source), content_type


class _Merged:
    """Multi-process samples plus this process's non-histogram collectors (self-metrics)."""

    def __init__(self, registries: Iterable[CollectorRegistry]) -> None:
        self._registries = tuple(registries)

    def collect(self) -> Iterator[Metric]:
        mp, local = self._registries
        seen: set[str] = set()
        for metric in mp.collect():
            seen.add(metric.name)
            yield metric
        for metric in local.collect():
            if metric.name not in seen and metric.type != "histogram":
                yield metric
