"""Test helpers for services that use obskit: capture logs, finished spans and metric samples.

    from obskit.testing import capture

    def test_checkout(client):
        with capture(app, service="checkout") as cap:
            client.get("/orders/1")
        assert cap.logs(event="request")[0]["status"] == 200
        assert cap.spans()[0].name == "GET /orders/{order_id}"
        assert cap.sample("http_server_request_duration_seconds_count",
                          http_route="/orders/{order_id}") == 1

Or as a pytest plugin (`pytest_plugins = ["obskit.testing"]`): the `obskit_capture` fixture
yields a `Capture` with obskit initialised (no app) and resets obskit afterwards; instrument
an app with `obskit_capture.instrument(app)`.

Everything is in memory: a private prometheus registry, an in-memory span exporter, a
BytesIO log stream. `reset()` undoes init() so the next test starts clean.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from obskit.runtime import later, state


class Capture:
    """What obskit emitted since it was initialised (or since `clear()`)."""

    def __init__(
        self, handle: state.Obskit, stream: io.BytesIO, exporter: Any, registry: CollectorRegistry
    ) -> None:
        self.handle = handle
        self.stream = stream
        self.exporter = exporter
        self.registry = registry

    @property
    def app(self) -> Any:
        return self.handle.app

    def instrument(self, app: Any) -> Any:
        """Instrument another app with the same obskit handle."""
        return self.handle.instrument(app)

    def logs(self, **match: Any) -> list[dict[str, Any]]:
        """Parsed JSON log lines, optionally only those whose fields equal `match`."""
        later.run()
        lines = [orjson.loads(line) for line in self.stream.getvalue().splitlines() if line]
        return [rec for rec in lines if all(rec.get(k) == v for k, v in match.items())]

    def spans(self) -> list[Any]:
        """Finished spans (SDK ReadableSpan), after flushing the export queue."""
        later.run()
        tracing = self.handle.tracing
        if tracing is None or self.exporter is None:
            return []
        if tracing.pipe is not None:
            tracing.pipe.force_flush(5000)
        return list(self.exporter.get_finished_spans())

    def sample(self, name: str, **labels: str) -> float | None:
        """The value of sample `name` summed over every series whose labels include `labels`
        (None when no series matches): `sample("..._count", http_route="/x")` counts every
        method and status of that route."""
        later.run()
        values = [
            sample.value
            for metric in self.registry.collect()
            for sample in metric.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        ]
        return sum(values) if values else None

    def clear(self) -> None:
        """Forget captured logs and spans (metrics keep counting)."""
        later.run()
        self.stream.seek(0)
        self.stream.truncate()
        if self.exporter is not None:
            tracing = self.handle.tracing
            if tracing is not None and tracing.pipe is not None:
                tracing.pipe.force_flush(5000)
            self.exporter.clear()


@contextmanager
def capture(app: Any = None, **settings: Any) -> Iterator[Capture]:
    """Initialise obskit for a test with in-memory sinks; reset it on exit."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: PLC0415
        InMemorySpanExporter,
    )

    reset()
    stream = io.BytesIO()
    registry = CollectorRegistry()
    exporter = InMemorySpanExporter()
    settings.setdefault("service", "test")
    settings.setdefault("log_format", "json")
    settings.setdefault("capture_stdlib_logs", False)
    settings.setdefault("instrument_clients", False)
    handle = state.init(
        app, log_stream=stream, registry=registry, span_exporter=exporter, environ={}, **settings
    )
    try:
        yield Capture(handle, stream, exporter, registry)
    finally:
        reset()


def reset() -> None:
    """Undo obskit.init() (providers, patches, handlers, registry entries)."""
    state.reset()


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixture
    pass
else:

    @pytest.fixture
    def obskit_capture() -> Iterator[Capture]:
        """obskit initialised with in-memory sinks for one test, reset afterwards."""
        with capture() as cap:
            yield cap
