"""Reads of a chat with its latest messages (GET /chats/{chat_id}) that arrive together share one statement.

Batched (chatsvc/batching.py) with the same reads that arrive while the
previous batch runs: sql/chats/get_chats_with_latest_messages.sql answers
all of them in one round trip, and equal reads (same chat, limit and
caller) share one answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from chatsvc import queries
from chatsvc.batching import Batched
from chatsvc.db import Database
from chatsvc.permissions import Action, roles_allowed

_READERS = roles_allowed(Action.READ)


async def _read_batch(
    conn: asyncpg.Connection, wanted: Sequence[tuple[int, int, str | None]]
) -> dict[tuple[int, int, str | None], str | None]:
    return await queries.get_chats_with_latest_messages(conn, wanted, _READERS)


CHAT_READS = Batched(_read_batch)


async def read_chat(db: Database, chat_id: int, message_limit: int, user: str | None) -> str | None:
    """The chat with its latest messages as JSON, or None when there is no such chat or
    the caller (user None: the server) may not read it."""
    return await CHAT_READS.run(db, (chat_id, message_limit, user))
