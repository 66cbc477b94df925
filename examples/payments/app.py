"""The example payment service: Flask, instrumented with one obskit.init() line.

Routes: POST /charge (called by shop), GET /refunds/{refund_id}, GET /health, and the failure
knob GET/POST /admin/faults.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Flask, abort, jsonify, request
from flask.typing import ResponseReturnValue

import obskit
from examples.lab.faults import Faults, FaultSettingsError

app = Flask("payments")
obskit.init(app, service="payments", version="1.0.0")

log = obskit.get_logger("payments")
faults = Faults.from_env()


class InjectedFault(Exception):
    """Raised by the failure knob; answered as HTTP 500."""


def _maybe_fail(route: str) -> None:
    decision = faults.decide(route)
    if decision.delay_s:
        time.sleep(decision.delay_s)
    if decision.fail:
        log.warning("fault_injected", route=route)
        raise InjectedFault(route)


@app.errorhandler(InjectedFault)
def _injected(exc: InjectedFault) -> ResponseReturnValue:
    return jsonify(error="injected fault"), 500


@app.get("/health")
def health() -> ResponseReturnValue:
    return jsonify(status="ok")


@app.post("/charge")
def charge() -> ResponseReturnValue:
    _maybe_fail("/charge")
    body: dict[str, Any] = request.get_json(silent=True) or {}
    amount = body.get("amount")
    if not isinstance(amount, int | float) or amount <= 0:
        abort(422)
    charge_id = "ch_" + uuid.uuid4().hex[:12]
    log.info("charge_captured", charge_id=charge_id, order_id=body.get("order_id"), amount=amount)
    return jsonify(id=charge_id, order_id=body.get("order_id"), status="captured"), 201


@app.get("/refunds/<refund_id>")
def get_refund(refund_id: str) -> ResponseReturnValue:
    _maybe_fail("/refunds/{refund_id}")
    return jsonify(id=refund_id, status="settled")


@app.get("/admin/faults")
def get_faults() -> ResponseReturnValue:
    return jsonify(faults.snapshot())


@app.post("/admin/faults")
def set_faults() -> ResponseReturnValue:
    try:
        settings = faults.update(request.get_json(silent=True) or {})
    except FaultSettingsError as exc:
        return jsonify(error=str(exc)), 422
    log.info("faults_set", **{k: v for k, v in settings.items() if not k.startswith("requests")})
    return jsonify(settings)
