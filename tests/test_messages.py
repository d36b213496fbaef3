"""POST /chats/{id}/messages/ (contract v1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from chatsvc.models import Message
from tests.api import create_chat, error_locations, parse_time, problem, send
from tests.conftest import Client


async def test_send_returns_201_the_message_and_its_location(client: Client) -> None:
    chat = await create_chat(client)
    before = datetime.now(UTC) - timedelta(seconds=5)
    response = await client.post(f"/chats/{chat['id']}/messages/", json={"text": "Hello there"})
    assert response.status == 201
    assert response.content_type == "application/json"
    message = await response.json()
    Message.model_validate(message)
    assert set(message) == {"id", "chat_id", "author", "text", "created_at", "edited_at"}
    assert isinstance(message["id"], int) and message["id"] > 0
    assert message["chat_id"] == chat["id"]
    assert message["text"] == "Hello there"
    assert response.headers["Location"] == f"/chats/{chat['id']}/messages/{message['id']}"
    assert before <= parse_time(message["created_at"]) <= datetime.now(UTC) + timedelta(seconds=5)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("  padded  ", "padded"),
        ("\n\nline one\n\n  line two  \n\ttabbed\n\n", "line one\n\n  line two  \n\ttabbed"),
        ("\u2028\u00a0nbsp and line separator\u2029", "nbsp and line separator"),
        (
            "emoji 🎉👨‍👩‍👧, RTL שלום مرحبا, combining e\u0301",
            "emoji 🎉👨‍👩‍👧, RTL שלום مرحبا, combining e\u0301",
        ),
        ("\u200bzero width space is not whitespace\u200b", "\u200bzero width space is not whitespace\u200b"),
        ("\U0010fffd astral private use \ufeff", "\U0010fffd astral private use \ufeff"),
        ("1'); DELETE FROM messages; --", "1'); DELETE FROM messages; --"),
        ("$1 $2 :name %s {text}", "$1 $2 :name %s {text}"),
    ],
)
async def test_text_is_trimmed_and_otherwise_round_trips_exactly(
    client: Client, sent: str, stored: str
) -> None:
    chat = await create_chat(client)
    message = await send(client, chat["id"], sent)
    assert message["text"] == stored
    fetched = await (await client.get(f"/chats/{chat['id']}")).json()
    assert fetched["messages"][-1]["text"] == stored


@pytest.mark.parametrize("text", ["x", "x" * 5000, "🎉" * 5000, "\n" + "y" * 5000 + "\n"])
async def test_text_of_1_to_5000_code_points_is_accepted(client: Client, text: str) -> None:
    chat = await create_chat(client)
    assert (await send(client, chat["id"], text))["text"] == text.strip()


@pytest.mark.parametrize(
    "text",
    ["", "  \n\t ", "x" * 5001, "🎉" * 5001, "nul\x00inside"],
    ids=["empty", "whitespace", "5001", "5001-emoji", "NUL"],
)
async def test_text_out_of_bounds_or_with_nul_is_422(
    client: Client, db: asyncpg.Connection, text: str
) -> None:
    chat = await create_chat(client)
    body = await problem(await client.post(f"/chats/{chat['id']}/messages/", json={"text": text}), 422)
    assert error_locations(body) == [["body", "text"]]
    assert await db.fetchval("SELECT count(*) FROM messages WHERE chat_id = $1", chat["id"]) == 0


@pytest.mark.parametrize("text", [123, None, False, ["hi"], {"text": "hi"}])
async def test_text_of_another_type_is_422(client: Client, text: object) -> None:
    chat = await create_chat(client)
    body = await problem(await client.post(f"/chats/{chat['id']}/messages/", json={"text": text}), 422)
    assert error_locations(body) == [["body", "text"]]


async def test_missing_text_is_422(client: Client) -> None:
    chat = await create_chat(client)
    body = await problem(await client.post(f"/chats/{chat['id']}/messages/", json={"title": "x"}), 422)
    assert error_locations(body) == [["body", "text"]]


async def test_send_to_missing_chat_is_404_and_stores_nothing(client: Client, db: asyncpg.Connection) -> None:
    count_before = await db.fetchval("SELECT count(*) FROM messages")
    await problem(await client.post("/chats/9223372036854775807/messages/", json={"text": "x"}), 404)
    assert await db.fetchval("SELECT count(*) FROM messages") == count_before


async def test_send_to_a_deleted_chat_is_404(client: Client, db: asyncpg.Connection) -> None:
    chat = await create_chat(client)
    assert (await client.delete(f"/chats/{chat['id']}")).status == 204
    await problem(await client.post(f"/chats/{chat['id']}/messages/", json={"text": "late"}), 404)
    assert await db.fetchval("SELECT count(*) FROM messages WHERE chat_id = $1", chat["id"]) == 0


async def test_message_ids_increase_within_a_chat(client: Client) -> None:
    chat = await create_chat(client)
    ids = [(await send(client, chat["id"], str(n)))["id"] for n in range(10)]
    assert ids == sorted(set(ids))


async def test_messages_stay_in_their_own_chat(client: Client) -> None:
    first, second = await create_chat(client), await create_chat(client)
    in_first = await send(client, first["id"], "first")
    in_second = await send(client, second["id"], "second")
    assert (await (await client.get(f"/chats/{first['id']}")).json())["messages"] == [in_first]
    assert (await (await client.get(f"/chats/{second['id']}")).json())["messages"] == [in_second]
