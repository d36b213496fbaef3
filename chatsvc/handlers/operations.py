"""/healthz (the process serves HTTP), /readyz (it can serve requests: database and schema)
and /metrics (Prometheus text format)."""

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chatsvc import migrate, models, queries
from chatsvc.handlers import json_response
from chatsvc.keys import DATABASE, EVENTS, METRICS
from chatsvc.openapi import Operation, Route, Routes, json_content
from chatsvc.problems import ServiceUnavailable

SHIPPED_MIGRATIONS = migrate.shipped()


async def healthz(request: web.Request) -> web.Response:
    return json_response('{"status":"ok"}')


async def readyz(request: web.Request) -> web.Response:
    # DatabaseUnavailable (unreachable, too slow, pool exhausted) is the middleware's 503.
    applied = await queries.list_applied_migrations(request.app[DATABASE])
    pending = SHIPPED_MIGRATIONS - applied
    if pending:
        raise ServiceUnavailable(
            f"The database schema is behind this version: {len(pending)} migration(s) pending"
            " (chatsvc migrate applies them)."
        )
    events = request.app[EVENTS]
    if not events.listening:
        raise ServiceUnavailable(f"Not listening for live events: {events.not_listening_because}.")
    return json_response('{"status":"ready"}')


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


ROUTES: Routes = {
    "/healthz": {
        "GET": Route(
            healthz,
            Operation(
                "The process is up",
                (200, "Serving HTTP.", json_content(models.Status)),
                tags=("operations",),
                access="public",
            ),
        ),
    },
    "/readyz": {
        "GET": Route(
            readyz,
            Operation(
                "The service can serve requests",
                (
                    200,
                    "The database is reachable and at the latest migration, and live events are heard.",
                    json_content(models.Status),
                ),
                tags=("operations",),
                access="public",
            ),
        ),
    },
    "/metrics": {
        "GET": Route(
            metrics,
            Operation(
                "Prometheus metrics",
                (200, "Prometheus text format.", {"text/plain": {"schema": {"type": "string"}}}),
                tags=("operations",),
                access="public",
            ),
        ),
    },
}
