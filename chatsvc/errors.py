"""problem+json errors (RFC 9457), and problem_for(), which produces every one of them.

Handlers raise typed exceptions; this module alone decides what the client
sees. No stack trace, SQL or HTML ever reaches a response.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

import asyncpg
from aiohttp import web

from chatsvc.db import DatabaseUnavailable
from chatsvc.idempotency import KeyReusedWithAnotherBody
from chatsvc.keys import LIFECYCLE
from chatsvc.live.hub import TooManySubscribers
from chatsvc.problems import (
    NotFound,
    Problem,
    ServiceUnavailable,
    ValidationFailed,
    problem_response,
)
from chatsvc.queries import KeyedResourceGone

log = logging.getLogger(__name__)

# A prepared statement that is not on the server connection running it, or is
# there twice: what asyncpg's statement cache meets behind a transaction pooler.
PREPARED_ELSEWHERE = (asyncpg.InvalidSQLStatementNameError, asyncpg.DuplicatePreparedStatementError)
PREPARED_ELSEWHERE_HINT = (
    "a prepared statement was not where asyncpg left it: behind a transaction pooler"
    " (PgBouncer's pool_mode = transaction) set CHATSVC_STATEMENT_CACHE_SIZE=0"
)


def _answer(problem: Problem) -> web.Response:
    return problem_response(problem.status, problem.detail, problem.headers, **problem.extra)


# Headers of aiohttp's own errors worth keeping (405 must say what is allowed).
_KEPT_HEADERS = ("Allow",)

_DETAILS = {
    404: "No such resource.",
    405: "This method is not allowed here; the Allow header lists the ones that are.",
}


def problem_for(request: web.Request, exc: Exception) -> web.Response:
    """The answer to an exception a handler raised; re-raises aiohttp's redirects (below 400)."""
    if isinstance(exc, Problem):
        return _answer(exc)
    if isinstance(exc, KeyReusedWithAnotherBody):
        return _answer(
            ValidationFailed(
                [
                    {
                        "loc": ["header", "Idempotency-Key"],
                        "msg": "was first used with a different request body",
                    }
                ]
            )
        )
    if isinstance(exc, KeyedResourceGone):
        done = "created" if exc.resource == "chat" else "stored"
        return _answer(NotFound(f"The {exc.resource} this Idempotency-Key {done} has been deleted since."))
    if isinstance(exc, TooManySubscribers):
        return _answer(
            ServiceUnavailable("This process serves as many event streams as it may; retry shortly.")
        )
    if isinstance(exc, DatabaseUnavailable):
        # One line, no traceback: under overload every waiting request ends
        # here at once, and formatting hundreds of tracebacks would add to it.
        log.warning("database unavailable for %s %s (%s)", request.method, request.path, exc)
        return _answer(ServiceUnavailable("The database is unavailable; retry shortly."))
    if isinstance(exc, web.HTTPException):  # aiohttp's own: no route, wrong method
        if exc.status < 400:
            raise exc
        headers = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
        detail = _DETAILS.get(exc.status, HTTPStatus(exc.status).description)
        return problem_response(exc.status, detail, headers)
    if isinstance(exc, PREPARED_ELSEWHERE):  # nothing ran: retrying may reach another connection
        lifecycle = request.app[LIFECYCLE]
        if not lifecycle.statement_cache_hinted:
            lifecycle.statement_cache_hinted = True
            log.error("%s (%s %s)", PREPARED_ELSEWHERE_HINT, request.method, request.path)
        return _answer(ServiceUnavailable("The database is unavailable; retry shortly."))
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    return problem_response(500, "An unexpected error occurred.")
