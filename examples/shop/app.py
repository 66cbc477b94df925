"""The example storefront: FastAPI, instrumented with one obskit.init() line.

Routes: GET /products, GET /orders/{order_id}, POST /orders (charges the order through
payments' POST /charge), GET /health, and the failure knob GET/POST /admin/faults. POST
/checkout defers the payment through a transactional outbox and a Celery worker
(examples/shop/checkout.py).
payments is reached at PAYMENTS_URL (default http://localhost:8081).

The charge call is protected the way tenacity's and pybreaker's own docs show, with nothing
obskit-specific: `charge()` is retried (3 attempts, short exponential backoff) when payments
answers 5xx or cannot be reached, and every attempt goes through the `payments` circuit breaker
(opens after 5 consecutive failures, tries again after 5 s). An open breaker fails fast: shop
answers 503 at once instead of waiting on a payments that is down. With
`throw_new_error_on_trip=False` the call that trips the breaker raises payments' own error (so it
is retried like any other), and a CircuitBreakerError always means "failed fast".
obskit sees all of it through its tenacity and pybreaker adapters.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from typing import Any

import httpx
import pybreaker
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

import obskit
from examples.lab.faults import Faults, FaultSettingsError
from examples.shop.checkout import router as checkout_router

app = FastAPI(title="shop")
obskit.init(app, service="shop", version="1.0.0")
app.include_router(checkout_router)

log = obskit.get_logger("shop")
faults = Faults.from_env()
PAYMENTS_URL = os.environ.get("PAYMENTS_URL", "http://localhost:8081").rstrip("/")
PRODUCTS: dict[str, dict[str, Any]] = {
    "kettle": {"id": "kettle", "name": "Kettle", "price": 39.0},
    "teapot": {"id": "teapot", "name": "Teapot", "price": 24.5},
    "mug": {"id": "mug", "name": "Mug", "price": 8.0},
}
_client: httpx.AsyncClient | None = None


def _payments() -> httpx.AsyncClient:
    global _client  # noqa: PLW0603 - one pooled client per process, created lazily in the loop
    if _client is None:
        _client = httpx.AsyncClient(base_url=PAYMENTS_URL, timeout=5.0)
    return _client


class InjectedFault(Exception):
    """Raised by the failure knob; answered as HTTP 500."""


class PaymentsUnavailable(Exception):
    """payments answered 5xx: worth another attempt."""


payments_breaker = pybreaker.CircuitBreaker(
    fail_max=5, reset_timeout=5, throw_new_error_on_trip=False, name="payments"
)


@retry(
    retry=retry_if_exception_type((PaymentsUnavailable, httpx.TransportError)),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.05, max=0.2),
    reraise=True,
)
async def charge(order_id: str, amount: float) -> httpx.Response:
    """POST /charge on payments through the breaker; retried on 5xx and transport errors."""
    with payments_breaker.calling():
        resp = await _payments().post("/charge", json={"order_id": order_id, "amount": amount})
        if resp.status_code >= 500:
            raise PaymentsUnavailable(f"payments answered {resp.status_code}")
    return resp


async def _maybe_fail(route: str) -> None:
    decision = faults.decide(route)
    if decision.delay_s:
        await asyncio.sleep(decision.delay_s)
    if decision.fail:
        log.warning("fault_injected", route=route)
        raise InjectedFault(route)


@app.exception_handler(InjectedFault)
async def _injected(request: Request, exc: InjectedFault) -> JSONResponse:
    return JSONResponse({"error": "injected fault"}, status_code=500)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/products")
async def list_products() -> list[dict[str, Any]]:
    await _maybe_fail("/products")
    return list(PRODUCTS.values())


@app.get("/orders/{order_id}")
async def get_order(order_id: str) -> dict[str, Any]:
    await _maybe_fail("/orders/{order_id}")
    if order_id.startswith("missing"):
        raise HTTPException(404, "no such order")
    digest = int(hashlib.sha256(order_id.encode()).hexdigest(), 16)
    product = list(PRODUCTS.values())[digest % len(PRODUCTS)]
    return {"id": order_id, "product_id": product["id"], "status": "paid"}


@app.post("/orders", status_code=201)
async def create_order(body: dict[str, Any]) -> dict[str, Any]:
    await _maybe_fail("/orders")
    product = PRODUCTS.get(str(body.get("product_id")))
    if product is None:
        raise HTTPException(422, "unknown product_id")
    quantity = int(body.get("quantity", 1))
    order_id = uuid.uuid4().hex[:12]
    amount = round(product["price"] * quantity, 2)
    try:
        resp = await charge(order_id, amount)
    except pybreaker.CircuitBreakerError:
        log.warning("payments_circuit_open", order_id=order_id)
        raise HTTPException(503, "payments unavailable (circuit open)") from None
    except PaymentsUnavailable as exc:
        log.error("payment_failed", order_id=order_id, error=str(exc))
        raise HTTPException(502, "payment failed") from exc
    except httpx.HTTPError as exc:
        log.error("payment_unreachable", order_id=order_id, error=type(exc).__name__)
        raise HTTPException(502, "payments unreachable") from exc
    if resp.status_code >= 400:
        raise HTTPException(402, "payment declined")
    charged = resp.json()
    log.info("order_created", order_id=order_id, amount=amount, charge_id=charged["id"])
    return {"id": order_id, "amount": amount, "charge_id": charged["id"], "status": "paid"}


@app.get("/admin/faults")
async def get_faults() -> dict[str, Any]:
    return faults.snapshot()


@app.post("/admin/faults")
async def set_faults(body: dict[str, Any]) -> dict[str, Any]:
    try:
        settings = faults.update(body)
    except FaultSettingsError as exc:
        raise HTTPException(422, str(exc)) from exc
    log.info("faults_set", **{k: v for k, v in settings.items() if not k.startswith("requests")})
    return settings
