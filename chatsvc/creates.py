"""How an unkeyed create (POST /chats) reaches the database.

Creates that arrive together share one statement (sql/chats/create_chat.sql,
batched by chatsvc/batching.py), and so one commit: each create is its own
key, compared by identity, as two equal creates make two chats. A create
waits for no lock (a new chat is nobody else's yet), so a batch never holds
up its members. A chat the database refuses (say, a constraint a DBA added)
must not fail the creates batched with it: the batch runs again one create
at a time, and only the refused one gets its error.

Keyed creates run sql/chats/create_chat_once.sql (chatsvc/idempotency.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from chatsvc import queries
from chatsvc.batching import Batched, refused_alone
from chatsvc.db import Pool
from chatsvc.queries import Created, Members


@dataclass(frozen=True, eq=False, slots=True)
class _Create:
    """One create in a batch; compared by identity, as two equal creates make two chats."""

    title: str
    members: Members


async def _store_batch(conn: asyncpg.Connection, creates: Sequence[_Create]) -> dict[_Create, Created]:
    created = await queries.create_chats(conn, [(create.title, create.members) for create in creates])
    return {creates[position]: chat for position, chat in created.items()}


CREATES = Batched(refused_alone(_store_batch))


async def create_chat(db: Pool, title: str, members: Members) -> Created:
    """The new chat, with its members."""
    chat = await CREATES.run(db, _Create(title, members))
    assert chat is not None  # the statement answers every create it stored
    return chat
