"""shop's transactional outbox and its relay.

`place_order()` writes the order and an outbox row in ONE SQLite transaction: either both exist
or neither, so no order is ever charged twice or forgotten because a broker was down when the
request ran. The row keeps the request's context (`obskit.inject`: correlation ID, traceparent,
enqueue time). The relay (a thread in shop) publishes pending rows as Celery tasks
(`charge_order`) and marks them published; each row is processed inside
`obskit.consume("outbox", "orders", "relay", row headers)`, so the publish carries the order's
correlation ID and joins the request's trace, and the relay's queue wait is the row's age.

`watch()` exposes the backlog with `obskit.watch_outbox("orders", probe)`.

Fault knobs (POST /admin/relay on shop): `stalled` (the relay publishes nothing), and
`duplicate_rate` (that share of rows is published twice, as an at-least-once relay may after a
crash between publishing and marking the row).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import obskit
from examples.lab.faults import Faults

OUTBOX = "orders"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, product_id TEXT NOT NULL, quantity INTEGER NOT NULL,
    amount REAL NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL, task TEXT NOT NULL,
    payload TEXT NOT NULL, headers TEXT NOT NULL, created_at REAL NOT NULL,
    published_at REAL, attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (published_at, id);
"""


class RelaySettingsError(ValueError):
    """The body of POST /admin/relay is invalid."""


@dataclass(frozen=True)
class Row:
    id: int
    order_id: str
    payload: dict[str, Any]
    headers: dict[str, str]
    attempts: int


class Outbox:
    """The SQLite database with the orders and the outbox (one connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=5.0, isolation_level=None)

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    def place_order(self, product_id: str, quantity: int, amount: float, task: str) -> str:
        """Write the order and its outbox row in one transaction; returns the order ID."""
        order_id = uuid.uuid4().hex[:12]
        now = time.time()
        headers = obskit.inject({})  # the request's correlation ID and trace, and `now`
        payload = {"order_id": order_id, "amount": amount}
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO orders (id, product_id, quantity, amount, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (order_id, product_id, quantity, amount, now),
            )
            db.execute(
                "INSERT INTO outbox (order_id, task, payload, headers, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (order_id, task, json.dumps(payload), json.dumps(headers), now),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return order_id

    def pending(self, limit: int = 100) -> list[Row]:
        rows = self._db().execute(
            "SELECT id, order_id, payload, headers, attempts FROM outbox"
            " WHERE published_at IS NULL ORDER BY id LIMIT ?",
            (limit,),
        )
        return [Row(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4]) for r in rows]

    def mark_published(self, row_id: int) -> None:
        self._db().execute("UPDATE outbox SET published_at = ? WHERE id = ?", (time.time(), row_id))

    def count_attempt(self, row_id: int) -> None:
        self._db().execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (row_id,))

    def probe(self) -> tuple[int, float | None]:
        """(pending rows, creation time of the oldest): what watch_outbox reads at scrape time.

        Its own connection: it runs in obskit's scrape helper thread."""
        with self._connect() as db:
            count, oldest = db.execute(
                "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE published_at IS NULL"
            ).fetchone()
        return int(count), oldest


class Relay(threading.Thread):
    """Publishes pending outbox rows as Celery tasks, every `interval` seconds."""

    def __init__(self, outbox: Outbox, publish: Any, interval: float = 0.2) -> None:
        super().__init__(name="outbox-relay", daemon=True)
        self.outbox = outbox
        self.publish = publish  # publish(row): sends the row's task
        self.interval = interval
        self.stalled = False
        self.duplicates = Faults()  # its error_rate is the share of rows published twice
        self._stop_event = threading.Event()
        self._log = obskit.get_logger("shop.relay")

    def settings(self) -> dict[str, Any]:
        return {"stalled": self.stalled, "duplicate_rate": self.duplicates.error_rate}

    def update(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - {"stalled", "duplicate_rate"}
        if unknown:
            raise RelaySettingsError(f"unknown field(s): {', '.join(sorted(unknown))}")
        stalled = body.get("stalled", self.stalled)
        if not isinstance(stalled, bool):
            raise RelaySettingsError("stalled must be true or false")
        rate = body.get("duplicate_rate", self.duplicates.error_rate)
        try:
            self.duplicates.update({"error_rate": rate})
        except ValueError as exc:
            raise RelaySettingsError(f"duplicate_rate: {exc}") from exc
        self.stalled = stalled
        return self.settings()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            if self.stalled:
                continue
            try:
                rows = self.outbox.pending()
            except sqlite3.Error as exc:
                self._log.error("outbox_unreadable", error=str(exc))
                continue
            for row in rows:
                if not self.relay(row):
                    break  # the broker is down: try again at the next round

    def relay(self, row: Row) -> bool:
        """Publish one row inside the order's restored context; False when publishing failed."""
        with obskit.consume("outbox", OUTBOX, "relay", row.headers, retries=row.attempts) as msg:
            try:
                self.publish(row)
                twice = self.duplicates.decide("relay").fail
                if twice:
                    self.publish(row)
                self.outbox.mark_published(row.id)
            except Exception as exc:  # noqa: BLE001 - a broker error: the row stays pending
                msg.retry()
                self.outbox.count_attempt(row.id)
                self._log.warning("outbox_publish_failed", order_id=row.order_id, error=repr(exc))
                return False
            self._log.info("outbox_row_published", order_id=row.order_id, twice=twice)
        return True
