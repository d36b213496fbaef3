"""The HTTP ceiling: a bare aiohttp handler answering a constant body.

What this machine's Python, aiohttp and uvloop can serve at all, with the
same response size as a real get_chat answer. Run by bench/run.py:
``python bench/ceiling.py PORT BODY_FILE``.
"""

import sys
from pathlib import Path

import uvloop
from aiohttp import web

PORT, BODY = int(sys.argv[1]), Path(sys.argv[2]).read_bytes()


async def constant(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


app = web.Application()
app.router.add_get("/", constant)
web.run_app(app, host="127.0.0.1", port=PORT, loop=uvloop.new_event_loop(), access_log=None, print=None)
