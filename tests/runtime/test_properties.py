"""Properties over generated inputs: IDs stay safe, logging never raises, encoding matches stock."""

from __future__ import annotations

import io

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from obskit.runtime import correlation
from obskit.runtime.config import SAMPLERS, Config
from obskit.runtime.logs import LogPipeline
from obskit.runtime.tracing.otlp import Encoder


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_accepted_ids_are_always_safe_for_logs_and_headers(raw):
    accepted = correlation.accept(raw)
    assert correlation.is_valid(accepted)
    assert "\n" not in accepted and len(accepted) <= 128


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150)
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=6), st.text(max_size=40))
def test_logging_any_value_writes_one_parseable_line_and_never_raises(fields, event):
    stream = io.BytesIO()
    pipeline = LogPipeline(Config(log_format="json", service="p"), stream)
    pipeline.emit("info", "prop", event, fields)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = orjson.loads(lines[0])
    assert record["event"] == event and record["service"] == "p"


attribute_values = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=5), max_size=3),
    st.lists(st.integers(min_value=-1000, max_value=1000), max_size=3),
)
RESOURCE = Resource.create({"service.name": "prop"})
SCOPE = InstrumentationScope("obskit", "1")


# obskit's own keys take the encoder's cached and per-request (uncached) paths
attribute_keys = st.one_of(
    st.text(min_size=1, max_size=10),
    st.sampled_from(
        [
            "http.route",
            "server.address",
            "server.port",
            "url.query",
            "client.address",
            "client.port",
            "user_agent.original",
            "correlation_id",
        ]
    ),
)


@settings(max_examples=100)
@given(
    st.dictionaries(attribute_keys, attribute_values, max_size=8),
    st.text(max_size=30),
    st.integers(min_value=1, max_value=2**128 - 1),
    st.integers(min_value=1, max_value=2**64 - 1),
)
def test_encoder_matches_the_stock_encoder_for_any_attributes(attrs, name, trace_id, span_id):
    span = ReadableSpan(
        name,
        SpanContext(trace_id, span_id, False, TraceFlags(1)),
        None,
        RESOURCE,
        attrs,
        kind=SpanKind.SERVER,
        start_time=1,
        end_time=2,
        instrumentation_scope=SCOPE,
    )
    encoder = Encoder()
    stock = encode_spans([span])
    assert ExportTraceServiceRequest.FromString(encoder.request([span])) == stock
    # again with the same encoder: cached pairs give the same bytes
    assert ExportTraceServiceRequest.FromString(encoder.request([span])) == stock


@settings(max_examples=200)
@given(
    st.sampled_from(SAMPLERS),
    st.floats(min_value=0, max_value=1),
    st.integers(min_value=1, max_value=2**128 - 1),
    st.one_of(st.none(), st.booleans()),
)
def test_fast_sampler_decides_like_the_sdk_sampler(name, ratio, trace_id, parent_sampled):
    from opentelemetry.trace import NonRecordingSpan, set_span_in_context

    from obskit.runtime.tracing.provider import build_sampler
    from obskit.runtime.tracing.span import fast_sampler

    config = Config(sampler=name, sampler_arg=ratio)
    parent = None
    context = None
    if parent_sampled is not None:
        parent = SpanContext(trace_id, 7, True, TraceFlags(1 if parent_sampled else 0))
        context = set_span_in_context(NonRecordingSpan(parent))
    sdk = build_sampler(config).should_sample(context, trace_id, "x").decision.is_sampled()
    assert fast_sampler(config)(parent, trace_id) == sdk
