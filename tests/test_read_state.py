"""Read state: PUT /chats/{chat_id}/read, unread counts, last_message, and GET /chats/?order=activity."""

from __future__ import annotations

import asyncio
import random
import secrets
from typing import Any

import asyncpg
import pytest

from chatsvc.models import ChatActivityPage, ChatPage, ChatWithMessages, ReadState
from tests.api import JSON, create_chat, error_locations, fill_chat, problem, send
from tests.conftest import Client
from tests.credentials import SERVER, user


def someone(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}"


async def chat_with(client: Client, owner: str, *members: str) -> int:
    response = await client.post(
        "/chats/",
        json={"title": "read", "members": [{"user": member} for member in members]},
        headers=user(owner),
    )
    assert response.status == 201, await response.text()
    chat_id: int = (await response.json())["id"]
    return chat_id


async def post_as(client: Client, chat_id: int, who: str | None, text: str = "hi") -> dict[str, Any]:
    """A message from a user (their token), or from the server naming who (None: the application)."""
    if who is None:
        response = await client.post(f"/chats/{chat_id}/messages/", json={"text": text}, headers=SERVER)
    else:
        response = await client.post(
            f"/chats/{chat_id}/messages/", json={"text": text, "author": who}, headers=SERVER
        )
    assert response.status == 201, await response.text()
    message: dict[str, Any] = await response.json()
    return message


async def mark(client: Client, chat_id: int, who: str, message_id: int) -> dict[str, Any]:
    response = await client.put(f"/chats/{chat_id}/read", json={"message_id": message_id}, headers=user(who))
    assert response.status == 200, await response.text()
    state: dict[str, Any] = await response.json()
    ReadState.model_validate(state)
    assert set(state) == {"chat_id", "last_read_id"}
    return state


async def listed(client: Client, who: str, chat_id: int, order: str = "created") -> dict[str, Any]:
    """The chat as the user's listing shows it (every page followed)."""
    query = "" if order == "created" else "&order=activity"
    cursor = ""
    while True:
        response = await client.get(f"/chats/?limit=100{query}{cursor}", headers=user(who))
        assert response.status == 200, await response.text()
        page = await response.json()
        (ChatPage if order == "created" else ChatActivityPage).model_validate(page)
        for chat in page["chats"]:
            if chat["id"] == chat_id:
                result: dict[str, Any] = chat
                return result
        following = page["next_before" if order == "created" else "next_cursor"]
        assert following is not None, f"chat {chat_id} is not listed"
        cursor = f"&before={following}" if order == "created" else f"&cursor={following}"


async def shown(client: Client, who: str, chat_id: int) -> dict[str, Any]:
    response = await client.get(f"/chats/{chat_id}?limit=1", headers=user(who))
    assert response.status == 200, await response.text()
    chat: dict[str, Any] = await response.json()
    ChatWithMessages.model_validate(chat)
    return chat


async def state_everywhere(client: Client, who: str, chat_id: int) -> tuple[int, int, int | None]:
    """(last_read_id, unread_count, last_message id), the same in both listings and on the chat."""
    views = [await listed(client, who, chat_id), await listed(client, who, chat_id, "activity")]
    views.append(await shown(client, who, chat_id))
    states = {
        (view["last_read_id"], view["unread_count"], view["last_message"] and view["last_message"]["id"])
        for view in views
    }
    assert len(states) == 1, views
    return states.pop()


async def test_a_marker_only_moves_forward(client: Client) -> None:
    alice = someone("alice")
    chat_id = await chat_with(client, alice)
    assert (await mark(client, chat_id, alice, 0)) == {"chat_id": chat_id, "last_read_id": 0}
    assert (await mark(client, chat_id, alice, 40))["last_read_id"] == 40
    assert (await mark(client, chat_id, alice, 7))["last_read_id"] == 40  # never back
    assert (await mark(client, chat_id, alice, 2**63 - 1))["last_read_id"] == 2**63 - 1
    assert (await shown(client, alice, chat_id))["last_read_id"] == 2**63 - 1


async def test_racing_marks_keep_the_largest(client: Client) -> None:
    alice = someone("alice")
    chat_id = await chat_with(client, alice)
    marks = list(range(1, 41))
    random.shuffle(marks)
    await asyncio.gather(*(mark(client, chat_id, alice, n) for n in marks))
    assert (await shown(client, alice, chat_id))["last_read_id"] == 40


async def test_a_marker_written_with_a_zero_fraction_is_that_integer(client: Client) -> None:
    # The schema says "integer", and JSON Schema's integer is a value, not a
    # spelling: 7.0 is 7 (schemathesis sends such bodies; so do some encoders).
    alice = someone("alice")
    chat_id = await chat_with(client, alice)
    body = b'{"message_id": 1860910857026.0}'
    response = await client.put(f"/chats/{chat_id}/read", data=body, headers={**JSON, **user(alice)})
    assert response.status == 200, await response.text()
    assert (await response.json())["last_read_id"] == 1860910857026
    assert (await shown(client, alice, chat_id))["last_read_id"] == 1860910857026


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "message_id"]),
        ({"message_id": -1}, ["body", "message_id"]),
        ({"message_id": "5"}, ["body", "message_id"]),
        ({"message_id": True}, ["body", "message_id"]),
        ({"message_id": 1.5}, ["body", "message_id"]),
        ({"message_id": 2**63}, ["body", "message_id"]),
        ({"message_id": float(2**63)}, ["body", "message_id"]),
        ({"message_id": float("1e300")}, ["body", "message_id"]),
        ([5], ["body"]),
    ],
)
async def test_a_bad_marker_is_422_and_moves_nothing(client: Client, body: Any, loc: list[str]) -> None:
    alice = someone("alice")
    chat_id = await chat_with(client, alice)
    await mark(client, chat_id, alice, 3)
    response = await client.put(f"/chats/{chat_id}/read", json=body, headers=user(alice))
    assert loc in error_locations(await problem(response, 422))
    assert (await shown(client, alice, chat_id))["last_read_id"] == 3


async def test_a_marker_without_a_json_body_is_400(client: Client) -> None:
    alice = someone("alice")
    chat_id = await chat_with(client, alice)
    for data in (b"", b"{"):
        response = await client.put(f"/chats/{chat_id}/read", data=data, headers={**JSON, **user(alice)})
        await problem(response, 400)


async def test_the_server_sees_last_message_and_no_read_state(client: Client) -> None:
    chat = await create_chat(client)
    empty = await (await client.get(f"/chats/{chat['id']}")).json()
    assert empty["last_message"] is None and "unread_count" not in empty and "last_read_id" not in empty
    message = await send(client, chat["id"])
    for order in ("created", "activity"):
        page = await (await client.get(f"/chats/?order={order}")).json()
        listed_chat = next(c for c in page["chats"] if c["id"] == chat["id"])
        assert set(listed_chat) == {"id", "title", "created_at", "last_message"}
        assert listed_chat["last_message"] == message


async def test_unread_counts_follow_a_model_of_sends_edits_deletes_and_marks(client: Client) -> None:
    """Random steps by two members and the server; after each, every user's state everywhere
    equals the model's: messages above the marker that the user did not write, capped at 1000."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    alice, bob = someone("alice"), someone("bob")
    chat_id = await chat_with(client, alice, bob)
    messages: dict[int, str | None] = {}  # id -> author
    markers = {alice: 0, bob: 0}
    for step in range(60):
        kind = rng.choice(["send", "send", "send", "mark", "delete", "edit"])
        if kind == "send":
            author = rng.choice([alice, bob, None, "carol"])
            message = await (post_as(client, chat_id, author) if author != alice or rng.random() < 0.5 else
                             _send_as_user(client, chat_id, alice))  # fmt: skip
            messages[message["id"]] = message["author"]
        elif kind == "mark":
            who = rng.choice([alice, bob])
            upto = rng.choice([*messages, 0, max(messages, default=0) + rng.randint(0, 3)])
            markers[who] = max(markers[who], upto)
            assert (await mark(client, chat_id, who, upto))["last_read_id"] == markers[who]
        elif kind == "delete" and messages:
            doomed = rng.choice(list(messages))
            assert (await client.delete(f"/chats/{chat_id}/messages/{doomed}", headers=SERVER)).status == 204
            del messages[doomed]
        elif kind == "edit" and messages:
            edited = rng.choice(list(messages))
            response = await client.patch(
                f"/chats/{chat_id}/messages/{edited}", json={"text": "e"}, headers=SERVER
            )
            assert response.status == 200
        for who in (alice, bob):
            expected_unread = sum(1 for i, a in messages.items() if i > markers[who] and a != who)
            expected = (markers[who], min(expected_unread, 1000), max(messages, default=None))
            assert await state_everywhere(client, who, chat_id) == expected, (seed, step, kind, who)


async def _send_as_user(client: Client, chat_id: int, who: str) -> dict[str, Any]:
    response = await client.post(f"/chats/{chat_id}/messages/", json={"text": "mine"}, headers=user(who))
    assert response.status == 201, await response.text()
    message: dict[str, Any] = await response.json()
    return message


async def test_unread_counts_are_exact_to_999_and_1000_means_1000_or_more(
    client: Client, db: asyncpg.Connection
) -> None:
    alice, bob = someone("alice"), someone("bob")
    chat_id = await chat_with(client, alice, bob)
    await fill_chat(db, chat_id, 998, "from bob ", bob)
    await fill_chat(db, chat_id, 500, "from alice ", alice)  # her own: never unread for her
    assert (await shown(client, alice, chat_id))["unread_count"] == 998
    await fill_chat(db, chat_id, 1, "one more ", bob)
    assert (await shown(client, alice, chat_id))["unread_count"] == 999
    await fill_chat(db, chat_id, 1, "the 1000th ", None)
    assert (await shown(client, alice, chat_id))["unread_count"] == 1000
    await fill_chat(db, chat_id, 5000, "many ", None)
    assert (await shown(client, alice, chat_id))["unread_count"] == 1000
    assert (await shown(client, bob, chat_id))["unread_count"] == 1000
    newest = await db.fetchval("SELECT max(id) FROM messages WHERE chat_id = $1", chat_id)
    await mark(client, chat_id, alice, newest)
    assert (await shown(client, alice, chat_id))["unread_count"] == 0
    # Deleting unread messages uncounts them; deleting read ones changes nothing.
    unread = [await post_as(client, chat_id, bob) for _ in range(3)]
    assert (await shown(client, alice, chat_id))["unread_count"] == 3
    read_before = await db.fetchval("SELECT min(id) FROM messages WHERE chat_id = $1", chat_id)
    for doomed in (unread[1]["id"], read_before):
        assert (await client.delete(f"/chats/{chat_id}/messages/{doomed}", headers=SERVER)).status == 204
    assert (await shown(client, alice, chat_id))["unread_count"] == 2


async def test_mark_read_for_a_non_member_and_the_server(client: Client) -> None:
    alice, eve = someone("alice"), someone("eve")
    chat_id = await chat_with(client, alice)
    response = await client.put(f"/chats/{chat_id}/read", json={"message_id": 1}, headers=user(eve))
    missing = await client.put(f"/chats/{chat_id + 10**6}/read", json={"message_id": 1}, headers=user(eve))
    assert (await problem(response, 404))["detail"].replace(str(chat_id), "N") == (
        (await problem(missing, 404))["detail"].replace(str(chat_id + 10**6), "N")
    )
    await problem(await client.put(f"/chats/{chat_id}/read", json={"message_id": 1}, headers=SERVER), 403)


# -- GET /chats/?order=activity -----------------------------------------------


async def activity_ids(client: Client, who: str, limit: int = 100) -> list[int]:
    ids: list[int] = []
    cursor = ""
    while True:
        response = await client.get(f"/chats/?order=activity&limit={limit}{cursor}", headers=user(who))
        assert response.status == 200, await response.text()
        page = await response.json()
        assert set(page) == {"chats", "next_cursor"}
        ids.extend(chat["id"] for chat in page["chats"])
        if page["next_cursor"] is None:
            return ids
        assert len(page["chats"]) == limit
        cursor = f"&cursor={page['next_cursor']}"


async def test_chats_by_activity_most_recent_first(client: Client) -> None:
    alice = someone("alice")
    first, second, third = [await chat_with(client, alice) for _ in range(3)]
    # No messages yet: by creation, newest first.
    assert await activity_ids(client, alice) == [third, second, first]
    await post_as(client, first, None)
    assert await activity_ids(client, alice) == [first, third, second]
    message = await post_as(client, second, None)
    assert await activity_ids(client, alice) == [second, first, third]
    fourth = await chat_with(client, alice)  # created after every message so far
    assert await activity_ids(client, alice) == [fourth, second, first, third]
    # Its newest message deleted, a chat ranks by the one before (here: by its creation).
    assert (await client.delete(f"/chats/{second}/messages/{message['id']}", headers=SERVER)).status == 204
    assert await activity_ids(client, alice) == [fourth, first, third, second]
    # An edit is no activity.
    edited = await post_as(client, third, None)
    await post_as(client, first, None)
    response = await client.patch(
        f"/chats/{third}/messages/{edited['id']}", json={"text": "e"}, headers=SERVER
    )
    assert response.status == 200
    assert await activity_ids(client, alice) == [first, third, fourth, second]


@pytest.mark.parametrize("limit", [1, 3, 7])
async def test_paging_by_activity_lists_every_quiet_chat_once_while_others_send(
    client: Client, limit: int
) -> None:
    alice = someone("alice")
    quiet = [await chat_with(client, alice) for _ in range(12)]
    busy = [await chat_with(client, alice) for _ in range(3)]
    for chat_id in quiet[::2]:
        await post_as(client, chat_id, None)
    seen: list[int] = []
    cursor = ""
    while True:
        response = await client.get(f"/chats/?order=activity&limit={limit}{cursor}", headers=user(alice))
        page = await response.json()
        seen.extend(chat["id"] for chat in page["chats"])
        for chat_id in busy:  # others keep sending to the busy chats between pages
            await post_as(client, chat_id, None)
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert sorted(i for i in seen if i in quiet) == sorted(quiet)  # each quiet chat exactly once


async def test_the_servers_activity_listing_pages_every_chat(client: Client) -> None:
    created = [(await create_chat(client))["id"] for _ in range(5)]
    await send(client, created[1])
    ids: list[int] = []
    cursor = ""
    while True:
        page = await (await client.get(f"/chats/?order=activity&limit=2{cursor}")).json()
        ids.extend(chat["id"] for chat in page["chats"])
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert len(ids) == len(set(ids))
    assert [i for i in ids if i in created] == [created[1], created[4], created[3], created[2], created[0]]


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("order=newest", ["query", "order"]),
        ("order=activity&cursor=abc", ["query", "cursor"]),
        ("order=activity&cursor=" + "A" * 23, ["query", "cursor"]),
        ("order=activity&before=5", ["query", "before"]),
        ("cursor=" + "A" * 22, ["query", "cursor"]),
        ("order=created&cursor=" + "A" * 22, ["query", "cursor"]),
        ("order=activity&order=created", ["query", "order"]),
    ],
)
async def test_a_bad_order_or_cursor_is_422(client: Client, query: str, loc: list[str]) -> None:
    assert loc in error_locations(await problem(await client.get(f"/chats/?{query}"), 422))


async def test_any_cursor_of_the_documented_shape_is_accepted(client: Client) -> None:
    """The schema's pattern is the whole rule: a well-formed cursor naming nothing lists what lies below it."""
    for cursor in ("A" * 22, "_" * 21 + "w", "-" * 21 + "Q"):
        response = await client.get(f"/chats/?order=activity&cursor={cursor}")
        assert response.status == 200, (cursor, await response.text())


def _unread_count_expression(name: str) -> str:
    """The unread count of a statement, from its comment to its alias, without indentation."""
    from chatsvc.sql import STATEMENTS

    text = STATEMENTS[name].text
    start, end = text.index("-- unread_count:"), text.index("END AS unread_count")
    return "\n".join(line.strip() for line in text[start:end].splitlines())


def test_every_statement_counts_unread_messages_the_same_way() -> None:
    """The count is written out in each statement that shows read state (a function would hide
    its plan from EXPLAIN); this keeps the copies from drifting apart."""
    copies = {
        name: _unread_count_expression(name)
        for name in ("list_chats_of_user", "list_chats_of_user_by_activity", "get_chats_with_latest_messages")
    }
    assert len(set(copies.values())) == 1, copies


async def test_a_message_written_past_the_service_without_its_number_is_refused(
    client: Client, db: asyncpg.Connection
) -> None:
    """A script that inserts messages with plain SQL must number them (migrations/0007):
    one that does not is refused at once, so no count goes wrong unseen."""
    alice = someone("alice")
    chat_id = await chat_with(client, alice)
    with pytest.raises(asyncpg.NotNullViolationError):
        await db.execute("INSERT INTO messages (chat_id, author, text) VALUES ($1, 'dave', 'bulk')", chat_id)
    await fill_chat(db, chat_id, 30, "bulk ", "dave")  # as tests/api.py numbers them
    newest = await db.fetchval("SELECT max(id) FROM messages WHERE chat_id = $1", chat_id)
    assert await state_everywhere(client, alice, chat_id) == (0, 30, newest)
