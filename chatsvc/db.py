"""The asyncpg pool: its lifecycle, connection set-up, and bounded acquire."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from chatsvc.settings import Settings

# Failures that mean "the database cannot serve us right now", as opposed to a
# bug in a statement: the server is down, restarting, out of connections, or a
# statement or the wait for a connection ran out of time.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    asyncio.TimeoutError,  # pool acquire or client-side command timeout
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.InterfaceError,  # connection closed under us, pool closing
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, statement_timeout
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections
    # asyncpg's protocol state machine confused by a message the server sent
    # while the connection was idle, e.g. the notice of a fast shutdown.
    asyncpg.exceptions.InternalClientError,
)
# Failures after which a connection must not be used again.
BROKEN_CONNECTION = (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)


class DatabaseUnavailable(Exception):
    """The database could not serve a request; answered with 503."""


class Database:
    """The pool and the time a request may wait for one of its connections."""

    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout
        self.waiting = 0  # requests waiting for a connection right now (a metric)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; unavailability, here or in the block, becomes DatabaseUnavailable."""
        try:
            self.waiting += 1
            try:
                conn = await self.pool.acquire(timeout=self.acquire_timeout)
            finally:
                self.waiting -= 1
            try:
                yield conn
            except BROKEN_CONNECTION:
                conn.terminate()  # the pool opens a fresh one when needed
                raise
            finally:
                await self.pool.release(conn)
        except UNAVAILABLE as exc:
            raise DatabaseUnavailable(type(exc).__name__) from exc


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Resets nothing when a connection returns to the pool: there is nothing to reset.

    asyncpg's default reset is a round trip per request (advisory unlocks,
    CLOSE ALL, UNLISTEN *, RESET ALL). The service's statements leave no
    session state behind: no SET, no cursors, no advisory locks, no LISTEN
    (the events listener has its own connection, outside the pool). An open
    transaction is still rolled back by asyncpg before this runs.
    """


async def open_database(settings: Settings) -> Database:
    if settings.database_url is None:
        raise ValueError("open_database needs settings.database_url")
    statement_timeout_ms = int(settings.statement_timeout * 1000)
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        statement_cache_size=settings.statement_cache_size,
        reset=_keep_session,
        # The server cancels a statement at statement_timeout; the client-side
        # limit, a little later, covers a server that stopped answering at all.
        command_timeout=settings.statement_timeout + 1,
        server_settings={
            "application_name": "chatsvc",
            # Timestamps leave PostgreSQL as RFC 3339 with a +00:00 offset.
            "TimeZone": "UTC",
            "statement_timeout": str(statement_timeout_ms),
        },
    )
    return Database(pool, settings.pool_acquire_timeout)
