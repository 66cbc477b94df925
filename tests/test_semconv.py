"""The shared names module is the contract between the runtime and the generator."""

from __future__ import annotations

import re

from obskit import semconv

PROM_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def test_metric_and_label_names_are_valid_prometheus_names() -> None:
    names = [
        semconv.HTTP_SERVER_DURATION,
        semconv.HTTP_CLIENT_DURATION,
        semconv.OPERATION_DURATION,
        *semconv.SERVER_LABELS,
        *semconv.CLIENT_LABELS,
        *semconv.OPERATION_LABELS,
    ]
    assert all(PROM_NAME.match(n) for n in names), names


def test_server_histogram_uses_the_stable_otel_names() -> None:
    assert semconv.HTTP_SERVER_DURATION == "http_server_request_duration_seconds"
    assert semconv.SERVER_LABELS == (
        "http_request_method", "http_route", "http_response_status_code",
    )
    assert semconv.CLIENT_LABELS == (
        "http_request_method", "server_address", "http_response_status_code", "error_type",
    )


def test_default_buckets_are_sorted_and_match_otel_advice() -> None:
    assert list(semconv.DEFAULT_BUCKETS) == sorted(semconv.DEFAULT_BUCKETS)
    assert semconv.DEFAULT_BUCKETS[0] == 0.005
    assert semconv.DEFAULT_BUCKETS[-1] == 10.0
    assert len(semconv.DEFAULT_BUCKETS) == 14
