"""What the generated SLO rules cost Prometheus, against the same SLOs written the common way.

    python -m benchmarks.rule_eval                       # 200 services x 3 SLOs, 1 day of history
    python -m benchmarks.rule_eval --services 50 --rounds 1 --evaluations 4   # a quick look

obskit records each SLO's request and error rates once (`obskit_slo:*:rate5m`, two series per
SLO) and computes every window's ratio from those: `sum_over_time(errors[w]) /
sum_over_time(requests[w])`. The common way computes every window's ratio straight from the raw
histogram counters: `sum(rate(<bad>[w])) / sum(rate(<all>[w]))` for w = 5m ... 30d. Both rule
sets here come from the same generated rules.yaml (same SLOs, groups, alerts and objective /
budget rules); the common one replaces the two 5m-rate rules and the ratio rules by the raw
versions (obskit's own SLI expressions with the window as their range).

The data: a synthetic fleet (benchmarks.fleet's manifests) whose services each expose 3 routes
x 2 statuses of `http_server_request_duration_seconds_count` and `_bucket{le="0.25"}` (the
series the SLIs select), with one day of history at a 60 s scrape interval written as
OpenMetrics and turned into TSDB blocks by `promtool tsdb create-blocks-from openmetrics`,
plus, for obskit's rules, the recorded 5m-rate series over the same day at the same interval
(what a Prometheus evaluating them for a day would hold). Windows longer than the history read
all of it, in both rule sets.

Each variant runs in its own real Prometheus (its own copy of the blocks), one after the other,
alternating order every round; after two warm-up evaluations (5 s interval), each evaluation's
sum of `prometheus_rule_group_last_duration_seconds` over the SLO groups is read from
Prometheus's own /metrics. Reported: the median per evaluation, its range, and the ratio
common / obskit.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from benchmarks.fleet import write_fleet

RATE_RANGE = "[5m]"
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
HISTORY_S = 86400
STEP_S = 60
ROUTES = ("/orders", "/orders/{order_id}", "/products")
REQUESTS_PER_S = 10.0
ERROR_SHARE = 0.004
SLOW_SHARE = 0.006
INTERVAL = "5s"


def _obskit(*args: str | Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "obskit.cli", *(str(a) for a in args)],
        check=True,
        capture_output=True,
        cwd=tempfile.gettempdir(),
    )


# --------------------------------------------------------------------------- rules


def _slo_groups(rules: dict[str, Any]) -> list[dict[str, Any]]:
    return [g for g in rules["groups"] if "-slo-" in g["name"]]


def common_way(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same groups with every ratio computed from the raw counters over its window."""
    out = []
    for group in groups:
        rules = group["rules"]
        sli = {r["record"]: r["expr"] for r in rules if r.get("record", "").endswith(":rate5m")}
        errors, requests = sli["obskit_slo:errors:rate5m"], sli["obskit_slo:requests:rate5m"]
        new_rules = []
        for rule in rules:
            if rule.get("record", "").endswith(":rate5m"):
                continue  # nothing records 5m rates: each window reads the raw counters
            if rule.get("record") == "obskit_slo:error_ratio":
                window = f"[{rule['labels']['window']}]"
                raw_errors = errors.replace(RATE_RANGE, window)
                raw_requests = requests.replace(RATE_RANGE, window)
                expr = f"({raw_errors})\n/\n({raw_requests} > 0)"
                new_rules.append({**rule, "expr": expr})
            else:
                new_rules.append(rule)
        out.append({**group, "rules": new_rules})
    return out


# --------------------------------------------------------------------------- history


def _labels(pairs: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(pairs.items())) + "}"


def write_history(path: Path, services: list[str], slos: list[tuple[str, str]], end: int) -> int:
    """One day of raw counters (and of obskit's recorded rates) as OpenMetrics; returns the
    number of samples. `slos`: (service, slo) pairs recorded by obskit's rules."""
    start = end - HISTORY_S
    steps = range(start, end + 1, STEP_S)
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for family, le in (
            ("http_server_request_duration_seconds_count", None),
            ("http_server_request_duration_seconds_bucket", "0.25"),
        ):
            out.write(f"# TYPE {family} unknown\n")
            for service in services:
                for route in ROUTES:
                    for status, share in (("200", 1 - ERROR_SHARE), ("500", ERROR_SHARE)):
                        per_s = REQUESTS_PER_S * share * (1 - SLOW_SHARE if le else 1)
                        labels = {
                            "job": service,
                            "instance": f"{service}:8000",
                            "http_request_method": "GET",
                            "http_route": route,
                            "http_response_status_code": status,
                        }
                        if le:
                            labels["le"] = le
                        text = _labels(labels)
                        out.writelines(
                            f"{family}{text} {per_s * (t - start):.3f} {t}\n" for t in steps
                        )
                        written += len(steps)
        for family, value in (
            ("obskit_slo:requests:rate5m", REQUESTS_PER_S * len(ROUTES)),
            ("obskit_slo:errors:rate5m", REQUESTS_PER_S * len(ROUTES) * ERROR_SHARE),
        ):
            out.write(f"# TYPE {family} unknown\n")
            for service, slo in slos:
                text = _labels({"service": service, "slo": slo})
                out.writelines(f"{family}{text} {value} {t}\n" for t in steps)
                written += len(steps)
        out.write("# EOF\n")
    return written


# --------------------------------------------------------------------------- measurement


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _group_durations(url: str) -> dict[str, tuple[float, float]]:
    """rule_group -> (last duration s, last evaluation timestamp) from Prometheus's /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found: dict[str, list[float]] = {}
    for name, index in (
        ("prometheus_rule_group_last_duration_seconds", 0),
        ("prometheus_rule_group_last_evaluation_timestamp_seconds", 1),
    ):
        for match in re.finditer(rf'^{name}{{rule_group="([^"]+)"}} (\S+)$', text, re.M):
            found.setdefault(match.group(1), [0.0, 0.0])[index] = float(match.group(2))
    return {group: (v[0], v[1]) for group, v in found.items() if "-slo-" in group}


def evaluate(tsdb: Path, rules: Path, evaluations: int, work: Path) -> list[float]:
    """Start Prometheus on `tsdb` with `rules`; the total SLO-group duration of each of
    `evaluations` evaluations after two warm-ups."""
    config = work / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"evaluation_interval": INTERVAL, "scrape_interval": "1m"},
                "rule_files": [str(rules)],
            }
        )
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (work / "prometheus.log").open("w")
    child = subprocess.Popen(
        [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tsdb}",
            "--storage.tsdb.retention.time=30d",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        totals: list[float] = []
        seen = 0.0
        deadline = time.monotonic() + 120 + evaluations * 30
        while len(totals) < evaluations + 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                groups = _group_durations(url)
            except OSError:
                continue
            if not groups:
                continue
            stamps = {stamp for _, stamp in groups.values()}
            newest = max(stamps)
            # a complete round: every group evaluated since the last one we counted
            if newest > seen and min(stamps) > seen:
                seen = newest
                totals.append(sum(duration for duration, _ in groups.values()))
        if len(totals) < evaluations + 2:
            raise SystemExit(f"Prometheus did not evaluate the rules in time (see {log.name})")
        return totals[2:]
    finally:
        child.terminate()
        try:
            child.wait(60)
        except subprocess.TimeoutExpired:  # still evaluating or flushing: not worth waiting
            child.kill()
            child.wait(30)
        log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rule_eval", description=__doc__)
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--evaluations", type=int, default=8, help="per variant per round")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="obskit-rule-eval-") as tmp:
        work = Path(tmp)
        manifests = write_fleet(work, args.services)
        _obskit("generate", manifests, "--out", work / "out")
        ours: list[dict[str, Any]] = []
        for rules_file in sorted((work / "out").glob("*/rules.yaml")):
            ours += _slo_groups(yaml.safe_load(rules_file.read_text()))
        theirs = common_way(ours)
        variants = {"obskit": ours, "common": theirs}
        for name, groups in variants.items():
            (work / f"{name}.rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
        slos = sorted(
            {(r["labels"]["service"], r["labels"]["slo"]) for g in ours for r in g["rules"]
             if "labels" in r and "slo" in r["labels"]}
        )  # fmt: skip
        services = sorted({s for s, _ in slos})
        end = int(time.time()) - 120
        started = time.monotonic()
        samples = write_history(work / "history.om", services, slos, end)
        blocks = work / "blocks"
        subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q",
             str(work / "history.om"), str(blocks)],
            check=True,
        )  # fmt: skip
        (work / "history.om").unlink()
        prepared = time.monotonic() - started
        for name in variants:
            shutil.copytree(blocks, work / f"tsdb-{name}")
        results: dict[str, list[float]] = {name: [] for name in variants}
        order = list(variants)
        for _ in range(args.rounds):
            for name in order:
                run_dir = work / f"run-{name}"
                run_dir.mkdir(exist_ok=True)
                results[name] += evaluate(
                    work / f"tsdb-{name}", work / f"{name}.rules.yaml", args.evaluations, run_dir
                )
            order.reverse()
        counts = {name: sum(len(g["rules"]) for g in groups) for name, groups in variants.items()}
    median = {name: statistics.median(v) for name, v in results.items()}
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average before {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}, after {os.getloadavg()[0]:.2f}; prometheus 2.42 (Debian)"
    )
    print(
        f"command: python -m benchmarks.rule_eval --services {args.services} --rounds "
        f"{args.rounds} --evaluations {args.evaluations}"
    )
    print(
        f"data: {args.services} services, {len(slos)} SLOs, {samples} samples of history "
        f"(1 day at {STEP_S}s), prepared in {prepared:.0f}s"
    )
    print("| variant | rules | evaluations | SLO groups' duration per evaluation, median (range) |")
    print("|---|---:|---:|---:|")
    for name, values in results.items():
        print(
            f"| {name} | {counts[name]} | {len(values)} | {median[name] * 1000:.1f} ms "
            f"({min(values) * 1000:.1f}-{max(values) * 1000:.1f}) |"
        )
    print(f"ratio common / obskit: {median['common'] / median['obskit']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
