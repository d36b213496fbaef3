"""Migrations: apply all, roll back all, apply again; the schema they build; the lock."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from pytest_aiohttp import AiohttpClient

from chatsvc import migrate
from chatsvc.app import create_app
from chatsvc.settings import Settings
from tests.credentials import CREDENTIALS

MIGRATIONS = Path(__file__).parents[1] / "migrations"
TABLES = {
    "chats",
    "messages",
    "chat_members",
    "chat_idempotency_keys",
    "message_idempotency_keys",
    "chat_listeners",
    "user_write_buckets",
    "message_changes",
}


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows} - {"_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock"}


def test_every_migration_has_a_rollback() -> None:
    applies = {
        p.name.removesuffix(".sql") for p in MIGRATIONS.glob("*.sql") if not p.name.endswith(".rollback.sql")
    }
    rollbacks = {p.name.removesuffix(".rollback.sql") for p in MIGRATIONS.glob("*.rollback.sql")}
    assert applies and applies == rollbacks


def test_apply_all_roll_back_all_apply_again(make_database: Callable[[], str]) -> None:
    url = make_database()
    count = len(migrate.status(url))
    assert migrate.apply(url) == count
    assert tables(url) == TABLES
    assert all(applied for _, applied in migrate.status(url))
    assert migrate.apply(url) == 0  # nothing pending
    assert migrate.rollback(url) == count
    assert tables(url) == set()
    assert not any(applied for _, applied in migrate.status(url))
    assert migrate.apply(url) == count
    assert tables(url) == TABLES


def test_processes_migrating_together_apply_each_migration_once(make_database: Callable[[], str]) -> None:
    url = make_database()
    with ThreadPoolExecutor(4) as pool:
        applied = list(pool.map(lambda _: migrate.apply(url), range(4)))
    assert sum(applied) == len(migrate.status(url))


def test_schema_keys_and_cascade(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        constraints: dict[str, str] = dict(
            conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid IN ('chats'::regclass, 'messages'::regclass)"
            ).fetchall()
        )
        not_null = conn.execute(
            "SELECT attrelid::regclass::text, attname FROM pg_attribute"
            " WHERE attrelid IN ('chats'::regclass, 'messages'::regclass) AND attnum > 0 AND NOT attnotnull"
        ).fetchall()
        unique_message_indexes = conn.execute(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'messages'::regclass AND indisunique"
        ).fetchall()
    assert constraints["messages_pkey"] == "PRIMARY KEY (chat_id, id)"
    assert (
        constraints["messages_chat_id_fkey"] == "FOREIGN KEY (chat_id) REFERENCES chats(id) ON DELETE CASCADE"
    )
    assert "char_length(title) >= 1" in constraints["chats_title_length"]
    assert "char_length(title) <= 200" in constraints["chats_title_length"]
    assert "char_length(text) <= 5000" in constraints["messages_text_length"]
    # The nullable columns: a chat without messages has no newest one, a message
    # from the application has no author, and one never edited no edited_at.
    assert sorted(not_null) == [
        ("chats", "last_message_id"),
        ("chats", "listed_activity"),
        ("messages", "author"),
        ("messages", "edited_at"),
    ]
    # Every key and unique index on messages leads with chat_id (shardable by chat: a
    # sharded table's other indexes are each shard's own, messages_id and messages_search too).
    assert unique_message_indexes and all("(chat_id" in indexdef for (indexdef,) in unique_message_indexes)


def test_every_reference_to_a_chat_cascades(database_url: str) -> None:
    """Deleting a chat takes with it every row that hangs on it: its messages, its
    members, its message keys, its change log and its listeners' registrations. (Chat keys have no foreign key on
    purpose: they outlive their chat, so a retry after a delete is 404.)"""
    with psycopg.connect(database_url) as conn:
        references = conn.execute(
            "SELECT conrelid::regclass::text, confdeltype FROM pg_constraint"
            " WHERE contype = 'f' AND confrelid = 'chats'::regclass ORDER BY 1"
        ).fetchall()
    assert references == [
        ("chat_listeners", "c"),
        ("chat_members", "c"),
        ("message_changes", "c"),
        ("message_idempotency_keys", "c"),
        ("messages", "c"),
    ]


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        ("INSERT INTO chats (title) VALUES (repeat('x', 201))", psycopg.errors.CheckViolation),
        ("INSERT INTO chats (title) VALUES ('')", psycopg.errors.CheckViolation),
        ("INSERT INTO chats (title) VALUES (NULL)", psycopg.errors.NotNullViolation),
        (
            "INSERT INTO messages (chat_id, seq, text) VALUES (-1, 1, 'orphan')",
            psycopg.errors.ForeignKeyViolation,
        ),
    ],
)
def test_the_database_holds_the_invariants_itself(
    database_url: str, statement: str, error: type[Exception]
) -> None:
    with psycopg.connect(database_url) as conn, pytest.raises(error):
        conn.execute(statement)


def test_message_text_limit_is_enforced_by_the_database(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        (chat_id,) = conn.execute("INSERT INTO chats (title) VALUES ('limits') RETURNING id").fetchone() or (
            0,
        )
        conn.execute(
            "INSERT INTO messages (chat_id, seq, text) VALUES (%s, 1, repeat('é', 5000))", (chat_id,)
        )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO messages (chat_id, seq, text) VALUES (%s, 2, repeat('é', 5001))", (chat_id,)
            )


async def test_v2_data_keeps_working_for_the_server_after_the_members_migration(
    make_migrated_database: Callable[[], str], aiohttp_client: AiohttpClient
) -> None:
    """Rows written by v2 (migrations up to 0004), then 0005 and later applied: the
    chat has no members, its message no author, and v2's keys still replay."""
    url = make_migrated_database()
    after_v2 = len(migrate.shipped()) - 4
    assert migrate.rollback(url, after_v2) == after_v2
    with psycopg.connect(url, autocommit=True) as conn:
        (chat_id,) = conn.execute("INSERT INTO chats (title) VALUES ('v2 chat') RETURNING id").fetchone() or (
            0,
        )
        (message_id,) = conn.execute(
            "INSERT INTO messages (chat_id, text) VALUES (%s, 'v2 text') RETURNING id", (chat_id,)
        ).fetchone() or (0,)
        conn.execute(
            "INSERT INTO chat_idempotency_keys (key, chat_id) VALUES ('v2-chat-key', %s)", (chat_id,)
        )
        conn.execute(
            "INSERT INTO message_idempotency_keys (chat_id, key, message_id) VALUES (%s, 'v2-message-key', %s)",
            (chat_id, message_id),
        )
    assert migrate.apply(url) == after_v2
    client = await aiohttp_client(create_app(Settings(**CREDENTIALS, database_url=url)))
    chat = await (await client.get(f"/chats/{chat_id}")).json()
    assert [(m["id"], m["author"], m["text"]) for m in chat["messages"]] == [(message_id, None, "v2 text")]
    members = await (await client.get(f"/chats/{chat_id}/members/")).json()
    assert members == {"members": [], "next_after": None}
    replayed = await client.post(
        "/chats/", json={"title": "v2 chat"}, headers={"Idempotency-Key": "v2-chat-key"}
    )
    assert replayed.headers.get("Idempotent-Replayed") == "true" and (await replayed.json())["id"] == chat_id
    other = await client.post(
        "/chats/", json={"title": "another"}, headers={"Idempotency-Key": "v2-chat-key"}
    )
    assert other.status == 422
    sent = await client.post(
        f"/chats/{chat_id}/messages/", json={"text": "v2 text"}, headers={"Idempotency-Key": "v2-message-key"}
    )
    assert sent.headers.get("Idempotent-Replayed") == "true" and (await sent.json())["id"] == message_id
