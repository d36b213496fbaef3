"""PATCH and DELETE /chats/{chat_id}/messages/{message_id}: editing and deleting one message."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg
import pytest

from chatsvc.models import Message
from tests.api import JSON, RFC3339_UTC, create_chat, error_locations, fill_chat, parse_time, problem, send
from tests.conftest import Client
from tests.credentials import user


async def edit(client: Client, chat_id: int, message_id: int, text: str, **kwargs: Any) -> dict[str, Any]:
    response = await client.patch(f"/chats/{chat_id}/messages/{message_id}", json={"text": text}, **kwargs)
    assert response.status == 200, await response.text()
    assert response.content_type == "application/json"
    edited: dict[str, Any] = await response.json()
    Message.model_validate(edited)
    return edited


async def history(client: Client, chat_id: int, query: str = "") -> list[dict[str, Any]]:
    response = await client.get(f"/chats/{chat_id}/messages/{query}")
    assert response.status == 200, await response.text()
    messages: list[dict[str, Any]] = (await response.json())["messages"]
    return messages


async def test_an_edit_changes_the_text_and_edited_at_and_nothing_else(client: Client) -> None:
    chat = await create_chat(client)
    before = await send(client, chat["id"], "first draft")
    later = await send(client, chat["id"], "a reply")
    assert before["edited_at"] is None
    edited = await edit(client, chat["id"], before["id"], "  final text\n with a second line  ")
    assert edited["text"] == "final text\n with a second line"  # trimmed like a send
    assert RFC3339_UTC.fullmatch(edited["edited_at"])
    assert parse_time(edited["edited_at"]) >= parse_time(before["created_at"])
    unchanged = {key: value for key, value in edited.items() if key not in ("text", "edited_at")}
    assert unchanged == {key: value for key, value in before.items() if key not in ("text", "edited_at")}
    # Every read shows the edit, in the message's old place.
    assert (await (await client.get(f"/chats/{chat['id']}/messages/{before['id']}")).json()) == edited
    assert await history(client, chat["id"]) == [edited, later]
    latest = await (await client.get(f"/chats/{chat['id']}")).json()
    assert latest["messages"] == [edited, later]
    assert latest["last_message"] == later


async def test_an_edit_keeps_the_author_whatever_the_body_says(client: Client) -> None:
    chat = await create_chat(client)
    message = await send(client, chat["id"])
    response = await client.patch(
        f"/chats/{chat['id']}/messages/{message['id']}", json={"text": "new", "author": "mallory"}
    )
    assert response.status == 200
    assert (await response.json())["author"] is None


async def test_a_user_edits_their_own_message_and_it_stays_theirs(client: Client) -> None:
    alice = user("alice-" + secrets.token_hex(4))
    response = await client.post("/chats/", json={"title": "mine"}, headers=alice)
    chat_id = (await response.json())["id"]
    response = await client.post(f"/chats/{chat_id}/messages/", json={"text": "typo"}, headers=alice)
    message = await response.json()
    edited = await edit(client, chat_id, message["id"], "fixed", headers=alice)
    assert (edited["author"], edited["text"]) == (message["author"], "fixed")


@pytest.mark.parametrize(
    ("body", "status", "loc"),
    [
        ({"text": "   "}, 422, ["body", "text"]),
        ({"text": "x" * 5001}, 422, ["body", "text"]),
        ({"text": "nul \u0000 inside"}, 422, ["body", "text"]),
        ({"text": 5}, 422, ["body", "text"]),
        ({}, 422, ["body", "text"]),
        ([], 422, ["body"]),
    ],
)
async def test_an_edit_follows_the_rules_of_a_send(
    client: Client, body: Any, status: int, loc: list[str]
) -> None:
    chat = await create_chat(client)
    message = await send(client, chat["id"], "kept")
    response = await client.patch(f"/chats/{chat['id']}/messages/{message['id']}", json=body)
    assert loc in error_locations(await problem(response, status))
    assert (await client.get(f"/chats/{chat['id']}/messages/{message['id']}")).status == 200
    assert (await history(client, chat["id"]))[0]["text"] == "kept"


async def test_an_edit_that_is_not_json_is_400_and_changes_nothing(client: Client) -> None:
    chat = await create_chat(client)
    message = await send(client, chat["id"], "kept")
    response = await client.patch(f"/chats/{chat['id']}/messages/{message['id']}", data=b"{", headers=JSON)
    await problem(response, 400)
    assert (await history(client, chat["id"]))[0] == message


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_a_missing_message_or_one_of_another_chat_is_404(client: Client, method: str) -> None:
    chat, other = await create_chat(client), await create_chat(client)
    message = await send(client, other["id"])
    body = {"text": "x"} if method == "PATCH" else None
    for path in (
        f"/chats/{chat['id']}/messages/{message['id']}",  # another chat's message
        f"/chats/{chat['id']}/messages/{message['id'] + 1000}",
        f"/chats/{chat['id'] + 1000}/messages/{message['id']}",
        f"/chats/{chat['id']}/messages/abc",
        f"/chats/{chat['id']}/messages/99999999999999999999",
    ):
        await problem(await client.request(method, path, json=body), 404)
    assert (await history(client, other["id"])) == [message]


async def test_a_deleted_message_is_gone_from_every_read(client: Client, db: asyncpg.Connection) -> None:
    chat = await create_chat(client)
    kept = await send(client, chat["id"], "kept")
    secret = "secret " + secrets.token_hex(8)
    doomed = await send(client, chat["id"], secret)
    response = await client.delete(f"/chats/{chat['id']}/messages/{doomed['id']}")
    assert response.status == 204
    assert await response.read() == b""
    await problem(await client.get(f"/chats/{chat['id']}/messages/{doomed['id']}"), 404)
    assert await history(client, chat["id"]) == [kept]
    assert await history(client, chat["id"], "?after=0") == [kept]
    latest = await (await client.get(f"/chats/{chat['id']}")).json()
    assert (latest["messages"], latest["last_message"]) == ([kept], kept)
    # A second delete finds nothing.
    await problem(await client.delete(f"/chats/{chat['id']}/messages/{doomed['id']}"), 404)
    await problem(await client.patch(f"/chats/{chat['id']}/messages/{doomed['id']}", json={"text": "x"}), 404)
    # Its text is gone from the database, not only from the API: no table holds it.
    holders = await db.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    for (table,) in holders:
        found = await db.fetchval(f'SELECT count(*) FROM "{table}" AS t WHERE t::text LIKE $1', f"%{secret}%")
        assert found == 0, table


async def test_an_edited_text_leaves_no_copy_of_the_old_one(client: Client, db: asyncpg.Connection) -> None:
    chat = await create_chat(client)
    secret = "old " + secrets.token_hex(8)
    message = await send(client, chat["id"], secret)
    await edit(client, chat["id"], message["id"], "new")
    for table in ("messages", "message_changes"):
        found = await db.fetchval(f"SELECT count(*) FROM {table} AS t WHERE t::text LIKE $1", f"%{secret}%")
        assert found == 0, table


@pytest.mark.parametrize("direction", ["before", "after"])
async def test_deleting_messages_while_paging_neither_skips_nor_repeats_the_others(
    client: Client, db: asyncpg.Connection, direction: str
) -> None:
    chat = await create_chat(client)
    await fill_chat(db, chat["id"], 40, "m")
    everything = [m["id"] for m in await history(client, chat["id"], "?limit=100")]
    seen: list[int] = []
    deleted: set[int] = set()
    cursor = "" if direction == "before" else "&after=0"
    while True:
        page = await (await client.get(f"/chats/{chat['id']}/messages/?limit=7{cursor}")).json()
        ids = [m["id"] for m in page["messages"]]
        seen.extend(ids)
        if not page["has_more"]:
            break
        # Between pages: delete one message already seen, one on the next page, and the cursor's own.
        edge = ids[0] if direction == "before" else ids[-1]
        upcoming = [i for i in everything if i not in seen and i not in deleted]
        for doomed in {ids[len(ids) // 2], upcoming[len(upcoming) // 2], edge}:
            response = await client.delete(f"/chats/{chat['id']}/messages/{doomed}")
            assert response.status == 204
            deleted.add(doomed)
        cursor = f"&before={ids[0]}" if direction == "before" else f"&after={ids[-1]}"
    assert len(seen) == len(set(seen))  # nothing repeated
    assert set(seen) | deleted == set(everything)  # nothing skipped but what was deleted before its page


async def test_edits_and_deletes_racing_each_other_answer_cleanly(client: Client) -> None:
    chat = await create_chat(client)
    messages = [await send(client, chat["id"], f"m{n}") for n in range(10)]

    async def edit_status(message_id: int) -> int:
        response = await client.patch(f"/chats/{chat['id']}/messages/{message_id}", json={"text": "raced"})
        return response.status

    async def delete_status(message_id: int) -> int:
        return (await client.delete(f"/chats/{chat['id']}/messages/{message_id}")).status

    results = await asyncio.gather(
        *(coroutine for m in messages for coroutine in (edit_status(m["id"]), delete_status(m["id"])))
    )
    edits, deletes = results[0::2], results[1::2]
    assert set(deletes) == {204}
    assert set(edits) <= {200, 404}  # before or after its deletion, never 500
    assert await history(client, chat["id"]) == []


async def test_a_send_retried_after_its_message_was_deleted_is_404_and_stores_nothing(client: Client) -> None:
    chat = await create_chat(client)
    key = {"Idempotency-Key": "retry-" + secrets.token_hex(4)}
    first = await client.post(f"/chats/{chat['id']}/messages/", json={"text": "once"}, headers=key)
    message = await first.json()
    assert (await client.delete(f"/chats/{chat['id']}/messages/{message['id']}")).status == 204
    retry = await client.post(f"/chats/{chat['id']}/messages/", json={"text": "once"}, headers=key)
    body = await problem(retry, 404)
    assert "deleted" in body["detail"]
    assert await history(client, chat["id"]) == []
