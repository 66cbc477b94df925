"""obskit.testing: the helpers users get for their own tests."""

from __future__ import annotations

import asyncio

import obskit
from obskit.testing import Capture, capture

from .apps import fastapi_app
from .test_hostile import _request


def test_fixture_gives_an_initialised_obskit_and_resets_it(obskit_capture: Capture):
    app = obskit_capture.instrument(fastapi_app())
    asyncio.run(_request(app, "/orders/5", [(b"x-request-id", b"fx-1")]))
    [access] = obskit_capture.logs(logger="obskit.access")
    assert access["correlation_id"] == "fx-1"
    assert [s.name for s in obskit_capture.spans()] == ["GET /orders/{order_id}"]
    assert (
        obskit_capture.sample(
            "http_server_request_duration_seconds_count",
            http_request_method="GET",
            http_route="/orders/{order_id}",
            http_response_status_code="200",
        )
        == 1
    )


def test_capture_clear_forgets_logs_and_spans_and_exit_resets():
    app = fastapi_app()
    with capture(app) as cap:
        asyncio.run(_request(app, "/orders/5"))
        cap.clear()
        assert cap.logs() == [] and cap.spans() == []
    from obskit.runtime import state

    assert state.current() is None
    assert obskit.correlation_id() is None


def test_grpc_protocol_builds_the_stock_grpc_exporter():
    with capture(otlp_protocol="grpc") as cap:
        assert cap.handle.tracing is not None
    from obskit.runtime.config import Config
    from obskit.runtime.tracing.provider import build_exporter

    exporter = build_exporter(Config(otlp_protocol="grpc", otlp_endpoint="http://127.0.0.1:9"))
    assert type(exporter).__module__.startswith("opentelemetry.exporter.otlp.proto.grpc")
    exporter.shutdown()


def test_sample_sums_the_series_matching_the_labels_given():
    """cap.sample() with some labels adds up every series that has them (as the docs show)."""
    app = fastapi_app()
    with capture(app) as cap:
        for path in ("/orders/1", "/orders/2", "/missing"):
            asyncio.run(_request(app, path))
        count = "http_server_request_duration_seconds_count"
        assert cap.sample(count, http_route="/orders/{order_id}") == 2
        assert cap.sample(count, http_response_status_code="404") == 1
        assert cap.sample(count) == 3
        assert cap.sample(count, http_route="/nowhere") is None
