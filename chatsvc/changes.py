"""How an edit or a deletion of a message (PATCH and DELETE /chats/{chat_id}/messages/{message_id})
reaches the database.

Edits that arrive together share one statement (sql/messages/edit_messages.sql,
batched by chatsvc/batching.py), and so one commit; so do deletions
(sql/messages/delete_messages.sql). Each change is its own key, compared by
identity, as two edits are two writes. As for sends (chatsvc/sends.py), the
batch's statement charges each user's changes to their write limit, so a
change pays no round trip of its own for its charge, and it never waits for a
lock: a change whose chat another transaction holds is skipped by the batch
and goes alone, with sql/messages/edit_message.sql or delete_message.sql,
which wait (it was charged already). A message is changed at most once per
batch, so that every edit is logged and announced with the text it set, and a
second deletion of a message finds it gone: a second change of it in the same
batch is charged and goes alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import asyncpg

from chatsvc import limits, queries
from chatsvc.batching import Batched, Execute, refused_alone
from chatsvc.db import Pool
from chatsvc.limits import WriteLimit, refused_if_throttled
from chatsvc.permissions import Action, own_roles_allowed, roles_allowed
from chatsvc.queries import MessageRefused, Throttled

_EDIT_ANY = roles_allowed(Action.EDIT_MESSAGE)
_EDIT_OWN = own_roles_allowed(Action.EDIT_MESSAGE)
_DELETE_ANY = roles_allowed(Action.DELETE_MESSAGE)
_DELETE_OWN = own_roles_allowed(Action.DELETE_MESSAGE)

V = TypeVar("V")


@dataclass(frozen=True, eq=False, slots=True)
class _Change:
    """One edit or deletion in a batch; compared by identity, as two equal changes are two writes."""

    chat_id: int
    message_id: int
    text: str  # an edit's new text; "" for a deletion
    user: str | None  # the caller; None: the server
    limit: WriteLimit  # the user's write limit, charged in the batch's statement


class _ChatBusy(Exception):
    """Another transaction held the change's chat: the batch skipped it, and it goes alone."""


class _ChangedInBatch(Exception):
    """The batch changes the same message already: this change goes alone, charged there."""


# The statement of a batch of changes, each message at most once: by position, the change's
# outcome, Throttled, or None for a change whose chat was busy.
_Statement = Callable[[asyncpg.Connection, Sequence[_Change]], Awaitable[Mapping[int, V | Throttled | None]]]


def _once_per_message(statement: _Statement[V]) -> Execute[_Change, V]:
    """statement for a batch, each message's first change in it only: a later one is
    _ChangedInBatch, one whose chat was busy _ChatBusy."""

    async def each_message_once(
        conn: asyncpg.Connection, changes: Sequence[_Change]
    ) -> dict[_Change, V | Exception]:
        first: dict[tuple[int, int], _Change] = {}
        for change in changes:
            first.setdefault((change.chat_id, change.message_id), change)
        batch = list(first.values())
        done = await statement(conn, batch)
        results: dict[_Change, V | Exception] = {change: _ChangedInBatch() for change in changes}
        for position, result in done.items():
            change = batch[position]
            results[change] = _ChatBusy() if result is None else refused_if_throttled(change.limit, result)
        return results

    return refused_alone(each_message_once)


async def _edit_batch(
    conn: asyncpg.Connection, edits: Sequence[_Change]
) -> Mapping[int, str | MessageRefused | Throttled | None]:
    return await queries.edit_messages(
        conn,
        [edit.chat_id for edit in edits],
        [edit.message_id for edit in edits],
        [edit.text for edit in edits],
        [edit.user for edit in edits],
        _EDIT_ANY,
        _EDIT_OWN,
        edits[0].limit.per_write,  # one limit per app: the same for every change
        edits[0].limit.burst,
    )


async def _delete_batch(
    conn: asyncpg.Connection, deletions: Sequence[_Change]
) -> Mapping[int, Literal[True] | MessageRefused | Throttled | None]:
    return await queries.delete_messages(
        conn,
        [deletion.chat_id for deletion in deletions],
        [deletion.message_id for deletion in deletions],
        [deletion.user for deletion in deletions],
        _DELETE_ANY,
        _DELETE_OWN,
        deletions[0].limit.per_write,
        deletions[0].limit.burst,
    )


EDITS: Batched[_Change, str | MessageRefused] = Batched(_once_per_message(_edit_batch))
DELETES: Batched[_Change, Literal[True] | MessageRefused] = Batched(_once_per_message(_delete_batch))


async def _batched(batched: Batched[_Change, V], db: Pool, change: _Change) -> V | None:
    """The change's outcome from its batch; None when it must go alone (charged already)."""
    try:
        done = await batched.run(db, change)
    except _ChangedInBatch:
        await limits.charge_write(db, change.limit, change.user)
    except _ChatBusy:
        pass
    else:
        assert done is not None  # the statement answers every change of its batch
        return done
    return None


async def edit_message(
    db: Pool, chat_id: int, message_id: int, text: str, user: str | None, limit: WriteLimit
) -> str | MessageRefused:
    """The edited message as JSON; MessageRefused when nothing was edited (the caller may
    not edit it, or the chat does not hold it). A user's edit is charged to their write
    limit in the same statement: TooManyWrites past it, nothing edited."""
    edited = await _batched(EDITS, db, _Change(chat_id, message_id, text, user, limit))
    if edited is not None:
        return edited
    return await queries.edit_message(db, chat_id, message_id, text, user, _EDIT_ANY, _EDIT_OWN)


async def delete_message(
    db: Pool, chat_id: int, message_id: int, user: str | None, limit: WriteLimit
) -> MessageRefused | None:
    """None when the message was deleted; MessageRefused when it was not (the caller may
    not delete it, or the chat does not hold it). A user's deletion is charged to their
    write limit in the same statement: TooManyWrites past it, nothing deleted."""
    deleted = await _batched(DELETES, db, _Change(chat_id, message_id, "", user, limit))
    if deleted is None:
        return await queries.delete_message(db, chat_id, message_id, user, _DELETE_ANY, _DELETE_OWN)
    return None if deleted is True else deleted
