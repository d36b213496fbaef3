"""The connection pool (chatsvc/pool.py), against the session's real PostgreSQL.

Fairness, bounded waits, and what happens to a connection after each kind of
failure: the pool must never lend a broken connection, lose a slot, or grow
past its size.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from chatsvc.db import DatabaseUnavailable, Pool, open_database
from chatsvc.keys import DATABASE, SETTINGS
from chatsvc.settings import Settings
from tests.conftest import Client
from tests.credentials import CREDENTIALS


async def backend_pid(pool: Pool) -> int:
    async with pool.connection() as conn:
        pid: int = await conn.fetchval("SELECT pg_backend_pid()")
    return pid


async def test_waiters_get_the_connection_in_the_order_they_asked(pool: Pool) -> None:
    served: list[int] = []

    async def request(n: int) -> None:
        async with pool.connection() as conn:
            served.append(n)
            await conn.fetchval("SELECT 1")

    async with pool.connection():
        tasks = []
        for n in range(5):
            tasks.append(asyncio.create_task(request(n)))
            await asyncio.sleep(0)  # each queues before the next is created
        await asyncio.sleep(0.05)
        assert pool.waiting == 5 and served == []
    await asyncio.gather(*tasks)
    assert served == [0, 1, 2, 3, 4]
    assert (pool.size, pool.idle, pool.waiting) == (1, 1, 0)


async def test_a_wait_past_the_acquire_timeout_is_unavailable_and_leaves_the_line(pool: Pool) -> None:
    pool.acquire_timeout = 0.1
    async with pool.connection():
        with pytest.raises(DatabaseUnavailable):
            async with pool.connection():
                pass  # pragma: no cover - never lent
        assert pool.waiting == 0
    assert await backend_pid(pool)  # the slot was not lost
    assert pool.size == 1


async def test_a_connection_handed_over_as_its_waiter_times_out_is_passed_on(pool: Pool) -> None:
    """The race between release() and the waiter's timeout loses neither the connection nor the slot."""
    lent = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    pool.release(lent)  # resolves the waiter's future ...
    waiter.cancel()  # ... and the waiter gives up before it runs again
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (pool.size, pool.idle) == (1, 1)
    assert await backend_pid(pool)


async def test_a_server_error_keeps_the_connection(pool: Pool) -> None:
    before = await backend_pid(pool)
    with pytest.raises(asyncpg.DivisionByZeroError):
        async with pool.connection() as conn:
            await conn.fetchval("SELECT 1 / 0")
    assert await backend_pid(pool) == before


async def test_a_connection_interrupted_mid_statement_is_closed_and_replaced(pool: Pool) -> None:
    before = await backend_pid(pool)
    statement = asyncio.create_task(_sleep_on_the_only_connection(pool))
    await asyncio.sleep(0.2)
    statement.cancel()  # the reply never arrives: the connection is mid-exchange
    with pytest.raises(asyncio.CancelledError):
        await statement
    after = await backend_pid(pool)
    assert after != before
    assert pool.size == 1


async def _sleep_on_the_only_connection(pool: Pool) -> None:
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_sleep(5)")


async def test_an_idle_connection_the_server_closed_is_replaced(
    pool: Pool, other: asyncpg.Connection
) -> None:
    before = await backend_pid(pool)
    assert await other.fetchval("SELECT pg_terminate_backend($1)", before)
    for _ in range(500):  # the backend has gone
        if not await other.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", before):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the event loop sees the idle socket close
    after = await backend_pid(pool)
    assert after != before
    assert pool.size == 1


async def test_a_failed_connect_frees_its_slot(database_url: str) -> None:
    """A database that refuses connections: 503s, and the pool does not fill up with phantom slots."""
    refused = Pool(_refuse, max_size=2, acquire_timeout=1)
    for _ in range(5):
        with pytest.raises(DatabaseUnavailable):
            async with refused.connection():
                pass  # pragma: no cover - never lent
    assert (refused.size, refused.waiting) == (0, 0)


async def _refuse() -> asyncpg.Connection:
    raise ConnectionRefusedError("refused")


async def test_never_more_connections_than_max_size(database_url: str) -> None:
    pool = await open_database(
        Settings(**CREDENTIALS, database_url=database_url, pool_min_size=0, pool_max_size=3)
    )
    try:

        async def request() -> int:
            async with pool.connection() as conn:
                pid: int = await conn.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.01)")
            return pid

        pids = await asyncio.gather(*(request() for _ in range(60)))
        assert len(set(pids)) == 3
        assert (pool.size, pool.idle, pool.waiting) == (3, 3, 0)
    finally:
        await pool.close()


async def test_closing_fails_waiters_and_closes_busy_connections_when_returned(pool: Pool) -> None:
    lent = await pool.acquire()
    waiter = asyncio.create_task(_use(pool))
    await asyncio.sleep(0.05)
    await pool.close()
    with pytest.raises(DatabaseUnavailable):
        await waiter
    pool.release(lent)
    assert lent.is_closed()
    assert pool.size == 0
    with pytest.raises(DatabaseUnavailable):
        await _use(pool)


async def _use(pool: Pool) -> None:
    async with pool.connection() as conn:
        await conn.fetchval("SELECT 1")


async def test_the_service_pool_sessions_run_with_the_service_settings(client: Client) -> None:
    """Read back from a connection of the running app's own pool, not one set up by the test."""
    database = client.app[DATABASE]
    statement_timeout = client.app[SETTINGS].statement_timeout
    async with database.connection() as conn:
        settings = dict(
            await conn.fetch(
                "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])",
                ["plan_cache_mode", "statement_timeout", "TimeZone", "application_name"],
            )
        )
    assert settings == {
        "plan_cache_mode": "force_generic_plan",  # tests/test_plans.py checks the generic plans
        "statement_timeout": str(int(statement_timeout * 1000)),  # milliseconds
        "TimeZone": "UTC",
        "application_name": "chatsvc",
    }
