"""/healthz: the process is up and serving HTTP (no database check)."""

from aiohttp import web

from chatsvc.handlers import json_response


async def healthz(request: web.Request) -> web.Response:
    return json_response('{"status":"ok"}')
