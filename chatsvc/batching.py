"""Statements that arrive together share one round trip.

The first request for a statement becomes the batch's runner: it waits for
the statement's batch before it to finish (MAX_IN_FLIGHT) and for a
connection, and every request for the same statement that arrives meanwhile
joins its batch instead of queueing for a connection of its own. Once the
runner has its connection the batch closes, one statement answers all of it,
and the next request starts a new batch. When no batch of it is running, a
request runs at once, alone.

While a batch runs, the batch collecting behind it takes at most half of the
requests the statement has had in hand lately (the larger of the requests
inside now and those of the last two batches run), and at least MIN_HALF:
the process prepares one half while the database answers the other. Without
that cap requests settle into unequal cohorts that stay so (a batch's
answers go out together, so its clients' next requests come back together):
at 32 clients, batches of 31 and of 1 took turns, the batch of 1 costing the
database nearly what the batch of 31 did while the process waited for it.
When nothing runs (the runner still waits for a connection), every request
joins the one batch.

Used for the reads of chatsvc/reads.py (a chat, history pages, a message,
members, a user's listings: equal reads share one answer), and for sends and
creates (each its own key, compared by identity: two equal sends store two
messages), whose refused batches refused_alone splits.
Measured with bench/run.py at 32 clients and 10 connections: see the README's
Benchmark section.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Generic, TypeVar
from weakref import WeakKeyDictionary

import asyncpg

from chatsvc.db import UNAVAILABLE, Database, DatabaseUnavailable

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# A batch closes at this many distinct keys; the next request starts another.
MAX_BATCH = 64
# Batches of one statement running at once, per pool: one. Whatever arrives
# while a batch runs joins the next, so a round trip answers everything that
# queued meanwhile. Measured back to back with bench/run.py at 32 clients
# against 2 and 3 in flight: get_chat 0.33-0.40 of the HTTP ceiling against
# 0.31-0.36, post_message 0.31-0.36 against 0.26-0.30, and lower p99 too.
# Its statements must not wait for locks, or one would hold up the rest:
# reads take none, and sends skip a busy chat (sql/messages/create_messages.sql).
# Over a slow network a batch simply grows, up to MAX_BATCH per round trip.
# The next batch waits for its turn at most the pool's acquire timeout.
MAX_IN_FLIGHT = 1
# What the batch collecting behind a running one always takes, whatever half
# of the requests in hand is: a burst that arrives one request at a time,
# while few are in hand yet, is not cut into batches of one or two.
MIN_HALF = 8

# Runs the statement for every key of a batch. A key missing from the result
# gets None; a key mapped to an exception raises it (that request alone fails).
Execute = Callable[[asyncpg.Connection, Sequence[K]], Awaitable[Mapping[K, V | Exception]]]
_Batch = dict[K, list["asyncio.Future[V | None]"]]


def refused_alone(execute: Execute[K, V]) -> Execute[K, V]:
    """execute, but a batch the database refuses (say, a constraint a DBA added) runs again
    one key at a time, so that only the refused key gets its error; a connection that
    fails still fails the whole batch. For writes (sends, creates): one refused write
    must not fail the writes batched with it."""

    async def each_alone_if_refused(conn: asyncpg.Connection, keys: Sequence[K]) -> Mapping[K, V | Exception]:
        try:
            return await execute(conn, keys)
        except asyncpg.PostgresError as exc:
            if len(keys) == 1 or isinstance(exc, UNAVAILABLE):
                raise
        results: dict[K, V | Exception] = {}
        for key in keys:
            try:
                results.update(await execute(conn, [key]))
            except asyncpg.PostgresError as refused:
                if isinstance(refused, UNAVAILABLE):
                    raise
                results[key] = refused
        return results

    return each_alone_if_refused


class _PerPool(Generic[K, V]):
    """One statement's batches on one pool."""

    __slots__ = ("collecting", "in_flight", "inside", "joined", "recent", "running")

    def __init__(self) -> None:
        self.collecting: _Batch[K, V] | None = None  # the batch whose runner waits for its turn
        self.joined = 0  # requests in it
        self.inside = 0  # requests in run(): running, collecting, or waiting in a closed batch
        self.running = 0  # requests of the batch whose statement runs; 0 when none does
        self.recent = (0, 0)  # requests of the last two batches run
        self.in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    def takes(self, batch: _Batch[K, V], key: K) -> bool:
        """Whether the collecting batch takes one more request for key."""
        if key in batch:  # it shares an answer: no more work for the database
            return True
        if len(batch) >= MAX_BATCH:
            return False
        if self.running == 0:  # nothing runs: no half to prepare while the other is answered
            return True
        return self.joined < max(MIN_HALF, (max(self.inside, sum(self.recent)) + 1) // 2)


class Batched(Generic[K, V]):
    """One statement (a function of many keys at once), batched per Pool."""

    def __init__(self, execute: Execute[K, V]) -> None:
        self._execute = execute
        self._pools: WeakKeyDictionary[Database, _PerPool[K, V]] = WeakKeyDictionary()

    def _on(self, db: Database) -> _PerPool[K, V]:
        state = self._pools.get(db)
        if state is None:
            state = self._pools[db] = _PerPool()
        return state

    def collecting(self, db: Database) -> int:
        """How many keys the batch still open for requests (waiting for its turn) holds."""
        state = self._pools.get(db)
        return 0 if state is None else len(state.collecting or ())

    async def run(self, db: Database, key: K) -> V | None:
        """The value for key; None when the statement found nothing for it."""
        state = self._on(db)
        state.inside += 1
        try:
            batch = state.collecting
            if batch is not None and state.takes(batch, key):
                waiter: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
                batch.setdefault(key, []).append(waiter)
                state.joined += 1
                return await waiter
            return await self._run(db, state, key)
        finally:
            state.inside -= 1

    async def _run(self, db: Database, state: _PerPool[K, V], key: K) -> V | None:
        """Starts a batch with key, runs it once its turn comes, and answers all of it."""
        batch: _Batch[K, V] = {key: []}
        state.collecting, state.joined = batch, 1
        try:
            results = await self._run_batch(db, state, batch)
        except BaseException as exc:
            self._close(state, batch)
            # The same failure for every request of the batch; a cancelled
            # runner (only at shutdown) leaves the others unable to go on.
            failure = exc if isinstance(exc, Exception) else DatabaseUnavailable("batch cancelled")
            for waiters in batch.values():
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(failure)
            raise
        for batch_key, waiters in batch.items():
            result = results.get(batch_key)
            for waiter in waiters:
                if waiter.done():  # a waiter whose request was cancelled
                    continue
                if isinstance(result, Exception):
                    waiter.set_exception(result)
                else:
                    waiter.set_result(result)
        result = results.get(key)
        if isinstance(result, Exception):
            raise result
        return result

    async def _run_batch(
        self, db: Database, state: _PerPool[K, V], batch: _Batch[K, V]
    ) -> Mapping[K, V | Exception]:
        """Waits for a turn and a connection, closes the batch, and runs all of it."""
        in_flight = state.in_flight
        if in_flight.locked():  # else acquire() returns at once: no timer to set
            try:
                async with asyncio.timeout(db.acquire_timeout):
                    await in_flight.acquire()
            except TimeoutError:
                raise DatabaseUnavailable("TimeoutError") from None
        else:
            await in_flight.acquire()
        try:
            async with db.connection() as conn:
                joined = self._close(state, batch)
                state.running = joined
                state.recent = (state.recent[1], joined)
                try:
                    return await self._execute(conn, list(batch))
                finally:
                    state.running = 0
        finally:
            in_flight.release()

    @staticmethod
    def _close(state: _PerPool[K, V], batch: _Batch[K, V]) -> int:
        """Closes batch to further requests, if still open; how many requests it holds."""
        if state.collecting is batch:
            state.collecting = None
        return sum(map(len, batch.values())) + 1  # the waiters, and the runner
