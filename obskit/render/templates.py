"""jinja2 templates: located, overridable by name, and always parsed back.

Templates ship inside the wheel as `obskit/templates` (from the repo's `templates/`); a source
checkout uses `<repo>/templates`. `Templates(override_dir)` looks a name up in `override_dir`
first. Every value enters a template through the `yaml` or `json` filter (never quoted by hand),
and every rendered document is parsed back here, so a broken template fails loudly with its name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jinja2
import yaml


class TemplateProblem(Exception):
    """A template is missing, fails to render, or renders an unparseable document."""


def default_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


def _json_value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def k8s_label(value: Any) -> str:
    """`value` as a valid Kubernetes label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric
    at both ends (other characters become `-`), e.g. "Payments Team" -> "Payments-Team"."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", str(value))
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", text[:63])


class Templates:
    def __init__(self, override_dir: Path | None = None) -> None:
        search = [str(override_dir)] if override_dir is not None else []
        search.append(str(default_dir()))
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        # A JSON value is also a valid YAML flow value: one quoting rule for both formats.
        self.env.filters["yaml"] = _json_value
        self.env.filters["json"] = _json_value
        self.env.filters["k8s_label"] = k8s_label

    def render(self, name: str, **context: Any) -> str:
        try:
            return self.env.get_template(name).render(**context)
        except jinja2.TemplateNotFound:
            raise TemplateProblem(f"template {name!r} not found") from None
        except jinja2.TemplateError as exc:
            where = f":{exc.lineno}" if isinstance(exc, jinja2.TemplateSyntaxError) else ""
            raise TemplateProblem(f"template {name}{where}: {exc}") from None

    def render_yaml_mapping(self, name: str, **context: Any) -> dict[str, Any]:
        text = self.render(name, **context)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TemplateProblem(f"template {name} rendered invalid YAML: {exc}") from None
        return _mapping(name, data)

    def render_json_mapping(self, name: str, **context: Any) -> dict[str, Any]:
        text = self.render(name, **context)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TemplateProblem(f"template {name} rendered invalid JSON: {exc}") from None
        return _mapping(name, data)


def _mapping(name: str, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TemplateProblem(f"template {name} must render a mapping, got {type(data).__name__}")
    return data
