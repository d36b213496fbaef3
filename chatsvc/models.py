"""Request bodies and the resources the API answers with.

Request models validate strictly (no coercion: 123 is not a title) and ignore
unknown fields. Responses are rendered by PostgreSQL in the SQL files; the
response models here describe them for readers and tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints


def _strip(value: Any) -> Any:
    # str.strip(), not pydantic's str_strip_whitespace: the contract defines
    # surrounding whitespace as what Python strips (it includes U+001C..U+001F).
    return value.strip() if isinstance(value, str) else value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


TITLE_MAX = 200
TEXT_MAX = 5000

# Stripped first, then 1 to N code points, and no NUL.
Title = Annotated[
    str,
    BeforeValidator(_strip),
    StringConstraints(min_length=1, max_length=TITLE_MAX),
    AfterValidator(_no_nul),
]
Text = Annotated[
    str,
    BeforeValidator(_strip),
    StringConstraints(min_length=1, max_length=TEXT_MAX),
    AfterValidator(_no_nul),
]


class RequestBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class ChatCreate(RequestBody):
    title: Title


class MessageCreate(RequestBody):
    text: Text


class Message(BaseModel):
    id: int
    chat_id: int
    text: str
    created_at: datetime


class Chat(BaseModel):
    id: int
    title: str
    created_at: datetime


class ChatWithMessages(Chat):
    messages: list[Message]
