"""`python -m examples.demo` (or `make demo`): the whole toolkit in one command.

Generates the dashboards and SLO rules for the example manifests with the obskit CLI, starts
the two example services (shop -> payments), an OTLP/HTTP receiver and a real Prometheus on
loopback loaded with the generated rules, drives under a minute of traffic with a burst of
failures, and prints correlated logs, the trace, RED figures, SLO burn rates and alerts as
Prometheus computes them, and how to import the dashboard into Grafana. It stops every process
it started, also on Ctrl-C, and gives up after a deadline.
"""
