"""The listening socket: a cap on the connections one process keeps open, and
problem+json for requests aiohttp's HTTP parser refuses.

Every connection costs a file descriptor, and so does every database
connection. Without a cap, enough idle or slow clients exhaust the
descriptors, and then the service cannot open a database connection or
accept anyone at all. Past the cap, a new connection gets one 503
problem+json answer with Retry-After and is closed; the open ones go on.

A request so malformed that aiohttp's parser refuses it (a broken request
line, an oversized or malformed header, broken chunking) never reaches the
application or its middleware; aiohttp answers it with plain text and logs it
at ERROR with a traceback. Our connections' handler answers it as every other
error, problem+json with the connection closed, and logs one bounded INFO
line: it is the client's doing, and anyone who can open a socket could
otherwise fill the logs and page an operator. The line and the answer say
what the parser found wrong, never what it quotes of the request: its
complaint quotes the offending line, which may be an Authorization header or
a request line with ?access_token= (no credential ever appears in a log line).

A request that says ``Expect: 100-continue`` is invited to send its body
(``100 Continue``) only once its headers have passed every check that they
alone decide: aiohttp's default invites it before routing, so a 10 GB body
announced to a missing route, with a wrong media type or past the size limit
would be invited too. Here the header is taken off the request before the
application sees it and recorded instead (parsing.EXPECTATION); the body
reader sends ``100 Continue`` when it is about to read.

aiohttp has a setting for none of these, so this site gives asyncio's
create_server a protocol factory of its own, and wraps the server's request
factory. It relies on attributes that aiohttp does not document: Server's
_loop, _kwargs and request_factory, TCPSite's address and socket options,
RequestHandler.handle_error (all stable through 3.x). tests/test_hostile.py
and tests/test_exhaustion.py fail if they change.
"""

from __future__ import annotations

import asyncio
import logging
import re
import resource
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast

from aiohttp import hdrs, web, web_protocol
from aiohttp.http import HttpVersion11
from multidict import CIMultiDict

from chatsvc.parsing import EXPECTATION
from chatsvc.problems import PROBLEM_JSON, RETRY_AFTER_SECONDS, problem_body, problem_response

log = logging.getLogger(__name__)

# Descriptors kept for everything but client connections: the pool, the
# events listener, the embedded PostgreSQL's pipes, logs, /docs assets.
RESERVED_DESCRIPTORS = 64
# How long a refused client has to read its answer and close before we do.
REFUSAL_LINGER_SECONDS = 5.0
# Most characters of a parser's complaint in a log line.
LOGGED_REASON_CHARS = 200
# Where a parser's complaint starts quoting the request: the repr of its bytes
# (llhttp's `desc: b'...' ^`, the pure-Python parser's `Bad status line '...'`).
_QUOTED = re.compile(r"""(?:^|[\s:]+)b?['"]""")


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


def without_quoted_request(complaint: str) -> str:
    """A parser's complaint up to where it quotes the request, which may hold a credential."""
    return _QUOTED.split(complaint, maxsplit=1)[0].strip() or "malformed"


def one_line(text: str, limit: int) -> str:
    """text on one line of printable ASCII, at most limit characters: safe to log whatever a client sent."""
    flat = " ".join(text.split()).encode("ascii", "backslashreplace").decode("ascii")
    return flat if len(flat) <= limit else f"{flat[: limit - 3]}..."


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
        if status >= 500:  # not a parser's verdict: unexpected, so aiohttp logs it with its traceback
            return super().handle_error(request, status, exc, message)
        reason = one_line(without_quoted_request(message or HTTPStatus(status).phrase), LOGGED_REASON_CHARS)
        log.info("refused a malformed request", extra={"status": status, "reason": reason})
        if request.writer.output_size > 0:  # as aiohttp's own: an answer has begun, the connection is broken
            raise ConnectionError("a response was already being sent")
        response = problem_response(status, f"The request is not valid HTTP: {reason}")
        response.force_close()
        return response


RequestFactory = Callable[..., web.BaseRequest]


def _recording_expectations(factory: RequestFactory) -> RequestFactory:
    """The server's request factory, moving an Expect header from the request's
    headers to parsing.EXPECTATION, so that aiohttp does not answer it before routing."""

    def make(message: Any, *args: Any) -> web.BaseRequest:
        request = factory(message, *args)
        if hdrs.EXPECT not in request.headers:
            return request
        expectation = ", ".join(request.headers.getall(hdrs.EXPECT)).strip().lower()
        headers = CIMultiDict(request.headers)
        del headers[hdrs.EXPECT]
        request = request.clone(headers=headers)
        # HTTP/1.0 has no 100 Continue: such a client's expectation is ignored (RFC 9110, 10.1.1).
        if request.version >= HttpVersion11 or expectation != "100-continue":
            request[EXPECTATION] = expectation
        return request

    return make


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
        on_refusal: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(runner, host, port, backlog=backlog, reuse_port=reuse_port)
        self.max_connections = max_connections
        self._refusal = _refusal(max_connections)
        self._on_refusal = on_refusal  # counts it (the metric chatsvc_connections_refused_total)

    def _protocol(self) -> asyncio.Protocol:
        server = self._runner.server
        assert server is not None
        if len(server.connections) >= self.max_connections:
            self._on_refusal()
            return _Refused(self._refusal)
        return _RequestHandler(server, loop=server._loop, **server._kwargs)

    async def start(self) -> None:
        # TCPSite.start, with our protocol factory in place of aiohttp's server.
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        server.request_factory = _recording_expectations(server.request_factory)
        self._server = await asyncio.get_running_loop().create_server(
            self._protocol,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
