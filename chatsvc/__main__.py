"""Command line: ``chatsvc serve``, ``migrate``, ``purge-keys`` and ``token``. Parses settings, nothing else."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg

from chatsvc import idempotency, logs, migrate
from chatsvc.callers import issue_token, user_id_problem
from chatsvc.db import UNAVAILABLE, DatabaseUnavailable, open_database
from chatsvc.embedded import EmbeddedPostgres, EmbeddedPostgresError
from chatsvc.generated_credentials import CredentialsError, with_credentials
from chatsvc.settings import Settings, SettingsError, load_settings
from chatsvc.workers import run, supervise

log = logging.getLogger("chatsvc")

# PostgreSQL could not be reached or started: one line, no traceback.
STARTUP_FAILURES: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    EmbeddedPostgresError,
    migrate.DatabaseEncodingError,
    DatabaseUnavailable,
    *UNAVAILABLE,
)


@contextmanager
def database(settings: Settings) -> Iterator[Settings]:
    """settings with a database: DATABASE_URL when set (refused unless its encoding
    is UTF8), else the embedded PostgreSQL, stopped on exit. Every command starts here."""
    if settings.database_url is not None:
        migrate.check_encoding(settings.database_url)
        yield settings
        return
    with EmbeddedPostgres(settings.data_dir) as embedded:
        log.info("embedded PostgreSQL in %s", settings.data_dir)
        yield settings.model_copy(update={"database_url": embedded.url()})


def migrations_url(settings: Settings) -> str:
    url = settings.migrations_url
    assert url is not None, "database() gives every command a database"
    return url


def serve(settings: Settings, workers: int) -> None:
    """settings must hold the credentials already (generated_credentials.with_credentials)."""
    if settings.auth == "off":
        log.warning(
            "CHATSVC_AUTH=off: no credential is checked and every request acts as the server; "
            "for local experiments only"
        )
    with database(settings) as ready:
        applied = migrate.apply(migrations_url(ready))  # once, before any worker starts
        log.info("migrations applied: %d", applied)
        if workers == 1:
            run(ready)
        elif (code := supervise(ready, workers)) != 0:
            sys.exit(code)  # the embedded PostgreSQL is stopped on the way out


def run_migrate(settings: Settings, args: argparse.Namespace) -> None:
    if args.count is not None and not args.rollback:
        sys.exit(
            "chatsvc: migrate --count needs --rollback (applying always applies every pending migration)"
        )
    if args.count is not None and args.count < 1:
        sys.exit("chatsvc: migrate --rollback --count must be at least 1")
    with database(settings) as ready:
        url = migrations_url(ready)
        if args.list:
            for migration_id, applied in migrate.status(url):
                print(f"{'applied' if applied else 'pending'}  {migration_id}")
        elif args.rollback:
            print(f"rolled back {migrate.rollback(url, args.count)} migration(s)")
        else:
            print(f"applied {migrate.apply(url)} migration(s)")


def purge_keys(settings: Settings) -> None:
    with database(settings) as ready:
        purged = asyncio.run(_purge_keys(ready))
        print(f"purged {purged} Idempotency-Key(s) older than {idempotency.KEY_RETENTION}")


async def _purge_keys(settings: Settings) -> int:
    db = await open_database(settings)
    try:
        return await idempotency.purge_expired_keys(db)
    finally:
        await db.close()


def print_token(settings: Settings, user: str, ttl: int) -> None:
    """A user token signed with the first configured secret, or the generated one."""
    if (problem := user_id_problem(user)) is not None:
        sys.exit(f"chatsvc: token: USER {problem}")
    if ttl < 1:
        sys.exit("chatsvc: token: --ttl must be at least 1 second")
    signing = with_credentials(settings).jwt_secrets
    if not signing:
        sys.exit("chatsvc: token: no secret to sign with: set CHATSVC_JWT_SECRETS")
    print(issue_token(user, signing[0], ttl, settings.jwt_audience))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="chatsvc", description="Chat history HTTP service.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="apply migrations, then serve HTTP")
    serve_cmd.add_argument("--host", help="overrides CHATSVC_HOST")
    serve_cmd.add_argument("--port", type=int, help="overrides CHATSVC_PORT")
    serve_cmd.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing the port (SO_REUSEPORT; default 1)"
    )
    migrate_cmd = commands.add_parser("migrate", help="apply pending migrations")
    migrate_cmd.add_argument("--rollback", action="store_true", help="roll back instead")
    migrate_cmd.add_argument("--count", type=int, help="with --rollback: how many (default: all)")
    migrate_cmd.add_argument("--list", action="store_true", help="show each migration's state")
    commands.add_parser(
        "purge-keys",
        help="delete Idempotency-Keys older than 24 hours (serve also does it hourly; safe while serving)",
    )
    token_cmd = commands.add_parser(
        "token", help="print a user token signed with the configured (or generated) secret, for development"
    )
    token_cmd.add_argument("user", metavar="USER", help="the user id: its sub claim")
    token_cmd.add_argument(
        "--ttl", type=int, default=3600, metavar="SECONDS", help="seconds until it expires (default 3600)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    overrides = {"host": args.host, "port": args.port} if args.command == "serve" else {}
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        sys.exit(f"chatsvc: {exc}")
    logs.configure(settings.log_level)
    try:
        if args.command == "serve":
            if args.workers < 1:
                sys.exit("chatsvc: --workers must be at least 1")
            serve(with_credentials(settings), args.workers)
        elif args.command == "token":
            print_token(settings, args.user, args.ttl)
        elif args.command == "purge-keys":
            purge_keys(settings)
        else:
            run_migrate(settings, args)
    except (SettingsError, CredentialsError) as exc:
        sys.exit(f"chatsvc: {exc}")
    except STARTUP_FAILURES as exc:
        # Start-up could not reach or start PostgreSQL: say so in one line, no traceback.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.exit(f"chatsvc: cannot use the database: {reason}")


if __name__ == "__main__":
    main()
