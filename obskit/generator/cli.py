"""The `obskit` command: scaffold, validate and generate from service manifests.

Thin typer layer: heavy modules (pydantic, jinja2, yaml, promql-parser) are imported inside the
commands, so `obskit --help` stays instant. Exit codes: 0 fine, 1 drift (`generate --check`),
2 invalid input (one `file:line: message` per problem on stderr, nothing written).
"""

# ruff: noqa: PLC0415  (lazy imports keep `obskit --help` instant)
from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from obskit.generator.model import Service
    from obskit.generator.render.output import Staging

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_INVALID = 2

app = typer.Typer(
    name="obskit",
    help="Generate Prometheus SLO alerts and Grafana dashboards from obskit service manifests.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class OutputFormat(StrEnum):
    prometheus = "prometheus"
    prometheus_operator = "prometheus-operator"


PathsArg = Annotated[
    list[Path],
    typer.Argument(
        help="Manifest files, or directories searched recursively for obskit.yaml / *.obskit.yaml.",
        show_default=False,
    ),
]


def _fail(lines: list[str]) -> NoReturn:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(EXIT_INVALID)


FormatOpt = Annotated[
    OutputFormat,
    typer.Option(
        "--format", help="prometheus-operator also writes prometheusrule.yaml beside rules.yaml."
    ),
]
TemplatesOpt = Annotated[
    Path | None,
    typer.Option("--templates", help="Directory whose templates override the built-in ones."),
]


def _load(paths: list[Path], jobs: int = 1) -> list[object]:
    from obskit.generator.manifest import ManifestError, load_all

    try:
        return list(load_all(paths, jobs))
    except ManifestError as exc:
        _fail([str(p) for p in exc.problems])


JobsOpt = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        help="Processes loading and rendering in parallel (default: one per CPU; small "
        "fleets run in one). The output is the same for any value.",
        show_default=False,
    ),
]


def _default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def _prepare(
    paths: list[Path],
    output_format: OutputFormat,
    templates: Path | None,
    out: Path | None,
    jobs: int | None = None,
    *,
    staging: Staging | None = None,
) -> tuple[list[Service], dict[str, dict[str, str]], dict[str, str]]:
    """Every check `generate` makes before it writes: load and validate the manifests, render
    every file in memory (templates, PromQL parsed, output names), assemble the Alertmanager
    files with the parts already in `out` (none when `out` is None). `validate` runs exactly
    this, so it fails wherever `generate` would (exit 2, nothing written). `staging` (generate
    only) receives each service's files as they are rendered, to stage them meanwhile."""
    from obskit.generator.model import Service
    from obskit.generator.parallel import parallel
    from obskit.generator.render import alertmanager, output
    from obskit.generator.render.bundle import FORMATS, PromQLProblem, render_all
    from obskit.generator.render.templates import TemplateProblem, Templates

    jobs = jobs or _default_jobs()
    services = [s for s in _load(paths, jobs) if isinstance(s, Service)]
    if templates is not None and not templates.is_dir():
        _fail([f"{templates}: --templates must be a directory"])
    # prometheus-operator writes prometheusrule.yaml in addition to rules.yaml.
    formats = FORMATS if output_format is OutputFormat.prometheus_operator else FORMATS[:1]
    sink = None
    if staging is not None:
        staging.stream = parallel(services, jobs)  # files written while workers render
        sink = staging.add
    try:
        files = render_all(services, Templates(templates), formats, jobs, sink)
    except (TemplateProblem, PromQLProblem) as exc:
        _fail([str(exc)])
    sources = {s.name: f"{s.source}:{s.line}" for s in services}
    if problems := [f"{sources[name]}: {p}" for name, p in output.name_problems(files)]:
        _fail(problems)
    try:
        top = alertmanager.top_files(out if out is not None else Path("<out>"), files)
    except alertmanager.AlertmanagerProblem as exc:
        _fail([str(exc)])
    return services, files, top


@app.command()
def validate(
    paths: PathsArg,
    output_format: FormatOpt = OutputFormat.prometheus,
    templates: TemplatesOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Also check with what is in <out>, as generate --out would."
        ),
    ] = None,
    jobs: JobsOpt = None,
) -> None:
    """Check manifests as `generate` would (same checks, nothing written); print one line per
    problem (file:line) and exit 2 if any."""
    from obskit.generator.model import BURN_RATE_ROWS, SLO, BurnRateRow, format_decimal
    from obskit.generator.render.promtool import untested_rows

    def note(service: Service, slo: SLO, row: BurnRateRow, text: str) -> None:
        typer.echo(
            f"note: {service.source}: {service.name}/{slo.name}: the "
            f"{format_decimal(slo.factor(row))}x {row.long}/{row.short} {row.severity} row {text}",
            err=True,
        )

    services, _, _ = _prepare(paths, output_format, templates, out, jobs)
    for service in services:
        slos = ", ".join(slo.name for slo in service.slos) or "no SLOs"
        typer.echo(f"ok: {service.source}: {service.name} ({slos})")
        for slo in service.slos:
            for row in BURN_RATE_ROWS:
                if not slo.can_fire(row):
                    note(
                        service,
                        slo,
                        row,
                        f"would need an error ratio above 100% at "
                        f"{format_decimal(slo.objective)}%; it is left out",
                    )
        for slo, row in untested_rows(service):
            note(
                service,
                slo,
                row,
                "gets no promtool unit test: another SLO on the same series sits too close to "
                "its own threshold in that scenario to say whether it fires",
            )
        if service.is_worker and not service.stalled_tasks:
            typer.echo(
                f"note: {service.source}: {service.name}: no task named (background.tasks or an "
                "SLI's tasks:), so no ObskitTasksStalled: dead workers would go unnoticed",
                err=True,
            )


@app.command()
def generate(  # noqa: PLR0917 (typer: one parameter per option)
    paths: PathsArg,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output directory; files go to <out>/<service>/.")
    ] = Path("observability"),
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 with a diff if <out> is stale."),
    ] = False,
    output_format: FormatOpt = OutputFormat.prometheus,
    templates: TemplatesOpt = None,
    jobs: JobsOpt = None,
) -> None:
    """Write rules.yaml, rules.test.yaml, dashboard.json and alertmanager.route.yaml per service,
    and alertmanager.yaml + alertmanager.test.sh assembled from every service in <out>."""
    from obskit.generator.render import output

    if check:
        services, files, top = _prepare(paths, output_format, templates, out, jobs)
        drifts = output.check(out, files, top)
        for drift in drifts:
            typer.echo(drift.diff, nl=False)
        if drifts:
            typer.echo(
                f"{len(drifts)} generated file(s) stale under {out}: run obskit generate "
                f"without --check",
                err=True,
            )
            raise typer.Exit(EXIT_DRIFT)
        typer.echo(f"up to date: {out} ({len(services)} service(s))")
        return
    removed: list[Path] = []
    staging = output.Staging(out)
    try:
        _, _, top = _prepare(paths, output_format, templates, out, jobs, staging=staging)
        written = staging.commit(removed, top)
    except OSError as exc:
        staging.abort()
        _fail([f"{exc.filename or out}: cannot write: {exc.strerror or exc}"])
    except BaseException:  # an input error (exit 2), Ctrl-C...: no temp file left behind
        staging.abort()
        raise
    for path in written:
        typer.echo(f"wrote {path}")
    for path in removed:
        typer.echo(f"removed {path} (not generated)")


@app.command()
def verify(
    paths: PathsArg,
    prometheus: Annotated[
        str,
        typer.Option(
            "--prometheus",
            help="Base URL of the Prometheus that scrapes the services and loads their rules.",
            show_default=False,
        ),
    ],
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds each API request may take.")
    ] = 10.0,
    templates: TemplatesOpt = None,
) -> None:
    """Check that a running Prometheus agrees with the manifests: scrape targets up, the SLO
    series present (or no traffic yet), latency buckets scraped, rule groups loaded as
    generated. One line per check; exit 0 all hold, 1 a mismatch, 2 bad input or Prometheus
    unreachable."""
    from obskit.generator.model import Service, check_url
    from obskit.generator.render import prometheus as rules_of
    from obskit.generator.render.templates import TemplateProblem, Templates
    from obskit.generator.verify import Client, Unreachable
    from obskit.generator.verify import verify as run_checks

    try:
        check_url(prometheus)
    except ValueError as exc:
        _fail([f"--prometheus: {exc}"])
    services = [s for s in _load(paths) if isinstance(s, Service)]
    if templates is not None and not templates.is_dir():
        _fail([f"{templates}: --templates must be a directory"])
    try:
        loaded = Templates(templates)
        rules = {s.name: rules_of.rule_groups(s, loaded) for s in services}
    except TemplateProblem as exc:
        _fail([str(exc)])
    counts = {"ok": 0, "note": 0, "FAIL": 0}
    try:
        for check in run_checks(Client(prometheus, timeout), services, rules):
            counts[check.status] += 1
            typer.echo(str(check))
    except Unreachable as exc:
        _fail([f"verify: {exc}"])
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    typer.echo(f"verify: {len(services)} service(s), {sum(counts.values())} checks: {summary}")
    if counts["FAIL"]:
        raise typer.Exit(EXIT_DRIFT)


@app.command("merge-alertmanager")
def merge_alertmanager(
    yours: Annotated[
        Path,
        typer.Argument(
            help="Your Alertmanager configuration: global settings, receivers with their "
            "integrations, your own root route.",
            show_default=False,
        ),
    ],
    generated: Annotated[
        Path,
        typer.Argument(help="obskit's <out>/alertmanager.yaml.", show_default=False),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the merged configuration here (else stdout)."),
    ] = None,
) -> None:
    """Put obskit's routes and inhibition rules into your Alertmanager configuration.

    obskit's route goes first among your root route's routes (replacing the one a previous
    merge put there); its inhibition rules are added once; everything else stays yours. Every
    receiver obskit routes to must be defined in YOURS (exit 2 listing the missing ones).
    """
    import yaml

    from obskit.generator.render import alertmanager, output

    documents = []
    for path in (yours, generated):
        try:
            documents.append(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            _fail([f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}"])
        except yaml.YAMLError as exc:
            _fail([f"{path}: invalid YAML: {exc}"])
    try:
        merged = alertmanager.merge(documents[0], documents[1])
    except alertmanager.AlertmanagerProblem as exc:
        _fail([f"{yours}: {exc}"])
    text = yaml.safe_dump(
        merged, sort_keys=False, default_flow_style=False, allow_unicode=True, width=10_000
    )
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_atomic(out, text)
    except OSError as exc:
        _fail([f"{exc.filename or out}: cannot write: {exc.strerror or exc}"])
    typer.echo(f"wrote {out}", err=True)


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="Service name, [a-z][a-z0-9_-]*.")],
    team: Annotated[str | None, typer.Option(help="Team label for the alerts.")] = None,
    templates: Annotated[
        Path | None, typer.Option("--templates", help="Directory overriding manifest.yaml.j2.")
    ] = None,
) -> None:
    """Print a valid starter manifest for NAME (redirect it to obskit.yaml)."""
    from obskit.generator.manifest import ManifestError, loads
    from obskit.generator.render.templates import TemplateProblem, Templates

    try:
        text = Templates(templates).render("manifest.yaml.j2", service=name, team=team)
        loads(text, f"<new {name}>")
    except (TemplateProblem, ManifestError) as exc:
        _fail([str(exc)])
    typer.echo(text, nl=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the manifest (for editor completion)."""
    import json

    from obskit.generator.manifest import json_schema

    typer.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
    sys.exit(0)
