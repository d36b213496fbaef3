"""Idempotency-Key on POST /chats/ and POST /chats/{id}/messages/ (contract v2)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientResponse
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpClient

from chatsvc import app as app_module
from chatsvc import idempotency, queries
from chatsvc.app import create_app
from chatsvc.idempotency import chat_fingerprint, message_fingerprint
from chatsvc.keys import DATABASE
from chatsvc.permissions import ROLES as SENDERS
from chatsvc.settings import Settings
from tests.api import create_chat, error_locations, problem, raw_exchange, waiting_on_a_lock
from tests.conftest import Client
from tests.credentials import user


def new_key() -> str:
    return f"key-{secrets.token_hex(8)}"


async def post_chat(client: Client, key: str, title: str = "keyed") -> ClientResponse:
    return await client.post("/chats/", json={"title": title}, headers={"Idempotency-Key": key})


async def post_message(client: Client, chat_id: int, key: str, text: str = "keyed") -> ClientResponse:
    return await client.post(
        f"/chats/{chat_id}/messages/", json={"text": text}, headers={"Idempotency-Key": key}
    )


async def created(response: ClientResponse, *, replayed: bool) -> dict[str, Any]:
    assert response.status == 201, await response.text()
    assert response.headers.get("Idempotent-Replayed") == ("true" if replayed else None)
    body: dict[str, Any] = await response.json()
    return body


async def chats_titled(db: asyncpg.Connection, title: str) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM chats WHERE title = $1", title)
    return count


async def messages_in(db: asyncpg.Connection, chat_id: int) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM messages WHERE chat_id = $1", chat_id)
    return count


# -- chats ------------------------------------------------------------------------


async def test_a_chat_retry_replays_the_first_result_and_stores_nothing(
    client: Client, db: asyncpg.Connection
) -> None:
    key, title = new_key(), f"once {secrets.token_hex(4)}"
    first_response = await post_chat(client, key, title)
    first = await created(first_response, replayed=False)
    for _ in range(3):
        retry = await post_chat(client, key, title)
        assert await created(retry, replayed=True) == first
        assert retry.headers["Location"] == first_response.headers["Location"]
    assert await chats_titled(db, title) == 1


async def test_a_chat_retry_is_compared_after_trimming(client: Client) -> None:
    key = new_key()
    first = await created(await post_chat(client, key, "  trimmed  "), replayed=False)
    assert await created(await post_chat(client, key, "trimmed\n"), replayed=True) == first
    # Unknown fields are ignored, so they are no part of "the same body".
    response = await client.post(
        "/chats/", json={"title": "trimmed", "extra": 1}, headers={"Idempotency-Key": key}
    )
    assert await created(response, replayed=True) == first


async def test_a_chat_key_with_another_body_is_422_and_stores_nothing(
    client: Client, db: asyncpg.Connection
) -> None:
    key, title = new_key(), f"other {secrets.token_hex(4)}"
    await created(await post_chat(client, key, "the first"), replayed=False)
    body = await problem(await post_chat(client, key, title), 422)
    assert error_locations(body) == [["header", "Idempotency-Key"]]
    assert await chats_titled(db, title) == 0


async def test_chat_keys_are_global_and_shared_by_service_processes(
    aiohttp_client: AiohttpClient, client: Client, settings: Settings
) -> None:
    """Keys live in PostgreSQL: another process (here, a second app) replays them too."""
    second = await aiohttp_client(create_app(settings))
    key = new_key()
    first = await created(await post_chat(client, key), replayed=False)
    assert await created(await post_chat(second, key), replayed=True) == first


async def test_a_chat_retry_after_the_chat_was_deleted_is_404(client: Client, db: asyncpg.Connection) -> None:
    key, title = new_key(), f"deleted {secrets.token_hex(4)}"
    chat = await created(await post_chat(client, key, title), replayed=False)
    assert (await client.delete(f"/chats/{chat['id']}")).status == 204
    await problem(await post_chat(client, key, title), 404)
    assert await chats_titled(db, title) == 0


async def test_without_a_key_each_post_creates_a_chat(client: Client, db: asyncpg.Connection) -> None:
    title = f"unkeyed {secrets.token_hex(4)}"
    for _ in range(2):
        response = await client.post("/chats/", json={"title": title})
        assert response.status == 201 and "Idempotent-Replayed" not in response.headers
    assert await chats_titled(db, title) == 2


# -- messages ---------------------------------------------------------------------


async def test_a_message_retry_replays_the_first_result_and_stores_nothing(
    client: Client, db: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    key = new_key()
    first_response = await post_message(client, chat["id"], key, " hello ")
    first = await created(first_response, replayed=False)
    retry = await post_message(client, chat["id"], key, "hello")
    assert await created(retry, replayed=True) == first
    assert retry.headers["Location"] == first_response.headers["Location"]
    assert await messages_in(db, chat["id"]) == 1


async def test_a_replay_is_the_first_result_even_after_later_sends(client: Client) -> None:
    chat = await create_chat(client)
    key = new_key()
    first = await created(await post_message(client, chat["id"], key, "first"), replayed=False)
    await created(await post_message(client, chat["id"], new_key(), "second"), replayed=False)
    assert await created(await post_message(client, chat["id"], key, "first"), replayed=True) == first


async def test_a_message_key_with_another_body_is_422_and_stores_nothing(
    client: Client, db: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    key = new_key()
    await created(await post_message(client, chat["id"], key, "one"), replayed=False)
    body = await problem(await post_message(client, chat["id"], key, "two"), 422)
    assert error_locations(body) == [["header", "Idempotency-Key"]]
    assert await messages_in(db, chat["id"]) == 1


# Bodies that differ by one character, in case only, or in inner whitespace:
# each is another body (only surrounding whitespace is trimmed).
NEAR_MISSES = [
    ("Hello", "hello"),
    ("a b", "a  b"),
    ("x", "x."),
    ("\u0451", "\u0435"),  # Cyrillic io and ie
    ("line\n1", "line 1"),
]


@pytest.mark.parametrize(("first", "retry"), NEAR_MISSES)
async def test_a_chat_retry_with_a_nearly_equal_title_is_422(client: Client, first: str, retry: str) -> None:
    key = new_key()
    await created(await post_chat(client, key, first), replayed=False)
    assert error_locations(await problem(await post_chat(client, key, retry), 422)) == [
        ["header", "Idempotency-Key"]
    ]


@pytest.mark.parametrize(("first", "retry"), NEAR_MISSES)
async def test_a_message_retry_with_a_nearly_equal_text_is_422(
    client: Client, db: asyncpg.Connection, first: str, retry: str
) -> None:
    chat = await create_chat(client)
    key = new_key()
    await created(await post_message(client, chat["id"], key, first), replayed=False)
    assert error_locations(await problem(await post_message(client, chat["id"], key, retry), 422)) == [
        ["header", "Idempotency-Key"]
    ]
    assert await messages_in(db, chat["id"]) == 1


async def test_message_keys_are_scoped_to_their_chat(client: Client) -> None:
    first_chat, second_chat = await create_chat(client), await create_chat(client)
    key = new_key()
    first = await created(await post_message(client, first_chat["id"], key, "same"), replayed=False)
    second = await created(await post_message(client, second_chat["id"], key, "same"), replayed=False)
    assert first["id"] != second["id"] and second["chat_id"] == second_chat["id"]
    # A message key does not collide with the same string used as a chat key.
    await created(await post_chat(client, key, "same"), replayed=False)


async def test_a_message_retry_after_the_chat_was_deleted_is_404(
    client: Client, db: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    key = new_key()
    await created(await post_message(client, chat["id"], key), replayed=False)
    assert (await client.delete(f"/chats/{chat['id']}")).status == 204
    await problem(await post_message(client, chat["id"], key), 404)
    assert await messages_in(db, chat["id"]) == 0
    assert (
        await db.fetchval("SELECT count(*) FROM message_idempotency_keys WHERE chat_id = $1", chat["id"]) == 0
    )


# -- malformed keys and bodies ------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["", "with space", "tab\there", "x" * 256],
    ids=["empty", "space", "tab", "256-chars"],
)
async def test_a_malformed_key_is_400_and_stores_nothing(
    client: Client, db: asyncpg.Connection, key: str
) -> None:
    chat = await create_chat(client)
    title = f"malformed {secrets.token_hex(4)}"
    headers = {"Idempotency-Key": key}
    await problem(await client.post("/chats/", json={"title": title}, headers=headers), 400)
    await problem(
        await client.post(f"/chats/{chat['id']}/messages/", json={"text": "x"}, headers=headers), 400
    )
    assert await chats_titled(db, title) == 0
    assert await messages_in(db, chat["id"]) == 0


@pytest.mark.parametrize("key", [b"del\x7f", "caf\u00e9".encode(), b"nul\x00", b"\xff\xfe"])
async def test_keys_with_bytes_outside_visible_ascii_are_refused_and_store_nothing(
    client: Client, db: asyncpg.Connection, key: bytes
) -> None:
    """Sent raw: aiohttp's client will not send them. Either our 400 or the HTTP parser's."""
    title = f"raw {secrets.token_hex(4)}"
    body = b'{"title": "%s"}' % title.encode()
    request = (
        b"POST /chats/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Idempotency-Key: %s\r\nContent-Length: %d\r\n\r\n%s" % (key, len(body), body)
    )
    answer = await raw_exchange(client, request)
    assert answer.split(b" ", 2)[1] == b"400", answer
    assert await chats_titled(db, title) == 0


async def test_the_longest_and_oddest_valid_keys_work(client: Client) -> None:
    for key in ("!" * 255, "~", "a-b_c.d:e/f+g=h?#[]{}'\"\\"):
        first = await created(await post_chat(client, key, "odd"), replayed=False)
        assert await created(await post_chat(client, key, "odd"), replayed=True) == first


async def test_two_key_headers_are_400(client: Client) -> None:
    headers = CIMultiDict([("Idempotency-Key", new_key()), ("Idempotency-Key", new_key())])
    await problem(await client.post("/chats/", json={"title": "two keys"}, headers=headers), 400)


async def test_an_invalid_body_with_a_key_is_422_and_does_not_use_up_the_key(client: Client) -> None:
    key = new_key()
    await problem(await post_chat(client, key, "   "), 422)
    await created(await post_chat(client, key, "valid now"), replayed=False)


# -- races --------------------------------------------------------------------------


async def test_ten_racing_chat_retries_store_exactly_one_chat(client: Client, db: asyncpg.Connection) -> None:
    for _ in range(5):
        key, title = new_key(), f"race {secrets.token_hex(4)}"
        responses = await asyncio.gather(*(post_chat(client, key, title) for _ in range(10)))
        bodies = [await response.json() for response in responses]
        assert all(response.status == 201 for response in responses), bodies
        assert len({body["id"] for body in bodies}) == 1
        assert sum("Idempotent-Replayed" not in response.headers for response in responses) == 1
        assert await chats_titled(db, title) == 1


async def test_ten_racing_message_retries_store_exactly_one_message(
    client: Client, db: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    for round_number in range(5):
        key = new_key()
        responses = await asyncio.gather(*(post_message(client, chat["id"], key) for _ in range(10)))
        bodies = [await response.json() for response in responses]
        assert all(response.status == 201 for response in responses), bodies
        assert len({body["id"] for body in bodies}) == 1
        assert sum("Idempotent-Replayed" not in response.headers for response in responses) == 1
        assert await messages_in(db, chat["id"]) == round_number + 1


async def test_a_chat_retry_waiting_on_the_first_request_replays_it(
    client: Client, db: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    """The racing path: the retry's key insert waits, fails on the key, and runs again."""
    key, title = new_key(), f"held {secrets.token_hex(4)}"
    first = await other.fetchrow(
        queries.CREATE_CHAT_ONCE, title, [], [], "", key, chat_fingerprint(title, [], [])
    )
    retry = await waiting_on_a_lock(db, post_chat(client, key, title))
    await other.execute("COMMIT")
    replayed = await created(await retry, replayed=True)
    assert replayed["id"] == first["id"]
    assert await chats_titled(db, title) == 1


async def test_a_message_retry_waiting_on_the_first_request_replays_it(
    client: Client, db: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    key = new_key()
    first = await other.fetchrow(
        queries.CREATE_MESSAGE_ONCE,
        chat["id"],
        "held",
        None,
        None,
        SENDERS,
        key,
        message_fingerprint("held", None),
    )
    retry = await waiting_on_a_lock(db, post_message(client, chat["id"], key, "held"))
    await other.execute("COMMIT")
    replayed = await created(await retry, replayed=True)
    assert replayed["id"] == first["id"]
    assert await messages_in(db, chat["id"]) == 1


async def test_a_first_request_that_rolls_back_leaves_the_key_free(
    client: Client, db: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    key = new_key()
    await other.fetchrow(
        queries.CREATE_MESSAGE_ONCE,
        chat["id"],
        "rolled back",
        None,
        None,
        SENDERS,
        key,
        message_fingerprint("rolled back", None),
    )
    retry = await waiting_on_a_lock(db, post_message(client, chat["id"], key, "kept"))
    await other.execute("ROLLBACK")
    kept = await created(await retry, replayed=False)
    assert kept["text"] == "kept"
    assert await messages_in(db, chat["id"]) == 1


# -- retention ----------------------------------------------------------------------


async def test_keys_older_than_24_hours_are_purged_and_younger_ones_kept(
    client: Client, db: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    old_chat_key, young_chat_key, old_message_key = new_key(), new_key(), new_key()
    await created(await post_chat(client, old_chat_key, "old"), replayed=False)
    young = await created(await post_chat(client, young_chat_key, "young"), replayed=False)
    await created(await post_message(client, chat["id"], old_message_key, "old"), replayed=False)
    await db.execute(
        "UPDATE chat_idempotency_keys SET created_at = created_at - interval '25 hours' WHERE key = $1",
        old_chat_key,
    )
    await db.execute(
        "UPDATE chat_idempotency_keys SET created_at = created_at - interval '23 hours' WHERE key = $1",
        young_chat_key,
    )
    await db.execute(
        "UPDATE message_idempotency_keys SET created_at = created_at - interval '25 hours' WHERE key = $1",
        old_message_key,
    )
    database = client.app[DATABASE]
    assert await idempotency.purge_expired_keys(database, batch_size=1) >= 2
    assert await created(await post_chat(client, young_chat_key, "young"), replayed=True) == young
    # A purged key is free again: its retry is a new request.
    await created(await post_chat(client, old_chat_key, "old"), replayed=False)
    await created(await post_message(client, chat["id"], old_message_key, "old"), replayed=False)
    assert idempotency.KEY_RETENTION == timedelta(hours=24)


async def test_the_purge_keeps_another_callers_younger_key_of_the_same_name(
    client: Client, db: asyncpg.Connection
) -> None:
    """Keys belong to their caller: alice's expired key goes, bob's key of the same name stays."""
    names = {"alice": f"alice-{secrets.token_hex(4)}", "bob": f"bob-{secrets.token_hex(4)}"}
    alice, bob = user(names["alice"]), user(names["bob"])
    response = await client.post(
        "/chats/", json={"title": "shared", "members": [{"user": names["bob"]}]}, headers=alice
    )
    chat_id = (await response.json())["id"]
    key = new_key()
    for who in (alice, bob):
        headers = {**who, "Idempotency-Key": key}
        assert (await client.post("/chats/", json={"title": "k"}, headers=headers)).status == 201
        response = await client.post(f"/chats/{chat_id}/messages/", json={"text": "k"}, headers=headers)
        assert response.status == 201
    for table in ("chat_idempotency_keys", "message_idempotency_keys"):
        await db.execute(
            f"UPDATE {table} SET created_at = created_at - interval '25 hours' WHERE key = $1 AND caller = $2",
            key,
            names["alice"],
        )
    await idempotency.purge_expired_keys(client.app[DATABASE], batch_size=1)
    for table in ("chat_idempotency_keys", "message_idempotency_keys"):
        callers = await db.fetch(f"SELECT caller FROM {table} WHERE key = $1", key)
        assert [row["caller"] for row in callers] == [names["bob"]], table


async def test_a_serving_app_purges_expired_keys_by_itself(
    aiohttp_client: AiohttpClient, settings: Settings, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve purges every KEY_PURGE_INTERVAL (an hour); here every 50 ms, to see it happen."""
    assert app_module.KEY_PURGE_INTERVAL == 3600  # hourly, as the README says
    monkeypatch.setattr(app_module, "KEY_PURGE_INTERVAL", 0.05)
    client = await aiohttp_client(create_app(settings))
    key = new_key()
    await created(await post_chat(client, key, "expiring"), replayed=False)
    await db.execute(
        "UPDATE chat_idempotency_keys SET created_at = created_at - interval '25 hours' WHERE key = $1", key
    )
    deadline = asyncio.get_running_loop().time() + 10  # a liveness bound
    while await db.fetchval("SELECT count(*) FROM chat_idempotency_keys WHERE key = $1", key):
        assert asyncio.get_running_loop().time() < deadline, "the expired key was never purged"
        await asyncio.sleep(0.05)
