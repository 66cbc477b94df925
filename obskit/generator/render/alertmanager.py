"""Alertmanager: each service's route subtree, the configuration assembled from all of them, the
routing tests of every generated alert, and the merge into a user's own configuration.

Per service, `alertmanager.route.yaml` (`part()`) holds:

- `route`: the service's subtree: `service="<name>"`, then one sub-route per severity value the
  manifest sets: the page severity to the page receiver, the ticket severity to the ticket
  receiver; any other severity stays on the service route, whose receiver is the ticket one;
- `teams`: the `team` label values its alerts carry (the subtree goes under each team's route;
  `null` for alerts without a team);
- `inhibit_rules`: the pairs of `alerts.INHIBIT` whose two alerts the service has;
- `tests`: one case per alert of its rules.yaml: every label of the alert and the receiver
  Alertmanager must pick.

`<out>/alertmanager.yaml` (`assemble()`) is a complete configuration built from the parts of
every service present in `<out>`: a root route grouped by `alertname, service, slo`, one route
selecting obskit's alerts (`alertname=~"Obskit.+"`), under it one sub-route per team holding
its services' subtrees, the union of the inhibition rules, and every receiver named (without
integrations). `<out>/alertmanager.test.sh` (`test_script()`) runs `amtool config routes test`
for every case of every part. `merge()` puts obskit's route and inhibition rules into the
user's own configuration, which keeps its receivers' integrations.

Matchers are written as `name="value"` with Alertmanager's escaping, so any label value works.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from obskit.generator.model import LABEL_SERVICE, LABEL_SEVERITY, LABEL_SLO, LABEL_TEAM, Service
from obskit.generator.render import alerts, output

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

PART: Final = "alertmanager.route.yaml"
CONFIG: Final = "alertmanager.yaml"
TESTS: Final = "alertmanager.test.sh"
GROUP_BY: Final = ("alertname", LABEL_SERVICE, LABEL_SLO)
UNROUTED: Final = "obskit-unrouted"
"""Root receiver of the assembled configuration: what no obskit route takes (nothing, if the
routing tests pass). `merge()` keeps the user's root instead."""
SELECT_OBSKIT: Final = f'alertname=~"{alerts.PREFIX}.+"'
ROOT_TIMING: Final = {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}
"""Alertmanager's defaults, written out so a reader sees them (tune them in your own root)."""


class AlertmanagerProblem(Exception):
    """A part in `<out>` is not obskit's, or a configuration to merge with is unusable."""


def quote(value: str) -> str:
    """A label value as a double-quoted Alertmanager matcher value."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def matcher(name: str, value: str) -> str:
    return f"{name}={quote(value)}"


def _alert_label_sets(rules: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every alert of a rules document: its labels with `alertname`, in file order."""
    return [
        {"alertname": rule["alert"], **rule.get("labels", {})}
        for group in rules["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def receiver_of(service: Service, labels: Mapping[str, str]) -> str:
    """The receiver the service's subtree gives an alert with `labels`."""
    page = dict(service.policy("page").labels).get(LABEL_SEVERITY)
    return (
        service.receiver("page")
        if labels.get(LABEL_SEVERITY) == page
        else service.receiver("ticket")
    )


def part(service: Service, rules: Mapping[str, Any]) -> dict[str, Any]:
    """The service's Alertmanager part (see the module docstring) from its rules document."""
    page, ticket = service.receiver("page"), service.receiver("ticket")
    severities = {
        severity: dict(service.policy(severity).labels).get(LABEL_SEVERITY, "")
        for severity in ("page", "ticket")
    }
    label_sets = _alert_label_sets(rules)
    names = {labels["alertname"] for labels in label_sets}
    teams = sorted(
        {labels.get(LABEL_TEAM) for labels in label_sets}, key=lambda t: (t is not None, t or "")
    )
    return {
        "route": {
            "matchers": [matcher(LABEL_SERVICE, service.name)],
            "receiver": ticket,
            "routes": [
                {"matchers": [matcher(LABEL_SEVERITY, severities["page"])], "receiver": page},
                {"matchers": [matcher(LABEL_SEVERITY, severities["ticket"])], "receiver": ticket},
            ],
        },
        "teams": teams,
        "inhibit_rules": [
            inhibit_rule(source, target, equal)
            for source, target, equal in alerts.INHIBIT
            if source in names and target in names
        ],
        "tests": [
            {"labels": labels, "receiver": receiver_of(service, labels)} for labels in label_sets
        ],
    }


def inhibit_rule(source: str, target: str, equal: Sequence[str]) -> dict[str, Any]:
    """`source` firing suppresses `target` where the `equal` labels match. Both sides name the
    alert: Alertmanager counts a label absent on both sides as equal, so matching on severity
    alone would let any page suppress every ticket without those labels."""
    return {
        "source_matchers": [matcher("alertname", source)],
        "target_matchers": [matcher("alertname", target)],
        "equal": list(equal),
    }


# --------------------------------------------------------------------------- assembly


@dataclass(frozen=True)
class Part:
    service: str
    data: Mapping[str, Any]
    origin: str
    """Where it came from (a file, or "generated"), for messages."""


def check_part(data: Any, origin: str) -> Mapping[str, Any]:
    """`data` if it has the shape `part()` writes; AlertmanagerProblem naming `origin` if not."""
    if not isinstance(data, dict):
        raise AlertmanagerProblem(f"{origin}: not an obskit Alertmanager part (not a mapping)")
    ok = (
        isinstance(data.get("route"), dict)
        and isinstance(data.get("teams"), list)
        and all(t is None or isinstance(t, str) for t in data["teams"])
        and isinstance(data.get("inhibit_rules"), list)
        and isinstance(data.get("tests"), list)
        and all(
            isinstance(t, dict)
            and isinstance(t.get("labels"), dict)
            and isinstance(t.get("receiver"), str)
            for t in data["tests"]
        )
    )
    if not ok:
        raise AlertmanagerProblem(
            f"{origin}: not an obskit Alertmanager part (route, teams, inhibit_rules, tests); "
            "regenerate that service or delete its directory"
        )
    return data


def _receivers(route: Mapping[str, Any]) -> Iterable[str]:
    if "receiver" in route:
        yield route["receiver"]
    for child in route.get("routes", []):
        yield from _receivers(child)


def assemble(parts: Sequence[Part]) -> dict[str, Any]:
    """The complete configuration of every part (sorted by service, so the order in which they
    were found never matters)."""
    ordered = sorted(parts, key=lambda p: p.service)
    by_team: dict[str, list[dict[str, Any]]] = {}
    without_team: list[dict[str, Any]] = []
    inhibit: list[dict[str, Any]] = []
    receivers: set[str] = {UNROUTED}
    for p in ordered:
        route = dict(p.data["route"])
        for team in p.data["teams"]:
            (without_team if team is None else by_team.setdefault(team, [])).append(route)
        receivers.update(_receivers(route))
        for rule in p.data["inhibit_rules"]:
            if rule not in inhibit:
                inhibit.append(rule)
    team_routes: list[dict[str, Any]] = [
        {"matchers": [matcher(LABEL_TEAM, team)], "routes": routes}
        for team, routes in sorted(by_team.items())
    ]
    obskit_route: dict[str, Any] = {
        "matchers": [SELECT_OBSKIT],
        "group_by": list(GROUP_BY),
        "routes": team_routes + without_team,
    }
    return {
        "route": {
            "receiver": UNROUTED,
            "group_by": list(GROUP_BY),
            **ROOT_TIMING,
            "routes": [obskit_route] if obskit_route["routes"] else [],
        },
        "inhibit_rules": inhibit,
        "receivers": [{"name": name} for name in sorted(receivers)],
    }


def test_script(parts: Sequence[Part]) -> str:
    """A POSIX shell script that checks, with amtool, the receiver of every alert of every part."""
    lines = [
        "#!/bin/sh",
        "# Generated by obskit. DO NOT EDIT. Regenerate with `obskit generate`.",
        "# Routing tests: for every alert obskit generates, the receiver Alertmanager must pick.",
        "# Usage: sh alertmanager.test.sh [CONFIG]   (default: alertmanager.yaml beside this file;",
        "# give your merged configuration to test that). Needs amtool (prometheus-alertmanager).",
        "set -u",
        'config=${1:-"$(dirname "$0")/alertmanager.yaml"}',
        'command -v amtool >/dev/null 2>&1 || { echo "amtool not found: install '
        'prometheus-alertmanager" >&2; exit 2; }',
        '[ -f "$config" ] || { echo "$config: no such file" >&2; exit 2; }',
        "passed=0",
        "failed=0",
        "route() {  # route EXPECTED_RECEIVER MATCHER...",
        "    expected=$1",
        "    shift",
        '    if got=$(amtool config routes test --config.file="$config" '
        '--verify.receivers="$expected" "$@" 2>/dev/null); then',
        "        passed=$((passed + 1))",
        "    else",
        "        failed=$((failed + 1))",
        '        echo "FAIL: $* -> $(printf %s "${got:-?}" | head -n 1) (expected $expected)"',
        "    fi",
        "}",
    ]
    for p in sorted(parts, key=lambda p: p.service):
        lines.append(f"# {p.service}")
        for case in p.data["tests"]:
            labels = case["labels"]
            args = " ".join(shlex.quote(matcher(k, str(labels[k]))) for k in sorted(labels))
            lines.append(f"route {shlex.quote(case['receiver'])} {args}")
    lines += [
        'echo "routing tests: $passed passed, $failed failed ($config)"',
        '[ "$failed" -eq 0 ]',
    ]
    return "\n".join(lines) + "\n"


def _load(text: str, origin: str) -> Mapping[str, Any]:
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise AlertmanagerProblem(f"{origin}: invalid YAML: {exc}") from None
    return check_part(data, origin)


def collect(out: Path, files: Mapping[str, Mapping[str, str]]) -> list[Part]:
    """The parts of every service present in `out` after this run: the generated ones (from
    `files`) and those already in `out/<service>/` for services not generated now."""
    parts = []
    for service, contents in files.items():
        if PART not in contents:
            continue
        data = getattr(contents, "part", None)  # bundle.ServiceFiles keeps what it wrote
        if data is None:
            data = _load(contents[PART], f"{out / service / PART} (generated)")
        parts.append(Part(service, data, "generated"))
    if out.is_dir():
        for directory in sorted(out.iterdir()):
            path = directory / PART
            if directory.name in files or not path.is_file():
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise AlertmanagerProblem(f"{path}: cannot read: {exc}") from None
            parts.append(Part(directory.name, _load(text, str(path)), str(path)))
    return parts


def top_files(out: Path, files: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """`<out>/alertmanager.yaml` and `<out>/alertmanager.test.sh`, from every part in `out`."""
    parts = collect(out, files)
    header = output.ASSEMBLED_HEADER.format(part=PART, count=len(parts))
    return {
        CONFIG: output.dump_yaml(assemble(parts), "", header=header),
        TESTS: test_script(parts),
    }


# --------------------------------------------------------------------------- merge


def merge(yours: Any, generated: Any) -> dict[str, Any]:
    """Your Alertmanager configuration with obskit's route (first among your root's routes,
    replacing a previous obskit route) and inhibition rules (added once). Your root route,
    receivers and their integrations, templates and global settings stay yours; every receiver
    obskit routes to must be among yours (AlertmanagerProblem listing the missing ones)."""
    if not isinstance(yours, dict) or not isinstance(yours.get("route"), dict):
        raise AlertmanagerProblem("your configuration has no root `route`")
    if not isinstance(generated, dict) or not isinstance(generated.get("route"), dict):
        raise AlertmanagerProblem("the generated configuration has no root `route`")
    obskit_routes = [r for r in generated["route"].get("routes", []) if _is_obskit(r)]
    defined = {r.get("name") for r in yours.get("receivers") or [] if isinstance(r, dict)}
    needed = sorted({n for r in obskit_routes for n in _receivers(r)})
    if missing := [n for n in needed if n not in defined]:
        raise AlertmanagerProblem(
            "receivers obskit routes to are missing from your configuration: "
            + ", ".join(missing)
            + " (add each with its integrations, or set alerting.receivers in the manifests)"
        )
    merged = dict(yours)
    root = dict(yours["route"])
    kept = [r for r in root.get("routes") or [] if not _is_obskit(r)]
    root["routes"] = obskit_routes + kept
    merged["route"] = root
    inhibit = list(yours.get("inhibit_rules") or [])
    for rule in generated.get("inhibit_rules") or []:
        if rule not in inhibit:
            inhibit.append(rule)
    merged["inhibit_rules"] = inhibit
    return merged


def _is_obskit(route: Any) -> bool:
    return isinstance(route, dict) and route.get("matchers") == [SELECT_OBSKIT]
