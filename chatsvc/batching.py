"""Reads that arrive together share one statement and one round trip.

The first request for a read becomes the batch's runner: it waits for a
connection (and for fewer than MAX_IN_FLIGHT batches of the read to be
running), and every request for the same read that arrives meanwhile joins
its batch instead of queueing for a connection of its own. Once the runner
has its connection the batch closes, one statement answers all of it, and the
next request starts a new batch. With a connection idle, a request runs at
once, alone: batching only ever replaces waiting in line.

Measured with bench/run.py (get_chat, 32 clients, 10 connections): see the
README's Benchmark section.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Generic, TypeVar
from weakref import WeakKeyDictionary

import asyncpg

from chatsvc.db import Database, DatabaseUnavailable

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# A batch closes at this many distinct keys; the next request starts another.
MAX_BATCH = 64
# Batches of one read running at once, per pool. Fewer, larger batches cost
# less per request than one round trip per free connection. get_chat at 32
# clients, back to back against no limit: 0.31-0.34 of the HTTP ceiling
# against 0.23-0.32, and p99 5-7 ms against 13-16 ms. The others wait, as a
# batch, for one to finish: at most the pool's acquire timeout.
MAX_IN_FLIGHT = 3

Fetch = Callable[[asyncpg.Connection, Sequence[K]], Awaitable[Mapping[K, V]]]


class BatchedRead(Generic[K, V]):
    """One read (a function of many keys at once), batched per Database."""

    def __init__(self, fetch: Fetch[K, V]) -> None:
        self._fetch = fetch
        # Per pool: the batch whose runner is still waiting for a connection, or none.
        self._collecting: WeakKeyDictionary[Database, dict[K, list[asyncio.Future[V | None]]]] = (
            WeakKeyDictionary()
        )
        self._in_flight: WeakKeyDictionary[Database, asyncio.Semaphore] = WeakKeyDictionary()

    async def get(self, db: Database, key: K) -> V | None:
        """The value for key; None when fetch found nothing for it."""
        batch = self._collecting.get(db)
        if batch is not None and (key in batch or len(batch) < MAX_BATCH):
            waiter: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
            batch.setdefault(key, []).append(waiter)
            return await waiter
        batch = {key: []}
        self._collecting[db] = batch
        try:
            found = await self._run(db, batch)
        except BaseException as exc:
            self._close(db, batch)
            # The same failure for every request of the batch; a cancelled
            # runner (only at shutdown) leaves the others unable to go on.
            failure = exc if isinstance(exc, Exception) else DatabaseUnavailable("batch cancelled")
            for waiters in batch.values():
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(failure)
            raise
        for batch_key, waiters in batch.items():
            for waiter in waiters:
                if not waiter.done():  # a waiter whose request was cancelled
                    waiter.set_result(found.get(batch_key))
        return found.get(key)

    async def _run(self, db: Database, batch: dict[K, list[asyncio.Future[V | None]]]) -> Mapping[K, V]:
        """Waits for a turn and a connection, closes the batch, and fetches all of it."""
        in_flight = self._in_flight.setdefault(db, asyncio.Semaphore(MAX_IN_FLIGHT))
        try:
            async with asyncio.timeout(db.acquire_timeout):
                await in_flight.acquire()
        except TimeoutError:
            raise DatabaseUnavailable("TimeoutError") from None
        try:
            async with db.connection() as conn:
                self._close(db, batch)
                return await self._fetch(conn, list(batch))
        finally:
            in_flight.release()

    def _close(self, db: Database, batch: dict[K, list[asyncio.Future[V | None]]]) -> None:
        if self._collecting.get(db) is batch:
            del self._collecting[db]
