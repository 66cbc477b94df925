"""Markdown tables from benchmark results (what goes into benchmarks/RESULTS.md)."""

from __future__ import annotations

import platform
import subprocess
import sys
from typing import Any

from benchmarks.inprocess import VariantResult
from benchmarks.server import ServerResult


def machine() -> str:
    model = cores = "?"
    try:
        out = subprocess.run(
            ["lscpu"], check=False, capture_output=True, text=True, timeout=10
        ).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
            elif key.strip() == "CPU(s)":
                cores = value.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return (
        f"{model}, {cores} CPUs, {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]}"
    )


def _spans(r: VariantResult) -> str:
    created = r.spans_created
    if r.spans_received is None or created is None:
        return "-"
    if created == 0:
        return f"{r.spans_received} / 0"
    return f"{r.spans_received} / {created} ({100.0 * r.spans_received / created:.1f}%)"


def _verified(r: VariantResult) -> str:
    v = r.verification
    if not v.get("ok"):
        return "**FAILED**: " + str(v.get("error", "no verification")).splitlines()[0]
    parts = [f"{v['requests']} req"]
    if "metric_count" in v:
        parts.append(f"metric count {v['metric_count']}")
    if "log_lines" in v:
        parts.append(f"{v['log_lines']} log lines")
    if v.get("spans_per_request"):
        parts.append(f"{v['spans_per_request']} span/req")
    for note in v.get("notes", ()):
        parts.append(str(note))
    return ", ".join(parts)


def inprocess_table(results: list[VariantResult], *, bare: str = "bare", peer: str = "peer") -> str:
    by_name = {r.name: r for r in results}
    bare_name = bare
    bare = by_name.get(bare_name)
    peer_r = by_name.get(peer)
    bare_us = bare.median_us if bare else None
    peer_over = peer_r.median_us - bare_us if (peer_r and bare_us is not None) else None
    bare_cpu = bare.median_cpu_us if bare else None
    peer_cpu_over = peer_r.median_cpu_us - bare_cpu if (peer_r and bare_cpu is not None) else None
    rows = [
        "| variant | median us/request | min-max | overhead over bare | x peer overhead"
        " | CPU us/request (overhead, x peer) | spans exported / created | verified |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        over = r.median_us - bare_us if bare_us is not None else None
        cpu_over = r.median_cpu_us - bare_cpu if bare_cpu is not None else None
        if r.name == bare_name or over is None or cpu_over is None:
            over_s = ratio = "-"
            cpu_s = f"{r.median_cpu_us:.1f}"
        else:
            over_s = f"{over:+.1f} us"
            ratio = f"{over / peer_over:.3f}x" if peer_over else "-"
            cpu_ratio = f", {cpu_over / peer_cpu_over:.3f}x" if peer_cpu_over else ""
            cpu_s = f"{r.median_cpu_us:.1f} ({cpu_over:+.1f}{cpu_ratio})"
        rows.append(
            f"| {r.name}: {r.title} | {r.median_us:.1f} | "
            f"{min(r.samples_us):.1f}-{max(r.samples_us):.1f} | {over_s} | {ratio} | "
            f"{cpu_s} | {_spans(r)} | {_verified(r)} |"
        )
    return "\n".join(rows)


def server_table(results: list[ServerResult]) -> str:
    rows = [
        "| variant | requests/s | p50 ms | p99 ms | requests | non-2xx | checks |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        checks = ", ".join(f"{k} {v}" for k, v in r.checks.items()) or "-"
        if r.socket_errors:
            checks += f"; socket errors: {r.socket_errors}"
        rows.append(
            f"| {r.name} | {r.rps:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.requests} | "
            f"{r.non_2xx} | {checks} |"
        )
    return "\n".join(rows)


def kv_table(title: str, rows: list[tuple[str, Any]]) -> str:
    out = [f"| {title} | value |", "|---|---:|"]
    out += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(out)


def threads_table(results: list[VariantResult]) -> str:
    """CPU microseconds per request by thread: what the request path pays vs export threads."""
    rows = [
        "| variant | main thread | export/other threads | total CPU |",
        "|---|---:|---:|---:|",
    ]
    for r in results:
        per = r.median_thread_us()
        if not per:
            continue
        main = per.pop("main", 0.0)
        other = ", ".join(f"{name} {us:.0f}" for name, us in per.items()) or "-"
        rows.append(f"| {r.name} | {main:.0f} | {other} | {r.median_cpu_us:.0f} |")
    return "\n".join(rows)
