"""How a send (POST /chats/{chat_id}/messages) reaches the database.

Unkeyed sends that arrive together share one statement
(sql/messages/create_messages.sql, batched by chatsvc/batching.py): each
send is its own key, compared by identity, as two equal sends store two
messages. A batch never waits for a lock, or it would hold up everyone in
it: a send whose chat another transaction holds is skipped by the batch and
goes alone, on a connection of its own, with sql/messages/create_message.sql,
which waits. A user's sends are charged to their write limit by the batch's
own statement (chatsvc/limits.py says why), so a send that goes alone was
charged already. A message the database refuses (say, a constraint a DBA added)
must not fail the sends batched with it: the batch runs again one send at a
time, and only the refused one gets its error.

Keyed sends run sql/messages/create_message_once.sql, again if a request
racing with the same key won (chatsvc/idempotency.py).

A send to a chat that some process follows commits without waiting for its
WAL flush (the NOTIFY lock is then held for microseconds, not an fsync), and
chatsvc.queries flushes it with sql/events/flush_commits.sql before it
returns: whatever the path, a send is durable when it is answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from chatsvc import queries
from chatsvc.batching import Batched, refused_alone
from chatsvc.db import Pool
from chatsvc.idempotency import message_fingerprint, run_keyed
from chatsvc.limits import WriteLimit, refused_if_throttled
from chatsvc.permissions import Action, roles_allowed
from chatsvc.queries import Created, Throttled

_SENDERS = roles_allowed(Action.SEND)


@dataclass(frozen=True, eq=False, slots=True)
class _Send:
    """One send in a batch; compared by identity, as two equal sends store two messages."""

    chat_id: int
    text: str
    author: str | None
    user: str | None  # the caller; None: the server
    limit: WriteLimit  # the user's write limit, charged in the batch's statement


class _ChatBusy(Exception):
    """Another transaction held the send's chat: the batch skipped it, and it goes alone."""


async def _store_batch(conn: asyncpg.Connection, sends: Sequence[_Send]) -> dict[_Send, Created | Exception]:
    stored = await queries.create_messages(
        conn,
        [send.chat_id for send in sends],
        [send.text for send in sends],
        [send.author for send in sends],
        [send.user for send in sends],
        _SENDERS,
        sends[0].limit.per_write,  # one limit per app: the same for every send
        sends[0].limit.burst,
    )
    return {sends[position]: _outcome(sends[position], result) for position, result in stored.items()}


def _outcome(send: _Send, result: Created | Throttled | None) -> Created | Exception:
    return _ChatBusy() if result is None else refused_if_throttled(send.limit, result)


SENDS = Batched(refused_alone(_store_batch))


async def send_message(
    db: Pool, chat_id: int, text: str, author: str | None, user: str | None, limit: WriteLimit
) -> Created | None:
    """The stored message, or None when the chat does not exist (or was just deleted) or
    the caller (user None: the server) may not send there. A user's send is charged to
    their write limit in the same statement: TooManyWrites past it, nothing stored."""
    try:
        return await SENDS.run(db, _Send(chat_id, text, author, user, limit))
    except _ChatBusy:
        return await queries.create_message(db, chat_id, text, author, user, _SENDERS)


async def send_message_once(
    db: Pool, chat_id: int, text: str, author: str | None, user: str | None, key: str
) -> Created | None:
    """The message this caller's Idempotency-Key stored in the chat, storing it on the
    key's first use; None when the chat does not exist or the caller may not send there."""
    digest = message_fingerprint(text, author)
    return await run_keyed(
        queries.create_message_once, db, chat_id, text, author, user, _SENDERS, key, digest
    )
