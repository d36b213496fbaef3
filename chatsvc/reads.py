"""Reads that arrive together share one statement: a chat with its latest messages
(GET /chats/{chat_id}), history pages both ways (GET /chats/{chat_id}/messages/),
one message (GET /chats/{chat_id}/messages/{message_id}), pages of members
(GET /chats/{chat_id}/members) and the listings (GET /chats/, by id and by activity).

Each is batched (chatsvc/batching.py) with the same reads that arrive while
the previous batch of its statement runs: one sql/ file answers all of them
in one round trip (queries.read_each), and equal reads (same chat, page and
caller) share one answer. Every read of a batch is checked for its own
caller: the statement decides per wanted key whether that caller may read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from chatsvc import queries
from chatsvc.batching import Batched
from chatsvc.db import Database
from chatsvc.permissions import Action, roles_allowed

_READERS = roles_allowed(Action.READ)


def _batched(statement: str, *shared: Any) -> Batched[tuple[Any, ...], str | None]:
    async def execute(
        conn: asyncpg.Connection, wanted: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], str | None]:
        return await queries.read_each(conn, statement, wanted, *shared)

    return Batched(execute)


CHAT_READS = _batched(queries.GET_CHATS_WITH_LATEST_MESSAGES, _READERS)
PAGES_BEFORE = _batched(queries.LIST_MESSAGES_BEFORE, _READERS)
PAGES_AFTER = _batched(queries.LIST_MESSAGES_AFTER, _READERS)
MESSAGE_READS = _batched(queries.GET_MESSAGE, _READERS)
MEMBER_PAGES = _batched(queries.LIST_MEMBERS, _READERS)
# A user's own chats, by id and by activity: no role is asked. The server's: every chat.
USER_LISTINGS = _batched(queries.LIST_CHATS_OF_USER)
USER_LISTINGS_BY_ACTIVITY = _batched(queries.LIST_CHATS_OF_USER_BY_ACTIVITY)
SERVER_LISTINGS = _batched(queries.LIST_CHATS)
SERVER_LISTINGS_BY_ACTIVITY = _batched(queries.LIST_CHATS_BY_ACTIVITY)


async def read_chat(db: Database, chat_id: int, message_limit: int, user: str | None) -> str | None:
    """The chat with its latest messages as JSON, or None when there is no such chat or
    the caller (user None: the server) may not read it."""
    return await CHAT_READS.run(db, (chat_id, message_limit, user))


async def read_history_before(
    db: Database, chat_id: int, before: int | None, limit: int, user: str | None
) -> str | None:
    """A page of history going back from before (or from the newest message), as JSON
    {messages, has_more}; None when there is no such chat or the caller may not read it."""
    return await PAGES_BEFORE.run(db, (chat_id, queries.NEWEST if before is None else before, limit, user))


async def read_history_after(
    db: Database, chat_id: int, after: int, limit: int, user: str | None
) -> str | None:
    """A page of history going forward from after, as JSON {messages, has_more}; None
    when there is no such chat or the caller may not read it."""
    return await PAGES_AFTER.run(db, (chat_id, after, limit, user))


async def read_message(db: Database, chat_id: int, message_id: int, user: str | None) -> str | None:
    """The message as JSON; None when the chat does not exist, holds no such message, or
    the caller may not read it."""
    return await MESSAGE_READS.run(db, (chat_id, message_id, user))


async def read_members(db: Database, chat_id: int, after: str, limit: int, user: str | None) -> str | None:
    """A page of the chat's members by user id, as JSON {members, next_after}; None when
    there is no such chat or the caller may not read it."""
    return await MEMBER_PAGES.run(db, (chat_id, after, limit, user))


async def read_listing(db: Database, before: int | None, limit: int, user: str | None) -> str:
    """A page of the user's chats (user None: the server's, every chat), newest first,
    as JSON {chats, next_before}."""
    start = queries.NEWEST if before is None else before
    if user is None:
        listing = await SERVER_LISTINGS.run(db, (start, limit))
    else:
        listing = await USER_LISTINGS.run(db, (start, limit, user))
    assert listing is not None  # a listing always answers, if only with no chats
    return listing


async def read_listing_by_activity(
    db: Database, cursor: queries.ActivityCursor, limit: int, user: str | None
) -> str:
    """A page of the user's chats (user None: the server's, every chat), most recently
    active first, as JSON {chats, next_cursor}."""
    if user is None:
        listing = await SERVER_LISTINGS_BY_ACTIVITY.run(db, (cursor.activity, cursor.chat_id, limit))
    else:
        listing = await USER_LISTINGS_BY_ACTIVITY.run(db, (cursor.activity, cursor.chat_id, limit, user))
    assert listing is not None  # a listing always answers, if only with no chats
    return listing
