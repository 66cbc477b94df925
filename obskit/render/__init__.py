"""Renderers: model objects in, documents out (Prometheus rules, promtool tests, Grafana)."""
