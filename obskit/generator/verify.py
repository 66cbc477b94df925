"""`obskit verify`: does a running Prometheus agree with the manifests?

The generator proves at generate time that rules and runtime agree; production can still differ:
another job name, histogram buckets without the latency threshold, rules never loaded or loaded
from an old file. For each service, against the Prometheus HTTP API:

1. `scrape`: its selector matches scrape targets (`up{<selector>}`) and every one is up;
2. `runtime`: `obskit_build_info{<selector>}` exists (what the telemetry-absent alert selects);
3. `series`: every series selector of its SLOs' recording rules finds series; one with no series
   while the service's base selector finds that metric is "no traffic yet" (a route-filtered SLO
   whose routes were never called), reported as a note, not a mismatch;
4. `bucket`: for every selector that pins a histogram bucket (`le="0.25"`), that bucket exists
   among the scraped ones (listed when it does not);
5. `rules`: each rule group `generate` writes is loaded (`/api/v1/rules`) and equal to it: the
   same rules in order, names, labels, `for`, annotations, and expressions compared as parsed
   PromQL (Prometheus reformats the text).

One line per check (`ok`, `note` or `FAIL`, a failure naming its fix), then a summary. Exit 0
when nothing failed, 1 on any mismatch, 2 on bad input or when Prometheus cannot be asked:
unreachable, not answering within the timeout, or answering something that is not its API.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import promql_parser

from obskit import semconv
from obskit.generator.model import LABEL_LE, Service, shown
from obskit.generator.render import promql
from obskit.generator.selectors import matchers

Status = Literal["ok", "note", "FAIL"]
MAX_BODY: Final = 256 * 1024 * 1024
"""Largest API answer read (a big fleet's /api/v1/rules is tens of MB)."""


class Unreachable(Exception):
    """Prometheus could not be asked (exit 2): the message says why, in one line."""


@dataclass(frozen=True)
class Check:
    status: Status
    service: str
    kind: str
    text: str
    fix: str = ""

    def __str__(self) -> str:
        line = f"{self.status:<4}  {self.service}  {self.kind:<7}  {self.text}"
        return line + (f" -> fix: {self.fix}" if self.fix else "")


class Client:
    """GET on the Prometheus HTTP API with a hard deadline per request."""

    def __init__(self, url: str, timeout: float) -> None:
        self.base = url.rstrip("/")
        self.timeout = timeout

    def _fetch(self, url: str) -> bytes:
        """The body of `url`, or Unreachable: each request runs in a daemon thread joined
        with the timeout, so nothing the server does (hang, trickle) holds verify longer."""
        result: list[bytes | BaseException] = []

        def run() -> None:
            try:
                request = urllib.request.Request(url, headers={"Accept": "application/json"})
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    body = response.read(MAX_BODY + 1)
                result.append(body)
            except urllib.error.HTTPError as exc:  # an API error still has a JSON body
                result.append(exc.read(MAX_BODY + 1))
            except (OSError, ValueError) as exc:  # refused, reset, timed out, bad URL...
                result.append(exc)

        worker = threading.Thread(target=run, name="obskit-verify-http", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if not result:
            raise Unreachable(f"{self.base} did not answer within {self.timeout:g}s")
        outcome = result[0]
        if isinstance(outcome, BaseException):
            reason = getattr(outcome, "reason", None) or outcome
            raise Unreachable(f"cannot reach Prometheus at {self.base}: {reason}")
        if len(outcome) > MAX_BODY:
            raise Unreachable(f"{self.base} answered more than {MAX_BODY} bytes")
        return outcome

    def api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """`data` of a successful API answer; Unreachable for anything else."""
        url = f"{self.base}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        body = self._fetch(url)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise Unreachable(
                f"{self.base} does not answer like the Prometheus HTTP API "
                f"(/api/v1/{path} is not JSON: {shown(body[:80].decode(errors='replace'))})"
            ) from None
        if not isinstance(payload, dict) or "status" not in payload:
            raise Unreachable(
                f"{self.base} does not answer like the Prometheus HTTP API "
                f"(/api/v1/{path}: no status field)"
            )
        if payload["status"] != "success":
            raise Unreachable(
                f"Prometheus at {self.base} refused /api/v1/{path}: "
                f"{payload.get('errorType', '')} {payload.get('error', '')}".rstrip()
            )
        return payload.get("data")

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """Instant vector result as (labels, value) pairs."""
        data = self.api("query", {"query": expr})
        if not isinstance(data, dict) or data.get("resultType") != "vector":
            raise Unreachable(f"{self.base}: /api/v1/query did not return a vector for {expr}")
        out = []
        for item in data.get("result") or []:
            try:
                out.append((dict(item["metric"]), float(item["value"][1])))
            except (KeyError, IndexError, TypeError, ValueError):
                raise Unreachable(f"{self.base}: malformed sample in /api/v1/query") from None
        return out

    def rule_groups(self) -> dict[str, dict[str, Any]]:
        data = self.api("rules")
        groups = data.get("groups") if isinstance(data, dict) else None
        if not isinstance(groups, list):
            raise Unreachable(f"{self.base}: /api/v1/rules has no groups list")
        return {g["name"]: g for g in groups if isinstance(g, dict) and "name" in g}


# --------------------------------------------------------------------------- selectors


def _selectors(node: Any) -> Iterator[Any]:
    """Every VectorSelector of a parsed expression."""
    if isinstance(node, promql_parser.VectorSelector):
        yield node
        return
    for attribute in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attribute, None)
        if child is not None and not isinstance(child, str | int | float):
            yield from _selectors(child)
    for child in getattr(node, "args", None) or ():
        yield from _selectors(child)


_OPS: Final = {
    "MatchOp.Equal": "=",
    "MatchOp.NotEqual": "!=",
    "MatchOp.Re": "=~",
    "MatchOp.NotRe": "!~",
}


def _text(name: str, matchers: Sequence[Any]) -> str:
    """A selector's PromQL text (values quoted as obskit quotes them, so a regex's `\\` stays
    valid PromQL)."""
    inner = ", ".join(f"{m.name}{_OPS[str(m.op)]}{promql.quote(m.value)}" for m in matchers)
    return f"{name}{{{inner}}}"


@dataclass(frozen=True)
class SeriesSelector:
    name: str
    matchers: tuple[Any, ...]
    extra: tuple[Any, ...]
    """Matchers beyond the service selector (route, status, le...)."""

    @property
    def text(self) -> str:
        return _text(self.name, self.matchers)

    def without(self, label: str) -> str:
        return _text(self.name, [m for m in self.matchers if m.name != label])

    @property
    def le(self) -> str | None:
        return next(
            (m.value for m in self.matchers if m.name == LABEL_LE and str(m.op) == "MatchOp.Equal"),
            None,
        )


def _key(matcher: Any) -> tuple[str, str, str]:
    return (matcher.name, str(matcher.op), matcher.value)


def slo_selectors(service: Service, rules: Mapping[str, Any]) -> dict[str, list[SeriesSelector]]:
    """SLO name -> the raw-series selectors of its recording rules (not of recorded series)."""
    base = {_key(m) for m in matchers(service.selector)}
    out: dict[str, list[SeriesSelector]] = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            slo = rule.get("labels", {}).get("slo")
            if "record" not in rule or slo is None:
                continue
            found = out.setdefault(slo, [])
            for node in _selectors(promql_parser.parse(rule["expr"])):
                found_matchers = tuple(node.matchers.matchers)
                if not node.name or ":" in node.name:  # a recorded series, not a raw one
                    continue
                extra = tuple(m for m in found_matchers if _key(m) not in base)
                selector = SeriesSelector(node.name, found_matchers, extra)
                if selector.text not in {s.text for s in found}:
                    found.append(selector)
    return out


# --------------------------------------------------------------------------- checks


_MATCHER: Final = r'[A-Za-z_][A-Za-z0-9_]*(?:=~|!~|!=|=)"(?:[^"\\]|\\.)*"'
_SELECTOR_BODY: Final = re.compile(rf"\{{((?:{_MATCHER},?)*)\}}")
_ONE_MATCHER: Final = re.compile(_MATCHER)


def _sorted_matchers(match: re.Match[str]) -> str:
    return "{" + ",".join(sorted(_ONE_MATCHER.findall(match.group(1)))) + "}"


def _canonical(expr: str) -> str:
    """An expression as promql-parser prints it, each selector's matchers sorted by name (as
    Prometheus prints them): two spellings of one expression give one text."""
    try:
        text = str(promql_parser.parse(expr))
    except ValueError:
        return expr
    return _SELECTOR_BODY.sub(_sorted_matchers, text)


def _rule_facts(rule: Mapping[str, Any], loaded: bool) -> tuple[Any, ...]:
    """What must be equal between a generated rule and a loaded one."""
    if loaded:
        kind = "alert" if rule.get("type") == "alerting" else "record"
        expr, hold = rule.get("query", ""), float(rule.get("duration") or 0)
    else:
        kind = "alert" if "alert" in rule else "record"
        expr, hold = rule["expr"], _seconds(rule.get("for"))
    name = rule.get("name") if loaded else rule.get(kind)
    return (
        kind,
        name,
        _canonical(expr),
        dict(rule.get("labels") or {}),
        hold,
        dict(rule.get("annotations") or {}),
    )


def _seconds(text: str | None) -> float:
    if not text:
        return 0.0
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return float(int(text[:-1]) * units[text[-1]])


def _compare_group(generated: Mapping[str, Any], loaded: Mapping[str, Any]) -> str | None:
    """None when equal, else what differs first."""
    mine = [_rule_facts(r, loaded=False) for r in generated["rules"]]
    theirs = [_rule_facts(r, loaded=True) for r in loaded.get("rules") or []]
    if len(mine) != len(theirs):
        return f"{len(theirs)} rules loaded, {len(mine)} generated"
    fields = ("type", "name", "expression", "labels", "for", "annotations")
    for index, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        for field, x, y in zip(fields, a, b, strict=True):
            if x != y:
                return f"rule {index + 1} ({a[1]}): {field} differs"
    return None


def check_service(
    client: Client, service: Service, rules: Mapping[str, Any], loaded: Mapping[str, Any]
) -> Iterator[Check]:
    name, selector = service.name, service.selector
    up = client.query(f"up{{{selector}}}")
    down = sorted(labels.get("instance", "?") for labels, value in up if value != 1)
    if not up:
        yield Check(
            "FAIL",
            name,
            "scrape",
            f"no scrape target matches {{{selector}}}",
            f'scrape the service with job_name "{name}" (or set `selector:` to match its '
            "target labels)",
        )
    elif down:
        yield Check(
            "FAIL",
            name,
            "scrape",
            f"{len(down)} of {len(up)} target(s) of {{{selector}}} down: {', '.join(down)}",
            "make the service answer on its metrics path (see Prometheus's /targets for the "
            "scrape error)",
        )
    else:
        yield Check("ok", name, "scrape", f"{{{selector}}}: {len(up)} target(s) up")

    build = client.query(f"{semconv.BUILD_INFO}{{{selector}}}")
    if build:
        versions = sorted({labels.get("version", "") for labels, _ in build} - {""})
        shown_versions = f" (version {', '.join(versions)})" if versions else ""
        yield Check(
            "ok", name, "runtime", f"{semconv.BUILD_INFO}{{{selector}}} present{shown_versions}"
        )
    else:
        yield Check(
            "FAIL",
            name,
            "runtime",
            f"no {semconv.BUILD_INFO}{{{selector}}}",
            "call obskit.init() in the service and expose its metrics to this scrape job",
        )

    counts: dict[str, bool] = {}

    def has_series(expr: str) -> bool:
        if expr not in counts:
            counts[expr] = bool(client.query(f"count({expr})"))
        return counts[expr]

    for slo, selectors in slo_selectors(service, rules).items():
        for sel in selectors:
            if sel.le is not None:
                yield from _check_bucket(client, name, slo, sel)
                continue
            if has_series(sel.text):
                yield Check("ok", name, "series", f"{slo}: {sel.text} has series")
                continue
            base = _text(sel.name, [m for m in sel.matchers if m not in sel.extra])
            filters = ", ".join(_text("", [m]).strip("{}") for m in sel.extra)
            if sel.extra and has_series(base):
                yield Check(
                    "note",
                    name,
                    "series",
                    f"{slo}: no traffic yet where {filters} ({sel.text} has no series; "
                    "not a mismatch: series appear with the first such request)",
                )
            elif build:
                yield Check(
                    "note",
                    name,
                    "series",
                    f"{slo}: no {sel.name} series yet (the service records them from its first "
                    "request; not a mismatch)",
                )
            else:
                yield Check(
                    "FAIL",
                    name,
                    "series",
                    f"{slo}: {sel.text} has no series and the runtime is not seen",
                    "fix the runtime check above first",
                )

    for group in rules["groups"]:
        found = loaded.get(group["name"])
        if found is None:
            yield Check(
                "FAIL",
                name,
                "rules",
                f"rule group {group['name']} is not loaded",
                f"add {name}/rules.yaml (from obskit generate) to rule_files and reload Prometheus",
            )
            continue
        difference = _compare_group(group, found)
        if difference is None:
            yield Check(
                "ok", name, "rules", f"{group['name']}: {len(group['rules'])} rules as generated"
            )
        else:
            where = f" (from {found['file']})" if found.get("file") else ""
            yield Check(
                "FAIL",
                name,
                "rules",
                f"{group['name']}{where} differs from what generate writes: {difference}",
                "regenerate (obskit generate), deploy the new rules.yaml and reload Prometheus",
            )


def _check_bucket(client: Client, service: str, slo: str, sel: SeriesSelector) -> Iterator[Check]:
    le = sel.le
    buckets = client.query(f"count by (le) ({sel.without(LABEL_LE)})")
    present = sorted({labels.get(LABEL_LE, "") for labels, _ in buckets} - {""}, key=_bucket_order)
    if le in present:
        yield Check("ok", service, "bucket", f'{slo}: le="{le}" bucket present in {sel.name}')
    elif not present:
        yield Check(
            "note",
            service,
            "bucket",
            f'{slo}: no {sel.name} series yet to check le="{le}" against (no traffic yet)',
        )
    else:
        yield Check(
            "FAIL",
            service,
            "bucket",
            f'{slo}: no le="{le}" bucket in {sel.without(LABEL_LE)} (scraped buckets: '
            f"{', '.join(present)})",
            f"give the runtime a {le} bucket (obskit.init(buckets=...), OBSKIT_BUCKETS) or set "
            "the SLO threshold to one of the scraped buckets (and `buckets:` in the manifest)",
        )


def _bucket_order(le: str) -> float:
    try:
        return float(le)
    except ValueError:
        return float("inf")


def verify(
    client: Client, services: Sequence[Service], rules: Mapping[str, Mapping[str, Any]]
) -> Iterator[Check]:
    """Every check of every service (Unreachable stops the run)."""
    loaded = client.rule_groups()
    for service in services:
        yield from check_service(client, service, rules[service.name], loaded)
