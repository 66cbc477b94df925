"""Views of the example inventory service, with the examples' failure knob (POST /admin/faults)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from examples.lab.faults import Faults, FaultSettingsError

log = logging.getLogger("inventory")
faults = Faults.from_env()  # per worker process: EXAMPLE_ERROR_RATE applies to every worker
STOCK: dict[int, int] = {item_id: 10 + item_id % 7 for item_id in range(1, 101)}


class InjectedFault(Exception):
    """Raised by the failure knob: Django answers it with its own 500 page."""


def _maybe_fail(route: str) -> None:
    decision = faults.decide(route)
    if decision.delay_s:
        time.sleep(decision.delay_s)
    if decision.fail:
        raise InjectedFault(route)


@require_GET
def health(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def list_items(request: HttpRequest) -> HttpResponse:
    _maybe_fail("/items/")
    return JsonResponse({"items": sorted(STOCK)[:20]})


@require_GET
def get_item(request: HttpRequest, item_id: int) -> HttpResponse:
    _maybe_fail("/items/{item_id}/")
    if item_id not in STOCK:
        raise Http404("no such item")
    return JsonResponse({"id": item_id, "stock": STOCK[item_id]})


@csrf_exempt
@require_POST
def reserve(request: HttpRequest, item_id: int) -> HttpResponse:
    _maybe_fail("/items/{item_id}/reserve/")
    if item_id not in STOCK:
        raise Http404("no such item")
    log.info("item reserved", extra={"item_id": item_id})
    return JsonResponse({"id": item_id, "reserved": 1}, status=201)


@require_GET
def legacy_sku(request: HttpRequest, sku: str) -> HttpResponse:
    return JsonResponse({"sku": sku, "moved_to": "/items/"})


@csrf_exempt
@require_http_methods(["GET", "POST"])
def admin_faults(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return JsonResponse(faults.snapshot())
    try:
        body: Any = json.loads(request.body or b"{}")
        settings = faults.update(body if isinstance(body, dict) else {})
    except (ValueError, FaultSettingsError) as exc:
        return JsonResponse({"error": str(exc)}, status=422)
    log.info("faults set", extra={"error_rate": settings["error_rate"]})
    return JsonResponse(settings)
