"""HTTP handlers, one module per resource: parse, validate, call queries, serialise."""

from aiohttp import web


def json_response(body: str, status: int = 200, location: str | None = None) -> web.Response:
    """A response whose body is JSON already rendered (by PostgreSQL)."""
    headers = {"Location": location} if location else None
    return web.Response(text=body, status=status, content_type="application/json", headers=headers)
