"""shop's background checkout: POST /checkout writes the order and an outbox row, payment happens
later (outbox -> relay -> Celery -> worker -> payments), and the relay's fault knob.

    POST /checkout {"product_id": "teapot", "quantity": 2}   -> 202 {"id": ..., "status": "pending"}
    GET/POST /admin/relay {"stalled": true, "duplicate_rate": 0.2}

Active when EXAMPLE_BROKER_URL names the Redis broker (EXAMPLE_SHOP_DB: the SQLite file, default
shop.db in the working directory); without it these routes answer 503. The outbox's backlog is
exposed with `obskit.watch_outbox("orders", ...)` whenever EXAMPLE_SHOP_DB or the broker is set
(an idle outbox reports 0 pending, so its dashboard panels and alert have data).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException

import obskit
from examples.shop.outbox import OUTBOX, Outbox, Relay, RelaySettingsError, Row
from examples.worker.tasks import charge_order  # the worker's own module: its init() stays inert

router = APIRouter()
log = obskit.get_logger("shop.checkout")
PRICES = {"kettle": 39.0, "teapot": 24.5, "mug": 8.0}


class Background:
    """The outbox, its relay thread and the task they publish (one per shop process)."""

    def __init__(self, db_path: Path, *, relay: bool) -> None:
        self.task = charge_order
        self.outbox = Outbox(db_path)
        self.relay = Relay(self.outbox, self._publish)
        self.publishing = relay
        obskit.watch_outbox(OUTBOX, self.outbox.probe)
        if relay:
            self.relay.start()

    def _publish(self, row: Row) -> None:
        self.task.apply_async(
            (row.payload["order_id"], row.payload["amount"]),
            retry_policy={"max_retries": 1, "interval_start": 0.1},
        )


_background: Background | None = None
_db, _broker = os.environ.get("EXAMPLE_SHOP_DB"), os.environ.get("EXAMPLE_BROKER_URL")
if _db or _broker:
    _background = Background(Path(_db or "shop.db"), relay=bool(_broker))


def _active() -> Background:
    if _background is None or not _background.publishing:
        raise HTTPException(503, "background work is off: set EXAMPLE_BROKER_URL")
    return _background


@router.post("/checkout", status_code=202)
async def checkout(body: dict[str, Any]) -> dict[str, Any]:
    background = _active()
    product_id = str(body.get("product_id"))
    price = PRICES.get(product_id)
    if price is None:
        raise HTTPException(422, "unknown product_id")
    quantity = int(body.get("quantity", 1))
    amount = round(price * quantity, 2)
    order_id = background.outbox.place_order(product_id, quantity, amount, background.task.name)
    log.info("order_placed", order_id=order_id, amount=amount, payment="deferred")
    return {"id": order_id, "amount": amount, "status": "pending"}


@router.get("/admin/relay")
async def get_relay() -> dict[str, Any]:
    return _active().relay.settings()


@router.post("/admin/relay")
async def set_relay(body: dict[str, Any]) -> dict[str, Any]:
    try:
        settings = _active().relay.update(body)
    except RelaySettingsError as exc:
        raise HTTPException(422, str(exc)) from exc
    log.info("relay_set", **settings)
    return settings
