"""Small helpers the API tests share: calls that must succeed, and problem checks."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.credentials import with_server_key

T = TypeVar("T")

JSON = {"Content-Type": "application/json"}
# RFC 3339 with fraction optional and an explicit UTC offset.
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|\+00:00)")


# Fills chats through SQL, as any writer that bypasses the service must
# (migrations/0007, 0008): each message numbered after its chat's last, each
# chat's counters moved and the chat unlisted. $1 chat ids, $2 messages per chat, $3 their text's prefix
# (the n-th reads prefix || n), $4 their author.
FILL_CHATS = """
WITH filled AS (
    INSERT INTO messages (chat_id, seq, author, text)
    SELECT c.id, c.sent_count + n, $4::text, $3::text || n
    FROM chats AS c, generate_series(1, $2::integer) AS n
    WHERE c.id = ANY ($1::bigint[])
    ORDER BY c.id, n
    RETURNING chat_id, id
)
UPDATE chats
SET sent_count = sent_count + $2, last_message_id = newest.id, listed_activity = NULL
FROM (SELECT chat_id, max(id) AS id FROM filled GROUP BY chat_id) AS newest
WHERE chats.id = newest.chat_id
"""


async def fill_chats(
    db: asyncpg.Connection,
    chat_ids: list[int],
    count: int,
    prefix: str = "message ",
    author: str | None = None,
) -> None:
    """Adds count messages to each chat through SQL (much faster than sends)."""
    await db.execute(FILL_CHATS, chat_ids, count, prefix, author)


async def fill_chat(
    db: asyncpg.Connection, chat_id: int, count: int, prefix: str = "message ", author: str | None = None
) -> int:
    """Adds count messages to the chat through SQL; its newest message id."""
    await fill_chats(db, [chat_id], count, prefix, author)
    newest: int = await db.fetchval("SELECT coalesce(max(id), 0) FROM messages WHERE chat_id = $1", chat_id)
    return newest


async def create_chat(client: TestClient[Any, Any], title: str = "chat") -> dict[str, Any]:
    response = await client.post("/chats/", json={"title": title})
    assert response.status == 201, await response.text()
    chat: dict[str, Any] = await response.json()
    return chat


async def send(client: TestClient[Any, Any], chat_id: int, text: str = "hello") -> dict[str, Any]:
    response = await client.post(f"/chats/{chat_id}/messages/", json={"text": text})
    assert response.status == 201, await response.text()
    message: dict[str, Any] = await response.json()
    return message


async def problem(response: ClientResponse, status: int) -> dict[str, Any]:
    """Checks that response is an RFC 9457 problem with status; returns its body."""
    body_text = await response.text()
    assert response.status == status, body_text
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json(content_type=None)
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in body_text and "SELECT" not in body_text
    return body


def error_locations(body: dict[str, Any]) -> list[list[str]]:
    return [error["loc"] for error in body["errors"]]


def parse_time(value: str) -> datetime:
    assert RFC3339_UTC.fullmatch(value), value
    parsed = datetime.fromisoformat(value)  # accepts "Z" since Python 3.11
    assert parsed.utcoffset() == timedelta(0)
    return parsed


async def waiting_on_a_lock(
    db: asyncpg.Connection, request: Awaitable[T], application: str = "chatsvc"
) -> asyncio.Task[T]:
    """Starts request and returns once a backend of the service waits for a lock: one
    of its pool's ("chatsvc") or its events listener's ("chatsvc-events")."""
    task = asyncio.ensure_future(request)
    for _ in range(1000):
        waiting = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = $1 AND wait_event_type = 'Lock' AND datname = current_database()",
            application,
        )
        if waiting or task.done():
            break
        await asyncio.sleep(0.01)
    assert not task.done(), "the request did not wait for the open transaction"
    return task


async def raw_exchange(client: TestClient[Any, Any], request: bytes, close_after_send: bool = False) -> bytes:
    """Sends request bytes as they are over a fresh connection; returns what comes back."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(with_server_key(request))
    await writer.drain()
    if close_after_send:
        await asyncio.sleep(0.2)  # let the handler start reading the body, then leave
        writer.close()
        await writer.wait_closed()
        return b""
    try:
        return await read_answer(reader)
    finally:
        writer.close()


async def read_answer(reader: asyncio.StreamReader, within: float = 10) -> bytes:
    """One whole response from a raw connection: its head, then Content-Length bytes."""
    async with asyncio.timeout(within):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return head + await reader.readexactly(length)


# -- /metrics ------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(client: TestClient[Any, Any]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return samples(await response.text())
