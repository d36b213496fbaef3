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


def trimmed_text(max_length: int) -> Any:
    """A string that is stripped, then must hold 1 to max_length code points and no NUL."""
    return Annotated[
        str,
        BeforeValidator(_strip),
        StringConstraints(min_length=1, max_length=max_length),
        AfterValidator(_no_nul),
    ]


TITLE_MAX = 200
TEXT_MAX = 5000
Title = trimmed_text(TITLE_MAX)
Text = trimmed_text(TEXT_MAX)


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
