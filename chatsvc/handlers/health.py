"""/healthz (the process serves HTTP) and /readyz (it can serve requests: database and schema)."""

from aiohttp import web

from chatsvc import migrate, queries
from chatsvc.errors import ServiceUnavailable
from chatsvc.handlers import json_response
from chatsvc.keys import DATABASE

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
    return json_response('{"status":"ready"}')
