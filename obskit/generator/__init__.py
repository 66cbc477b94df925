"""The generator: service manifests in, committed monitoring files out (build time, the CLI).

The pipeline reads left to right, one module per stage:
`manifest` (YAML -> validated spec, file:line errors) -> `model` (services, SLOs, burn-rate
windows) -> `render/` (Prometheus rules, promtool tests, Grafana dashboards; `bundle` runs
them, `output` writes files atomically) -> `cli` (typer commands, exit codes 0/1/2).

May import: the standard library, jinja2, PyYAML, pydantic, promql-parser, typer and
`obskit.semconv`. Never the runtime (obskit.runtime, obskit.integrations, OpenTelemetry SDK,
structlog, prometheus-client): generating files must not start telemetry.
"""
