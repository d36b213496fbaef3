"""The per-user write limit (contract v3, Limits): one token bucket per user, kept in PostgreSQL.

Every write by a user (each request but GET and HEAD to a protected route) is
charged before its handler runs, by chatsvc/app.py's authenticated(): a
statement (sql/limits/take_user_writes.sql) refills the user's bucket by the
time elapsed, takes a token if there is one, and otherwise takes nothing and
says how long until one is there; the write is then refused with 429 before
anything of it runs, so it stores nothing. The buckets are rows of the
database (migrations/0006.limit-user-writes.sql), so every service process
sharing it enforces one limit, on the database's clock. The server is not
limited, nor is anyone with CHATSVC_AUTH=off (every caller is the server then).

Charges that arrive together share one statement (chatsvc/batching.py): a
charge per write was one more round trip for every write, and cost
post_message a quarter of its throughput (bench/run.py, 0.74 of the same sends
with CHATSVC_AUTH=off). Sends, the hot path, go further: their batch's own
statement charges them (sql/messages/create_messages.sql does the same
upsert), so a send pays no round trip for its charge at all (0.99 of auth off,
bench/compare.py . . --before-auth off), and so do edits, message deletions and
unkeyed creates (sql/messages/edit_messages.sql, delete_messages.sql,
sql/chats/create_chat.sql); other writes are
charged here, before their handler runs. The statement holds each charged user's row lock for its
own duration only, taken in user id order: writes of one user are charged
one statement at a time, and statements never deadlock.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import asyncpg

from chatsvc import queries
from chatsvc.batching import Batched
from chatsvc.db import Pool
from chatsvc.problems import Problem
from chatsvc.queries import Throttled

# Buckets examined per statement while purging: short statements, few locks.
PURGE_BATCH = 1000


@dataclass(frozen=True, eq=False, slots=True)
class _Charge:
    """One write to charge; compared by identity, as two writes of a user are two charges."""

    user: str


class WriteLimit:
    """Writes per second a user may make sustained (rate), and at once (burst)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        # What one write costs: the time the bucket takes to refill one token.
        self.per_write = timedelta(seconds=1 / rate)
        self._charges = Batched(self._take)

    async def _take(
        self, conn: asyncpg.Connection, charges: Sequence[_Charge]
    ) -> dict[_Charge, bool | Exception]:
        granted = await queries.take_user_writes(conn, [c.user for c in charges], self.per_write, self.burst)
        taken: Counter[str] = Counter()
        results: dict[_Charge, bool | Exception] = {}
        for charge in charges:  # a user's first charges in the batch are the granted ones
            outcome = granted[charge.user]
            taken[charge.user] += 1
            if taken[charge.user] <= outcome.granted:
                results[charge] = True
            else:
                assert outcome.retry_after is not None
                results[charge] = TooManyWrites(self, outcome.retry_after)
        return results

    async def charge(self, db: Pool, user: str) -> None:
        await self._charges.run(db, _Charge(user))


class TooManyWrites(Problem):
    status = 429

    def __init__(self, limit: WriteLimit, wait: timedelta) -> None:
        seconds = retry_after_seconds(wait)
        super().__init__(
            f"Too many writes: a user may make {limit.rate:g} per second, and {limit.burst} at once;"
            f" nothing was stored. Retry in {seconds} s.",
            headers={"Retry-After": str(seconds)},
        )


T = TypeVar("T")


def refused_if_throttled(limit: WriteLimit, result: T | Throttled) -> T | TooManyWrites:
    """One write's answer from a statement that charged it (a batched send, edit, deletion or create):
    TooManyWrites when the charge refused it, else the answer."""
    return TooManyWrites(limit, result.retry_after) if isinstance(result, Throttled) else result


def retry_after_seconds(wait: timedelta) -> int:
    """Retry-After for a wait: whole seconds, rounded up (a retry then is accepted), at least 1."""
    return max(1, math.ceil(wait.total_seconds()))


async def charge_write(db: Pool, limit: WriteLimit, user: str | None) -> None:
    """Charges one write to the user (None: the server, never limited);
    TooManyWrites when the user's bucket is empty (nothing was taken then)."""
    if user is None:
        return
    await limit.charge(db, user)


async def purge_full_buckets(db: Pool, batch_size: int = PURGE_BATCH) -> int:
    """Deletes the buckets that are full again (no row means a full bucket), walking
    the users in batches; how many went. Runs hourly in every `chatsvc serve`."""
    purged = 0
    after: str | None = ""
    while after is not None:
        after, deleted = await queries.purge_full_user_write_buckets(db, after, batch_size)
        purged += deleted
    return purged
