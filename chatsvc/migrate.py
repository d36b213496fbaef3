"""Schema migrations with yoyo: apply, roll back, list.

yoyo needs a synchronous driver, so migrations talk through psycopg 3; the
service itself uses asyncpg only. Every change runs under yoyo's lock, so two
processes starting together apply each migration once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from yoyo import get_backend, read_migrations

from chatsvc.resources import migrations_folder


def yoyo_url(database_url: str) -> str:
    """The same server, addressed through yoyo's psycopg 3 backend."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        raise ValueError("DATABASE_URL must start with postgresql:// or postgres://")
    return f"postgresql+psycopg://{rest}"


class DatabaseEncodingError(Exception):
    """The database does not store text as UTF-8, which every title and message needs."""


def check_encoding(database_url: str) -> None:
    """Refuses a database whose encoding is not UTF8 (say SQL_ASCII, which keeps bytes
    unchecked and makes psycopg hand yoyo bytes where it expects text)."""
    with psycopg.connect(database_url) as conn:
        encoding = conn.info.parameter_status("server_encoding")
    if encoding != "UTF8":
        raise DatabaseEncodingError(
            f"its encoding is {encoding}, and chatsvc needs UTF8"
            " (CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)"
        )


@contextmanager
def _session(database_url: str) -> Iterator[tuple[Any, Any]]:
    backend = get_backend(yoyo_url(database_url))
    # psycopg prepares a statement it has run five times (yoyo's SAVEPOINTs
    # among them): behind a transaction pooler the next run may reach a server
    # connection that does not have it. Migrations run rarely: never prepare.
    backend.connection.prepare_threshold = None
    try:
        yield backend, read_migrations(str(migrations_folder()))
    finally:
        backend.connection.close()


def shipped() -> frozenset[str]:
    """The ids of the migrations this version ships (their file names, as yoyo names them)."""
    return frozenset(
        path.name.removesuffix(".sql")
        for path in migrations_folder().glob("*.sql")
        if not path.name.endswith(".rollback.sql")
    )


def apply(database_url: str) -> int:
    """Apply every pending migration; returns how many were applied."""
    with _session(database_url) as (backend, migrations), backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
        return len(pending)


def rollback(database_url: str, count: int | None = None) -> int:
    """Roll back the newest `count` applied migrations (all when None)."""
    with _session(database_url) as (backend, migrations), backend.lock():
        applied = backend.to_rollback(migrations)
        chosen = applied if count is None else applied[:count]
        backend.rollback_migrations(chosen)
        return len(chosen)


def status(database_url: str) -> list[tuple[str, bool]]:
    """Every migration id, oldest first, and whether it is applied."""
    with _session(database_url) as (backend, migrations):
        applied = {migration.id for migration in backend.to_rollback(migrations)}
        return [(migration.id, migration.id in applied) for migration in migrations]
