"""problem+json (RFC 9457): the problem classes and their rendering.

A leaf: it imports nothing of the service, so that request parsing, the
listening site and the OpenAPI document can raise and render problems without
pulling in the database. chatsvc/errors.py's problem_for is the one place
other exceptions become problems.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

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
