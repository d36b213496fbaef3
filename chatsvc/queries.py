"""One typed async function per SQL file in sql/. No HTTP in here.

Reads return the JSON PostgreSQL rendered, ready to send as a response body.
"""

from __future__ import annotations

from typing import NamedTuple

from chatsvc.db import Database
from chatsvc.sql import statement

CREATE_CHAT = statement("create_chat", ":one")
GET_CHAT_WITH_LATEST_MESSAGES = statement("get_chat_with_latest_messages", ":val")
DELETE_CHAT = statement("delete_chat", ":val")
CREATE_MESSAGE = statement("create_message", ":one")


class Created(NamedTuple):
    id: int
    json: str  # the created resource as the API renders it


async def create_chat(db: Database, title: str) -> Created:
    async with db.connection() as conn:
        row = await conn.fetchrow(CREATE_CHAT, title)
    return Created(row["id"], row["chat"])


async def get_chat_with_latest_messages(db: Database, chat_id: int, message_limit: int) -> str | None:
    """The chat with its latest messages as JSON, or None when there is no such chat."""
    async with db.connection() as conn:
        chat_json: str | None = await conn.fetchval(GET_CHAT_WITH_LATEST_MESSAGES, chat_id, message_limit)
    return chat_json


async def delete_chat(db: Database, chat_id: int) -> bool:
    """Whether the chat existed (its messages went with it)."""
    async with db.connection() as conn:
        deleted_id = await conn.fetchval(DELETE_CHAT, chat_id)
    return deleted_id is not None


async def create_message(db: Database, chat_id: int, text: str) -> Created | None:
    """The stored message, or None when the chat does not exist (or was just deleted)."""
    async with db.connection() as conn:
        row = await conn.fetchrow(CREATE_MESSAGE, chat_id, text)
    return None if row is None else Created(row["id"], row["message"])
