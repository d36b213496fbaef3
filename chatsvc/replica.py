"""Reads from a hot standby (CHATSVC_REPLICA_DATABASE_URL), as fresh as the caller asks.

With a replica configured, a write's answer carries ``Chatsvc-Position``: the
primary's WAL position after its commit. A read that sends it back is served
by the replica once the replica has replayed that far (waiting at most
CHATSVC_REPLICA_WAIT), else by the primary: a caller always reads its own
writes. A read without it is served by the replica as it is, as stale as the
replica's lag (/metrics: chatsvc_replica_lag_seconds). A replica that cannot
be reached is left alone for RETRY_AFTER seconds, and reads go to the primary
meanwhile. Writes, event streams (their history too) and the events listener
always use the primary.

Paging history on the replica skips nothing: a chat's messages commit in id
order (each send holds the chat's row), so what a replica holds of a chat is
always a prefix of it, and the primary holds at least as much.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Sequence
from types import TracebackType

import asyncpg
from aiohttp import web

from chatsvc import queries
from chatsvc.batching import Batched
from chatsvc.db import Database, DatabaseUnavailable, Pool
from chatsvc.openapi import POSITION_HEADER, POSITION_PATTERN

log = logging.getLogger(__name__)

HEADER = POSITION_HEADER
# A pg_lsn as PostgreSQL prints it: two hex numbers of up to 32 bits.
_POSITION = re.compile(POSITION_PATTERN.strip("^$"))
RETRY_AFTER = 5.0  # seconds a replica that failed is left alone
# Pauses between checks of the replica's replay while a read waits for it:
# a replica a few milliseconds behind is seen at once, a slower one polled less.
_POLL = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02)


# What a Chatsvc-Position that is not one asks for: the primary, the freshest
# answer (a client that mangled its position must not get a staler one).
UNKNOWN = "FFFFFFFF/FFFFFFFF"


def position_of(request: web.Request) -> str | None:
    """The Chatsvc-Position a client sent back, if any (the last, if several); UNKNOWN when
    it is not one."""
    values = request.headers.getall(HEADER, [])
    if not values:
        return None
    return values[-1] if _POSITION.fullmatch(values[-1]) else UNKNOWN


class Replica:
    """The replica's pool, read through with the primary as the fallback."""

    def __init__(self, pool: Pool, primary: Pool, wait: float) -> None:
        self.pool = pool
        self.primary = primary
        self.wait = wait
        self._down_until = 0.0
        # Measured by measure_lag() (a background job); None until measured or while down.
        self.lag_bytes: float | None = None
        self.lag_seconds: float | None = None

    @property
    def up(self) -> bool:
        return time.monotonic() >= self._down_until

    @property
    def acquire_timeout(self) -> float:
        return self.primary.acquire_timeout

    def connection(self) -> _Fallback:
        """A connection to the replica, or to the primary when the replica cannot give one."""
        return _Fallback(self)

    def failed(self, exc: BaseException) -> None:
        if self.up:
            log.warning("the replica is unavailable (%s); reading from the primary", type(exc).__name__)
        self._down_until = time.monotonic() + RETRY_AFTER
        self.lag_bytes = self.lag_seconds = None

    async def caught_up(self, position: str) -> bool:
        """Whether the replica has replayed position, waiting at most self.wait for it."""
        if not self.up:
            return False
        deadline = time.monotonic() + self.wait
        try:
            for attempt in itertools.count():
                if await queries.replayed(self.pool, position):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                await asyncio.sleep(min(_POLL[min(attempt, len(_POLL) - 1)], left))
        except (DatabaseUnavailable, asyncpg.PostgresError) as exc:
            self.failed(exc)
        return False

    async def measure_lag(self, background: Pool) -> None:
        """Reads how far behind the primary the replica is (the primary through background)."""
        try:
            async with background.connection() as conn:
                position = await queries.current_position(conn)
            self.lag_bytes, self.lag_seconds = await queries.measure_replica_lag(self.pool, position)
        except (DatabaseUnavailable, asyncpg.PostgresError) as exc:
            self.failed(exc)
        else:
            if not self.up:
                log.info("the replica is available again")
                self._down_until = 0.0


class _Fallback:
    """Replica.connection(): the replica's lease, or the primary's when the replica is down."""

    __slots__ = ("_lease", "_replica")

    def __init__(self, replica: Replica) -> None:
        self._replica = replica

    async def __aenter__(self) -> asyncpg.Connection:
        replica = self._replica
        if replica.up:
            lease = replica.pool.connection()
            try:
                conn = await lease.__aenter__()
            except DatabaseUnavailable as exc:
                replica.failed(exc)
            else:
                self._lease = lease
                return conn
        self._lease = replica.primary.connection()
        return await self._lease.__aenter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._lease.__aexit__(exc_type, exc, tb)


async def for_reading(request: web.Request, primary: Pool, replica: Replica | None) -> Database:
    """Where a read runs: the replica, when it holds what the caller's Chatsvc-Position says
    they wrote (or they sent none); else the primary."""
    if replica is None:
        return primary
    position = position_of(request)
    if position is None or (position != UNKNOWN and await replica.caught_up(position)):
        return replica
    return primary


async def _positions(conn: asyncpg.Connection, keys: Sequence[object]) -> dict[object, str | Exception]:
    position = await queries.current_position(conn)
    return {key: position for key in keys}


# Writes finishing together share one position: one read of it answers every
# write that completed before it started (a write that completes while one is
# running waits for the next, as batching does).
_POSITIONS: Batched[object, str] = Batched(_positions)


async def after_commit(primary: Pool) -> str:
    """A position at or past every commit completed before this call."""
    position = await _POSITIONS.run(primary, object())
    assert position is not None
    return position
