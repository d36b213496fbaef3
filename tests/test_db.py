"""The connection pool (chatsvc/db.py), against the session's real PostgreSQL.

Fairness, bounded waits, and what happens to a connection after each kind of
failure: the pool must never lend a broken connection, lose a slot, or grow
past its size.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from chatsvc.db import Database, DatabaseUnavailable, open_database
from chatsvc.settings import Settings


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await open_database(
        Settings(database_url=database_url, pool_min_size=1, pool_max_size=1, pool_acquire_timeout=2)
    )
    yield database
    await database.close()


async def backend_pid(db: Database) -> int:
    async with db.connection() as conn:
        pid: int = await conn.fetchval("SELECT pg_backend_pid()")
    return pid


async def test_waiters_get_the_connection_in_the_order_they_asked(db: Database) -> None:
    served: list[int] = []

    async def request(n: int) -> None:
        async with db.connection() as conn:
            served.append(n)
            await conn.fetchval("SELECT 1")

    async with db.connection():
        tasks = []
        for n in range(5):
            tasks.append(asyncio.create_task(request(n)))
            await asyncio.sleep(0)  # each queues before the next is created
        await asyncio.sleep(0.05)
        assert db.waiting == 5 and served == []
    await asyncio.gather(*tasks)
    assert served == [0, 1, 2, 3, 4]
    assert (db.size, db.idle, db.waiting) == (1, 1, 0)


async def test_a_wait_past_the_acquire_timeout_is_unavailable_and_leaves_the_line(db: Database) -> None:
    db.acquire_timeout = 0.1
    async with db.connection():
        with pytest.raises(DatabaseUnavailable):
            async with db.connection():
                pass  # pragma: no cover - never lent
        assert db.waiting == 0
    assert await backend_pid(db)  # the slot was not lost
    assert db.size == 1


async def test_a_connection_handed_over_as_its_waiter_times_out_is_passed_on(db: Database) -> None:
    """The race between release() and the waiter's timeout loses neither the connection nor the slot."""
    lent = await db.acquire()
    waiter = asyncio.create_task(db.acquire())
    await asyncio.sleep(0.01)
    db.release(lent)  # resolves the waiter's future ...
    waiter.cancel()  # ... and the waiter gives up before it runs again
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (db.size, db.idle) == (1, 1)
    assert await backend_pid(db)


async def test_a_server_error_keeps_the_connection(db: Database) -> None:
    before = await backend_pid(db)
    with pytest.raises(asyncpg.DivisionByZeroError):
        async with db.connection() as conn:
            await conn.fetchval("SELECT 1 / 0")
    assert await backend_pid(db) == before


async def test_a_connection_interrupted_mid_statement_is_closed_and_replaced(db: Database) -> None:
    before = await backend_pid(db)
    statement = asyncio.create_task(_sleep_on_the_only_connection(db))
    await asyncio.sleep(0.2)
    statement.cancel()  # the reply never arrives: the connection is mid-exchange
    with pytest.raises(asyncio.CancelledError):
        await statement
    after = await backend_pid(db)
    assert after != before
    assert db.size == 1


async def _sleep_on_the_only_connection(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute("SELECT pg_sleep(5)")


async def test_an_idle_connection_the_server_closed_is_replaced(
    db: Database, other: asyncpg.Connection
) -> None:
    before = await backend_pid(db)
    assert await other.fetchval("SELECT pg_terminate_backend($1)", before)
    for _ in range(500):  # the backend has gone
        if not await other.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", before):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the event loop sees the idle socket close
    after = await backend_pid(db)
    assert after != before
    assert db.size == 1


async def test_a_failed_connect_frees_its_slot(database_url: str) -> None:
    """A database that refuses connections: 503s, and the pool does not fill up with phantom slots."""
    refused = Database(_refuse, max_size=2, acquire_timeout=1)
    for _ in range(5):
        with pytest.raises(DatabaseUnavailable):
            async with refused.connection():
                pass  # pragma: no cover - never lent
    assert (refused.size, refused.waiting) == (0, 0)


async def _refuse() -> asyncpg.Connection:
    raise ConnectionRefusedError("refused")


async def test_never_more_connections_than_max_size(database_url: str) -> None:
    db = await open_database(Settings(database_url=database_url, pool_min_size=0, pool_max_size=3))
    try:

        async def request() -> int:
            async with db.connection() as conn:
                pid: int = await conn.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.01)")
            return pid

        pids = await asyncio.gather(*(request() for _ in range(60)))
        assert len(set(pids)) == 3
        assert (db.size, db.idle, db.waiting) == (3, 3, 0)
    finally:
        await db.close()


async def test_closing_fails_waiters_and_closes_busy_connections_when_returned(db: Database) -> None:
    lent = await db.acquire()
    waiter = asyncio.create_task(_use(db))
    await asyncio.sleep(0.05)
    await db.close()
    with pytest.raises(DatabaseUnavailable):
        await waiter
    db.release(lent)
    assert lent.is_closed()
    assert db.size == 0
    with pytest.raises(DatabaseUnavailable):
        await _use(db)


async def _use(db: Database) -> None:
    async with db.connection() as conn:
        await conn.fetchval("SELECT 1")
