"""An access log line, metrics and a request id for every request.

Requests are labelled by route template (``/chats/{chat_id}``), never by raw
path, so the metrics' label sets stay bounded.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from aiohttp import web

from chatsvc.errors import Handler
from chatsvc.keys import METRICS
from chatsvc.logs import REQUEST_ID

log = logging.getLogger("chatsvc.access")

REQUEST_ID_HEADER = "X-Request-ID"
_ACCEPTED_ID = re.compile(r"[!-~]{1,200}")  # an incoming id is kept when it is this sane
_REQUEST_ID_KEY = web.RequestKey("request_id", str)


def route_of(request: web.Request) -> str:
    """The route template, one per route whatever the trailing slash; 'unmatched' for no route."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical.rstrip("/") or "/"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _ACCEPTED_ID.fullmatch(incoming) else uuid.uuid4().hex
    request[_REQUEST_ID_KEY] = request_id
    token = REQUEST_ID.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
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
                    "path": request.path,
                    "status": status,
                    "duration_ms": round(duration * 1000, 3),
                    "request_id": request_id,
                },
            )
        REQUEST_ID.reset(token)


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer carries its request id, event streams included."""
    request_id = request.get(_REQUEST_ID_KEY)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id
