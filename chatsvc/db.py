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
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol

import asyncpg

from chatsvc import queries
from chatsvc.settings import Settings

log = logging.getLogger(__name__)

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
    asyncpg.exceptions.LockNotAvailableError,  # lock_timeout (a chat's delete waiting for the chat)
    # asyncpg's protocol state machine confused by a message the server sent
    # while the connection was idle, e.g. the notice of a fast shutdown.
    asyncpg.exceptions.InternalClientError,
)


class DatabaseUnavailable(Exception):
    """The database could not serve a request; answered with 503."""


Connect = Callable[[], Awaitable[asyncpg.Connection]]


class Database(Protocol):
    """What statements run on: the primary's Pool, or the replica's reads (chatsvc/replica.py)."""

    @property
    def acquire_timeout(self) -> float: ...

    def connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """``async with db.connection() as conn``; unavailability becomes DatabaseUnavailable."""
        ...


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


# Session settings PgBouncer refuses as startup parameters ("unsupported
# startup parameter"; with ignore_startup_parameters it drops them silently):
# behind it they come from the server (ALTER ROLE ... SET, README: PgBouncer).
NOT_CARRIED_BY_POOLERS = frozenset({"statement_timeout", "plan_cache_mode"})


class SessionSettingsError(Exception):
    """The database session lacks a setting the service cannot work without."""


class Connector:
    """How the service opens a connection to one URL: the pool's, the background
    jobs' ("chatsvc-background") and the events listener's ("chatsvc-events"),
    each with the same session settings.

    They are sent as startup parameters. A pooler that refuses some gets a
    connection without them; the first connection then reads back what the
    server applies and logs, once, each setting that differs and how to set it.
    """

    def __init__(self, settings: Settings, application_name: str = "chatsvc", url: str | None = None) -> None:
        url = settings.database_url if url is None else url
        if url is None:
            raise ValueError("a connection needs settings.database_url")
        self.url = url
        self.statement_cache_size = settings.statement_cache_size
        # The server cancels a statement at statement_timeout; the client-side
        # limit, a little later, covers a server that stopped answering at all
        # (and a pooler that dropped statement_timeout).
        self.command_timeout = settings.statement_timeout + 1
        self.wanted: dict[str, str] = {
            "application_name": application_name,
            # Timestamps leave PostgreSQL as RFC 3339 with a +00:00 offset.
            "TimeZone": "UTC",
            "statement_timeout": str(int(settings.statement_timeout * 1000)),
            # Every statement is planned once per connection, not at every run.
            # PostgreSQL's default re-plans a prepared statement at each run
            # while a custom plan looks cheaper than the generic one, which
            # LIMIT $n always makes it: half of get_chat's database time was
            # planning. tests/test_plans.py checks the generic plan of every file.
            "plan_cache_mode": "force_generic_plan",
        }
        self.startup = dict(self.wanted)  # what is sent at connection start
        self.checked = False

    async def __call__(self) -> asyncpg.Connection:
        try:
            conn = await self._connect()
        except asyncpg.ProtocolViolationError as exc:
            if "unsupported startup parameter" not in str(exc) or NOT_CARRIED_BY_POOLERS.isdisjoint(
                self.startup
            ):
                raise
            self.startup = {k: v for k, v in self.startup.items() if k not in NOT_CARRIED_BY_POOLERS}
            conn = await self._connect()
            if self.statement_cache_size:
                log.warning(
                    "a pooler (PgBouncer) refused the session's startup parameters; "
                    "if it pools by transaction, set CHATSVC_STATEMENT_CACHE_SIZE=0"
                )
        if not self.checked:
            try:
                await self._check(conn)
            except BaseException:
                conn.terminate()
                raise
            self.checked = True
        return conn

    async def _connect(self) -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(
            self.url,
            statement_cache_size=self.statement_cache_size,
            command_timeout=self.command_timeout,
            server_settings=self.startup,
        )
        return conn

    async def _check(self, conn: asyncpg.Connection) -> None:
        applied = await queries.read_session_settings(conn, [name.lower() for name in self.wanted])
        differing = {name: value for name, value in self.wanted.items() if applied.get(name.lower()) != value}
        for name in differing.keys() - NOT_CARRIED_BY_POOLERS:
            # Timestamps would not be rendered as the contract says; the events
            # listener's registrations are known by its application_name.
            raise SessionSettingsError(
                f"the database session's {name} is {applied.get(name.lower())!r}, not {self.wanted[name]!r}"
                " (a pooler in between must pass it on)"
            )
        if differing:
            log.warning(
                "the database session lacks settings the service asked for (a pooler dropped them); "
                "set them on the server: %s",
                "; ".join(
                    f"ALTER ROLE CURRENT_USER SET {name} = '{value}'" for name, value in differing.items()
                ),
                extra={
                    "connection": self.wanted["application_name"],
                    "applied": {name: applied.get(name.lower()) for name in differing},
                },
            )


def connector(settings: Settings, application_name: str = "chatsvc", url: str | None = None) -> Connector:
    """A Connector to url (default: settings.database_url)."""
    return Connector(settings, application_name, url)


async def open_database(settings: Settings) -> Pool:
    db = Pool(
        connector(settings), max_size=settings.pool_max_size, acquire_timeout=settings.pool_acquire_timeout
    )
    await db.open(settings.pool_min_size)
    return db
