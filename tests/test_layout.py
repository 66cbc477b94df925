"""The architecture is enforced, not just described: which room may import what.

- runtime (obskit/runtime, obskit/__init__.py, obskit/testing.py) and integrations never
  import the generator or its libraries (jinja2, yaml, pydantic, typer, promql_parser);
- the generator never imports the runtime, the integrations, the OpenTelemetry SDK,
  structlog or prometheus_client;
- semconv imports only the standard library; an adapter imports its library lazily, so
  importing obskit never imports a library the service does not use.
Checked twice: statically on every import statement (lazy ones inside functions included), and
in fresh interpreters by inspecting `sys.modules` after the real entry points ran.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "obskit"
GENERATOR_ONLY = ("jinja2", "yaml", "pydantic", "typer", "promql_parser")
RUNTIME_ONLY = ("opentelemetry", "structlog", "prometheus_client")
OPTIONAL_LIBRARIES = (  # what adapters hook; made absent for the import checks below
    "backoff", "celery", "circuitbreaker", "django", "fastapi", "flask", "gunicorn", "httpx",
    "kombu", "pybreaker", "redis", "requests", "stamina", "starlette", "tenacity", "uvicorn",
    "werkzeug",
)  # fmt: skip


def _modules(room: str) -> list[Path]:
    base = PACKAGE / room
    return sorted(base.rglob("*.py")) if base.is_dir() else [PACKAGE / f"{room}.py"]


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Every module an `import` / `from ... import` in `path` names (absolute, dotted)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _violations(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in paths:
        for name in sorted(_imports(path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


RUNTIME_SIDE = [
    *_modules("runtime"),
    *_modules("integrations"),
    PACKAGE / "__init__.py",
    PACKAGE / "testing.py",
]


def test_the_rooms_exist_and_every_module_says_what_it_owns() -> None:
    for room in ("runtime", "runtime/tracing", "integrations", "generator", "generator/render"):
        assert (PACKAGE / room / "__init__.py").is_file(), room
    missing = [
        str(path.relative_to(ROOT))
        for path in sorted(PACKAGE.rglob("*.py"))
        if ast.get_docstring(ast.parse(path.read_text())) is None
    ]
    assert not missing, f"modules without a docstring: {missing}"


def test_runtime_and_integrations_never_import_the_generator() -> None:
    assert not _violations(RUNTIME_SIDE, ("obskit.generator", "obskit.cli", *GENERATOR_ONLY))


def test_the_generator_never_imports_the_runtime() -> None:
    forbidden = ("obskit.runtime", "obskit.integrations", "obskit.testing", *RUNTIME_ONLY)
    assert not _violations(_modules("generator"), forbidden)


def test_semconv_is_standard_library_only() -> None:
    stdlib = sys.stdlib_module_names | {"__future__"}
    names = _imports(PACKAGE / "semconv.py")
    assert {n.split(".")[0] for n in names} <= stdlib, names


def test_adapters_import_their_library_lazily() -> None:
    """Importing an adapter module imports no optional library (they are imported inside the
    functions that run once the library is known to be in use)."""
    eager = []
    for path in _modules("integrations"):
        for name in sorted(_imports(path, top_level_only=True)):
            if name.split(".")[0] in OPTIONAL_LIBRARIES:
                eager.append(f"{path.relative_to(ROOT)} imports {name} at module level")
    assert not eager


_ABSENT = """
import sys
for name in {absent!r}:  # None in sys.modules: find_spec() answers None, import raises
    sys.modules[name] = None
"""


def _loaded_after(code: str, absent: tuple[str, ...] = ()) -> set[str]:
    """Top-level module names in sys.modules after `code` ran in a fresh interpreter."""
    report = "{m.split('.')[0] for m, v in sys.modules.items() if v}"
    script = (
        _ABSENT.format(absent=set(absent))
        + textwrap.dedent(code)
        + f"\nprint('LOADED', ' '.join(sorted({report})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = [ln for ln in result.stdout.splitlines() if ln.startswith("LOADED ")]
    return set(line.split()[1:])


def test_init_loads_no_generator_library() -> None:
    loaded = _loaded_after(
        """
        import io
        import obskit
        handle = obskit.init(None, service="x", log_stream=io.StringIO())
        assert handle.tracing is not None and handle.metrics is not None  # it really started
        """,
        absent=OPTIONAL_LIBRARIES,
    )
    assert {"opentelemetry", "prometheus_client"} <= loaded  # telemetry really started
    assert not loaded & set(GENERATOR_ONLY), loaded & set(GENERATOR_ONLY)


def test_the_check_above_would_see_a_generator_library() -> None:
    """Control: the same probe reports yaml once something imports the generator."""
    loaded = _loaded_after("import obskit.generator.manifest", absent=OPTIONAL_LIBRARIES)
    assert {"yaml", "pydantic"} <= loaded


@pytest.mark.parametrize("command", ["generate", "validate"])
def test_the_cli_loads_no_runtime_library(command: str, tmp_path: Path) -> None:
    args = [command, "examples"] + (["--out", str(tmp_path)] if command == "generate" else [])
    loaded = _loaded_after(
        f"""
        sys.argv = ["obskit", *{args!r}]
        from obskit.cli import main
        try:
            main()
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
        """
    )
    assert not loaded & set(RUNTIME_ONLY), loaded & set(RUNTIME_ONLY)
    if command == "generate":
        assert (tmp_path / "shop" / "rules.yaml").is_file()  # it really generated
