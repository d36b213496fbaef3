"""The service's one middleware: every request is answered, logged, counted and tagged.

One layer rather than three (logging, problem+json, shutdown refusal): each
aiohttp middleware costs a coroutine per request on the hot path.

Requests are labelled by route template (``/chats/{chat_id}``), never by raw
path, so the metrics' label sets stay bounded.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time

from aiohttp import web

from chatsvc.errors import problem_for
from chatsvc.keys import LIFECYCLE, METRICS
from chatsvc.logs import REQUEST_ID
from chatsvc.parsing import check_expectation
from chatsvc.problems import Handler, ServiceUnavailable

log = logging.getLogger("chatsvc.access")

REQUEST_ID_HEADER = "X-Request-ID"
_ACCEPTED_ID = re.compile(r"[!-~]{1,200}")  # an incoming id is kept when it is this sane
# Generated ids: a random per-process prefix and a counter. Unique across
# processes and restarts like a UUID, at a tenth of uuid4()'s cost.
_ID_PREFIX = os.urandom(8).hex()  # 16 hex digits, then 16 of the counter: 32, as a UUID
_ID_COUNTER = itertools.count(1)


def route_of(request: web.Request) -> str:
    """The route template, one per route whatever the trailing slash; 'unmatched' for no route."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical.rstrip("/") or "/"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _ACCEPTED_ID.fullmatch(incoming) else f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"
    token = REQUEST_ID.set(request_id)
    started = time.perf_counter()
    status = 500  # what the log says when the request is cancelled
    try:
        try:
            if request.app[LIFECYCLE].shutting_down:
                raise ServiceUnavailable("The service is shutting down; retry shortly.")
            check_expectation(request)
            response = await handler(request)
        except Exception as exc:  # noqa: BLE001 - problem_for answers every error, logs unexpected ones
            response = problem_for(request, exc)
        status = response.status
        if not response.prepared:  # an event stream sets its own before it starts (request_id)
            response.headers[REQUEST_ID_HEADER] = request_id
        return response
    finally:
        duration = time.perf_counter() - started
        route = route_of(request)
        request.app[METRICS].observe(request.method, route, status, duration)
        if log.isEnabledFor(logging.INFO):  # skip building the line when it would be dropped
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "route": route,
                    "path": request.path,  # never the query string: it may hold ?access_token=
                    "status": status,
                    "duration_ms": round(duration * 1000, 3),
                    "request_id": request_id,
                },
            )
        REQUEST_ID.reset(token)


def request_id() -> str:
    """The id of the request being served, for a handler that starts its answer itself
    (an event stream): observe adds it to every other answer once the handler returns.
    Not an on_response_prepare signal: aiohttp awaits one per answer, about 3% of a read's CPU."""
    current = REQUEST_ID.get()
    assert current is not None, "called outside a request: observe sets it for each"
    return current
