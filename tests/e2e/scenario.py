"""The e2e scenario: shop -> payments, an OTLP receiver and a real Prometheus, shared by all.

The lab is built once per test module (startup dominates: Prometheus 2.42 applies new targets only
every ~5 s). Its scenario is fixed for the whole session so the tests do not depend on their
order: shop stays healthy; payments fails a constant share of GET /refunds/{refund_id} from the
first request on (FAULTY_ROUTE, INJECTED_ERROR_RATE), so every recorded error ratio of payments,
whatever its window, converges on one known value, and its availability SLO burns fast enough to
page. POST /charge (what shop calls) is never faulted, so shop sees no error at all.
The OTLP receiver runs as its own process so a test can kill it like a crashed collector.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from examples.lab import generated
from examples.lab.processes import Supervisor
from examples.lab.prometheus import Prometheus, Target
from examples.lab.receiver_process import ReceiverProcess
from examples.lab.system import SERVICES, ExampleSystem
from examples.lab.traffic import TrafficDriver

HEALTHY_SERVICE = "shop"
FAULTY_SERVICE = "payments"
FAULTY_ROUTE = "/refunds/{refund_id}"
INJECTED_ERROR_RATE = 0.5
TRAFFIC_RPS = 25.0


@dataclass
class Lab:
    out: Path
    receiver: ReceiverProcess
    system: ExampleSystem
    prom: Prometheus
    driver: TrafficDriver
    supervisor: Supervisor
    started: float  # time.monotonic() when traffic started


@contextlib.contextmanager
def running_lab() -> Iterator[Lab]:
    """Start the lab (generate, services with the scenario's faults, traffic, Prometheus)."""
    workdir = Path(tempfile.mkdtemp(prefix="obskit-e2e-"))
    supervisor = Supervisor()
    receiver = ReceiverProcess(supervisor, workdir / "otlp-receiver.log").start()
    driver: TrafficDriver | None = None
    prom: Prometheus | None = None
    try:
        out = workdir / "generated"
        generated.generate(out)
        system = ExampleSystem(
            workdir / "logs", otlp_endpoint=receiver.endpoint, supervisor=supervisor
        ).start()
        system.set_faults(FAULTY_SERVICE, error_rate=INJECTED_ERROR_RATE, routes=[FAULTY_ROUTE])
        driver = TrafficDriver(system.url, rps=TRAFFIC_RPS).start()
        started = time.monotonic()
        targets = [Target(name, system.services[name].address) for name in SERVICES]
        prom = Prometheus(targets, generated.rule_files(out), supervisor=supervisor).start()
        prom.wait_for_targets(timeout=45)
        yield Lab(out, receiver, system, prom, driver, supervisor, started)
    finally:
        if driver is not None:
            driver.stop()
        if prom is not None:
            prom.stop()
        supervisor.stop_all()
        receiver.stop()
        shutil.rmtree(workdir, ignore_errors=True)
