"""/metrics: Prometheus text format."""

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chatsvc.keys import METRICS


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
