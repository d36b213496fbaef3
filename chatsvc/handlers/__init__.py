"""HTTP handlers, one module per resource: parse, validate, call queries, serialise."""

from aiohttp import web

from chatsvc import replica
from chatsvc.callers import CALLER, Caller
from chatsvc.db import Database
from chatsvc.keys import DATABASE, REPLICA
from chatsvc.queries import Created


def caller_of(request: web.Request) -> Caller:
    """Who is calling: set before the handler runs (chatsvc/app.py, authenticated)."""
    return request[CALLER]


def json_response(body: str, status: int = 200) -> web.Response:
    """A response whose body is JSON already rendered (by PostgreSQL)."""
    return web.Response(text=body, status=status, content_type="application/json")


def created_response(created: Created, location: str) -> web.Response:
    """201 with the created resource, or, for an Idempotency-Key retry, with the first result."""
    response = json_response(created.json, status=201)
    response.headers["Location"] = location
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def reading_database(request: web.Request) -> Database:
    """Where a read route's statements run: the replica when it holds what the caller
    wrote (Chatsvc-Position), or any replica when they sent none; else the primary."""
    return await replica.for_reading(request, request.app[DATABASE], request.app[REPLICA])
