"""Fixtures: a real PostgreSQL, a migrated database, and the real app on it.

Without TEST_DATABASE_URL the tests start the embedded PostgreSQL in a
temporary directory (crash safety off, for speed). With it, they use that
server: they create their own databases there (chatsvc_test_<random>) and drop
them afterwards, so the role needs CREATEDB; no existing database is touched.

With TEST_POOLER=pgbouncer (or the URL of a running one), the app of every
client fixture reaches its database through a real PgBouncer in transaction
mode (tests/pgbouncer.py), as
the README's PgBouncer section configures the service: its pool through the
pooler with no statement cache, its events listener direct.
tests/test_pgbouncer.py runs the contract's tests that way.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from chatsvc import migrate
from chatsvc.app import create_app
from chatsvc.db import Pool, open_database
from chatsvc.embedded import EmbeddedPostgres
from chatsvc.settings import Settings
from tests.credentials import CREDENTIALS, SERVER
from tests.pgbouncer import PgBouncer

Client = TestClient[web.Request, web.Application]


def with_database(server_url: str, name: str) -> str:
    """server_url with its database name replaced by name."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server: TEST_DATABASE_URL, or the embedded one in a temp dir."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    data_dir: Path = tmp_path_factory.mktemp("postgres")
    with EmbeddedPostgres(data_dir, durable=False) as server:
        yield server.url("postgres")


def pooler_connect_query() -> str:
    """The session settings the service sends, as PgBouncer's connect_query sets them on each
    server connection (the README's PgBouncer section shows the other way: ALTER ROLE)."""
    return (
        f"SET statement_timeout = {int(Settings().statement_timeout * 1000)}; "
        "SET plan_cache_mode = force_generic_plan"
    )


@pytest.fixture(scope="session")
def pooler(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """The URL (any database) of the transaction pooler the client fixtures' apps go through:
    TEST_POOLER's, or with TEST_POOLER=pgbouncer one started here; None without TEST_POOLER."""
    wanted = os.environ.get("TEST_POOLER", "")
    if wanted == "pgbouncer":
        workdir = tmp_path_factory.mktemp("pgbouncer")
        with PgBouncer(server_url, workdir, connect_query=pooler_connect_query()) as bouncer:
            yield bouncer.url("")
        return
    if wanted and not wanted.startswith(("postgresql://", "postgres://")):
        raise pytest.UsageError(f"TEST_POOLER={wanted!r}: 'pgbouncer', or the URL of a running pooler")
    yield wanted or None


def app_settings(database_url: str, pooler: str | None, **values: Any) -> Settings:
    """The settings of an app on database_url, its pool through the pooler when there is one."""
    if pooler is None:
        return Settings(**CREDENTIALS, database_url=database_url, **values)
    return Settings(
        **CREDENTIALS,
        database_url=with_database(pooler, urlsplit(database_url).path.lstrip("/")),
        events_database_url=database_url,
        statement_cache_size=0,
        **values,
    )


@pytest.fixture(scope="session")
def _databases(server_url: str) -> Iterator[list[str]]:
    """The names of the scratch databases made on the server; all dropped at the end."""
    created: list[str] = []
    yield created
    with psycopg.connect(server_url, autocommit=True) as conn:
        for name in reversed(created):  # the template last: the others were copied from it
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _create(server_url: str, created: list[str], template: str | None = None) -> str:
    name = f"chatsvc_test_{secrets.token_hex(4)}"
    copy_of = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy_of}')
    created.append(name)
    return name


@pytest.fixture(scope="session")
def make_database(server_url: str, _databases: list[str]) -> Callable[[], str]:
    """Creates empty scratch databases on the server (no migration applied)."""
    return lambda: with_database(server_url, _create(server_url, _databases))


@pytest.fixture(scope="session")
def make_migrated_database(server_url: str, _databases: list[str]) -> Callable[[], str]:
    """Creates scratch databases with every migration applied: copies of a template
    migrated once per session (CREATE DATABASE ... TEMPLATE), not migrated one by one."""
    template = _create(server_url, _databases)
    migrate.apply(with_database(server_url, template))
    return lambda: with_database(server_url, _create(server_url, _databases, template))


@pytest.fixture(scope="session")
def database_url(make_migrated_database: Callable[[], str]) -> str:
    """A database with every migration applied, shared by the session.

    Tests share it and stay independent by creating the chats they use.
    """
    return make_migrated_database()


@pytest.fixture
def empty_database_url(make_migrated_database: Callable[[], str]) -> str:
    """A migrated database of this test's own, for tests that must see every row."""
    return make_migrated_database()


@pytest.fixture
def aiohttp_client(aiohttp_client: AiohttpClient) -> AiohttpClient:
    """pytest-aiohttp's, its clients sending the server key unless told other headers:
    tests are the server caller unless they say otherwise."""

    async def client_of(app: web.Application, **kwargs: Any) -> Client:
        kwargs.setdefault("headers", SERVER)
        return await aiohttp_client(app, **kwargs)

    return client_of  # type: ignore[return-value]


@pytest.fixture
async def anonymous_client(aiohttp_client: AiohttpClient, settings: Settings) -> Client:
    """The app, with a client that sends no credential unless a request says so."""
    return await aiohttp_client(create_app(settings), headers={})


@pytest.fixture
async def empty_client(aiohttp_client: AiohttpClient, empty_database_url: str, pooler: str | None) -> Client:
    """The app on a database only this test uses."""
    return await aiohttp_client(create_app(app_settings(empty_database_url, pooler, pool_max_size=10)))


@pytest.fixture
def settings(database_url: str, pooler: str | None) -> Settings:
    return app_settings(database_url, pooler, pool_min_size=1, pool_max_size=10)


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, settings: Settings) -> Client:
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection, for checking what the API stored."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def other(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """Another client's connection, inside a transaction the test ends with COMMIT or ROLLBACK.

    For holding locks while a racing API request runs.
    """
    conn = await asyncpg.connect(database_url)
    await conn.execute("BEGIN")
    yield conn
    await conn.close()  # rolls back whatever is still open


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    """The service's own pool (chatsvc/db.py) holding one connection, so that who waits is certain."""
    database = await open_database(
        Settings(
            **CREDENTIALS, database_url=database_url, pool_min_size=1, pool_max_size=1, pool_acquire_timeout=2
        )
    )
    yield database
    await database.close()
