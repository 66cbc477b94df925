"""The demo's script: generate, start, drive traffic with a failure burst, report, clean up."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

from examples.demo import report
from examples.demo.background import Background
from examples.demo.report import say, section
from examples.lab import alertmanager as lab_alertmanager
from examples.lab import generated
from examples.lab import redis as lab_redis
from examples.lab.alertmanager import Alertmanager, WebhookReceiver, pager_config
from examples.lab.otlp_receiver import OTLPReceiver
from examples.lab.processes import Supervisor, install_signal_handlers
from examples.lab.prometheus import INSTALL_HINT, Prometheus, PrometheusError, Target, find_binary
from examples.lab.system import ExampleSystem
from examples.lab.traffic import Call, TrafficDriver
from obskit import semconv

# The failure burst: shop fails 40% of its order requests, payments answers /charge 300 ms late
# (above shop's latency threshold). Both SLOs of shop burn far above the page threshold.
BURST_SHOP = {"error_rate": 0.4, "routes": ["/orders", "/orders/{order_id}"]}
BURST_PAYMENTS = {"latency_ms": 300, "routes": ["/charge"]}
# Within the burst, payments fails hard for a while (every /charge answers 500): shop's tenacity
# retry retries, its pybreaker breaker opens and shop fails fast (503); once payments recovers,
# the breaker half-opens (5 s after it last opened) and closes.
OUTAGE_PAYMENTS = {"error_rate": 1.0, "routes": ["/charge"]}
RECOVERED_PAYMENTS = {"error_rate": 0.0, "routes": ["/charge"]}
RESILIENCE_ALERTS = (
    semconv.ALERT_BREAKER_OPEN,
    semconv.ALERT_BREAKER_FLAPPING,
    semconv.ALERT_RETRY_STORM,
)
OUTAGE_START = 0.25  # share of the burst before payments fails hard
OUTAGE_SHARE = 0.4  # at most this share of the burst
# The demo's copies of the example manifests hold alerts for seconds, not minutes, so a page
# fires within the burst and reaches the pager (the examples keep the defaults, 2m and 15m).
DEMO_FOR = {"page": "10s", "ticket": "20s"}
# Alertmanager's root timing in the demo's own configuration (the user's part when merging).
DEMO_TIMING = {"group_wait": "2s", "group_interval": "5s", "repeat_interval": "1h"}
PAGER_WAIT = 45.0  # seconds the alerts section waits for the page to be delivered


class DemoTimeout(Exception):
    """The whole demo took longer than its deadline."""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="output directory")
    parser.add_argument("--healthy", type=float, default=15.0, help="seconds of healthy traffic")
    parser.add_argument("--burst", type=float, default=30.0, help="seconds of failure burst")
    parser.add_argument("--rps", type=float, default=20.0, help="requests per second")
    parser.add_argument(
        "--outage", type=float, default=10.0, help="seconds payments fails hard within the burst"
    )
    parser.add_argument(
        "--stall", type=float, default=30.0, help="seconds the outbox relay stays stalled"
    )
    parser.add_argument("--deadline", type=int, default=240, help="give up after N seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    install_signal_handlers()

    def _timeout(signum: int, frame: object) -> None:
        raise DemoTimeout(f"the demo did not finish within {args.deadline}s")

    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(args.deadline)
    supervisor = Supervisor()
    receiver = OTLPReceiver()
    demo = Demo(args, supervisor, receiver)
    try:
        return demo.run()
    except KeyboardInterrupt:
        say("\ninterrupted: stopping every process the demo started...")
        return 130
    except (DemoTimeout, PrometheusError, RuntimeError, OSError, httpx.HTTPError) as exc:
        say(f"\ndemo failed: {exc}")
        return 1
    finally:
        signal.alarm(0)
        report.write_findings(demo.out)
        if demo.prom is not None:
            demo.prom.stop()
        if demo.am is not None:
            demo.am.stop()
        supervisor.stop_all()
        receiver.stop()
        demo.pager.stop()
        left = [f"{c.name} (pid {c.pid})" for c in supervisor.survivors()]
        say(f"stopped: {'still running: ' + ', '.join(left) if left else 'no process left behind'}")


class Demo:
    def __init__(
        self, args: argparse.Namespace, supervisor: Supervisor, receiver: OTLPReceiver
    ) -> None:
        self.args = args
        self.out: Path = args.out.resolve()
        self.generated = self.out / "generated"
        self.logs = self.out / "logs"
        self.supervisor = supervisor
        self.receiver = receiver
        self.prom: Prometheus | None = None
        self.am: Alertmanager | None = None
        self.pager = WebhookReceiver()
        self.started = time.monotonic()
        self.outage_alerts: list[dict[str, Any]] = []

    def elapsed(self) -> str:
        return f"[{time.monotonic() - self.started:5.1f}s]"

    # -- steps ---------------------------------------------------------------------------
    def run(self) -> int:
        self.generate()
        system = self.start()
        driver = TrafficDriver(system.url, rps=self.args.rps).start()
        try:
            section("3. Traffic")
            correlation_id = self.traced_order(driver)
            self.drive(system, driver)
        finally:
            driver.stop()
        self.report(system, driver, correlation_id)
        return 0

    def generate(self) -> None:
        section("1. Generate dashboards and SLO rules from the manifests")
        if self.generated.exists():
            shutil.rmtree(self.generated)
        for old in (self.logs, self.out / "prometheus"):
            shutil.rmtree(old, ignore_errors=True)
        argv = generated.generate(self.generated, self.demo_manifests())
        shown = ["obskit", *argv[argv.index("generate") :]]
        say(f"  $ {' '.join(_relative(a) for a in shown)}")
        say(
            f"  (the demo's copies of the example manifests set alerting.page.for: "
            f"{DEMO_FOR['page']} and ticket.for: {DEMO_FOR['ticket']},\n   so a page can fire "
            "within the burst; examples/*/obskit.yaml keep the defaults, 2m and 15m)"
        )
        report.file_list(self.generated)

    def demo_manifests(self) -> tuple[Path, ...]:
        """Copies of the example manifests whose alerts hold for seconds (DEMO_FOR)."""
        directory = self.out / "manifests"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        copies = []
        manifests = (  # the worker's too when Redis runs it (the background part)
            generated.BACKGROUND_MANIFESTS
            if lab_redis.find_binary() is not None
            else generated.EXAMPLE_MANIFESTS
        )
        for manifest in manifests:
            data = yaml.safe_load(manifest.read_text())
            alerting = data.setdefault("alerting", {})
            for severity, hold in DEMO_FOR.items():
                alerting.setdefault(severity, {})["for"] = hold
            copy = directory / f"{manifest.parent.name}.obskit.yaml"
            copy.write_text(yaml.safe_dump(data, sort_keys=False))
            copies.append(copy)
        return tuple(copies)

    def start(self) -> ExampleSystem:
        section("2. Start the services, an OTLP receiver, Prometheus, Alertmanager (loopback)")
        self.receiver.start()
        say(f"  OTLP/HTTP receiver  {self.receiver.endpoint}  (stands in for a collector/Tempo)")
        background = lab_redis.find_binary() is not None
        system = ExampleSystem(
            self.logs,
            otlp_endpoint=self.receiver.endpoint,
            supervisor=self.supervisor,
            background=background,
        ).start()
        if system.redis is not None:
            say(f"  Redis (the broker)  {system.redis.url}")
        else:
            say(f"  Redis               skipped. {lab_redis.INSTALL_HINT}")
            say("                      (the demo goes on without the background-work part)")
        for name in system.names:
            say(f"  {name:<19} {system.url(name)}  logs: {_relative(str(system.log_path(name)))}")
        if find_binary() is None:
            say(f"  Prometheus          skipped. {INSTALL_HINT}")
            say("                      (the demo goes on without RED/SLO/alert figures)")
            return system
        alertmanagers = self.start_alertmanager()
        targets = [Target(name, system.services[name].address) for name in system.names]
        self.prom = Prometheus(
            targets,
            generated.rule_files(self.generated),
            supervisor=self.supervisor,
            workdir=self.out / "prometheus",
            alertmanagers=alertmanagers,
        ).start()
        say(f"  Prometheus          {self.prom.url}  (scrape + rule evaluation every 1s)")
        return system

    def start_alertmanager(self) -> list[str]:
        """Alertmanager with the generated routes, its receivers posting to a webhook that
        stands in for the pager; [] when Alertmanager is not installed."""
        if lab_alertmanager.find_binary() is None:
            say(f"  Alertmanager        skipped. {lab_alertmanager.INSTALL_HINT}")
            say("                      (the demo goes on; alerts stop at Prometheus)")
            return []
        self.pager.start()
        generated_config = yaml.safe_load((self.generated / "alertmanager.yaml").read_text())
        config = pager_config(generated_config, self.pager, DEMO_TIMING)
        self.am = Alertmanager(
            config, supervisor=self.supervisor, workdir=self.out / "alertmanager"
        ).start()
        say(
            f"  Alertmanager        {self.am.url}  (generated routes + inhibition, merged "
            "into a base whose receivers\n                      post to a webhook on "
            f"127.0.0.1:{self.pager.port}: the pager)"
        )
        return [self.am.address]

    def traced_order(self, driver: TrafficDriver) -> str:
        correlation_id = f"demo-{uuid.uuid4().hex[:12]}"
        call = Call("shop", "POST", "/orders", "/orders", {"product_id": "teapot", "quantity": 2})
        resp = driver.send(call, headers={"X-Request-ID": correlation_id})
        report.record("request", {"correlation_id": correlation_id, "status": resp.status_code})
        say(
            f"{self.elapsed()} sent POST /orders with X-Request-ID: {correlation_id}"
            f" -> {resp.status_code}, echoed X-Request-ID: {resp.headers.get('x-request-id')}"
        )
        return correlation_id

    def drive(self, system: ExampleSystem, driver: TrafficDriver) -> None:
        say(f"{self.elapsed()} healthy traffic at {self.args.rps:.0f} req/s on every route")
        if self.prom is not None:
            say(f"{self.elapsed()} waiting for Prometheus's first scrape (up to ~15s)...")
            self.prom.wait_for_targets(timeout=40)
            say(f"{self.elapsed()} Prometheus scrapes both services")
        # Healthy traffic for --healthy seconds, and at least a few scrapes of it.
        self._sleep_until(max(self.args.healthy, time.monotonic() - self.started + 3), driver)
        burst_start = time.monotonic() - self.started
        system.set_faults("shop", **BURST_SHOP)
        system.set_faults("payments", **BURST_PAYMENTS)
        say(
            f"{self.elapsed()} failure burst: shop fails 40% of /orders and /orders/{{order_id}}, "
            "payments answers /charge 300 ms late"
        )
        outage = min(self.args.outage, OUTAGE_SHARE * self.args.burst)
        outage_start = burst_start + OUTAGE_START * self.args.burst
        self._sleep_until(outage_start, driver)
        system.set_faults("payments", **OUTAGE_PAYMENTS)
        say(
            f"{self.elapsed()} payments fails hard: every /charge answers 500 for {outage:.0f}s "
            "(shop retries, its circuit breaker opens, shop fails fast)"
        )
        self._sleep_until(outage_start + outage, driver)
        if self.prom is not None:  # the resilience alerts while payments is down
            self.outage_alerts = self._outage_alerts(driver)
        system.set_faults("payments", **RECOVERED_PAYMENTS)
        say(
            f"{self.elapsed()} payments recovers (still 300 ms late): the breaker half-opens "
            "5 s after it last opened, and closes"
        )
        self._sleep_until(burst_start + self.args.burst, driver)
        say(f"{self.elapsed()} traffic stopped")

    def _outage_alerts(self, driver: TrafficDriver, patience: float = 3.0) -> list[dict[str, Any]]:
        """The resilience alerts Prometheus holds while payments is still down. A breaker that
        opened in the outage's last seconds may not be scraped and evaluated yet (1 s each):
        wait for an alert at most `patience` seconds, the outage and the traffic going on."""
        assert self.prom is not None
        give_up = time.monotonic() + patience
        while True:
            active = [
                a for a in self.prom.alerts() if a["labels"]["alertname"] in RESILIENCE_ALERTS
            ]
            if active or time.monotonic() >= give_up:
                return active
            self._sleep_until(time.monotonic() - self.started + 0.5, driver)

    def _sleep_until(self, offset: float, driver: TrafficDriver) -> None:
        end = self.started + offset
        next_note = time.monotonic() + 5
        while (now := time.monotonic()) < end:
            time.sleep(min(0.25, end - now))
            if time.monotonic() >= next_note:
                next_note += 5
                tally = driver.tally()
                sent = sum(tally.values())
                failed = sum(n for (_, _, status), n in tally.items() if status >= 500)
                say(f"{self.elapsed()} {sent} requests sent, {failed} answered 5xx")

    def report(self, system: ExampleSystem, driver: TrafficDriver, correlation_id: str) -> None:
        section("4. Correlated logs: one request through shop and payments")
        records = {name: system.log_records(name) for name in ("payments", "shop")}
        n = report.correlated_logs(records, correlation_id)
        if n == 0:
            say(f"  no log line carries correlation_id={correlation_id}")
        trace_ids = {
            str(r.get("trace_id"))
            for recs in records.values()
            for r in recs
            if r.get("correlation_id") == correlation_id and r.get("trace_id")
        }
        report.record(
            "correlated_logs",
            {"correlation_id": correlation_id, "lines": n, "trace_ids": sorted(trace_ids)},
        )
        say(
            f"  -> {n} lines from {len([r for r in records.values() if r])} services share "
            f"correlation_id={correlation_id} and trace_id={', '.join(sorted(trace_ids)) or '-'}"
        )
        section("5. The same request's trace, as received over OTLP/HTTP")
        spans = [s for s in self.receiver.spans() if s.trace_id in trace_ids]
        if spans:
            report.trace_tree(spans)
        else:
            say("  no span of that trace reached the receiver")
        say(f"  ({self.receiver.span_count} spans received in total)")
        if self.prom is None:
            section("6. Prometheus figures: skipped (Prometheus is not installed)")
            say(f"  {INSTALL_HINT}")
        else:
            self.prometheus_report()
        self.resilience(records["shop"])
        if self.prom is not None:
            self.alerts()
        if system.redis is not None:
            Background(system, self.receiver, self.prom, self.elapsed, self.args.stall).run()
        self.grafana()

    def prometheus_report(self) -> None:
        assert self.prom is not None
        window = f"{max(10, int(self.args.burst))}s"
        section(f"6. RED per route during the failure burst (over the last {window})")
        report.red(self.prom, ("payments", "shop"), window)
        section("7. SLOs: error ratios and burn rates from the generated recording rules")
        report.slos(self.prom, generated.EXAMPLE_MANIFESTS)

    def resilience(self, shop_records: list[dict[str, object]]) -> None:
        section("8. Resilience: shop's retries and its payments circuit breaker")
        say("  breaker transitions, from shop's log (event: circuit_breaker_state_changed):")
        report.breaker_transitions(shop_records)
        if self.prom is not None:
            say()
            report.resilience_metrics(self.prom, "shop")
            say()
            say("  resilience alerts at the end of payments' outage (/api/v1/alerts):")
            report.resilience_alerts(self.outage_alerts)
        say()
        retried = report.retried_trace_id(shop_records)
        if retried is None:
            say("  no retried request in shop's log")
            return
        say(f"  one retried request's trace (trace_id={retried}), as received over OTLP:")
        spans = [s for s in self.receiver.spans() if s.trace_id == retried]
        if spans:
            report.trace_tree(spans, report.CLIENT_ATTRIBUTES, record_as="retried_trace")
        else:
            say("  no span of that trace reached the receiver")

    def alerts(self) -> None:
        assert self.prom is not None
        section("9. Alerts: Prometheus evaluates the rules, Alertmanager delivers to the pager")
        waits = sorted(
            {
                f"{rule['name']} {int(rule.get('duration', 0))}s"
                for group in self.prom.rule_groups()
                for rule in group["rules"]
                if rule.get("type") == "alerting" and "BurnRate" in rule["name"]
            }
        )
        report.alerts(
            self.prom.alerts(),
            "\n  PENDING = the condition holds, not yet for the rule's `for:` ("
            + ", ".join(waits)
            + ");\n  FIRING alerts go to Alertmanager: it routes, groups, inhibits, notifies.",
        )
        if self.am is not None:
            self.pager_report()

    def pager_report(self) -> None:
        assert self.am is not None
        say()
        say(f"{self.elapsed()} waiting for a page to reach the pager (up to {PAGER_WAIT:.0f}s)...")
        deadline = time.monotonic() + PAGER_WAIT
        while time.monotonic() < deadline and not report.page_delivered(self.pager.received()):
            time.sleep(0.5)
        report.notifications(self.pager.received(), self.am.alerts(), self.out)

    def grafana(self) -> None:
        section("14. Use the generated files")
        for service in sorted(p.name for p in self.generated.iterdir() if p.is_dir()):
            say(f"  {service}: {_relative(str(self.generated / service))}/")
        if self.prom is not None:
            config = self.prom.workdir / "prometheus.yml"
            say(f"  the Prometheus configuration the demo used: {_relative(str(config))}")
        if self.am is not None:
            say(
                f"  the Alertmanager configuration it used: {_relative(str(self.am.config_path))}"
                f"\n  (the generated {_relative(str(self.generated / 'alertmanager.yaml'))} "
                "merged with webhook receivers)"
            )
        say(
            """
  Grafana: Dashboards -> New -> Import -> "Upload dashboard JSON file" ->
    demo-output/generated/<service>/dashboard.json, then pick your Prometheus data source
    (the dashboard's datasource variable). Or with the HTTP API:
    python -c 'import json,sys; print(json.dumps({"dashboard": json.load(open(sys.argv[1])),
      "overwrite": True}))' demo-output/generated/shop/dashboard.json |
      curl -s -u admin:admin -H 'Content-Type: application/json' -d @- \\
        http://localhost:3000/api/dashboards/db
  Prometheus: add each rules.yaml under rule_files: in prometheus.yml (scrape each service
    with job_name = its service name), check them with `promtool check rules` and
    `promtool test rules <service>/rules.test.yaml`.
  Alertmanager: obskit merge-alertmanager your-alertmanager.yml \\
      demo-output/generated/alertmanager.yaml -o alertmanager.yml   (your receivers keep their
    integrations), then `sh demo-output/generated/alertmanager.test.sh alertmanager.yml`
    checks with amtool that every generated alert reaches its receiver."""
        )


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


if __name__ == "__main__":
    sys.exit(main())
