"""Every query parameter and header a route reads, declared once: the same
declaration parses the request (chatsvc/parsing.py does the work) and
describes it in /openapi.json (chatsvc/openapi.py), so the two cannot drift."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from chatsvc import parsing
from chatsvc.models import USER_ID_PATTERN


@dataclass(frozen=True, slots=True)
class Limit:
    """?limit=: an integer from minimum to maximum, default when absent; never clamped (422)."""

    default: int
    minimum: int = 1
    maximum: int = 100
    name: str = "limit"

    def parse(self, request: web.Request) -> int:
        return parsing.query_int(
            request, self.name, default=self.default, minimum=self.minimum, maximum=self.maximum
        )

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "schema": {
                "type": "integer",
                "minimum": self.minimum,
                "maximum": self.maximum,
                "default": self.default,
            },
        }


@dataclass(frozen=True, slots=True)
class Cursor:
    """A paging or resume cursor: any non-negative integer (an id, existing or not); 422 otherwise."""

    name: str
    description: str

    def parse(self, request: web.Request) -> int | None:
        return parsing.cursor(request, self.name)

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "description": self.description,
            "schema": {"type": "integer", "minimum": 0},
        }


@dataclass(frozen=True, slots=True)
class UserCursor:
    """A paging cursor that is a user id (existing or not); 422 otherwise."""

    name: str
    description: str

    def parse(self, request: web.Request) -> str | None:
        return parsing.user_cursor(request, self.name)

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "description": self.description,
            "schema": {"type": "string", "pattern": USER_ID_PATTERN},
        }


@dataclass(frozen=True, slots=True)
class OpaqueCursor:
    """A cursor a listing handed out (next_cursor), read back as (activity, chat id); 422 otherwise."""

    name: str
    description: str

    def parse(self, request: web.Request) -> tuple[int, int] | None:
        return parsing.activity_cursor(request, self.name)

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "description": self.description,
            "schema": {"type": "string", "pattern": parsing.ACTIVITY_CURSOR_PATTERN},
        }


@dataclass(frozen=True, slots=True)
class Choice:
    """One of a few words; the first when absent; 422 otherwise."""

    name: str
    options: tuple[str, ...]
    description: str

    def parse(self, request: web.Request) -> str:
        return parsing.choice(request, self.name, self.options)

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "description": self.description,
            "schema": {"type": "string", "enum": list(self.options), "default": self.options[0]},
        }


@dataclass(frozen=True, slots=True)
class SearchText:
    """?q=: what to search for, required; 422 otherwise."""

    name: str
    description: str

    def parse(self, request: web.Request) -> str:
        return parsing.search_text(request, self.name)

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "required": True,
            "description": self.description,
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": parsing.SEARCH_TEXT_MAX,
                "pattern": parsing.SEARCH_TEXT_PATTERN,
            },
        }


CHATS_LIMIT = Limit(default=20)
CHATS_ORDER = Choice(
    "order",
    ("created", "activity"),
    "`created`: newest chats first, paged with `before`. `activity`: the chats with the latest"
    " message first (a chat without messages by its creation), paged with `cursor`.",
)
CHATS_CURSOR = OpaqueCursor("cursor", "With `order=activity`: the `next_cursor` of the page before.")
CHATS_BEFORE = Cursor("before", "Chats with ids below this one (a chat id, existing or not).")
CHAT_MESSAGES_LIMIT = Limit(default=20)
HISTORY_LIMIT = Limit(default=50)
HISTORY_BEFORE = Cursor("before", "The newest messages older than this id (not with `after`).")
HISTORY_AFTER = Cursor(
    "after", "The oldest messages newer than this id; 0 starts at the beginning (not with `before`)."
)
EVENTS_AFTER = Cursor("after", "Resume after this event id (a message's id, or an edit's or deletion's).")
MEMBERS_LIMIT = Limit(default=100)
SEARCH_Q = SearchText(
    "q",
    "The words to find, all of them, each also as the start of a longer word, case-insensitive"
    " (ё as е). Words are runs of letters and digits in any script; the rest separates them.",  # noqa: RUF001
)
SEARCH_CHAT = Cursor("chat_id", "Search this chat only (one the caller may read; else 404).")
SEARCH_BEFORE = Cursor("before", "Messages with ids below this one: the `next_before` of the page before.")
SEARCH_LIMIT = Limit(default=20)
MEMBERS_AFTER = UserCursor(
    "after", "Members whose user id follows this one, bytewise (a user id, existing or not)."
)

IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes retries safe: a retry with the same key and body replays the first answer"
    " (with `Idempotent-Replayed: true`) and stores nothing. Kept at least 24 hours. Keys belong to"
    " their caller: chat keys per caller, message keys per caller and chat.",
    "schema": {"type": "string", "pattern": parsing.IDEMPOTENCY_KEY_PATTERN, "examples": ["3f1c9a52-send-1"]},
}
LAST_EVENT_ID: dict[str, Any] = {
    "name": "Last-Event-ID",
    "in": "header",
    "description": "Resume after this event id (wins over `after`).",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
