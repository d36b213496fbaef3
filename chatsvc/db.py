"""The database: a small FIFO pool of asyncpg connections with a bounded wait.

Why not asyncpg's own Pool: measured with bench/run.py (get_chat, 32 clients,
10 connections), it cost a quarter of the service's throughput and made the
tail unfair: p99 was 7-9x p50, because waiters are not served in arrival
order. Here a returned connection goes straight to the longest waiter, an idle
connection is taken without a single await, and the only state is a deque of
idle connections and a deque of waiters. Everything else is asyncpg's.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType

import asyncpg

from chatsvc.settings import Settings

# Failures that mean "the database cannot serve us right now", as opposed to a
# bug in a statement: the server is down, restarting, out of connections, or a
# statement or the wait for a connection ran out of time.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    asyncio.TimeoutError,  # the wait for a connection or a client-side command timeout
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.InterfaceError,  # connection closed under us, database closing
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, statement_timeout
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections
    # asyncpg's protocol state machine confused by a message the server sent
    # while the connection was idle, e.g. the notice of a fast shutdown.
    asyncpg.exceptions.InternalClientError,
)


class DatabaseUnavailable(Exception):
    """The database could not serve a request; answered with 503."""


Connect = Callable[[], Awaitable[asyncpg.Connection]]


class Pool:
    """At most max_size connections, lent one at a time, in the order requests asked."""

    def __init__(self, connect: Connect, *, max_size: int, acquire_timeout: float) -> None:
        self.max_size = max_size
        self.acquire_timeout = acquire_timeout
        self.size = 0  # connections open, or being opened, for this pool
        self.waiting = 0  # requests waiting for a connection right now (a metric)
        self.closed = False
        self._connect = connect
        self._idle: deque[asyncpg.Connection] = deque()
        # None, as a result, hands over a free slot: the waiter opens a connection in it.
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()

    @property
    def idle(self) -> int:
        return len(self._idle)

    def connection(self) -> _Lease:
        """``async with db.connection() as conn``: a connection for one block.

        Unavailability, while waiting or in the block, becomes DatabaseUnavailable.
        """
        return _Lease(self)

    async def open(self, count: int) -> None:
        """Opens count connections now, so that start-up fails when the database is unreachable."""
        opened = []
        try:
            for _ in range(count):
                opened.append(await self._connect())
        except BaseException:
            for conn in opened:
                conn.terminate()
            raise
        self.size += len(opened)
        self._idle.extend(opened)

    async def close(self) -> None:
        """Refuses new requests; closes idle connections; busy ones close when returned."""
        self.closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the database is closing"))
        idle, self._idle = list(self._idle), deque()
        self.size -= len(idle)
        await asyncio.gather(*(conn.close(timeout=5) for conn in idle), return_exceptions=True)

    async def acquire(self) -> asyncpg.Connection:
        """A connection: an idle one at once, else a new one, else the next one returned."""
        if self.closed:
            raise asyncpg.InterfaceError("the database is closing")
        while self._idle:
            conn = self._idle.pop()  # the most recently used: the warmest
            if not conn.is_closed():
                return conn
            self.size -= 1  # closed while idle: the server restarted or went away
        self.waiting += 1
        try:
            async with asyncio.timeout(self.acquire_timeout):
                if self.size < self.max_size:
                    self.size += 1
                    return await self._open_in_slot()
                return await self._wait_in_line()
        finally:
            self.waiting -= 1

    def release(self, conn: asyncpg.Connection, *, reusable: bool = True) -> None:
        """Takes a connection back; one that may hold a half-done exchange is closed instead."""
        if not reusable or self.closed or conn.is_closed() or conn.is_in_transaction():
            conn.terminate()
            self._free_slot()
        else:
            self._hand_over(conn)

    async def _wait_in_line(self) -> asyncpg.Connection:
        waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            conn = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed something just as the wait timed out: pass it on.
                handed = waiter.result()
                if handed is None:
                    self._free_slot()
                else:
                    self._hand_over(handed)
            else:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            raise
        return await self._open_in_slot() if conn is None else conn

    async def _open_in_slot(self) -> asyncpg.Connection:
        """Opens a connection in a slot already counted in size."""
        try:
            return await self._connect()
        except BaseException:
            self._free_slot()
            raise

    def _free_slot(self) -> None:
        """A slot without a connection: the longest waiter opens one in it, or the pool shrinks."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.size -= 1

    def _hand_over(self, conn: asyncpg.Connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)


class _Lease:
    """The async context manager behind Pool.connection (a class: cheaper than a generator)."""

    __slots__ = ("_conn", "_db")

    def __init__(self, db: Pool) -> None:
        self._db = db

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            self._conn: asyncpg.Connection = await self._db.acquire()
        except UNAVAILABLE as exc:
            raise DatabaseUnavailable(type(exc).__name__) from exc
        return self._conn

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # An error the server sent leaves the connection ready for the next
        # statement (ours run one at a time, outside transactions); anything
        # else (a timeout, a cancellation, a broken socket) may leave it mid-exchange.
        self._db.release(self._conn, reusable=exc is None or isinstance(exc, asyncpg.PostgresError))
        if isinstance(exc, UNAVAILABLE):
            raise DatabaseUnavailable(type(exc).__name__) from exc


def connector(settings: Settings, application_name: str = "chatsvc") -> Connect:
    """How the service opens a connection: the pool's and the events listener's
    ("chatsvc-events") alike, with the same session settings."""
    if settings.database_url is None:
        raise ValueError("a connection needs settings.database_url")
    statement_timeout_ms = int(settings.statement_timeout * 1000)
    return functools.partial(
        asyncpg.connect,
        settings.database_url,
        statement_cache_size=settings.statement_cache_size,
        # The server cancels a statement at statement_timeout; the client-side
        # limit, a little later, covers a server that stopped answering at all.
        command_timeout=settings.statement_timeout + 1,
        server_settings={
            "application_name": application_name,
            # Timestamps leave PostgreSQL as RFC 3339 with a +00:00 offset.
            "TimeZone": "UTC",
            "statement_timeout": str(statement_timeout_ms),
            # Every statement is planned once per connection, not at every run.
            # PostgreSQL's default re-plans a prepared statement at each run
            # while a custom plan looks cheaper than the generic one, which
            # LIMIT $n always makes it: half of get_chat's database time was
            # planning. tests/test_plans.py checks the generic plan of every file.
            "plan_cache_mode": "force_generic_plan",
        },
    )


async def open_database(settings: Settings) -> Pool:
    db = Pool(
        connector(settings), max_size=settings.pool_max_size, acquire_timeout=settings.pool_acquire_timeout
    )
    await db.open(settings.pool_min_size)
    return db
