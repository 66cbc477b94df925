"""The runtime: everything that runs inside a user's service, behind `obskit.init()`.

- `config`: the one frozen `Config` (arguments > OBSKIT_*/OTEL_* environment > defaults);
- `state`: the only mutable globals, the handle `init()` creates and `reset()` tears down;
- `correlation`, `logs`, `metrics` (+ `metrics_server`), `tracing/`: the three signals;
- `server`, `client`, `observe`: how one boundary (an inbound request, an outbound call, a
  wrapped operation) is recorded in all three signals; adapters in obskit.integrations only
  translate their framework's or library's objects into these;
- `redact` (secrets never leave the process) and `errors` (obskit's own failures: counted and
  logged once, never raised into the user's code).

May import: the standard library, OpenTelemetry, structlog, prometheus-client, orjson and
`obskit.semconv`. Never the generator (obskit.generator, jinja2, yaml, pydantic, typer).
Nothing here runs at import time.
"""
