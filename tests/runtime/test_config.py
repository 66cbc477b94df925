"""Settings: arguments, then environment, then defaults; invalid values fail with one message."""

from __future__ import annotations

import pytest

from obskit.runtime.config import Config, ConfigError


def test_defaults_without_environment():
    config = Config.from_env({})
    assert config.service == "unknown_service"
    assert config.otlp_endpoint == "http://localhost:4318/v1/traces"
    assert config.otlp_protocol == "http/protobuf"
    assert config.sampler == "parentbased_always_on"
    assert config.metrics_path == "/metrics"
    assert "/health" in config.excluded_paths


def test_standard_otel_variables_are_honoured():
    config = Config.from_env(
        {
            "OTEL_SERVICE_NAME": "checkout",
            "OTEL_RESOURCE_ATTRIBUTES": (
                "service.version=1.2,deployment.environment.name=prod,team=pay"
            ),
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_OTLP_HEADERS": "api-key=abc%20def,x=1",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        }
    )
    assert config.service == "checkout"
    assert config.version == "1.2"
    assert config.environment == "prod"
    assert config.resource_attributes["team"] == "pay"
    assert config.otlp_endpoint == "http://collector:4318/v1/traces"  # signal path appended
    assert config.otlp_headers == {"api-key": "abc def", "x": "1"}
    assert config.otlp_timeout == 2.5  # OTel timeouts are milliseconds
    assert config.sampler == "parentbased_traceidratio"
    assert config.sampler_arg == 0.25


def test_signal_specific_endpoint_is_used_as_is():
    config = Config.from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom"})
    assert config.otlp_endpoint == "http://c:4318/custom"


def test_otel_sdk_disabled_turns_traces_off():
    assert Config.from_env({"OTEL_SDK_DISABLED": "true"}).traces_enabled is False


def test_arguments_win_over_environment_which_wins_over_defaults():
    environ = {
        "OBSKIT_SERVICE": "from-env",
        "OBSKIT_LOG_FORMAT": "console",
        "OBSKIT_METRICS_PORT": "9464",
    }
    config = Config.resolve({"service": "from-arg"}, environ)
    assert config.service == "from-arg"
    assert config.log_format == "console"
    assert config.metrics_port == 9464
    assert config.log_level == "info"


def test_obskit_variables_cover_lists_and_numbers():
    config = Config.from_env(
        {
            "OBSKIT_EXCLUDED_PATHS": "/ping, /status",
            "OBSKIT_BUCKETS": "0.1,0.5,1",
            "OBSKIT_REQUEST_ID_HEADERS": "X-Trace-Tag",
            "OBSKIT_REDACT_KEYS": "ssn,Credit-Card",
            "OBSKIT_INSTRUMENT_CLIENTS": "false",
        }
    )
    assert config.excluded_paths == ("/ping", "/status")
    assert config.buckets == (0.1, 0.5, 1.0)
    assert config.request_id_headers == ("X-Trace-Tag",)
    assert config.redact_keys == ("ssn", "credit_card")
    assert config.instrument_clients is False


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"OBSKIT_LOG_FORMAT": "xml"}, ["OBSKIT_LOG_FORMAT", "json, console, auto"]),
        ({"OTEL_TRACES_SAMPLER_ARG": "2"}, ["OTEL_TRACES_SAMPLER_ARG", "between 0 and 1"]),
        ({"OBSKIT_METRICS_PORT": "http"}, ["OBSKIT_METRICS_PORT", "TCP port"]),
        ({"OBSKIT_BUCKETS": "1,0.5"}, ["OBSKIT_BUCKETS", "increasing"]),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, ["OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"]),
        ({"OBSKIT_ACCESS_LOG": "maybe"}, ["OBSKIT_ACCESS_LOG", "boolean"]),
        ({"OTEL_RESOURCE_ATTRIBUTES": "novalue"}, ["OTEL_RESOURCE_ATTRIBUTES", "key=value"]),
    ],
)
def test_invalid_environment_value_names_the_variable_and_what_it_accepts(environ, names):
    with pytest.raises(ConfigError) as info:
        Config.from_env(environ)
    for fragment in names:
        assert fragment in str(info.value)


def test_invalid_argument_names_the_argument():
    with pytest.raises(ConfigError, match="span_queue_size"):
        Config.resolve({"span_queue_size": 0}, {})
    with pytest.raises(ConfigError, match="unknown obskit setting"):
        Config.resolve({"servce": "typo"}, {})


def test_from_env_is_pure_and_config_is_frozen():
    environ = {"OBSKIT_SERVICE": "a"}
    first = Config.from_env(environ)
    assert environ == {"OBSKIT_SERVICE": "a"}
    assert Config.from_env(environ) == first
    with pytest.raises(AttributeError):
        first.service = "b"  # type: ignore[misc]


def test_obskit_resource_attributes_win_over_otel_ones():
    config = Config.from_env(
        {
            "OBSKIT_RESOURCE_ATTRIBUTES": "team=a,service.version=9",
            "OTEL_RESOURCE_ATTRIBUTES": "team=b,zone=z",
        }
    )
    assert config.resource_attributes == {"team": "a", "zone": "z", "service.version": "9"}
    assert config.version == "9"


def test_signal_specific_otel_timeout_is_milliseconds_too():
    assert Config.from_env({"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1500"}).otlp_timeout == 1.5
    assert Config.from_env({"OBSKIT_OTLP_TIMEOUT": "3"}).otlp_timeout == 3.0


def test_the_generic_endpoint_gets_the_http_path_only_for_the_protocol_that_wins():
    """The /v1/traces suffix follows the resolved protocol (arguments, then OBSKIT_, then OTEL_)."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert Config.from_env(env).otlp_endpoint == "http://c:4318"
    winner = {**env, "OBSKIT_OTLP_PROTOCOL": "http/protobuf"}
    assert Config.from_env(winner).otlp_endpoint == "http://c:4318/v1/traces"
    by_argument = Config.resolve({"otlp_protocol": "http/protobuf"}, env)
    assert by_argument.otlp_endpoint == "http://c:4318/v1/traces"
    http_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317/"}
    assert Config.resolve({"otlp_protocol": "grpc"}, http_env).otlp_endpoint == "http://c:4317/"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"OTEL_EXPORTER_OTLP_HEADERS": "garbage"},
            "OTEL_EXPORTER_OTLP_HEADERS: expected key=value pairs separated by commas; "
            "got 'garbage'",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
            "OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL; "
            "got 'collector:4318'",
        ),
    ],
)
def test_an_invalid_value_gives_one_message_quoting_what_the_user_set(environ, message):
    with pytest.raises(ConfigError) as info:
        Config.from_env(environ)
    assert str(info.value) == message


def test_a_log_stream_that_cannot_be_written_fails_at_init_not_at_the_first_log_line():
    with pytest.raises(ConfigError, match="log_stream: expected a writable"):
        Config.resolve({"log_stream": "/tmp/app.log"}, {})
