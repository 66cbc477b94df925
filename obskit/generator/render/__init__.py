"""Renderers: model objects in, documents out.

`prometheus` (recording + alerting rules), `promtool` (rule unit tests), `grafana`
(dashboard JSON), `promql` (the expressions both share), `templates` (jinja2, parsed back),
`bundle` (which files one service gets) and `output` (atomic writes, drift check).
"""
