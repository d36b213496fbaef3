"""POST /chats/, GET /chats/{id}, DELETE /chats/{id} (contract v1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from pytest_aiohttp import AiohttpClient

from chatsvc.app import create_app
from chatsvc.keys import DATABASE
from chatsvc.models import Chat, ChatWithMessages
from chatsvc.settings import Settings
from tests.api import create_chat, error_locations, fill_chat, parse_time, problem, send
from tests.conftest import Client

# -- POST /chats/ ------------------------------------------------------------


async def test_create_chat_returns_201_the_chat_and_its_location(client: Client) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    response = await client.post("/chats/", json={"title": "Weekend plans"})
    assert response.status == 201
    assert response.content_type == "application/json"
    chat = await response.json()
    assert set(chat) == {"id", "title", "created_at"}
    Chat.model_validate(chat)
    assert isinstance(chat["id"], int) and chat["id"] > 0
    assert chat["title"] == "Weekend plans"
    assert response.headers["Location"] == f"/chats/{chat['id']}"
    assert before <= parse_time(chat["created_at"]) <= datetime.now(UTC) + timedelta(seconds=5)


async def test_created_chat_is_readable_at_its_location(client: Client) -> None:
    response = await client.post("/chats/", json={"title": "t"})
    created = await response.json()
    fetched = await (await client.get(response.headers["Location"])).json()
    assert {key: fetched[key] for key in created} == created


async def test_chat_ids_are_distinct_and_increasing(client: Client) -> None:
    ids = [(await create_chat(client))["id"] for _ in range(5)]
    assert ids == sorted(set(ids))


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("  padded  ", "padded"),
        ("\n\tTabs and newlines\r\n", "Tabs and newlines"),
        ("\u3000ideographic space\u2003", "ideographic space"),
        ("\x1cfile separator is whitespace to str.strip\x1f", "file separator is whitespace to str.strip"),
        ("inner   spaces\nkept", "inner   spaces\nkept"),
        ("emoji 🎉👨‍👩‍👧 and RTL שלום مرحبا", "emoji 🎉👨‍👩‍👧 and RTL שלום مرحبا"),
        ("'; DROP TABLE chats; --", "'; DROP TABLE chats; --"),
    ],
)
async def test_title_is_trimmed_and_otherwise_kept_exactly(client: Client, sent: str, stored: str) -> None:
    chat = await create_chat(client, sent)
    assert chat["title"] == stored
    fetched = await (await client.get(f"/chats/{chat['id']}")).json()
    assert fetched["title"] == stored


@pytest.mark.parametrize(
    "title",
    [
        "x",
        "x" * 200,
        "🎉" * 200,  # 200 code points, 800 UTF-8 bytes
        " " * 50 + "y" * 200 + " " * 50,  # 200 after trimming
    ],
)
async def test_title_of_1_to_200_code_points_is_accepted(client: Client, title: str) -> None:
    chat = await create_chat(client, title)
    assert chat["title"] == title.strip()


@pytest.mark.parametrize(
    "title",
    ["", "   ", "\n\t \u3000", "x" * 201, "🎉" * 201, "a\x00b", "\x00"],
    ids=["empty", "spaces", "unicode-space", "201", "201-emoji", "inner-NUL", "NUL"],
)
async def test_title_out_of_bounds_or_with_nul_is_422(
    client: Client, title: str, db: asyncpg.Connection
) -> None:
    count_before = await db.fetchval("SELECT count(*) FROM chats")
    body = await problem(await client.post("/chats/", json={"title": title}), 422)
    assert error_locations(body) == [["body", "title"]]
    assert all(isinstance(error["msg"], str) and error["msg"] for error in body["errors"])
    assert await db.fetchval("SELECT count(*) FROM chats") == count_before


@pytest.mark.parametrize("title", [123, 1.5, True, None, ["a"], {"a": "b"}])
async def test_title_of_another_type_is_422_never_coerced(client: Client, title: object) -> None:
    body = await problem(await client.post("/chats/", json={"title": title}), 422)
    assert error_locations(body) == [["body", "title"]]


async def test_missing_title_is_422_naming_the_field(client: Client) -> None:
    body = await problem(await client.post("/chats/", json={"name": "x"}), 422)
    assert error_locations(body) == [["body", "title"]]


@pytest.mark.parametrize("payload", ["[]", '"title"', "42", "null", "true", '[{"title": "x"}]'])
async def test_json_that_is_not_an_object_is_422(client: Client, payload: str) -> None:
    response = await client.post("/chats/", data=payload, headers={"Content-Type": "application/json"})
    body = await problem(response, 422)
    assert error_locations(body) == [["body"]]


async def test_unknown_fields_are_ignored(client: Client) -> None:
    response = await client.post("/chats/", json={"title": "t", "id": 999999, "owner": {"x": 1}})
    assert response.status == 201
    chat = await response.json()
    assert chat["title"] == "t" and chat["id"] != 999999 and "owner" not in chat


# -- GET /chats/{id} ---------------------------------------------------------


async def test_get_chat_returns_the_chat_with_its_messages_oldest_first(client: Client) -> None:
    chat = await create_chat(client, "history")
    sent = [await send(client, chat["id"], f"message {n}") for n in range(3)]
    response = await client.get(f"/chats/{chat['id']}")
    assert response.status == 200
    assert response.content_type == "application/json"
    body = await response.json()
    ChatWithMessages.model_validate(body)
    assert set(body) == {"id", "title", "created_at", "messages", "last_message"}
    assert body["last_message"] == body["messages"][-1]
    assert {key: body[key] for key in chat} == chat
    assert body["messages"] == sent
    for message in body["messages"]:
        assert set(message) == {"id", "chat_id", "author", "text", "created_at", "edited_at"}
        parse_time(message["created_at"])


async def test_get_chat_without_messages_has_an_empty_list(client: Client) -> None:
    chat = await create_chat(client)
    body = await (await client.get(f"/chats/{chat['id']}")).json()
    assert body["messages"] == []


async def test_limit_defaults_to_20_latest_messages(client: Client) -> None:
    chat = await create_chat(client)
    sent = [await send(client, chat["id"], str(n)) for n in range(25)]
    body = await (await client.get(f"/chats/{chat['id']}")).json()
    assert body["messages"] == sent[-20:]


@pytest.mark.parametrize("limit", [1, 2, 7, 100])
async def test_limit_returns_the_n_latest_oldest_first(client: Client, limit: int) -> None:
    chat = await create_chat(client)
    sent = [await send(client, chat["id"], str(n)) for n in range(8)]
    body = await (await client.get(f"/chats/{chat['id']}", params={"limit": limit})).json()
    assert body["messages"] == sent[-limit:]
    ids = [message["id"] for message in body["messages"]]
    assert ids == sorted(ids)


async def test_limit_100_returns_100_of_more(client: Client, db: asyncpg.Connection) -> None:
    chat = await create_chat(client)
    # Fill through SQL: 150 sends through HTTP would only slow the test down.
    await fill_chat(db, chat["id"], 150, "m")
    body = await (await client.get(f"/chats/{chat['id']}", params={"limit": "100"})).json()
    assert [m["text"] for m in body["messages"]] == [f"m{n}" for n in range(51, 151)]


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=-1", "limit=101", "limit=abc", "limit=", "limit=1.5", "limit=%2B5", "limit=1e2",
     "limit=%205", "limit=99999999999999999999999", "limit=" + "9" * 5000, "limit=%D9%A3", "limit=5&limit=6"],
)  # fmt: skip
async def test_bad_limit_is_422_never_clamped(client: Client, query: str) -> None:
    chat = await create_chat(client)
    body = await problem(await client.get(f"/chats/{chat['id']}?{query}"), 422)
    assert error_locations(body) == [["query", "limit"]]


async def test_get_missing_chat_is_404(client: Client) -> None:
    await problem(await client.get("/chats/9223372036854775807"), 404)


async def test_missing_chat_is_404_even_with_a_bad_limit_checked_first(client: Client) -> None:
    # Validation comes before the lookup: a bad limit is 422 whether or not the chat exists.
    await problem(await client.get("/chats/9223372036854775807?limit=0"), 422)


# -- DELETE /chats/{id} ------------------------------------------------------


async def test_delete_chat_is_204_with_no_body_and_removes_every_row(
    client: Client, db: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    for n in range(5):
        await send(client, chat["id"], str(n))
    response = await client.delete(f"/chats/{chat['id']}")
    assert response.status == 204
    assert await response.read() == b""
    assert "Content-Type" not in response.headers
    assert await db.fetchval("SELECT count(*) FROM chats WHERE id = $1", chat["id"]) == 0
    assert await db.fetchval("SELECT count(*) FROM messages WHERE chat_id = $1", chat["id"]) == 0
    await problem(await client.get(f"/chats/{chat['id']}"), 404)


async def test_second_delete_is_404(client: Client) -> None:
    chat = await create_chat(client)
    assert (await client.delete(f"/chats/{chat['id']}")).status == 204
    await problem(await client.delete(f"/chats/{chat['id']}"), 404)


async def test_delete_leaves_other_chats_alone(client: Client) -> None:
    doomed, kept = await create_chat(client), await create_chat(client)
    kept_message = await send(client, kept["id"])
    await send(client, doomed["id"])
    assert (await client.delete(f"/chats/{doomed['id']}")).status == 204
    body = await (await client.get(f"/chats/{kept['id']}")).json()
    assert body["messages"] == [kept_message]


async def test_a_delete_that_outlasts_the_statement_timeout_deletes_the_chat_whole(
    aiohttp_client: AiohttpClient, settings: Settings, db: asyncpg.Connection
) -> None:
    """A chat's delete runs as long as its messages take (10,000,000 take minutes), as one
    statement: never cancelled by CHATSVC_STATEMENT_TIMEOUT, 0.1 s here, nor by asyncpg's limit."""
    client = await aiohttp_client(create_app(settings.model_copy(update={"statement_timeout": 0.1})))
    chat = await create_chat(client)
    await fill_chat(db, chat["id"], 20_000)
    # A fast machine deletes many rows within 0.1 s: every delete of messages here lasts 0.5 s
    # more, while this test runs (the database is shared: the trigger goes with the test).
    await db.execute("""
        CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END';
        CREATE TRIGGER slow_delete AFTER DELETE ON messages FOR EACH STATEMENT EXECUTE FUNCTION slow_delete();
    """)
    try:
        async with db.transaction():  # the same statement under the timeout is cancelled, and rolls back
            await db.execute("SET LOCAL statement_timeout = 100")
            with pytest.raises(asyncpg.QueryCanceledError):
                await db.execute("DELETE FROM chats WHERE id = $1", chat["id"])
        pool = client.app[DATABASE]
        async with pool.connection() as conn:
            bounded = await conn.fetchval("SHOW statement_timeout")
        assert (await client.delete(f"/chats/{chat['id']}")).status == 204
        assert await db.fetchval("SELECT count(*) FROM messages WHERE chat_id = $1", chat["id"]) == 0
        await problem(await client.get(f"/chats/{chat['id']}"), 404)
        # The setting ended with the delete's transaction: the pool's next statement is bounded again.
        async with pool.connection() as conn:
            assert await conn.fetchval("SHOW statement_timeout") == bounded
    finally:
        await db.execute("DROP TRIGGER slow_delete ON messages; DROP FUNCTION slow_delete()")


async def test_a_delete_waits_for_the_chat_no_longer_than_the_statement_timeout(
    aiohttp_client: AiohttpClient, settings: Settings, other: asyncpg.Connection
) -> None:
    """Its own statement has no time limit; its wait for the chat's lock (held here as a send
    holds it) has the statement timeout's, and then it is 503 with nothing deleted."""
    client = await aiohttp_client(create_app(settings.model_copy(update={"statement_timeout": 0.2})))
    chat = await create_chat(client)
    await other.execute("SELECT 1 FROM chats WHERE id = $1 FOR NO KEY UPDATE", chat["id"])
    response = await client.delete(f"/chats/{chat['id']}")
    assert response.status == 503 and response.headers["Retry-After"]
    await other.execute("COMMIT")
    assert (await client.get(f"/chats/{chat['id']}")).status == 200
    assert (await client.delete(f"/chats/{chat['id']}")).status == 204


async def test_delete_missing_chat_is_404(client: Client) -> None:
    await problem(await client.delete("/chats/9223372036854775807"), 404)
