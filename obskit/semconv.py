"""Metric, label, header and log-field names shared by the runtime and the generator.

This module is the single source of truth for every name obskit emits. The runtime
instruments read their names from here, and the generator (rules, dashboards) builds
its PromQL from here, so a dashboard can never query a series the runtime does not
produce. It imports nothing but the standard library and has no side effects.
"""

from __future__ import annotations

from typing import Final

# --- Inbound HTTP (OpenTelemetry stable HTTP semconv, as it appears in Prometheus) ---
HTTP_SERVER_DURATION: Final = "http_server_request_duration_seconds"
"""Histogram of inbound request durations, seconds."""

# --- Outbound HTTP ---
HTTP_CLIENT_DURATION: Final = "http_client_request_duration_seconds"
"""Histogram of outbound request durations, seconds."""

# --- Any other boundary wrapped with obskit.observe() ---
OPERATION_DURATION: Final = "obskit_operation_duration_seconds"
"""Histogram of wrapped operation durations, seconds."""

# --- Saturation: in-flight requests (how a cascade starts) ---
HTTP_SERVER_ACTIVE: Final = "http_server_active_requests"
"""Gauge of inbound requests in flight, by `http_request_method`."""
HTTP_CLIENT_ACTIVE: Final = "http_client_active_requests"
"""Gauge of outbound requests in flight, by `server_address`."""

# --- Retries (tenacity, stamina, backoff, or obskit's own API) ---
RETRIES: Final = "obskit_retries_total"
"""One per retry scheduled: an attempt failed and the policy will try again."""
RETRY_CALLS: Final = "obskit_retry_calls_total"
"""One per logical call through a retry policy, by `outcome` (RETRY_OUTCOMES)."""
RETRY_SUCCESS: Final = "success"
RETRY_RECOVERED: Final = "recovered"
RETRY_EXHAUSTED: Final = "exhausted"
RETRY_FAILED: Final = "failed"
RETRY_OUTCOMES: Final = (RETRY_SUCCESS, RETRY_RECOVERED, RETRY_EXHAUSTED, RETRY_FAILED)

# --- Circuit breakers (pybreaker, circuitbreaker, or obskit's own API) ---
BREAKER_STATE: Final = "obskit_circuit_breaker_state"
"""Gauge: 1 for the breaker's current `state`, 0 for the others."""
BREAKER_TRANSITIONS: Final = "obskit_circuit_breaker_transitions_total"
"""Transitions into `state`."""
BREAKER_CALLS: Final = "obskit_circuit_breaker_calls_total"
"""Calls through a breaker, by `outcome` (BREAKER_OUTCOMES)."""
STATE_CLOSED: Final = "closed"
STATE_OPEN: Final = "open"
STATE_HALF_OPEN: Final = "half_open"
BREAKER_STATES: Final = (STATE_CLOSED, STATE_OPEN, STATE_HALF_OPEN)
BREAKER_SUCCESS: Final = "success"
BREAKER_FAILURE: Final = "failure"
BREAKER_REJECTED: Final = "rejected"
BREAKER_OUTCOMES: Final = (BREAKER_SUCCESS, BREAKER_FAILURE, BREAKER_REJECTED)
OTHER_ERROR_TYPE: Final = "_OTHER"
"""`error_type` value past the per-operation bound of distinct error types."""
ERROR_TYPES_PER_OPERATION: Final = 50
RESULT_ERROR_TYPE: Final = "_RESULT"
"""`error_type` of a retry caused by a returned value the policy rejected (no exception)."""

# --- Background work: messaging (Celery, or obskit.produce/consume for any broker) ---
MESSAGING_SENT: Final = "messaging_client_sent_messages_total"
"""Messages published, by system, destination and task."""
MESSAGING_PROCESS_DURATION: Final = "messaging_process_duration_seconds"
"""Histogram of message processing durations, by `outcome` (PROCESS_OUTCOMES)."""
MESSAGING_QUEUE_WAIT: Final = "messaging_queue_wait_seconds"
"""Histogram of the time from when a message became due to the start of its processing."""
PROCESS_SUCCESS: Final = "success"
PROCESS_RETRY: Final = "retry"
PROCESS_FAILURE: Final = "failure"
PROCESS_DUPLICATE: Final = "duplicate"
PROCESS_OUTCOMES: Final = (PROCESS_SUCCESS, PROCESS_RETRY, PROCESS_FAILURE, PROCESS_DUPLICATE)
DEFAULT_QUEUE_WAIT_BUCKETS: Final[tuple[float, ...]] = (
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)
"""Queue-wait buckets, seconds (configurable; a freshness SLO threshold must be one of them)."""
DEFAULT_PROCESS_BUCKETS: Final[tuple[float, ...]] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)
"""Processing-duration buckets, seconds (configurable): tasks run from milliseconds to an hour."""
UNKNOWN_TASK: Final = "__unknown__"
"""`task` value of a message naming no task the worker knows (bounded, whatever it says)."""
MESSAGING_SYSTEM_CELERY: Final = "celery"

# --- Outbox ---
OUTBOX_PENDING: Final = "obskit_outbox_pending"
"""Gauge: rows waiting in a transactional outbox."""
OUTBOX_OLDEST_AGE: Final = "obskit_outbox_oldest_age_seconds"
"""Gauge: age of the oldest pending outbox row, seconds."""

# --- obskit's own health: lost telemetry is never silent ---
SPANS_EXPORTED: Final = "obskit_spans_exported_total"
SPANS_DROPPED: Final = "obskit_spans_dropped_total"
SPAN_EXPORT_FAILURES: Final = "obskit_span_export_failures_total"
BUILD_INFO: Final = "obskit_build_info"
SPANS_FINISHED: Final = "obskit_spans_finished_total"
"""Sampled spans that ended: exported + dropped + still queued."""
SPANS_QUEUED: Final = "obskit_spans_queued"
"""Spans waiting in the bounded export queue (gauge)."""
INSTRUMENTATION_ERRORS: Final = "obskit_instrumentation_errors_total"
"""Errors raised inside obskit's instrumentation or a user hook (recorded, never raised)."""

# --- Label names ---
LABEL_METHOD: Final = "http_request_method"
LABEL_ROUTE: Final = "http_route"
LABEL_STATUS: Final = "http_response_status_code"
LABEL_SERVER_ADDRESS: Final = "server_address"
LABEL_ERROR_TYPE: Final = "error_type"
LABEL_OPERATION: Final = "operation"
LABEL_OUTCOME: Final = "outcome"
LABEL_REASON: Final = "reason"

LABEL_BREAKER: Final = "breaker"
LABEL_STATE: Final = "state"
LABEL_PID: Final = "pid"
"""Added by prometheus-client under PROMETHEUS_MULTIPROC_DIR to `liveall` gauges (the breaker
state: one series per live process); the generated rules aggregate it away."""
LABEL_MESSAGING_SYSTEM: Final = "messaging_system"
LABEL_DESTINATION: Final = "messaging_destination_name"
LABEL_TASK: Final = "task"
LABEL_OUTBOX: Final = "outbox"

SERVER_LABELS: Final = (LABEL_METHOD, LABEL_ROUTE, LABEL_STATUS)
CLIENT_LABELS: Final = (LABEL_METHOD, LABEL_SERVER_ADDRESS, LABEL_STATUS, LABEL_ERROR_TYPE)
OPERATION_LABELS: Final = (LABEL_OPERATION, LABEL_OUTCOME)

RETRY_LABELS: Final = (LABEL_OPERATION, LABEL_ERROR_TYPE)
RETRY_CALL_LABELS: Final = (LABEL_OPERATION, LABEL_OUTCOME)
BREAKER_STATE_LABELS: Final = (LABEL_BREAKER, LABEL_STATE)
BREAKER_CALL_LABELS: Final = (LABEL_BREAKER, LABEL_OUTCOME)
MESSAGING_LABELS: Final = (LABEL_MESSAGING_SYSTEM, LABEL_DESTINATION, LABEL_TASK)
MESSAGING_PROCESS_LABELS: Final = (*MESSAGING_LABELS, LABEL_OUTCOME)

OUTCOME_SUCCESS: Final = "success"
OUTCOME_ERROR: Final = "error"

UNMATCHED_ROUTE: Final = "__unmatched__"
"""`http_route` value shared by every request that matched no route (bounded cardinality)."""

OTHER_METHOD: Final = "_OTHER"
"""`http_request_method` value for methods outside KNOWN_METHODS (OTel semconv)."""

KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)

DEFAULT_BUCKETS: Final[tuple[float, ...]] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
"""OpenTelemetry's advisory buckets for HTTP durations, seconds."""

# Prometheus histogram series suffixes.
BUCKET: Final = "_bucket"
COUNT: Final = "_count"
SUM: Final = "_sum"

# --- Correlation and propagation headers ---
REQUEST_ID_HEADER: Final = "X-Request-ID"
CORRELATION_ID_HEADER: Final = "X-Correlation-ID"
DEFAULT_REQUEST_ID_HEADERS: Final = (REQUEST_ID_HEADER, CORRELATION_ID_HEADER)
ENQUEUED_AT_HEADER: Final = "X-Enqueued-At"
"""Message header: when the message was enqueued, Unix seconds (text, microseconds)."""
TRACEPARENT_HEADER: Final = "traceparent"
TRACESTATE_HEADER: Final = "tracestate"
BAGGAGE_HEADER: Final = "baggage"
MESSAGE_HEADERS: Final = (
    REQUEST_ID_HEADER,
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    BAGGAGE_HEADER,
    ENQUEUED_AT_HEADER,
)
"""What `obskit.inject` (and the Celery adapter) write into a message's headers."""

# --- Log fields ---
LOG_TIMESTAMP: Final = "timestamp"
LOG_LEVEL: Final = "level"
LOG_LOGGER: Final = "logger"
LOG_EVENT: Final = "event"
LOG_SERVICE: Final = "service"
LOG_CORRELATION_ID: Final = "correlation_id"
LOG_TRACE_ID: Final = "trace_id"
LOG_SPAN_ID: Final = "span_id"

# --- Log events and their fields (retries, breakers, background work) ---
EVENT_RETRY_SCHEDULED: Final = "retry_scheduled"
EVENT_RETRIES_EXHAUSTED: Final = "retries_exhausted"
EVENT_BREAKER_STATE_CHANGED: Final = "circuit_breaker_state_changed"
EVENT_BREAKER_REJECTED: Final = "circuit_breaker_rejected"
"""Span event: a call failed fast on an open breaker (the protected code did not run)."""
EVENT_TASK: Final = "task"
LOG_OPERATION: Final = "operation"
LOG_ATTEMPT: Final = "attempt"
LOG_ATTEMPTS: Final = "attempts"
LOG_ERROR_TYPE: Final = "error_type"
LOG_WAIT_SECONDS: Final = "wait_seconds"
LOG_BREAKER: Final = "breaker"
LOG_FROM_STATE: Final = "from_state"
LOG_TO_STATE: Final = "to_state"
LOG_TASK: Final = "task"
LOG_QUEUE: Final = "queue"
LOG_OUTCOME: Final = "outcome"
LOG_DURATION_MS: Final = "duration_ms"
LOG_RETRIES: Final = "retries"
LOG_MESSAGING_SYSTEM: Final = "messaging_system"
LOG_MESSAGE_ID: Final = "message_id"
LOG_QUEUE_WAIT_MS: Final = "queue_wait_ms"
TASK_LOGGER: Final = "obskit.task"
"""`logger` of the `event: task` line."""

# --- Span attribute of a resent HTTP request (stable HTTP semconv) ---
HTTP_RESEND_COUNT: Final = "http.request.resend_count"

# --- Alert names the generator emits (shared with docs and the demo) ---
ALERT_BREAKER_OPEN: Final = "ObskitCircuitBreakerOpen"
ALERT_BREAKER_FLAPPING: Final = "ObskitCircuitBreakerFlapping"
ALERT_RETRY_STORM: Final = "ObskitRetryStorm"
ALERT_OUTBOX_STALE: Final = "ObskitOutboxStale"
ALERT_TASKS_STALLED: Final = "ObskitTasksStalled"

# --- Span attribute carrying the correlation ID (same name as the log field) ---
SPAN_CORRELATION_ID: Final = "correlation_id"
SPAN_MESSAGING_TASK: Final = "messaging.task"
"""Producer/consumer span attribute: the `task` label (Celery task name, consumer handler)."""
SPAN_MESSAGING_OUTCOME: Final = "messaging.outcome"

# --- Endpoints excluded from metrics, traces and access logs by default ---
DEFAULT_EXCLUDED_PATHS: Final = ("/health", "/healthz", "/ready", "/readyz", "/livez", "/metrics")
