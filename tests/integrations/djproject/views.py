"""Views: sync and async, logging, failing, sleeping (worker timeouts), reporting the pid."""

import asyncio
import logging
import os
import time

from django.http import Http404, HttpResponse, JsonResponse

log = logging.getLogger("djproject.views")
quiet = logging.getLogger("djproject.quiet")
picky = logging.getLogger("djproject.picky")


def index(request):
    return JsonResponse({"pid": os.getpid()})


def order(request, order_id):
    log.info("order viewed %s", order_id, extra={"order_id": order_id})
    quiet.info("quiet info: below the WARNING level LOGGING sets")
    quiet.warning("quiet warning")
    picky.info("picky info: below its handler's WARNING level")
    picky.debug("picky debug")
    picky.error("picky error")
    logging.getLogger("django.server").info("server line inside a request")
    return JsonResponse({"order": order_id, "pid": os.getpid()})


def legacy(request, year):
    return HttpResponse(year)


def archive(request, year, month):
    return HttpResponse(f"{year}-{month}")


def missing(request, item_id):
    raise Http404("no such item")


def boom(request):
    raise RuntimeError("boom")


def sleep(request, seconds):
    time.sleep(seconds)
    return HttpResponse("slept")


def pause(request, ms):
    time.sleep(ms / 1000)
    return JsonResponse({"pid": os.getpid()})


async def async_pause(request, ms):
    await asyncio.sleep(ms / 1000)
    return JsonResponse({"pid": os.getpid(), "async": True})


async def async_order(request, order_id):
    await asyncio.sleep(0)
    log.info("async order viewed")
    return JsonResponse({"order": order_id, "async": True, "pid": os.getpid()})
