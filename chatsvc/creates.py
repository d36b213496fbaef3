"""How an unkeyed create (POST /chats) reaches the database.

Creates that arrive together share one statement (sql/chats/create_chat.sql,
batched by chatsvc/batching.py), and so one commit: each create is its own
key, compared by identity, as two equal creates make two chats. A create
waits for no lock (a new chat is nobody else's yet), so a batch never holds
up its members. A chat the database refuses (say, a constraint a DBA added)
must not fail the creates batched with it: the batch runs again one create
at a time, and only the refused one gets its error. A user's creates are
charged to their write limit by the batch's own statement, as sends are
(chatsvc/sends.py): past it, TooManyWrites, and nothing is created.

Keyed creates run sql/chats/create_chat_once.sql (chatsvc/idempotency.py),
charged before it by chatsvc.limits.charge_write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from chatsvc import queries
from chatsvc.batching import Batched, refused_alone
from chatsvc.db import Pool
from chatsvc.limits import WriteLimit, refused_if_throttled
from chatsvc.queries import Created, Members


@dataclass(frozen=True, eq=False, slots=True)
class _Create:
    """One create in a batch; compared by identity, as two equal creates make two chats."""

    title: str
    members: Members
    user: str | None  # the caller; None: the server
    limit: WriteLimit  # the user's write limit, charged in the batch's statement


async def _store_batch(
    conn: asyncpg.Connection, creates: Sequence[_Create]
) -> dict[_Create, Created | Exception]:
    created = await queries.create_chats(
        conn,
        [(create.title, create.members) for create in creates],
        [create.user for create in creates],
        creates[0].limit.per_write,  # one limit per app: the same for every create
        creates[0].limit.burst,
    )
    return {
        creates[position]: refused_if_throttled(creates[position].limit, chat)
        for position, chat in created.items()
    }


CREATES = Batched(refused_alone(_store_batch))


async def create_chat(db: Pool, title: str, members: Members, user: str | None, limit: WriteLimit) -> Created:
    """The new chat, with its members. A user's create (user None: the server) is charged
    to their write limit in the same statement: TooManyWrites past it, nothing created."""
    chat = await CREATES.run(db, _Create(title, members, user, limit))
    assert chat is not None  # the statement answers every create it stored
    return chat
