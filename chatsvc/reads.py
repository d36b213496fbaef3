"""Reads of a chat with its latest messages (GET /chats/{chat_id}) that arrive together share one statement.

Batched (chatsvc/batching.py) with the same reads that arrive while the
previous batch runs: sql/chats/get_chats_with_latest_messages.sql answers
all of them in one round trip, and equal reads share one answer.
"""

from __future__ import annotations

from chatsvc import queries
from chatsvc.batching import Batched
from chatsvc.db import Pool

CHAT_READS = Batched(queries.get_chats_with_latest_messages)


async def read_chat(db: Pool, chat_id: int, message_limit: int) -> str | None:
    """The chat with its latest messages as JSON, or None when there is no such chat."""
    return await CHAT_READS.run(db, (chat_id, message_limit))
