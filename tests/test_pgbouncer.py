"""The service behind a real PgBouncer in transaction mode (Debian's 1.18, tests/pgbouncer.py).

As the README's PgBouncer section configures it: the pool through the pooler
with no statement cache, the events listener direct. The contract's tests
pass that way; the session settings PgBouncer cannot carry are read back
from the server; a listener pointed at the pooler says it is deaf instead of
serving silent streams; migrations apply through the pooler while it is busy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import psycopg
import pytest
from pytest_aiohttp import AiohttpClient

from chatsvc import migrate
from chatsvc.app import create_app
from chatsvc.db import open_database
from chatsvc.live.hub import DEAF
from chatsvc.settings import Settings
from tests.api import create_chat, problem, send
from tests.conftest import app_settings, pooler_connect_query
from tests.credentials import CREDENTIALS
from tests.pgbouncer import PgBouncer
from tests.sse import EventStream

# The contract's tests that touch data through the pool: each passes with the pool behind the
# pooler. Left out to keep the suite's time (they pass behind it too, run by hand with
# TEST_POOLER=pgbouncer): test_resume.py (22 s, its reads the same as test_events.py's),
# test_callers.py (credentials, hardly a statement) and test_properties.py (generated
# round trips of the statements test_chats.py and test_messages.py run).
CONTRACT_TESTS = (
    "test_chats.py", "test_messages.py", "test_history.py", "test_listing.py", "test_members.py",
    "test_permissions.py", "test_edits.py", "test_read_state.py", "test_search.py",
    "test_idempotency.py", "test_events.py", "test_races.py", "test_concurrency.py",
    "test_limits.py", "test_activity_flush.py", "test_batching.py",
)  # fmt: skip


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@pytest.fixture
def bouncer(server_url: str, tmp_path: Path) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction mode with a stock configuration: no session settings of its own."""
    with PgBouncer(server_url, tmp_path) as running:
        yield running


def test_the_contract_tests_pass_with_the_pool_behind_pgbouncer(server_url: str, tmp_path: Path) -> None:
    here = Path(__file__).parent
    with PgBouncer(server_url, tmp_path, connect_query=pooler_connect_query()) as running:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
             *(str(here / name) for name in CONTRACT_TESTS)],
            env={**os.environ, "TEST_DATABASE_URL": server_url, "TEST_POOLER": running.url("")},
            cwd=here.parent, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert " passed" in result.stdout and " skipped" not in result.stdout
        # The apps did go through this pooler: every client connection logs in through it.
        assert running.log().count("login attempt") >= len(CONTRACT_TESTS)


async def test_session_settings_set_on_the_server_are_what_the_pool_runs_with_through_the_pooler(
    make_migrated_database: Callable[[], str],
    server_url: str,
    bouncer: PgBouncer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The README's way: ALTER ROLE ... IN DATABASE ... SET, read back through the pooler, and a
    statement past the timeout is cancelled by the server, not only by asyncpg a second later."""
    database_url = make_migrated_database()
    name = database_name(database_url)
    with psycopg.connect(server_url, autocommit=True) as conn:
        # Identifiers cannot be bound parameters: these are ours (chatsvc_test_<hex>, the test role).
        role = f'ALTER ROLE "{bouncer.user}" IN DATABASE "{name}"'
        conn.execute(f"{role} SET statement_timeout = '1s'")
        conn.execute(f"{role} SET plan_cache_mode = force_generic_plan")
    settings = Settings(
        **CREDENTIALS, database_url=bouncer.url(name), statement_cache_size=0, statement_timeout=1
    )
    with caplog.at_level(logging.WARNING, logger="chatsvc.db"):
        db = await open_database(settings)
    try:
        assert [record.message for record in caplog.records] == []
        async with db.connection() as conn:
            assert await conn.fetchval("SHOW statement_timeout") == "1s"
            assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
            assert await conn.fetchval("SHOW TimeZone") == "UTC"
            assert await conn.fetchval("SELECT current_setting('application_name')") == "chatsvc"
            with pytest.raises(asyncpg.QueryCanceledError, match="statement timeout"):
                await conn.fetchval("SELECT pg_sleep(1.5)")  # asyncpg's own limit is 2 s
    finally:
        await db.close()


async def test_without_them_the_service_serves_and_says_once_how_to_set_them(
    make_migrated_database: Callable[[], str],
    bouncer: PgBouncer,
    aiohttp_client: AiohttpClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Debian's PgBouncer refuses statement_timeout as a startup parameter: the service connects
    without it and names the fix, instead of failing to start (which 1.18 made it do)."""
    database_url = make_migrated_database()
    settings = Settings(
        **CREDENTIALS,
        database_url=bouncer.url(database_name(database_url)),
        events_database_url=database_url,
        statement_cache_size=0,
    )
    with caplog.at_level(logging.WARNING, logger="chatsvc.db"):
        client = await aiohttp_client(create_app(settings))
        chat = await create_chat(client)
        await send(client, chat["id"], "through the pooler")
    warnings = [record.getMessage() for record in caplog.records if record.name == "chatsvc.db"]
    assert warnings and all("ALTER ROLE CURRENT_USER SET statement_timeout = '10000'" in w for w in warnings)
    assert all("plan_cache_mode = 'force_generic_plan'" in w for w in warnings)
    assert len(warnings) <= 3  # once per connection path (pool, background jobs), not per connection
    assert (await client.get("/readyz")).status == 200


async def test_a_listener_pointed_at_the_transaction_pooler_is_503_and_says_why(
    make_migrated_database: Callable[[], str], bouncer: PgBouncer, aiohttp_client: AiohttpClient
) -> None:
    """Its LISTEN succeeds and would hear nothing: the self-check never arrives, so new streams
    get 503, not a 200 that stays silent, and /readyz says what to change."""
    database_url = make_migrated_database()
    pooled = bouncer.url(database_name(database_url))
    settings = Settings(
        **CREDENTIALS, database_url=database_url, events_database_url=pooled, statement_cache_size=0
    )
    client = await aiohttp_client(create_app(settings))
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await problem(ready, 503))["detail"] == f"Not listening for live events: {DEAF}."
    chat = await create_chat(client)
    stream = await client.get(f"/chats/{chat['id']}/events")
    assert stream.status == 503
    await send(client, chat["id"], "the rest of the service works")


async def test_a_listener_through_a_session_mode_pooler_hears_and_serves_streams(
    make_migrated_database: Callable[[], str],
    server_url: str,
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
) -> None:
    """Session pooling keeps one server connection per client: LISTEN works there, and the
    self-check says so."""
    database_url = make_migrated_database()
    with PgBouncer(server_url, tmp_path, pool_mode="session") as session_pooler:
        settings = Settings(
            **CREDENTIALS,
            database_url=database_url,
            events_database_url=session_pooler.url(database_name(database_url)),
        )
        client = await aiohttp_client(create_app(settings))
        assert (await client.get("/readyz")).status == 200
        chat = await create_chat(client)
        response = await client.get(f"/chats/{chat['id']}/events")
        stream = EventStream(response)
        assert (await stream.frame()).retry == "1000"
        sent = await send(client, chat["id"], "heard through the session pooler")
        assert await stream.messages(1) == [sent]
        stream.close()
        await client.close()


def test_migrations_apply_and_roll_back_through_the_pooler_while_it_is_busy(
    make_database: Callable[[], str], bouncer: PgBouncer
) -> None:
    """40 clients keep every server connection changing hands while yoyo runs: psycopg's
    prepared statements (after five runs) then met the wrong connection (SAVEPOINT ... can
    only be used in transaction blocks, 3 of 3 tries before the fix)."""
    url = bouncer.url(database_name(make_database()))
    stop = threading.Event()
    errors: list[psycopg.Error] = []

    def keep_busy() -> None:
        try:
            with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
                while not stop.is_set():
                    conn.execute("SELECT pg_sleep(0.001)")
        except psycopg.Error as exc:  # reported below: a thread's error is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=keep_busy) for _ in range(40)]
    for thread in threads:
        thread.start()
    try:
        count = len(migrate.shipped())
        assert migrate.apply(url) == count
        assert migrate.rollback(url) == count
        assert migrate.apply(url) == count
        assert all(applied for _, applied in migrate.status(url))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []


async def test_a_statement_cache_behind_the_pooler_gets_503_and_a_hint_never_500(
    make_migrated_database: Callable[[], str],
    bouncer: PgBouncer,
    aiohttp_client: AiohttpClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Forgetting CHATSVC_STATEMENT_CACHE_SIZE=0: asyncpg's named statements land on other server
    connections. Nothing runs, so the answer is 503 (retry), and the log says what to set."""
    database_url = make_migrated_database()
    settings = app_settings(database_url, None).model_copy(
        update={"database_url": bouncer.url(database_name(database_url)), "events_database_url": database_url}
    )
    client = await aiohttp_client(create_app(settings))
    chat = await create_chat(client)
    statuses: list[int] = []

    async def request(n: int) -> None:
        if n % 2:
            response = await client.post(f"/chats/{chat['id']}/messages/", json={"text": f"m{n}"})
        else:
            response = await client.get(f"/chats/{chat['id']}", params={"limit": "5"})
        statuses.append(response.status)

    with caplog.at_level(logging.ERROR, logger="chatsvc.errors"):
        await asyncio.gather(*(request(n) for n in range(300)))
    assert set(statuses) <= {200, 201, 503} and 503 in statuses
    assert any("CHATSVC_STATEMENT_CACHE_SIZE=0" in record.getMessage() for record in caplog.records)
