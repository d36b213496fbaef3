"""503 + Retry-After when the database cannot serve, or the service is shutting down.

These tests stop a PostgreSQL, so they start one of their own (embedded, in a
temporary directory) rather than share the session's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import ClientResponse
from pytest_aiohttp import AiohttpClient

from chatsvc import migrate
from chatsvc.app import create_app
from chatsvc.embedded import EmbeddedPostgres
from chatsvc.keys import LIFECYCLE
from chatsvc.settings import Settings
from tests.api import create_chat, problem, waiting_on_a_lock
from tests.conftest import Client
from tests.credentials import CREDENTIALS


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres(tmp_path / "pg", durable=False) as server:
        migrate.apply(server.url())
        yield server


async def unavailable(request: Awaitable[ClientResponse]) -> None:
    response = await request
    await problem(response, 503)
    assert int(response.headers["Retry-After"]) >= 1


async def test_requests_get_503_while_the_database_is_down_and_recover_after(
    aiohttp_client: AiohttpClient, own_server: EmbeddedPostgres
) -> None:
    settings = Settings(
        **CREDENTIALS, database_url=own_server.url(), pool_acquire_timeout=2, statement_timeout=2
    )
    client = await aiohttp_client(create_app(settings))
    chat = await create_chat(client)
    own_server.stop()
    for _ in range(3):  # broken pooled connections, then refused new ones
        await unavailable(client.get(f"/chats/{chat['id']}"))
        await unavailable(client.post("/chats/", json={"title": "x"}))
        await unavailable(client.post(f"/chats/{chat['id']}/messages/", json={"text": "x"}))
        await unavailable(client.delete(f"/chats/{chat['id']}"))
        await unavailable(client.get("/chats/"))
        await unavailable(client.get(f"/chats/{chat['id']}/messages/?after=0"))
        await unavailable(client.get(f"/chats/{chat['id']}/messages/1"))
        await unavailable(client.get(f"/chats/{chat['id']}/events"))
        await unavailable(client.post("/chats/", json={"title": "x"}, headers={"Idempotency-Key": "k"}))
        await unavailable(client.get("/readyz"))
        assert (await client.get("/healthz")).status == 200  # the process itself is fine
    own_server.start()
    for _ in range(50):  # the pool replaces its connections by itself
        if (await client.get("/readyz")).status == 200:
            break
        await asyncio.sleep(0.2)
    assert (await client.get("/readyz")).status == 200
    assert (await client.get(f"/chats/{chat['id']}")).status == 200
    assert (await client.post(f"/chats/{chat['id']}/messages/", json={"text": "back"})).status == 201
    for _ in range(50):  # so does the events listener
        events = await client.get(f"/chats/{chat['id']}/events")
        if events.status == 200:
            break
        events.close()
        await asyncio.sleep(0.2)
    assert events.status == 200
    events.close()


async def test_a_statement_past_its_timeout_is_503(
    aiohttp_client: AiohttpClient, database_url: str, other: asyncpg.Connection
) -> None:
    settings = Settings(**CREDENTIALS, database_url=database_url, statement_timeout=0.3)
    client = await aiohttp_client(create_app(settings))
    chat = await create_chat(client)
    await other.execute("SELECT id FROM chats WHERE id = $1 FOR UPDATE", chat["id"])
    # The send waits for the chat's row lock until statement_timeout cancels it.
    await unavailable(client.post(f"/chats/{chat['id']}/messages/", json={"text": "x"}))
    await other.execute("ROLLBACK")
    assert (await client.post(f"/chats/{chat['id']}/messages/", json={"text": "x"})).status == 201


async def test_waiting_past_the_acquire_timeout_for_a_connection_is_503(
    aiohttp_client: AiohttpClient, database_url: str, db: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    settings = Settings(
        **CREDENTIALS,
        database_url=database_url,
        pool_min_size=1,
        pool_max_size=1,
        pool_acquire_timeout=0.2,
        statement_timeout=5,
    )
    client = await aiohttp_client(create_app(settings))
    chat = await create_chat(client)
    await other.execute("SELECT id FROM chats WHERE id = $1 FOR UPDATE", chat["id"])
    # The pool's only connection waits on the lock; the next request cannot get one.
    stuck = await waiting_on_a_lock(db, client.post(f"/chats/{chat['id']}/messages/", json={"text": "x"}))
    await unavailable(client.get(f"/chats/{chat['id']}"))
    await other.execute("ROLLBACK")
    assert (await stuck).status == 201


async def test_requests_during_shutdown_get_503(client: Client) -> None:
    client.app[LIFECYCLE].shutting_down = True
    await unavailable(client.post("/chats/", json={"title": "x"}))
    await unavailable(client.get("/chats/1"))
