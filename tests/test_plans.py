"""Query plans: reading a chat costs the same whatever the chat's size.

EXPLAIN ANALYZE of the real SQL files on a chat of 50,000 messages, after
ANALYZE, so the planner sees realistic statistics.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import pytest

from chatsvc import migrate, queries

BIG = 50_000
CHATS = 20_000


@pytest.fixture(scope="module")
def big_database(make_database: Callable[[], str]) -> str:
    url = make_database()
    migrate.apply(url)
    return url


@pytest.fixture
async def big(big_database: str) -> AsyncIterator[tuple[asyncpg.Connection, int]]:
    conn = await asyncpg.connect(big_database)
    chat_id = await conn.fetchval("SELECT id FROM chats WHERE title = 'big'")
    if chat_id is None:
        chat_id = await conn.fetchval("INSERT INTO chats (title) VALUES ('big') RETURNING id")
        await conn.execute(
            "INSERT INTO chats (title) SELECT 'small ' || n FROM generate_series(1, $1) AS n", CHATS
        )
        await conn.execute(
            "INSERT INTO messages (chat_id, text) SELECT c.id, 'm' FROM chats AS c, generate_series(1, 2)"
        )
        await conn.execute(
            "INSERT INTO messages (chat_id, text) SELECT $1, 'message ' || n FROM generate_series(1, $2) AS n",
            chat_id,
            BIG,
        )
        await conn.execute("ANALYZE chats; ANALYZE messages")
    yield conn, chat_id
    await conn.close()


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def explain(conn: asyncpg.Connection, statement: str, *args: object) -> list[dict[str, Any]]:
    raw = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", *args)
    return list(nodes(json.loads(raw)[0]["Plan"]))


@pytest.mark.parametrize("limit", [1, 20, 100])
async def test_latest_messages_read_only_limit_rows_from_the_index(
    big: tuple[asyncpg.Connection, int], limit: int
) -> None:
    conn, chat_id = big
    plan = await explain(conn, queries.GET_CHAT_WITH_LATEST_MESSAGES, chat_id, limit)
    on_messages = [node for node in plan if node.get("Relation Name") == "messages"]
    assert on_messages, plan
    for node in on_messages:
        assert node["Node Type"] in ("Index Scan", "Index Only Scan"), node["Node Type"]
        assert node["Index Name"] == "messages_pkey"
        assert node["Scan Direction"] == "Backward"
        assert node["Actual Rows"] <= limit  # not 50,000
    assert not any(node["Node Type"] == "Seq Scan" for node in plan)


async def test_send_locks_one_chat_row_by_its_key(big: tuple[asyncpg.Connection, int]) -> None:
    conn, chat_id = big
    transaction = conn.transaction()
    await transaction.start()
    plan = await explain(conn, queries.CREATE_MESSAGE, chat_id, "planned")
    await transaction.rollback()  # EXPLAIN ANALYZE really inserts
    scans = [node for node in plan if node.get("Relation Name") == "chats"]
    assert scans and all(node["Node Type"] == "Index Scan" for node in scans)
    assert any(node["Node Type"] == "LockRows" for node in plan)
