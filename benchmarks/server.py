"""Real-server run: each variant under uvicorn on 127.0.0.1, loaded by wrk.

uvicorn serves `benchmarks.server:create_app` (a factory that builds the variant named
in the environment), one worker, its own access log off (the variants write theirs).
wrk varies the item id like the in-process driver does. After the load, the
variant's telemetry is checked from outside: log lines in its file, request count on
its /metrics, spans at its receiver after a graceful shutdown.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.receiver import ReceiverProcess
from benchmarks.variants import VARIANTS, Context, count_access_lines

_ROOT = Path(__file__).resolve().parent.parent
_ENV_SPEC = "OBSKIT_BENCH_SERVER_SPEC"

_WRK_SCRIPT = """\
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/items/" .. (counter % 1000))
end
"""


def create_app() -> Any:
    """uvicorn factory: the variant named by the coordinator, built in this process."""
    import orjson

    spec = orjson.loads(os.environ[_ENV_SPEC])
    variant = VARIANTS[spec["variant"]]
    ctx = Context(
        name=variant.name,
        endpoint=spec.get("endpoint"),
        log_path=Path(spec["log_path"]),
        service=f"bench-{variant.name}",
    )
    built = variant.build(ctx)
    return built.app


@dataclass
class ServerResult:
    name: str
    title: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    requests: int = 0
    non_2xx: int = 0
    socket_errors: str = ""
    checks: dict[str, Any] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"uvicorn did not listen on {port} within {timeout}s")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(out: str) -> dict[str, Any]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:(.*)", out)
    if not (rps and total and p50 and p99):
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    return {
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)),
        "p50_ms": _ms(*p50.groups()),
        "p99_ms": _ms(*p99.groups()),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def _scrape(port: int) -> dict[str, float]:
    """Request count from the variant's /metrics, plus obskit's own span counters."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    from prometheus_client.parser import text_string_to_metric_families

    counts = ("http_requests_total", "http_server_request_duration_seconds_count")
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in counts:
                out["metric_count"] = out.get("metric_count", 0.0) + sample.value
            elif sample.name in ("obskit_spans_finished_total", "obskit_spans_exported_total"):
                out[sample.name.removeprefix("obskit_").removesuffix("_total")] = sample.value
            elif sample.name == "obskit_spans_dropped_total" and sample.value:
                out["dropped_" + sample.labels.get("reason", "?")] = sample.value
    return out


def run_one(name: str, *, duration: float, connections: int, workdir: Path) -> ServerResult:
    variant = VARIANTS[name]
    receiver = ReceiverProcess() if variant.traces else None
    log_path = workdir / f"server-{name}.log"
    spec = {
        "variant": name,
        "endpoint": receiver.endpoint if receiver else None,
        "log_path": str(log_path),
    }
    import orjson

    env = {**os.environ, **variant.env, _ENV_SPEC: orjson.dumps(spec).decode()}
    env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    if receiver is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    port = _free_port()
    script = workdir / "wrk.lua"
    script.write_text(_WRK_SCRIPT)
    stderr = (workdir / f"server-{name}.stderr").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "benchmarks.server:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning",
        ],
        cwd=_ROOT,
        env=env,
        stdout=stderr,
        stderr=stderr,
    )  # fmt: skip
    result = ServerResult(name, variant.title)
    try:
        _wait_listening(port, proc)
        url = f"http://127.0.0.1:{port}"
        # Warm up (not measured): imports, first-request caches.
        subprocess.run(
            ["wrk", "-t1", "-c4", "-d1s", "-s", str(script), url],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        out = subprocess.run(
            [
                "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency",
                "-s", str(script), url,
            ],
            check=True, capture_output=True, text=True, timeout=duration + 30,
        ).stdout  # fmt: skip
        parsed = parse_wrk(out)
        result.rps = parsed["rps"]
        result.requests = parsed["requests"]
        result.p50_ms = parsed["p50_ms"]
        result.p99_ms = parsed["p99_ms"]
        result.non_2xx = parsed["non_2xx"]
        result.socket_errors = parsed["socket_errors"]
        if name != "bare":
            for key, value in _scrape(port).items():
                result.checks[key] = int(value)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stderr.close()
        if receiver is not None:
            result.checks["spans_received"] = receiver.settle()
            receiver.stop()
    if variant.access_event is not None and log_path.exists():
        result.checks["log_lines"] = count_access_lines(log_path, variant.access_event)[0]
    return result


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_server(
    names: list[str], *, duration: float, connections: int, workdir: Path, progress: Any = print
) -> list[ServerResult]:
    results = []
    for name in names:
        res = run_one(name, duration=duration, connections=connections, workdir=workdir)
        progress(f"  server {name}: {res.rps:.0f} req/s, p99 {res.p99_ms:.2f} ms {res.checks}")
        results.append(res)
    return results
