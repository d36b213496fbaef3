"""How an edit (PATCH /chats/{chat_id}/messages/{message_id}) reaches the database.

Edits that arrive together share one statement (sql/messages/edit_messages.sql,
batched by chatsvc/batching.py), and so one commit: each edit is its own key,
compared by identity, as two edits are two writes. As for sends
(chatsvc/sends.py), the batch's statement charges each user's edits to their
write limit, so an edit pays no round trip of its own for its charge, and it
never waits for a lock: an edit whose chat another transaction holds is
skipped by the batch and goes alone, with sql/messages/edit_message.sql, which
waits (it was charged already). A message is edited at most once per batch,
so that every edit is logged and announced with the text it set: a second
edit of it in the same batch is charged and goes alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from chatsvc import limits, queries
from chatsvc.batching import Batched, refused_alone
from chatsvc.db import Pool
from chatsvc.limits import WriteLimit, refused_if_throttled
from chatsvc.permissions import Action, own_roles_allowed, roles_allowed
from chatsvc.queries import MessageRefused

_ANY = roles_allowed(Action.EDIT_MESSAGE)
_OWN = own_roles_allowed(Action.EDIT_MESSAGE)


@dataclass(frozen=True, eq=False, slots=True)
class _Edit:
    """One edit in a batch; compared by identity, as two equal edits are two writes."""

    chat_id: int
    message_id: int
    text: str
    user: str | None  # the caller; None: the server
    limit: WriteLimit  # the user's write limit, charged in the batch's statement


class _ChatBusy(Exception):
    """Another transaction held the edit's chat: the batch skipped it, and it goes alone."""


class _EditedInBatch(Exception):
    """The batch edits the same message already: this edit goes alone, charged there."""


async def _edit_batch(
    conn: asyncpg.Connection, edits: Sequence[_Edit]
) -> dict[_Edit, str | MessageRefused | Exception]:
    first: dict[tuple[int, int], _Edit] = {}
    for edit in edits:
        first.setdefault((edit.chat_id, edit.message_id), edit)
    batch = list(first.values())
    done = await queries.edit_messages(
        conn,
        [edit.chat_id for edit in batch],
        [edit.message_id for edit in batch],
        [edit.text for edit in batch],
        [edit.user for edit in batch],
        _ANY,
        _OWN,
        batch[0].limit.per_write,  # one limit per app: the same for every edit
        batch[0].limit.burst,
    )
    results: dict[_Edit, str | MessageRefused | Exception] = {edit: _EditedInBatch() for edit in edits}
    for position, result in done.items():
        edit = batch[position]
        results[edit] = _ChatBusy() if result is None else refused_if_throttled(edit.limit, result)
    return results


EDITS: Batched[_Edit, str | MessageRefused] = Batched(refused_alone(_edit_batch))


async def edit_message(
    db: Pool, chat_id: int, message_id: int, text: str, user: str | None, limit: WriteLimit
) -> str | MessageRefused:
    """The edited message as JSON; MessageRefused when nothing was edited (the caller may
    not edit it, or the chat does not hold it). A user's edit is charged to their write
    limit in the same statement: TooManyWrites past it, nothing edited."""
    try:
        edited = await EDITS.run(db, _Edit(chat_id, message_id, text, user, limit))
    except _EditedInBatch:
        await limits.charge_write(db, limit, user)
    except _ChatBusy:
        pass
    else:
        assert edited is not None  # the statement answers every edit of its batch
        return edited
    return await queries.edit_message(db, chat_id, message_id, text, user, _ANY, _OWN)
