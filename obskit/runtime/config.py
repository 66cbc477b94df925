"""obskit settings: one frozen object, resolved from arguments, then environment, then defaults.

`Config.from_env(environ)` is pure (it reads only the mapping it is given). `Config.resolve`
layers keyword overrides on top. An invalid value raises `ConfigError` naming the setting (the
argument name or the environment variable) and what it accepts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import unquote

from obskit import semconv

LogFormat = Literal["json", "console", "auto"]
Protocol = Literal["http/protobuf", "grpc"]

SAMPLERS: Final = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
DEFAULT_REDACT_KEYS: Final = ("authorization", "cookie", "password", "token", "secret", "api_key")
REQUEST_VALUE_LIMIT: Final = 2048
"""Default bound (characters) of values obskit copies from a request into telemetry (url.path,
url.query, user_agent.original, server.address... and the access line's path) when
OTEL_[SPAN_]ATTRIBUTE_VALUE_LENGTH_LIMIT sets none: a client cannot make spans or log lines
arbitrarily large."""


class ConfigError(ValueError):
    """An obskit setting has an invalid value; the message names the setting."""


@dataclass(frozen=True, slots=True)
class Config:
    """Every obskit setting. Field names are the `init()` keyword names.

    Environment variables (see docs/settings.md): `OBSKIT_<FIELD>` in upper case, plus the standard
    OpenTelemetry ones where they exist (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_*, ...).
    """

    service: str = "unknown_service"
    version: str | None = None
    environment: str | None = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    # logs
    log_format: LogFormat = "auto"
    log_level: str = "info"
    log_stream: Any = None  # text or binary file-like; None = sys.stdout (not from env)
    access_log: bool = True
    redact_keys: tuple[str, ...] = DEFAULT_REDACT_KEYS
    capture_stdlib_logs: bool = True
    # correlation
    request_id_headers: tuple[str, ...] = semconv.DEFAULT_REQUEST_ID_HEADERS
    # traces
    traces_enabled: bool = True
    otlp_endpoint: str = "http://localhost:4318/v1/traces"
    otlp_protocol: Protocol = "http/protobuf"
    otlp_headers: Mapping[str, str] = field(default_factory=dict)
    otlp_timeout: float = 10.0
    otlp_compression: str = "none"
    sampler: str = "parentbased_always_on"
    sampler_arg: float = 1.0
    span_queue_size: int = 8192
    span_batch_size: int = 512
    span_export_interval: float = 1.0
    attribute_value_length_limit: int | None = None  # OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT
    span_attribute_value_length_limit: int | None = None  # OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT
    set_global_tracer_provider: bool = False
    # metrics
    metrics_enabled: bool = True
    metrics_path: str = "/metrics"
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"
    buckets: tuple[float, ...] = semconv.DEFAULT_BUCKETS
    queue_wait_buckets: tuple[float, ...] = semconv.DEFAULT_QUEUE_WAIT_BUCKETS
    process_buckets: tuple[float, ...] = semconv.DEFAULT_PROCESS_BUCKETS
    exemplars: bool = True
    request_hook: Any = None  # callable(span, RequestInfo) at the end of each request (not env)
    # shared
    excluded_paths: tuple[str, ...] = semconv.DEFAULT_EXCLUDED_PATHS
    instrument_clients: bool = True
    disabled_instrumentations: tuple[str, ...] = ()  # adapter names, e.g. ("requests",)
    export_error_interval: float = 60.0
    shutdown_timeout: float = 5.0

    @property
    def span_attribute_limit(self) -> int | None:
        """Longest string a span attribute keeps, as the SDK reads it: the span-specific limit,
        else the general one, else none."""
        if self.span_attribute_value_length_limit is not None:
            return self.span_attribute_value_length_limit
        return self.attribute_value_length_limit

    @property
    def request_value_limit(self) -> int:
        """Longest value copied from a request (REQUEST_VALUE_LIMIT unless a limit is set)."""
        limit = self.span_attribute_limit
        return REQUEST_VALUE_LIMIT if limit is None else limit

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Config:
        """Settings from an environment mapping only (pure: reads nothing else)."""
        return cls.resolve({}, environ)

    @classmethod
    def resolve(cls, overrides: Mapping[str, Any], environ: Mapping[str, str]) -> Config:
        """Arguments first, then environment, then defaults; validates every value."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(
                f"unknown obskit setting(s): {', '.join(unknown)}; "
                f"accepted: {', '.join(sorted(names))}"
            )
        values: dict[str, Any] = {}
        for name in names:
            if name in overrides and overrides[name] is not None:
                values[name] = _coerce(name, name, overrides[name])
        from_env = _env_values(environ)
        for name, (var, raw) in from_env.items():
            if name not in values:
                values[name] = _coerce(name, var, raw)
        if (
            from_env.get("otlp_endpoint", ("",))[0] == "OTEL_EXPORTER_OTLP_ENDPOINT"
            and overrides.get("otlp_endpoint") is None
            and values.get("otlp_protocol") != "grpc"
        ):
            # OTel spec: for OTLP/HTTP the generic endpoint gets the signal path appended
            values["otlp_endpoint"] = values["otlp_endpoint"].rstrip("/") + "/v1/traces"
        _merge_resource(values, environ)
        config = cls(**values)
        _check(config)
        return config

    def replace(self, **changes: Any) -> Config:
        """A copy with some settings changed (validated)."""
        merged = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        merged.update({k: _coerce(k, k, v) for k, v in changes.items()})
        config = Config(**merged)
        _check(config)
        return config


# ---------------------------------------------------------------- environment ---


def _env_values(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Map setting name -> (variable name, raw value) for every variable that is set."""
    found: dict[str, tuple[str, str]] = {}

    def take(name: str, *variables: str) -> None:
        for var in variables:
            raw = environ.get(var)
            if raw is not None and raw.strip() != "":
                found[name] = (var, raw.strip())
                return

    for f in dataclasses.fields(Config):
        if f.name not in ("log_stream", "request_hook"):
            take(f.name, "OBSKIT_" + f.name.upper())
    take("service", "OBSKIT_SERVICE", "OTEL_SERVICE_NAME")
    take(
        "otlp_protocol",
        "OBSKIT_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    )
    take(
        "otlp_headers",
        "OBSKIT_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_HEADERS",
    )
    take(
        "otlp_timeout",
        "OBSKIT_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    )
    take(
        "otlp_compression",
        "OBSKIT_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
    )
    take(
        "attribute_value_length_limit",
        "OBSKIT_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    )
    take(
        "span_attribute_value_length_limit",
        "OBSKIT_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    )
    take("sampler", "OBSKIT_SAMPLER", "OTEL_TRACES_SAMPLER")
    take("sampler_arg", "OBSKIT_SAMPLER_ARG", "OTEL_TRACES_SAMPLER_ARG")
    if "otlp_endpoint" not in found:
        _otlp_endpoint_from_env(environ, found)
    if found.get("otlp_timeout", ("",))[0].startswith("OTEL_"):
        var, raw = found["otlp_timeout"]  # OTel spec: milliseconds
        found["otlp_timeout"] = (var, _ms_to_seconds(var, raw))
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        found["traces_enabled"] = ("OTEL_SDK_DISABLED", "false")
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        found.setdefault("traces_enabled", ("OTEL_TRACES_EXPORTER", "false"))
    return found


def _otlp_endpoint_from_env(environ: Mapping[str, str], found: dict[str, tuple[str, str]]) -> None:
    signal = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if signal:
        found["otlp_endpoint"] = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", signal)
        return
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if base:  # resolve() appends /v1/traces once the protocol is known
        found["otlp_endpoint"] = ("OTEL_EXPORTER_OTLP_ENDPOINT", base)


def _ms_to_seconds(var: str, raw: str) -> str:
    try:
        return str(float(raw) / 1000.0)
    except ValueError:
        raise ConfigError(f"{var}: expected milliseconds as a number, got {raw!r}") from None


def _merge_resource(values: dict[str, Any], environ: Mapping[str, str]) -> None:
    """OTEL_RESOURCE_ATTRIBUTES fills service/version/environment when not set otherwise."""
    raw = environ.get("OTEL_RESOURCE_ATTRIBUTES", "").strip()
    try:
        env_attrs = _parse_pairs(raw) if raw else {}
    except ValueError as exc:
        raise ConfigError(f"OTEL_RESOURCE_ATTRIBUTES: {exc}; got {raw!r}") from None
    given = dict(values.get("resource_attributes") or {})
    attrs = {**env_attrs, **given}
    for key, name in (
        ("service.name", "service"),
        ("service.version", "version"),
        ("deployment.environment.name", "environment"),
        ("deployment.environment", "environment"),
    ):
        if key in attrs and name not in values:
            values[name] = attrs[key]
    values["resource_attributes"] = attrs


# ------------------------------------------------------------------ coercion ---


def _coerce(name: str, source: str, value: Any) -> Any:
    coerce = _COERCERS.get(name)
    if coerce is None:
        return value
    try:
        return coerce(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}; got {value!r}") from None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected a boolean (true/false, 1/0, yes/no, on/off)")


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _choice(*choices: str) -> Callable[[Any], str]:
    def coerce(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text

    return coerce


def _positive_float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("expected a number") from None
    if not number > 0:
        raise ValueError("expected a number > 0")
    return number


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer >= 1")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("expected an integer >= 1") from None
    if number < 1:
        raise ValueError("expected an integer >= 1")
    return number


def _length_limit(value: Any) -> int | None:
    """A length limit as the OTel SDK reads it: unset, or an integer >= 0."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, bool):
        raise ValueError("expected an integer >= 0")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("expected an integer >= 0") from None
    if number < 0:
        raise ValueError("expected an integer >= 0")
    return number


def _port(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("expected a TCP port 0-65535") from None
    if not 0 <= number <= 65535:
        raise ValueError("expected a TCP port 0-65535")
    return number


def _ratio(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("expected a number between 0 and 1") from None
    if not 0.0 <= number <= 1.0:
        raise ValueError("expected a number between 0 and 1")
    return number


def _str_tuple(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    result = tuple(str(item).strip() for item in items if str(item).strip())
    return result


def _paths(value: Any) -> tuple[str, ...]:
    result = _str_tuple(value)
    for path in result:
        if not path.startswith("/"):
            raise ValueError("expected paths starting with '/' (comma-separated)")
    return result


def _buckets(value: Any) -> tuple[float, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        result = tuple(float(item) for item in items if str(item).strip())
    except (TypeError, ValueError):
        raise ValueError("expected increasing positive numbers (comma-separated)") from None
    if not result or any(b <= 0 for b in result) or list(result) != sorted(set(result)):
        raise ValueError("expected increasing positive numbers (comma-separated)")
    return result


def _parse_pairs(raw: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError("expected key=value pairs separated by commas")
        pairs[unquote(key.strip())] = unquote(value.strip())
    return pairs


def _mapping(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        return _parse_pairs(value)
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    raise TypeError("expected key=value pairs or a mapping")


def _endpoint(value: Any) -> str:
    text = _str(value).strip()
    if not text.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return text


def _log_level(value: Any) -> str:
    return _choice(*LOG_LEVELS)(value)


_COERCERS: dict[str, Callable[[Any], Any]] = {
    "service": _str,
    "version": _opt_str,
    "environment": _opt_str,
    "resource_attributes": _mapping,
    "log_format": _choice("json", "console", "auto"),
    "log_level": _log_level,
    "access_log": _bool,
    "redact_keys": lambda v: tuple(k.lower().replace("-", "_") for k in _str_tuple(v)),
    "capture_stdlib_logs": _bool,
    "request_id_headers": _str_tuple,
    "traces_enabled": _bool,
    "otlp_endpoint": _endpoint,
    "otlp_protocol": _choice("http/protobuf", "grpc"),
    "otlp_headers": _mapping,
    "otlp_timeout": _positive_float,
    "otlp_compression": _choice("none", "gzip"),
    "sampler": _choice(*SAMPLERS),
    "sampler_arg": _ratio,
    "attribute_value_length_limit": _length_limit,
    "span_attribute_value_length_limit": _length_limit,
    "span_queue_size": _positive_int,
    "span_batch_size": _positive_int,
    "span_export_interval": _positive_float,
    "set_global_tracer_provider": _bool,
    "metrics_enabled": _bool,
    "metrics_path": lambda v: _paths(v)[0] if _paths(v) else "/metrics",
    "metrics_port": _port,
    "metrics_host": _str,
    "buckets": _buckets,
    "queue_wait_buckets": _buckets,
    "process_buckets": _buckets,
    "exemplars": _bool,
    "excluded_paths": _paths,
    "instrument_clients": _bool,
    "disabled_instrumentations": lambda v: tuple(n.lower() for n in _str_tuple(v)),
    "export_error_interval": _positive_float,
    "shutdown_timeout": _positive_float,
}


def _check(config: Config) -> None:
    if not config.service.strip():
        raise ConfigError("service: expected a non-empty service name")
    if not config.request_id_headers:
        raise ConfigError("request_id_headers: expected at least one header name")
    if config.log_stream is not None and not callable(getattr(config.log_stream, "write", None)):
        raise ConfigError("log_stream: expected a writable text or binary file-like object")
    if config.request_hook is not None and not callable(config.request_hook):
        raise ConfigError("request_hook: expected a callable(span, info)")
    if config.span_batch_size > config.span_queue_size:
        raise ConfigError("span_batch_size: expected a value <= span_queue_size")
