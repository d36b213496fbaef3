"""Reading the parts of a request: path ids, query integers, JSON bodies.

Each failure raises the contract's problem: 404 for an id that names nothing,
422 for a bad field, 400 for JSON that does not parse, 413 and 415 for bodies
too large or not JSON.
"""

from __future__ import annotations

import asyncio
import base64
import re
import struct
from typing import TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from chatsvc.models import USER_ID_PATTERN
from chatsvc.problems import (
    BadRequest,
    ExpectationFailed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    ValidationFailed,
)

MAX_BODY_BYTES = 65_536
BIGINT_MAX = 2**63 - 1
_TOO_LARGE = f"The request body is larger than {MAX_BODY_BYTES} bytes."
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() would accept "٣"
IDEMPOTENCY_KEY_PATTERN = "^[!-~]{1,255}$"  # 1 to 255 visible ASCII characters
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_USER_ID = re.compile(USER_ID_PATTERN)

Body = TypeVar("Body", bound=BaseModel)

# The request's Expect header, lowercased, which the listening site
# (chatsvc/listening.py) takes off the headers so that aiohttp does not answer
# it before routing. "100-continue": json_body invites the body once the
# headers have passed every check; anything else is 417.
EXPECTATION = web.RequestKey("expectation", str)
CONTINUE = "100-continue"
_INTERIM_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLIENT_LEFT = "The connection closed before the whole request body arrived."

# Plainer words than pydantic's for the errors clients meet most.
_MESSAGES = {
    "too_short": "must hold at least {min_length} character(s) after trimming surrounding whitespace",
    "too_long": "must hold at most {max_length} characters (code points) after trimming surrounding whitespace",
    "model_type": "must be a JSON object",
    "value_error": "{error}",
}


def _message(error: ErrorDetails) -> str:
    template = _MESSAGES.get(error["type"])
    return template.format(**error.get("ctx", {})) if template else error["msg"]


def _natural(raw: str) -> int | None:
    """A run of ASCII digits as an int (one past the bigint range at most); None for anything else.

    Capped before int() sees it: Python refuses to convert strings of more
    than 4300 digits, and nothing here needs more than 19.
    """
    if not _DIGITS.fullmatch(raw):
        return None
    digits = raw.lstrip("0") or "0"
    return BIGINT_MAX + 1 if len(digits) > 19 else min(int(digits), BIGINT_MAX + 1)


def path_id(request: web.Request, name: str) -> int:
    """A positive bigint from the path; anything else names no resource (404)."""
    value = _natural(request.match_info[name]) or 0
    if not 1 <= value <= BIGINT_MAX:
        raise NotFound("No such resource.")
    return value


def _single(values: list[str], loc: list[str]) -> str | None:
    """The one value of a query parameter or header; None when absent, 422 when repeated."""
    if len(values) > 1:
        raise ValidationFailed([{"loc": loc, "msg": "must be given at most once"}])
    return values[0] if values else None


def query_int(request: web.Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter within bounds; never clamped, 422 otherwise."""
    loc = ["query", name]
    raw = _single(request.query.getall(name, []), loc)
    if raw is None:
        return default
    value = _natural(raw)
    if value is None or not minimum <= value <= maximum:
        raise ValidationFailed([{"loc": loc, "msg": f"must be an integer from {minimum} to {maximum}"}])
    return value


def _cursor(values: list[str], loc: list[str]) -> int | None:
    """Any non-negative integer (one past every id means the same as the largest id); 422 otherwise."""
    raw = _single(values, loc)
    if raw is None:
        return None
    value = _natural(raw)
    if value is None:
        raise ValidationFailed([{"loc": loc, "msg": "must be a non-negative integer (an id)"}])
    return min(value, BIGINT_MAX)


def cursor(request: web.Request, name: str) -> int | None:
    """A paging cursor from the query: a message or chat id, existing or not."""
    return _cursor(request.query.getall(name, []), ["query", name])


# GET /chats/?order=activity's cursor: a chat's activity and id as two big-endian
# bigints, base64url without padding (the listing's SQL writes it): 22
# characters, the last carrying 2 bits, so one of 4. Any string of that shape
# is a cursor (ids beyond the bigint range read as negative: nothing below).
ACTIVITY_CURSOR_PATTERN = "^[A-Za-z0-9_-]{21}[AQgw]$"
_ACTIVITY_CURSOR = re.compile(ACTIVITY_CURSOR_PATTERN)


def activity_cursor(request: web.Request, name: str) -> tuple[int, int] | None:
    """The (activity, chat id) an activity page starts below; None when absent, 422 when malformed."""
    raw = _single(request.query.getall(name, []), ["query", name])
    if raw is None:
        return None
    if not _ACTIVITY_CURSOR.fullmatch(raw):
        raise ValidationFailed([{"loc": ["query", name], "msg": "must be a next_cursor of this listing"}])
    activity, chat_id = struct.unpack(">qq", base64.urlsafe_b64decode(raw + "=="))
    return activity, chat_id


def choice(request: web.Request, name: str, options: tuple[str, ...]) -> str:
    """One of options (the first when absent); 422 otherwise."""
    raw = _single(request.query.getall(name, []), ["query", name])
    if raw is None:
        return options[0]
    if raw not in options:
        raise ValidationFailed([{"loc": ["query", name], "msg": f"must be one of: {', '.join(options)}"}])
    return raw


# A word: a run of letters and digits in any script (the contract's Search).
_WORD = re.compile(r"[^\W_]+")
SEARCH_TEXT_MAX = 200
# The Unicode blocks of the scripts most text is written in: ASCII, Latin, Greek,
# Cyrillic, Armenian, Hebrew, Arabic, Devanagari, Thai, Georgian, kana, CJK, Hangul.
_SCRIPT_BLOCKS = ((0x30, 0x7A), (0xAA, 0x24F), (0x370, 0x3FF), (0x400, 0x52F), (0x531, 0x58F),
                  (0x5D0, 0x5EA), (0x620, 0x6FF), (0x900, 0x97F), (0xE01, 0xE5B), (0x10A0, 0x10FF),
                  (0x3041, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3))  # fmt: skip


def _word_character_pattern() -> str:
    """A regular expression, in the syntax JSON Schema and Python share, for one letter or
    digit of those blocks (as str.isalnum() has them): a string it finds a match in holds a
    word. The query's schema says so (SEARCH_TEXT_PATTERN); the API's own rule (_WORD) is
    every script's."""
    ranges: list[tuple[int, int]] = []
    for first, last in _SCRIPT_BLOCKS:
        for code in range(first, last + 1):
            if chr(code).isalnum():
                if ranges and ranges[-1][1] == code - 1:
                    ranges[-1] = (ranges[-1][0], code)
                else:
                    ranges.append((code, code))
    return "[" + "".join(f"\\u{a:04X}" if a == b else f"\\u{a:04X}-\\u{b:04X}" for a, b in ranges) + "]"


# A search query as the schema states it: a letter or digit somewhere, no NUL anywhere.
SEARCH_TEXT_PATTERN = f"^[^\\u0000]*{_word_character_pattern()}[^\\u0000]*$"


def search_text(request: web.Request, name: str) -> str:
    """A search query from the query string: 1 to SEARCH_TEXT_MAX characters holding at least one
    word, and no NUL; 422 otherwise (also when absent)."""
    loc = ["query", name]
    raw = _single(request.query.getall(name, []), loc)
    if raw is None:
        raise ValidationFailed([{"loc": loc, "msg": "is required"}])
    if not 1 <= len(raw) <= SEARCH_TEXT_MAX or "\x00" in raw:
        raise ValidationFailed(
            [{"loc": loc, "msg": f"must be 1 to {SEARCH_TEXT_MAX} characters, without NUL (U+0000)"}]
        )
    if not _WORD.search(raw):
        raise ValidationFailed([{"loc": loc, "msg": "must hold at least one word (letters or digits)"}])
    return raw


def user_cursor(request: web.Request, name: str) -> str | None:
    """A paging cursor from the query that is a user id, existing or not."""
    raw = _single(request.query.getall(name, []), ["query", name])
    if raw is not None and not _USER_ID.fullmatch(raw):
        raise ValidationFailed(
            [{"loc": ["query", name], "msg": "must be a user id (1 to 255 visible ASCII characters)"}]
        )
    return raw


def path_user(request: web.Request, name: str) -> str | None:
    """A user id from the path; None when it is not one (the route answers 404)."""
    raw = request.match_info[name]
    return raw if _USER_ID.fullmatch(raw) else None


def resume_point(request: web.Request, after: str = "after") -> int | None:
    """Where a resumed event stream picks up: Last-Event-ID, else ?after=, else None (live only).

    The header wins: EventSource sends it on reconnecting to the URL it first
    opened, whose ?after= is older. Both are checked: a malformed one is 422
    even when the other would decide.
    """
    query = cursor(request, after)
    header = request.headers.getall("Last-Event-ID", [])
    return _cursor(header, ["header", "Last-Event-ID"]) if header else query


def idempotency_key(request: web.Request) -> str | None:
    """The Idempotency-Key header: 1 to 255 visible ASCII characters, else 400."""
    values = request.headers.getall("Idempotency-Key", [])
    if not values:
        return None
    if len(values) > 1 or not _IDEMPOTENCY_KEY.fullmatch(values[0]):
        raise BadRequest(
            "The Idempotency-Key header must appear once and hold 1 to 255 visible ASCII characters."
        )
    return values[0]


def _is_json(content_type: str) -> bool:
    # aiohttp has already dropped parameters such as charset and lowercased it.
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def json_body(
    request: web.Request, model: type[Body], arrival_seconds: float, *, optional: bool = False
) -> Body:
    """The request body, parsed as strict JSON and validated by model; with optional,
    a request that has no body at all gets the model's defaults.

    A body that has not fully arrived within arrival_seconds is 408: a stalled
    client must not hold the request (and its connection) forever.
    """
    if optional and not request.body_exists:
        return model.model_validate({})
    if request.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        raise UnsupportedMediaType("Compressed request bodies are not accepted; send identity-encoded JSON.")
    if not _is_json(request.content_type):
        raise UnsupportedMediaType("The request body must be JSON, sent as Content-Type: application/json.")
    if (request.content_length or 0) > MAX_BODY_BYTES:  # refuse before reading it
        raise PayloadTooLarge(_TOO_LARGE)
    if request.get(EXPECTATION) == CONTINUE and not request.content.is_eof():
        await _invite_body(request)
    try:
        if request.content.is_eof():  # it came with the headers: nothing to wait for
            raw = await request.read()
        else:
            async with asyncio.timeout(arrival_seconds):
                raw = await request.read()  # stops past client_max_size, chunked or not
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(_TOO_LARGE) from None
    except TimeoutError:
        raise RequestTimeout(f"The request body did not arrive within {arrival_seconds:g} seconds.") from None
    except ConnectionResetError:  # the client went away mid-body; nobody reads this answer
        raise BadRequest(_CLIENT_LEFT) from None
    if not raw.strip():
        raise BadRequest("The request body is empty; a JSON object is required.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": ["body", *error["loc"]], "msg": _message(error)} for error in exc.errors()]
        raise ValidationFailed(errors) from None


def check_expectation(request: web.Request) -> None:
    """417 for an Expect header other than 100-continue, which is the only one HTTP defines."""
    expectation = request.get(EXPECTATION)
    if expectation is not None and expectation != CONTINUE:
        raise ExpectationFailed(f"The only expectation this service meets is Expect: {CONTINUE}.")


async def _invite_body(request: web.Request) -> None:
    """Sends 100 Continue: the headers passed, the client may send the body it announced."""
    try:
        await request.writer.write(_INTERIM_CONTINUE)
    except ConnectionResetError:  # it left meanwhile
        raise BadRequest(_CLIENT_LEFT) from None
    request.writer.output_size = 0  # the answer proper has not begun (as aiohttp's own expect handler)
