"""The per-user write limit (contract v3, Limits): one token bucket per user, kept in PostgreSQL.

Every write by a user (each request but GET and HEAD to a protected route) is
charged before its handler runs, by chatsvc/app.py's authenticated(): one
statement (sql/limits/take_user_write.sql) refills the user's bucket by the
time elapsed, takes a token if there is one, and otherwise takes nothing and
says how long until one is there; the write is then refused with 429 before
anything of it runs, so it stores nothing. The buckets are rows of the
database (migrations/0006.limit-user-writes.sql), so every service process
sharing it enforces one limit, on the database's clock. The server is not
limited, nor is anyone with CHATSVC_AUTH=off (every caller is the server then).

A charge is one statement and one round trip, taking the user's row lock for
that statement only: writes of one user are charged one at a time, writes of
different users do not wait for each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from chatsvc import queries
from chatsvc.db import Pool
from chatsvc.problems import Problem

# Buckets examined per statement while purging: short statements, few locks.
PURGE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class WriteLimit:
    """Writes per second a user may make sustained (rate), and at once (burst)."""

    rate: float
    burst: int

    @property
    def per_write(self) -> timedelta:
        """What one write costs: the time the bucket takes to refill one token."""
        return timedelta(seconds=1 / self.rate)


class TooManyWrites(Problem):
    status = 429

    def __init__(self, limit: WriteLimit, wait: timedelta) -> None:
        seconds = retry_after_seconds(wait)
        super().__init__(
            f"Too many writes: a user may make {limit.rate:g} per second, and {limit.burst} at once;"
            f" nothing was stored. Retry in {seconds} s.",
            headers={"Retry-After": str(seconds)},
        )


def retry_after_seconds(wait: timedelta) -> int:
    """Retry-After for a wait: whole seconds, rounded up (a retry then is accepted), at least 1."""
    return max(1, math.ceil(wait.total_seconds()))


async def charge_write(db: Pool, limit: WriteLimit, user: str | None) -> None:
    """Charges one write to the user (None: the server, never limited);
    TooManyWrites when the user's bucket is empty (nothing was taken then)."""
    if user is None:
        return
    wait = await queries.take_user_write(db, user, limit.per_write, limit.burst)
    if wait is not None:
        raise TooManyWrites(limit, wait)


async def purge_full_buckets(db: Pool, batch_size: int = PURGE_BATCH) -> int:
    """Deletes the buckets that are full again (no row means a full bucket), walking
    the users in batches; how many went. Runs hourly in every `chatsvc serve`."""
    purged = 0
    after: str | None = ""
    while after is not None:
        after, deleted = await queries.purge_full_user_write_buckets(db, after, batch_size)
        purged += deleted
    return purged
