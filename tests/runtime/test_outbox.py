"""obskit.watch_outbox: the outbox backlog, read at scrape time, bounded, never breaking it."""

from __future__ import annotations

import io
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import obskit
from obskit.testing import Capture, capture

PENDING = "obskit_outbox_pending"
AGE = "obskit_outbox_oldest_age_seconds"
ERRORS = "obskit_instrumentation_errors_total"


@pytest.fixture
def cap() -> Iterator[Capture]:
    with capture() as captured:
        yield captured


def test_a_sqlite_outbox_probe_is_exposed_with_pending_rows_and_the_oldest_age(
    cap: Capture,
) -> None:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, created_at REAL NOT NULL)")
    now = time.time()
    db.executemany("INSERT INTO outbox (created_at) VALUES (?)", [(now - 90,), (now - 5,)])

    def probe() -> tuple[int, float | None]:
        count, oldest = db.execute("SELECT COUNT(*), MIN(created_at) FROM outbox").fetchone()
        return int(count), oldest

    obskit.watch_outbox("orders", probe)
    assert cap.sample(PENDING, outbox="orders") == 2
    age = cap.sample(AGE, outbox="orders")
    assert age is not None and 90 <= age < 120
    db.execute("DELETE FROM outbox")
    assert cap.sample(PENDING, outbox="orders") == 0
    assert cap.sample(AGE, outbox="orders") == 0  # empty: nothing is waiting


def test_datetimes_are_accepted_and_naive_ones_are_utc(cap: Capture) -> None:
    naive_utc = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=60)
    aware = datetime.now(timezone(timedelta(hours=5))) - timedelta(seconds=30)
    obskit.watch_outbox("naive", lambda: (1, naive_utc))
    obskit.watch_outbox("aware", lambda: (1, aware))
    naive_age, aware_age = cap.sample(AGE, outbox="naive"), cap.sample(AGE, outbox="aware")
    assert naive_age is not None and 60 <= naive_age < 90
    assert aware_age is not None and 30 <= aware_age < 60


@pytest.mark.parametrize(
    "result",
    [None, (1,), ("3", None), (-1, None), (True, None), (1, "yesterday"), (1, float("nan"))],
)
def test_a_probe_returning_nonsense_is_counted_and_its_series_are_absent(
    cap: Capture, result: Any
) -> None:
    obskit.watch_outbox("broken", lambda: result)
    obskit.watch_outbox("fine", lambda: (4, None))
    assert cap.sample(PENDING, outbox="broken") is None
    assert cap.sample(PENDING, outbox="fine") == 4
    # one error per scrape; a scrape reports the errors counted before its own probes ran
    assert cap.sample(ERRORS) == 2


def test_a_probe_that_raises_never_breaks_the_scrape_and_is_logged_once(
    cap: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    def probe() -> tuple[int, None]:
        raise sqlite3.OperationalError("database is locked")

    obskit.watch_outbox("orders", probe)
    for _ in range(3):
        body = generate_latest(cap.registry).decode()
        assert "obskit_build_info" in body
        assert 'obskit_outbox_pending{outbox="orders"}' not in body
    assert cap.sample(ERRORS) == 3  # one per scrape above (read before this scrape's probe)
    errors = [r.getMessage() for r in caplog.records if "outbox probe" in r.getMessage()]
    assert len(errors) == 1  # once per interval
    assert "database is locked" in errors[0]


def test_a_hanging_probe_is_bounded_and_not_called_again_while_it_hangs(cap: Capture) -> None:
    release = threading.Event()
    calls = []

    def probe() -> tuple[int, None]:
        calls.append(1)
        release.wait(30)
        return 1, None

    obskit.watch_outbox("stuck", probe, timeout=0.2)
    obskit.watch_outbox("fine", lambda: (2, None))
    try:
        done = threading.Event()
        bodies: list[str] = []

        def scrape() -> None:
            bodies.extend(generate_latest(cap.registry).decode() for _ in range(3))
            done.set()

        threading.Thread(target=scrape, daemon=True).start()
        assert done.wait(20), "the scrapes did not return while the probe hangs"
        assert all('obskit_outbox_pending{outbox="fine"} 2.0' in body for body in bodies)
        assert not any('outbox="stuck"' in body for body in bodies)
        assert len(calls) == 1  # later scrapes did not pile up threads behind the hung one
        assert cap.sample(ERRORS) == 3  # timed out once, then "still running" twice
    finally:
        release.set()


def test_watch_outbox_before_init_takes_effect_at_init() -> None:
    obskit.watch_outbox("early", lambda: (7, None))
    registry = CollectorRegistry()
    obskit.init(None, registry=registry, log_stream=io.StringIO(), traces_enabled=False)
    assert 'obskit_outbox_pending{outbox="early"} 7.0' in generate_latest(registry).decode()


def test_watch_outbox_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="name"):
        obskit.watch_outbox("", lambda: (0, None))
    with pytest.raises(TypeError, match="callable"):
        obskit.watch_outbox("x", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        obskit.watch_outbox("x", lambda: (0, None), timeout=0)
