"""problem+json errors (RFC 9457), and problem_for(), which produces every one of them.

Handlers raise typed exceptions; this module alone decides what the client
sees. No stack trace, SQL or HTML ever reaches a response.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

from chatsvc.db import DatabaseUnavailable
from chatsvc.live.hub import TooManySubscribers

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "1"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Problem(Exception):
    """An error answer; subclasses fix the status."""

    status: int = 500

    def __init__(
        self,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


class BadRequest(Problem):
    status = 400


class NotFound(Problem):
    status = 404


class RequestTimeout(Problem):
    status = 408


class ExpectationFailed(Problem):
    status = 417


class PayloadTooLarge(Problem):
    status = 413


class UnsupportedMediaType(Problem):
    status = 415


class ValidationFailed(Problem):
    status = 422

    def __init__(self, errors: Sequence[Mapping[str, Any]]) -> None:
        fields = ", ".join(".".join(str(part) for part in error["loc"]) for error in errors)
        super().__init__(f"The request is not valid: {fields}.", errors=list(errors))


class ServiceUnavailable(Problem):
    status = 503

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": RETRY_AFTER_SECONDS})


def problem_body(status: int, detail: str, **extra: Any) -> bytes:
    """An RFC 9457 problem document, as JSON."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return orjson.dumps(body | extra)


def problem_response(
    status: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    return web.Response(
        body=problem_body(status, detail, **extra),
        status=status,
        headers={**(headers or {}), "Content-Type": PROBLEM_JSON},
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
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    return problem_response(500, "An unexpected error occurred.")
