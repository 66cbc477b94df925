"""gunicorn for real: sync, gthread and Uvicorn workers on 127.0.0.1 serving the Django test
project, with obskit's gunicorn.conf.py line. Spans are received by a live OTLP receiver;
`span_export_interval=60` leaves every span queued until the worker flushes it on exit."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.lab.otlp_receiver import OTLPReceiver
from tests.integrations.gunicorn_server import Gunicorn, gunicorn, wait_for

pytestmark = pytest.mark.integration

WSGI = "tests.integrations.djproject.wsgi:application"
ASGI = "tests.integrations.djproject.asgi:application"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as rx:
        yield rx


@pytest.fixture
def env(receiver: OTLPReceiver) -> dict[str, str]:
    receiver.clear()
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OBSKIT_SPAN_EXPORT_INTERVAL": "60"}


def exported_ids(receiver: OTLPReceiver) -> set[str]:
    return {str(span.attributes.get("correlation_id")) for span in receiver.spans()}


def error_log(server: Gunicorn) -> list[dict]:
    return [line for line in server.lines("err") if line["logger"] == "gunicorn.error"]


def assert_served_and_flushed(server: Gunicorn, receiver: OTLPReceiver, served: dict[str, int]):
    """Every request's span reached the receiver, from every worker that served one."""
    assert server.stop() == 0
    assert set(served) <= exported_ids(receiver)
    pids = set(served.values())
    exits = {line["event"] for line in error_log(server)}
    assert {f"Worker exiting (pid: {pid})" for pid in pids} <= exits


def test_sync_workers_export_their_own_spans_and_flush_them_on_sigterm(tmp_path, env, receiver):
    with gunicorn(tmp_path, WSGI, "-w", "2", **env) as server:
        served = server.hit_every_worker(2, "/pause/200/", "sync")
        status, headers, _ = server.get("/api/orders/5/", "sync-order")
        assert status == 200 and headers["x-request-id"] == "sync-order"
        assert not exported_ids(receiver)  # queued until the workers exit
        assert_served_and_flushed(server, receiver, served)
        routes = {s.attributes.get("http.route") for s in receiver.spans()}
        assert routes == {"/pause/{ms}/", "/api/orders/{order_id}/"}
        # stdout: obskit's access lines (gunicorn's access log is off), app lines, all JSON
        access = [line for line in server.lines("out") if line["logger"] == "obskit.access"]
        assert {line["correlation_id"] for line in access} >= {*served, "sync-order"}
        assert not [line for line in server.lines("err") if line["logger"] == "gunicorn.access"]
        # stderr: gunicorn's error log as obskit JSON, master and workers alike
        events = [line["event"] for line in error_log(server)]
        assert events[0].startswith("Starting gunicorn")
        booted = {line["pid"] for line in error_log(server) if "Booting worker" in line["event"]}
        assert set(served.values()) <= booted  # each line names the process that wrote it
        assert "Handling signal: term" in events and events[-1] == "Shutting down: Master"


def test_gthread_workers(tmp_path, env, receiver):
    args = ("-w", "2", "-k", "gthread", "--threads", "2")
    with gunicorn(tmp_path, WSGI, *args, **env) as server:
        served = server.hit_every_worker(2, "/pause/300/", "gthread")
        assert_served_and_flushed(server, receiver, served)


def test_preload_inits_in_the_master_and_every_worker_still_exports(tmp_path, env, receiver):
    with gunicorn(tmp_path, WSGI, "-w", "2", "--preload", **env) as server:
        served = server.hit_every_worker(2, "/pause/200/", "preload")
        assert_served_and_flushed(server, receiver, served)
    # init() ran in the master: its own lines name the service
    master = [line for line in error_log(server) if line["event"].startswith("Shutting down")]
    assert master[0]["service"] == "djproject"
    # each forked worker is an instance of its own: one service.instance.id per worker pid
    instance = {s.attributes.get("correlation_id"): s.resource["service.instance.id"]
                for s in receiver.spans()}  # fmt: skip
    by_pid: dict[int, set[str]] = {}
    for rid, pid in served.items():
        by_pid.setdefault(pid, set()).add(instance[rid])
    assert len(by_pid) == 2 and all(len(ids) == 1 for ids in by_pid.values())
    assert len(set().union(*by_pid.values())) == 2


def test_sighup_reload_flushes_the_replaced_workers_spans(tmp_path, env, receiver):
    """SIGHUP (a config reload, what many deploys send): gunicorn boots new workers and stops
    the old ones gracefully; each old worker exports its queued spans on its way out, while
    the new ones serve."""
    with gunicorn(tmp_path, WSGI, "-w", "2", **env) as server:
        served = server.hit_every_worker(2, "/pause/200/", "before-hup")
        assert not exported_ids(receiver)  # queued (export interval 60 s)
        server.signal(signal.SIGHUP)
        wait_for(lambda: set(served) <= exported_ids(receiver), what="the old workers' spans")
        exits = {line["event"] for line in error_log(server)}
        assert {f"Worker exiting (pid: {pid})" for pid in set(served.values())} <= exits
        status, _, body = server.get("/api/", "after-hup")
        assert status == 200 and int(body["pid"]) not in set(served.values())
        assert server.stop() == 0
        assert "after-hup" in exported_ids(receiver)


def test_max_requests_recycling_flushes_each_retired_workers_spans(tmp_path, env, receiver):
    with gunicorn(tmp_path, WSGI, "-w", "2", "--max-requests", "3", **env) as server:
        ids = [f"recycle-{i}" for i in range(12)]
        for rid in ids:
            assert server.get("/api/", rid)[0] == 200
        # every retired worker flushed on its way out, while the server keeps serving
        wait_for(lambda: len(set(ids) & exported_ids(receiver)) >= 8, what="recycled spans")
        assert any("Autorestarting worker" in line["event"] for line in error_log(server))
        assert server.get("/api/", "after")[0] == 200
        assert server.stop() == 0
        assert {*ids, "after"} <= exported_ids(receiver)


@pytest.mark.parametrize(
    "worker", ["uvicorn.workers.UvicornWorker", "uvicorn_worker.UvicornWorker"]
)
def test_uvicorn_workers_serve_async_views_and_flush_on_sigterm(tmp_path, env, receiver, worker):
    with gunicorn(tmp_path, ASGI, "-w", "2", "-k", worker, **env) as server:
        served = server.hit_every_worker(2, "/async/pause/200/", "uv")
        status, headers, body = server.get("/api/async/orders/3/", "uv-async")
        assert status == 200 and body["async"] is True and headers["x-request-id"] == "uv-async"
        status, headers, _ = server.get("/nowhere", "uv-404")
        assert status == 404 and headers["x-request-id"] == "uv-404"
        served["uv-async"] = body["pid"]
        assert server.stop() == 0
        assert set(served) <= exported_ids(receiver)
        routes = {s.attributes.get("correlation_id"): s.attributes.get("http.route")
                  for s in receiver.spans()}  # fmt: skip
        assert routes["uv-async"] == "/api/async/orders/{order_id}/"
        assert routes["uv-404"] is None  # unmatched: no http.route on the span
        assert all(line["logger"] != "uvicorn.access" for line in server.lines("err"))


def test_uvicorn_worker_recycled_by_max_requests_flushes_its_spans(tmp_path, env, receiver):
    args = ("-w", "1", "-k", "uvicorn_worker.UvicornWorker", "--max-requests", "3")
    with gunicorn(tmp_path, ASGI, *args, **env) as server:
        ids = [f"uv-recycle-{i}" for i in range(4)]
        for rid in ids:
            assert _get_retrying(server, "/api/async/orders/1/", rid) == 200
        # the first worker left after its 3rd request, through the lifespan shutdown
        wait_for(lambda: set(ids[:3]) <= exported_ids(receiver), what="the retired worker's spans")
        assert server.stop() == 0
        assert set(ids) <= exported_ids(receiver)


def _get_retrying(server: Gunicorn, path: str, rid: str) -> int:
    """GET, once more if the connection dropped while a recycled worker was replaced."""
    for _ in range(50):
        try:
            return server.get(path, rid)[0]
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{path} never answered")


def test_multiprocess_metrics_one_scrape_shows_every_worker(tmp_path, env, receiver):
    """One scrape sums every worker's requests, retired workers' included; the master's
    child_exit drops each retired worker's live in-flight gauge file."""
    prom = tmp_path / "prom"
    prom.mkdir()
    args = ("-w", "2", "--max-requests", "5")
    with gunicorn(tmp_path, WSGI, *args, PROMETHEUS_MULTIPROC_DIR=str(prom), **env) as server:
        served = server.hit_every_worker(2, "/pause/100/", "mp")
        pids = set(served.values())
        for i in range(12):  # enough to retire every worker at least once
            status, _, body = server.get("/pause/1/", f"mp-seq-{i}")
            assert status == 200
            served[f"mp-seq-{i}"] = int(body["pid"])
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
        series = (
            'http_server_request_duration_seconds_count{http_request_method="GET",'
            'http_response_status_code="200",http_route="/pause/{ms}/"}'
        )
        assert _sample(text, series) == len(served)
        retired = pids - set(_live_workers(server))
        assert retired, "no worker was recycled"
        wait_for(lambda: not _live_gauge_files(prom, retired), what="child_exit clean-up")
        live = set(_live_workers(server))
        assert _live_gauge_files(prom, live) or not live & set(served.values())
        server.stop()


def _live_workers(server: Gunicorn) -> list[int]:
    assert server.proc is not None
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text()
    return [int(pid) for pid in children.split()]


def _live_gauge_files(prom: Path, pids: set[int]) -> list[str]:
    return [p.name for p in prom.glob("gauge_live*.db") if int(p.stem.rsplit("_", 1)[1]) in pids]


def _sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in the scrape:\n{text[:3000]}")


def test_worker_timeouts_are_reported_as_obskit_json(tmp_path, env):
    env = {**env, "OTEL_SERVICE_NAME": "djproject"}  # names the master's lines
    with gunicorn(tmp_path, WSGI, "-w", "1", "--timeout", "1", **env) as server:
        _get_quietly(server, "/sleep/4/")
        wait_for(lambda: any("WORKER TIMEOUT" in line["event"] for line in error_log(server)),
                 what="WORKER TIMEOUT")  # fmt: skip
        line = next(line for line in error_log(server) if "WORKER TIMEOUT" in line["event"])
        assert line["level"] == "critical" and line["service"] == "djproject"
        server.stop()


def _get_quietly(server: Gunicorn, path: str) -> tuple[int, dict, object]:
    try:
        return server.get(path)
    except OSError:  # the worker was killed mid-request: the connection drops
        return 0, {}, None


def test_sigterm_is_handled_within_the_shutdown_timeout(tmp_path, env, receiver):
    """A hanging collector cannot hold a worker past obskit's shutdown_timeout."""
    receiver.set_mode("hang")
    try:
        env = {**env, "OBSKIT_SHUTDOWN_TIMEOUT": "1", "OBSKIT_OTLP_TIMEOUT": "30"}
        with gunicorn(tmp_path, WSGI, "-w", "1", "--graceful-timeout", "20", **env) as server:
            assert server.get("/api/", "hang-1")[0] == 200
            server.signal(signal.SIGTERM)
            assert server.proc is not None
            assert server.proc.wait(10) == 0
    finally:
        receiver.set_mode("ok")
        receiver.release_hung()


def test_the_error_log_keeps_gunicorn_s_destination(tmp_path: Path, env):
    errlog = tmp_path / "error.log"
    with gunicorn(tmp_path, WSGI, "-w", "1", "--error-logfile", str(errlog), **env) as server:
        server.stop()
    assert not error_log(server)  # nothing on stderr
    events = [json.loads(line)["event"] for line in errlog.read_text().splitlines()]
    assert events[0].startswith("Starting gunicorn") and "Shutting down: Master" in events


def test_child_exit_drops_a_dead_workers_live_gauges(tmp_path, monkeypatch):
    """The master's child_exit hook removes what prometheus-client's livesum/liveall gauges
    left behind for a dead worker, so one scrape no longer counts it (counters stay)."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    from obskit.integrations.gunicorn import child_exit

    worker = (
        "from prometheus_client import Counter, Gauge\n"
        "Gauge('in_flight', 'x', multiprocess_mode='livesum').set(3)\n"
        "Counter('served', 'x').inc(5)\n"
        "import os; print(os.getpid())\n"
    )
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    pid = int(subprocess.run([sys.executable, "-c", worker], env=env, check=True,
                             capture_output=True, text=True).stdout)  # fmt: skip
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    def scrape() -> str:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, str(tmp_path))
        return generate_latest(registry).decode()

    assert "in_flight 3.0" in scrape()
    child_exit(None, SimpleNamespace(pid=pid))
    assert "in_flight 3.0" not in scrape() and "served_total 5.0" in scrape()
