"""The benchmark harness measures variants that really did their job (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.inprocess import run_inprocess
from benchmarks.server import parse_wrk
from benchmarks.variants import VerificationError, default_variants, verify_access_log

_WRK_OUTPUT = """\
Running 2s test @ http://127.0.0.1:40000
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.10ms    1.20ms  20.00ms   90.00%
    Req/Sec     3.50k   100.00     3.70k    80.00%
  Latency Distribution
     50%    9.19ms
     75%    9.50ms
     90%   10.10ms
     99%  950.00us
  6975 requests in 2.00s, 1.10MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   3484.00
Transfer/sec:    560.00KB
"""


def test_wrk_report_is_parsed_with_units() -> None:
    parsed = parse_wrk(_WRK_OUTPUT)
    assert parsed["rps"] == 3484.0
    assert parsed["requests"] == 6975
    assert parsed["p50_ms"] == 9.19
    assert parsed["p99_ms"] == pytest.approx(0.95)
    assert parsed["non_2xx"] == 3


def test_a_variant_missing_log_lines_fails_verification(tmp_path: Path) -> None:
    """A variant that silently skips its access log must not produce a timing."""
    log = tmp_path / "access.log"
    log.write_bytes(b'{"event":"request","correlation_id":"a"}\n' * 9)
    with pytest.raises(VerificationError, match="9 access-log lines for 10 requests"):
        verify_access_log(log, 10, "request", ("correlation_id",))
    verify_access_log(log, 9, "request", ("correlation_id",))


@pytest.mark.integration
def test_every_default_variant_verifies_itself_and_exports_every_span(tmp_path: Path) -> None:
    """Each variant is driven in its own worker, checked (metrics, log lines, spans on the wire)."""
    results = run_inprocess(
        default_variants(),
        rounds=2,
        requests=150,
        warmup=50,
        workdir=tmp_path,
        progress=lambda _msg: None,
    )
    for r in results:
        assert r.verification.get("ok"), (r.name, r.verification)
        assert r.verification["requests"] == 350
        assert len(r.samples_us) == 2
        if r.spans_created is not None:
            # 350 requests never fill a span queue: every span created reaches the receiver.
            assert r.spans_created > 0 or r.name == "obskit-sampled-out", r.name
            assert r.spans_received == r.spans_created, r.name


@pytest.mark.integration
def test_the_django_variants_verify_themselves_and_export_every_span(tmp_path: Path) -> None:
    """bare Django, the peer stack and obskit each serve every request with its telemetry."""
    names = default_variants("django")
    assert names == ["django-bare", "django-peer", "django-obskit"]
    results = run_inprocess(
        names, rounds=2, requests=100, warmup=20, workdir=tmp_path, progress=lambda _m: None
    )
    for r in results:
        assert r.verification.get("ok"), (r.name, r.verification)
        assert r.verification["requests"] == 220
        if r.name != "django-bare":
            assert r.verification["metric_count"] == 220
            assert r.spans_created == r.spans_received == 220, r.name


@pytest.mark.integration
def test_the_resilience_benchmark_runs_both_variants_and_checks_obskit_counted_every_call() -> None:
    """A smoke run of benchmarks.resilience: every wrapped function gets a row; a child whose
    obskit did not count every call fails the run (so a timing can never come from nothing)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.resilience", "--rounds", "1", "--calls", "300"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    for row in ("tenacity @retry", "tenacity @retry (async)", "pybreaker @breaker"):
        assert f"| {row} |" in out
