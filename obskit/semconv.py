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

SERVER_LABELS: Final = (LABEL_METHOD, LABEL_ROUTE, LABEL_STATUS)
CLIENT_LABELS: Final = (LABEL_METHOD, LABEL_SERVER_ADDRESS, LABEL_STATUS, LABEL_ERROR_TYPE)
OPERATION_LABELS: Final = (LABEL_OPERATION, LABEL_OUTCOME)

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

# --- Log fields ---
LOG_TIMESTAMP: Final = "timestamp"
LOG_LEVEL: Final = "level"
LOG_LOGGER: Final = "logger"
LOG_EVENT: Final = "event"
LOG_SERVICE: Final = "service"
LOG_CORRELATION_ID: Final = "correlation_id"
LOG_TRACE_ID: Final = "trace_id"
LOG_SPAN_ID: Final = "span_id"

# --- Span attribute carrying the correlation ID (same name as the log field) ---
SPAN_CORRELATION_ID: Final = "correlation_id"

# --- Endpoints excluded from metrics, traces and access logs by default ---
DEFAULT_EXCLUDED_PATHS: Final = ("/health", "/healthz", "/ready", "/readyz", "/livez", "/metrics")
