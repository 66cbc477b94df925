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
        "http_request_method",
        "http_route",
        "http_response_status_code",
    )
    assert semconv.CLIENT_LABELS == (
        "http_request_method",
        "server_address",
        "http_response_status_code",
        "error_type",
    )


def test_default_buckets_are_sorted_and_match_otel_advice() -> None:
    assert list(semconv.DEFAULT_BUCKETS) == sorted(semconv.DEFAULT_BUCKETS)
    assert semconv.DEFAULT_BUCKETS[0] == 0.005
    assert semconv.DEFAULT_BUCKETS[-1] == 10.0
    assert len(semconv.DEFAULT_BUCKETS) == 14


def test_failure_and_background_work_names_are_the_issues_contract() -> None:
    """Issues 9 and 10 fix these names; users' dashboards and acceptance tests rely on them."""
    assert (semconv.RETRIES, semconv.RETRY_LABELS) == (
        "obskit_retries_total",
        ("operation", "error_type"),
    )
    assert (semconv.RETRY_CALLS, semconv.RETRY_OUTCOMES) == (
        "obskit_retry_calls_total",
        ("success", "recovered", "exhausted", "failed"),
    )
    assert semconv.BREAKER_STATE == "obskit_circuit_breaker_state"
    assert semconv.BREAKER_TRANSITIONS == "obskit_circuit_breaker_transitions_total"
    assert (semconv.BREAKER_CALLS, semconv.BREAKER_OUTCOMES) == (
        "obskit_circuit_breaker_calls_total",
        ("success", "failure", "rejected"),
    )
    assert semconv.BREAKER_STATES == ("closed", "open", "half_open")
    assert (semconv.HTTP_SERVER_ACTIVE, semconv.HTTP_CLIENT_ACTIVE) == (
        "http_server_active_requests",
        "http_client_active_requests",
    )
    assert semconv.MESSAGING_SENT == "messaging_client_sent_messages_total"
    assert semconv.MESSAGING_PROCESS_LABELS == (
        "messaging_system",
        "messaging_destination_name",
        "task",
        "outcome",
    )
    assert semconv.PROCESS_OUTCOMES == ("success", "retry", "failure", "duplicate")
    assert semconv.MESSAGING_QUEUE_WAIT == "messaging_queue_wait_seconds"
    assert semconv.DEFAULT_QUEUE_WAIT_BUCKETS == (
        0.01,
        0.05,
        0.1,
        0.5,
        1,
        2.5,
        5,
        10,
        30,
        60,
        120,
        300,
        600,
        1800,
        3600,
    )
    assert (semconv.OUTBOX_PENDING, semconv.OUTBOX_OLDEST_AGE) == (
        "obskit_outbox_pending",
        "obskit_outbox_oldest_age_seconds",
    )
    names = [
        semconv.RETRIES, semconv.RETRY_CALLS, semconv.BREAKER_STATE, semconv.BREAKER_CALLS,
        semconv.BREAKER_TRANSITIONS, semconv.HTTP_SERVER_ACTIVE, semconv.HTTP_CLIENT_ACTIVE,
        semconv.MESSAGING_SENT, semconv.MESSAGING_PROCESS_DURATION, semconv.MESSAGING_QUEUE_WAIT,
        semconv.OUTBOX_PENDING, semconv.OUTBOX_OLDEST_AGE, *semconv.MESSAGING_PROCESS_LABELS,
        *semconv.BREAKER_STATE_LABELS, semconv.LABEL_OUTBOX,
    ]  # fmt: skip
    assert all(PROM_NAME.match(n) for n in names), names
