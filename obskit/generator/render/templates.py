"""jinja2 templates: located, overridable by name, and always parsed back.

Templates ship inside the wheel as `obskit/templates` (from the repo's `templates/`); a source
checkout uses `<repo>/templates`. `Templates(override_dir)` looks a name up in `override_dir`
first. Every value enters a template through the `yaml` or `json` filter (never quoted by hand),
and every rendered document is parsed back here, so a broken template fails loudly with its name.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER: Any = yaml.resolver.Resolver()
_SIMPLE_LINE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*): ("(?:[^"\\]|\\.)*")')
_NOT_SIMPLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")
"""Characters for which YAML and JSON could read a quoted string differently (line breaks,
control and non-printable characters): such a document takes the YAML parser."""


@lru_cache(maxsize=256)
def _plain_string_key(key: str) -> bool:
    """Whether YAML reads `key` as a string (`no`, `on`, `null` are a bool and a null)."""
    resolved = _RESOLVER.resolve(yaml.ScalarNode, key, (True, False))
    return bool(resolved == "tag:yaml.org,2002:str")


def simple_mapping(text: str) -> dict[str, str] | None:
    """A rendered document that is only `key: "json string"` lines (what the built-in annotation
    template renders), read as YAML would read it but faster; None for anything else."""
    data: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        match = _SIMPLE_LINE.fullmatch(line)
        if match is None or _NOT_SIMPLE.search(line) or not _plain_string_key(match.group(1)):
            return None
        data[match.group(1)] = json.loads(match.group(2))
    return data or None


class TemplateProblem(Exception):
    """A template is missing, fails to render, or renders an unparseable document."""


def default_dir() -> Path:
    package = Path(__file__).resolve().parents[2]  # obskit/ (render -> generator -> obskit)
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
            auto_reload=False,  # one run: no need to stat each template at every render
        )
        # A JSON value is also a valid YAML flow value: one quoting rule for both formats.
        self.env.filters["yaml"] = _json_value
        self.env.filters["json"] = _json_value
        self.env.filters["k8s_label"] = k8s_label

    def problem(self, name: str, message: str) -> TemplateProblem:
        """`template NAME: message (FILE)`: FILE says whether an override or the built-in ran."""
        return TemplateProblem(f"template {name}: {message} ({self.origin(name)})")

    def _mapping(self, name: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.problem(name, f"must render a mapping, got {type(data).__name__}")
        return data

    def origin(self, name: str) -> str:
        """The file a template name resolves to (an override, or the built-in one)."""
        try:
            return self.env.get_template(name).filename or name
        except jinja2.TemplateError:
            return name

    def render(self, name: str, **context: Any) -> str:
        try:
            return self.env.get_template(name).render(**context)
        except jinja2.TemplateNotFound:
            raise TemplateProblem(f"template {name!r} not found") from None
        except jinja2.TemplateError as exc:
            where, origin = "", self.origin(name)
            if isinstance(exc, jinja2.TemplateSyntaxError):
                where, origin = f":{exc.lineno}", exc.filename or origin
            raise TemplateProblem(f"template {name}{where}: {exc.message} ({origin})") from None

    def render_yaml_mapping(self, name: str, **context: Any) -> dict[str, Any]:
        text = self.render(name, **context)
        simple = simple_mapping(text)
        if simple is not None:
            return simple
        try:
            data = yaml.load(text, Loader=_LOADER)  # a safe loader
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            at = f"line {mark.line + 1} of its output: " if mark is not None else ""
            reason = " ".join(str(part) for part in (exc.context, exc.problem) if part)
            raise TemplateProblem(
                f"template {name} rendered invalid YAML: {at}{reason} ({self.origin(name)})"
            ) from None
        except yaml.YAMLError as exc:
            raise TemplateProblem(
                f"template {name} rendered invalid YAML: {exc} ({self.origin(name)})"
            ) from None
        return self._mapping(name, data)

    def render_json_mapping(self, name: str, **context: Any) -> dict[str, Any]:
        text = self.render(name, **context)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TemplateProblem(
                f"template {name} rendered invalid JSON: {exc} ({self.origin(name)})"
            ) from None
        return self._mapping(name, data)
