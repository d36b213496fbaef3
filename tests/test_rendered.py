"""Each message's stored rendering (migrations/0010: messages.rendered, message_json())
is the API's Message JSON, byte for byte what to_json() of its columns gives with
TimeZone UTC, whoever wrote the row and whatever their session's time zone; every
answer that holds messages is built from it."""

from __future__ import annotations

import asyncpg
import orjson
import pytest

from tests.api import create_chat, fill_chat, send
from tests.conftest import Client

# Texts whose JSON needs every kind of escape, and texts that need none.
TEXTS = [
    "plain",
    'a "quoted" word and a \\ backslash',
    "lines\nand\ttabs\rand a \x01 control and \x1f and \x7f",
    "Привет, ёлка! 你好 🙂 مرحبا",
    "</script><script>alert(1)</script>",
    "\u2028 line and paragraph \u2029 separators",
    "x" * 5000,
]

TO_JSON = """
SELECT rendered, (SELECT to_json(m)::text FROM (SELECT id, chat_id, author, text, created_at, edited_at) AS m)
FROM messages
WHERE chat_id = $1
ORDER BY id
"""


async def renderings(db: asyncpg.Connection, chat_id: int) -> list[tuple[str, str]]:
    """Each message of the chat: its stored rendering, and to_json() of its columns (UTC)."""
    await db.execute("SET TimeZone = 'UTC'")
    return [(row[0], row[1]) for row in await db.fetch(TO_JSON, chat_id)]


async def test_the_stored_rendering_is_to_json_of_the_columns_byte_for_byte(
    client: Client, db: asyncpg.Connection
) -> None:
    chat_id = (await create_chat(client, "rendered"))["id"]
    for text in TEXTS:
        await send(client, chat_id, text)
    await fill_chat(db, chat_id, 3, author='a"quoted\\author')  # written by plain SQL
    # Times whose fraction ends in zeros, or is none: to_json() drops the zeros.
    await db.execute(
        "UPDATE messages SET edited_at = timestamptz '2026-01-02 03:04:05.120000+00' WHERE chat_id = $1"
        " AND id = (SELECT min(id) FROM messages WHERE chat_id = $1)",
        chat_id,
    )
    await db.execute(
        "UPDATE messages SET edited_at = timestamptz '2026-01-02 03:04:05+00' WHERE chat_id = $1"
        " AND id = (SELECT max(id) FROM messages WHERE chat_id = $1)",
        chat_id,
    )
    rendered = await renderings(db, chat_id)
    assert len(rendered) == len(TEXTS) + 3
    for stored, expected in rendered:
        assert stored == expected
    edited = [orjson.loads(stored)["edited_at"] for stored, _ in rendered]
    assert edited[0] == "2026-01-02T03:04:05.12+00:00" and edited[-1] == "2026-01-02T03:04:05+00:00"


async def test_a_row_written_in_another_time_zone_renders_in_utc(
    client: Client, db: asyncpg.Connection
) -> None:
    """A DBA's session in another time zone writes the same rendering the service would."""
    chat_id = (await create_chat(client, "another time zone"))["id"]
    await db.execute("SET TimeZone = 'Asia/Kolkata'")
    await fill_chat(db, chat_id, 2)
    await db.execute(
        "UPDATE messages SET edited_at = timestamptz '2026-06-01 12:00:00.5+05:30' WHERE chat_id = $1",
        chat_id,
    )
    for stored, expected in await renderings(db, chat_id):
        assert stored == expected
        assert orjson.loads(stored)["edited_at"] == "2026-06-01T06:30:00.5+00:00"


@pytest.mark.parametrize("text", ['edited: "new" \\ text \n ёж', "short"])
async def test_every_answer_holding_a_message_shows_its_current_rendering(
    client: Client, db: asyncpg.Connection, text: str
) -> None:
    """An edit renders the new text with its edited_at; the write's answer, the message,
    history pages both ways, the chat with its latest messages, the listing and search
    all show what is stored (tests/test_resume.py has the resumed event streams)."""
    chat_id = (await create_chat(client, "answers"))["id"]
    first = await send(client, chat_id, "findable quetzalcoatl")
    response = await client.patch(f"/chats/{chat_id}/messages/{first['id']}", json={"text": text})
    assert response.status == 200
    edited = await response.json()
    assert (edited["text"], edited["id"]) == (text, first["id"]) and edited["edited_at"] is not None
    ((stored, expected),) = await renderings(db, chat_id)
    assert stored == expected and orjson.loads(stored) == edited
    answers = {
        "message": f"/chats/{chat_id}/messages/{first['id']}",
        "newest page": f"/chats/{chat_id}/messages/",
        "page after": f"/chats/{chat_id}/messages/?after=0",
        "chat": f"/chats/{chat_id}",
    }
    bodies = {name: await (await client.get(path)).json() for name, path in answers.items()}
    assert bodies["message"] == edited
    assert bodies["newest page"] == bodies["page after"] == {"messages": [edited], "has_more": False}
    assert bodies["chat"]["messages"] == [edited] and bodies["chat"]["last_message"] == edited
    listing = await (await client.get("/chats/?limit=100")).json()
    assert [chat["last_message"] for chat in listing["chats"] if chat["id"] == chat_id] == [edited]
    words = "edited" if text != "short" else "short"
    found = await (await client.get("/search/messages", params={"q": words, "chat_id": chat_id})).json()
    assert found["messages"] == [edited]
