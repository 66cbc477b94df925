"""Traces: the whole pipeline from a span to OTLP bytes on the wire.

- `provider`: TracerProvider, sampler, resource, W3C propagation helpers, the `Tracing` handle;
- `span`: obskit's lean server span (an OTel Span handed to the pipe as a ReadableSpan);
- `pipe`: the bounded, counted export queue and its one export thread;
- `otlp`: the OTLP/HTTP protobuf encoder and exporter.
"""
