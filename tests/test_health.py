"""GET /healthz and GET /readyz (contract v2, operations)."""

from __future__ import annotations

from collections.abc import Callable

from pytest_aiohttp import AiohttpClient

from chatsvc import migrate
from chatsvc.app import create_app
from chatsvc.settings import Settings
from tests.api import problem
from tests.conftest import Client
from tests.credentials import CREDENTIALS


async def test_healthz_says_the_process_is_up(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200 and await response.json() == {"status": "ok"}


async def test_readyz_is_200_on_a_database_at_the_latest_migration(client: Client) -> None:
    response = await client.get("/readyz")
    assert response.status == 200 and await response.json() == {"status": "ready"}


async def test_readyz_is_503_while_migrations_are_behind(
    aiohttp_client: AiohttpClient, make_database: Callable[[], str]
) -> None:
    url = make_database()
    migrate.apply(url)
    migrate.rollback(url, count=1)
    client = await aiohttp_client(create_app(Settings(**CREDENTIALS, database_url=url)))
    body = await problem(await client.get("/readyz"), 503)
    assert "1 migration(s) pending" in body["detail"]
    migrate.apply(url)
    assert (await client.get("/readyz")).status == 200


async def test_readyz_is_503_on_a_database_never_migrated(
    aiohttp_client: AiohttpClient, make_database: Callable[[], str]
) -> None:
    client = await aiohttp_client(create_app(Settings(**CREDENTIALS, database_url=make_database())))
    response = await client.get("/readyz")
    body = await problem(response, 503)
    assert response.headers["Retry-After"]
    assert f"{len(migrate.shipped())} migration(s) pending" in body["detail"]
