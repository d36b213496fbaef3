"""Idempotency-Keys: a keyed create that lost a race runs again, and expired keys are purged.

The keyed statements (sql/chats/create_chat_once.sql,
sql/messages/create_message_once.sql) store the key, its caller's (a user
id, or '' for the server), in the same statement as what it creates. Of two first requests racing with one key, one inserts the
key; the other's statement fails on the key's primary key and rolls back
whole, and run again it finds the winner's key and replays it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

import asyncpg
import orjson

from chatsvc import queries
from chatsvc.db import Pool
from chatsvc.queries import Created

# Idempotency-Keys are kept at least this long (the contract's promise).
KEY_RETENTION = timedelta(hours=24)
# Keys deleted per statement while purging: short transactions, no long locks.
PURGE_BATCH = 1000

P = ParamSpec("P")
C = TypeVar("C", bound=Created | None)


def _fingerprint(request: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()


# A digest of a request as the statement gets it (trimmed, with what the caller
# adds: a user's own membership, a user's own authorship), stored with its
# key: a retry with the same key must match it.


def chat_fingerprint(title: str, users: list[str], roles: list[str]) -> str:
    return _fingerprint({"title": title, "users": users, "roles": roles})


def message_fingerprint(text: str, author: str | None) -> str:
    return _fingerprint({"text": text, "author": author})


class KeyReusedWithAnotherBody(Exception):
    """A retry whose body (trimmed) differs from the first request's under the same key: 422."""


async def run_keyed(create: Callable[P, Awaitable[C]], *args: P.args, **kwargs: P.kwargs) -> C:
    """Runs a keyed create, again if a request racing with the same key won; what it
    created, or the first request's result replayed. KeyReusedWithAnotherBody when the
    key was first used with another body.

    Only a key purged in between could make it lose a second time, hence the bound.
    """
    result = await _past_a_racing_key(create, *args, **kwargs)
    if result is not None and not result.same_body:
        raise KeyReusedWithAnotherBody
    return result


async def _past_a_racing_key(create: Callable[P, Awaitable[C]], *args: P.args, **kwargs: P.kwargs) -> C:
    for _ in range(2):
        try:
            return await create(*args, **kwargs)
        except asyncpg.UniqueViolationError:
            continue
    return await create(*args, **kwargs)


async def purge_expired_keys(
    db: Pool, retention: timedelta = KEY_RETENTION, batch_size: int = PURGE_BATCH
) -> int:
    """Deletes the Idempotency-Keys older than retention, in short batches; how many went.

    Runs `chatsvc purge-keys`, and hourly in every `chatsvc serve`.
    """
    purged = 0
    for purge in (queries.purge_chat_idempotency_keys, queries.purge_message_idempotency_keys):
        while True:
            deleted = await purge(db, retention, batch_size)
            purged += deleted
            if deleted < batch_size:
                break
    return purged
