"""The listening socket: a cap on the connections one process keeps open, and
problem+json for requests aiohttp's HTTP parser refuses.

Every connection costs a file descriptor, and so does every database
connection. Without a cap, enough idle or slow clients exhaust the
descriptors, and then the service cannot open a database connection or
accept anyone at all. Past the cap, a new connection gets one 503
problem+json answer with Retry-After and is closed; the open ones go on.

A request so malformed that aiohttp's parser refuses it (a broken request
line, an oversized or malformed header, broken chunking) never reaches the
application or its middleware; aiohttp answers it with plain text. Our
connections' handler answers it as every other error: problem+json, and the
connection closed.

aiohttp has a setting for neither, so this site gives asyncio's
create_server a protocol factory of its own. It relies on attributes that
aiohttp does not document: Server's _loop and _kwargs, TCPSite's address
and socket options (all stable through 3.x). tests/test_hostile.py and
tests/test_exhaustion.py fail if they change.
"""

from __future__ import annotations

import asyncio
import resource
from http import HTTPStatus
from typing import cast

from aiohttp import web, web_protocol

from chatsvc.errors import PROBLEM_JSON, RETRY_AFTER_SECONDS, problem_body, problem_response

# Descriptors kept for everything but client connections: the pool, the
# events listener, the embedded PostgreSQL's pipes, logs, /docs assets.
RESERVED_DESCRIPTORS = 64
# How long a refused client has to read its answer and close before we do.
REFUSAL_LINGER_SECONDS = 5.0


def connection_limit(configured: int, pool_size: int) -> int:
    """The configured cap, lowered to what this process's open-file limit leaves room for."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - pool_size - RESERVED_DESCRIPTORS))


def _refusal(limit: int) -> bytes:
    status = HTTPStatus.SERVICE_UNAVAILABLE
    body = problem_body(
        status, f"The service has as many connections open as it keeps ({limit}); retry shortly."
    )
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {RETRY_AFTER_SECONDS}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class _Refused(asyncio.Protocol):
    """Answers 503 at once, then waits for the client to close (closing first
    with its request unread would reset the connection and could lose the
    answer), at most REFUSAL_LINGER_SECONDS."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        transport.write(self._answer)
        transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_LINGER_SECONDS, transport.abort)

    def data_received(self, data: bytes) -> None:
        pass  # the request is not read: it is answered already

    def eof_received(self) -> bool:
        return False  # the client is done too: close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()


class _RequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, answering what its parser refuses with problem+json."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)  # logs it, as before
        if status >= 500:  # not a parser's verdict; the middleware answers our own errors
            return plain
        detail = f"The request is not valid HTTP: {message or HTTPStatus(status).phrase}"
        response = problem_response(status, detail[:500])
        response.force_close()
        return response


class CappedTCPSite(web.TCPSite):
    """aiohttp's TCP site, refusing connections past max_connections."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        max_connections: int,
        backlog: int,
        reuse_port: bool | None = None,
    ) -> None:
        super().__init__(runner, host, port, backlog=backlog, reuse_port=reuse_port)
        self.max_connections = max_connections
        self._refusal = _refusal(max_connections)

    def _protocol(self) -> asyncio.Protocol:
        server = self._runner.server
        assert server is not None
        if len(server.connections) >= self.max_connections:
            return _Refused(self._refusal)
        return _RequestHandler(server, loop=server._loop, **server._kwargs)

    async def start(self) -> None:
        # TCPSite.start, with our protocol factory in place of aiohttp's server.
        await web.BaseSite.start(self)
        self._server = await asyncio.get_running_loop().create_server(
            self._protocol,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
