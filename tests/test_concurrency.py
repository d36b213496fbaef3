"""The ordering guarantee and race-freedom of sends and deletes (contract v1).

Two kinds of test: deterministic ones that hold a transaction open on a
connection of their own and check what a racing API request does meanwhile,
and load-style ones that race many real requests and check the database after.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from chatsvc import queries
from tests.api import create_chat, scrape, send, waiting_on_a_lock
from tests.conftest import Client
from tests.credentials import with_server_key

PER_WRITE = timedelta(seconds=0.1)  # create_messages.sql charges users only: these are the server


async def message_ids(client: Client, chat_id: int) -> list[int]:
    body = await (await client.get(f"/chats/{chat_id}", params={"limit": "100"})).json()
    return [message["id"] for message in body["messages"]]


# Both kinds of send lock the chat's row: unkeyed ones (create_messages.sql,
# then create_message.sql) and keyed ones (create_message_once.sql).
SEND_KINDS = pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "with an Idempotency-Key"])


def send_request(client: Client, chat_id: int, text: str, keyed: bool) -> Any:
    headers = {"Idempotency-Key": f"key-{random.getrandbits(64)}"} if keyed else {}
    return client.post(f"/chats/{chat_id}/messages/", json={"text": text}, headers=headers)


@SEND_KINDS
async def test_a_send_waits_for_an_earlier_send_in_the_same_chat(
    client: Client, db: asyncpg.Connection, other: asyncpg.Connection, keyed: bool
) -> None:
    chat = await create_chat(client)
    first = await other.fetchrow(
        queries.CREATE_MESSAGES, [chat["id"]], ["first"], [None], [None], [], PER_WRITE, 50
    )
    later = await waiting_on_a_lock(db, send_request(client, chat["id"], "later", keyed))
    # Neither is visible yet: a reader never sees "later" without "first".
    assert await message_ids(client, chat["id"]) == []
    await other.execute("COMMIT")
    response = await later
    assert response.status == 201, await response.text()
    second = await response.json()
    assert second["id"] > first["id"]
    assert await message_ids(client, chat["id"]) == [first["id"], second["id"]]


async def test_a_delete_waits_for_a_send_in_progress_and_takes_its_message(
    client: Client, db: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    await other.fetchrow(
        queries.CREATE_MESSAGES, [chat["id"]], ["in flight"], [None], [None], [], PER_WRITE, 50
    )
    delete = await waiting_on_a_lock(db, client.delete(f"/chats/{chat['id']}"))
    await other.execute("COMMIT")
    assert (await delete).status == 204
    assert await db.fetchval("SELECT count(*) FROM messages WHERE chat_id = $1", chat["id"]) == 0


@SEND_KINDS
async def test_a_send_racing_a_delete_in_progress_is_404_not_500(
    client: Client, db: asyncpg.Connection, other: asyncpg.Connection, keyed: bool
) -> None:
    chat = await create_chat(client)
    await other.execute("DELETE FROM chats WHERE id = $1", chat["id"])
    racing = await waiting_on_a_lock(db, send_request(client, chat["id"], "too late", keyed))
    await other.execute("COMMIT")
    response = await racing
    assert response.status == 404, await response.text()
    assert response.content_type == "application/problem+json"
    assert await db.fetchval("SELECT count(*) FROM messages WHERE chat_id = $1", chat["id"]) == 0


async def test_a_send_survives_a_delete_that_rolls_back(
    client: Client, db: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    await other.execute("DELETE FROM chats WHERE id = $1", chat["id"])
    racing = await waiting_on_a_lock(db, send(client, chat["id"], "kept"))
    await other.execute("ROLLBACK")
    message = await racing
    assert await message_ids(client, chat["id"]) == [message["id"]]


async def test_parallel_senders_while_reading_ids_only_grow(client: Client) -> None:
    chat = await create_chat(client)
    senders, per_sender = 8, 25
    stop_reading = asyncio.Event()
    reads: list[list[int]] = []

    async def sender(n: int) -> list[int]:
        return [(await send(client, chat["id"], f"{n}-{k}"))["id"] for k in range(per_sender)]

    async def reader() -> None:
        while not stop_reading.is_set():
            reads.append(await message_ids(client, chat["id"]))

    reading = asyncio.ensure_future(reader())
    sent = await asyncio.gather(*(sender(n) for n in range(senders)))
    stop_reading.set()
    await reading

    every_id = sorted(i for ids in sent for i in ids)
    assert len(set(every_id)) == senders * per_sender
    for ids in sent:  # each client's own sends got increasing ids
        assert ids == sorted(ids)
    seen: set[int] = set()
    highest_seen = 0
    for ids in reads:
        assert ids == sorted(set(ids)), "a page is oldest first with no repeats"
        # Nothing below an id already seen may appear later.
        assert all(i in seen for i in ids if i < highest_seen), "a message appeared below one already seen"
        seen.update(ids)
        highest_seen = max([highest_seen, *ids])
    body = await (await client.get(f"/chats/{chat['id']}", params={"limit": "100"})).json()
    assert [m["id"] for m in body["messages"]] == every_id[-100:]
    assert len(reads) > 1


async def test_sends_racing_deletes_get_only_201_or_404_and_leave_no_orphans(
    client: Client, db: asyncpg.Connection
) -> None:
    rounds, sends_per_chat = 30, 6
    chats = [await create_chat(client) for _ in range(rounds)]
    statuses: list[int] = []
    stored: list[dict[str, Any]] = []

    async def send_one(chat_id: int, n: int) -> None:
        await asyncio.sleep(random.random() / 200)
        response = await client.post(f"/chats/{chat_id}/messages/", json={"text": f"race {n}"})
        statuses.append(response.status)
        if response.status == 201:
            stored.append(await response.json())
        else:
            assert response.content_type == "application/problem+json"

    async def delete_one(chat_id: int) -> int:
        await asyncio.sleep(random.random() / 200)
        return (await client.delete(f"/chats/{chat_id}")).status

    deletes = await asyncio.gather(
        *(delete_one(chat["id"]) for chat in chats),
        *(send_one(chat["id"], n) for chat in chats for n in range(sends_per_chat)),
    )
    assert deletes[:rounds] == [204] * rounds
    assert set(statuses) <= {201, 404}
    assert len(statuses) == rounds * sends_per_chat
    chat_ids = [chat["id"] for chat in chats]
    assert await db.fetchval("SELECT count(*) FROM chats WHERE id = ANY($1::bigint[])", chat_ids) == 0
    assert await db.fetchval("SELECT count(*) FROM messages WHERE chat_id = ANY($1::bigint[])", chat_ids) == 0
    orphans = await db.fetchval(
        "SELECT count(*) FROM messages AS m WHERE NOT EXISTS (SELECT 1 FROM chats AS c WHERE c.id = m.chat_id)"
    )
    assert orphans == 0


async def test_parallel_creates_get_distinct_ids(client: Client) -> None:
    created = await asyncio.gather(*(create_chat(client, f"parallel {n}") for n in range(50)))
    assert len({chat["id"] for chat in created}) == 50


async def send_statuses(client: Client) -> dict[str, float]:
    """How many sends the app has answered, by status (its /metrics)."""
    return {
        dict(labels)["status"]: value
        for (name, labels), value in (await scrape(client)).items()
        if name == "chatsvc_http_requests_total" and ("route", "/chats/{chat_id}/messages") in labels
    }


async def test_a_send_whose_client_leaves_while_it_waits_runs_to_its_end(
    client: Client, db: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    """A request runs to its end when its client goes (aiohttp's handler_cancellation
    off, pinned in create_app): the send is stored and answered 201, to nobody, not
    cut off half-way (which the access line and the metrics would count as a 500)."""
    chat = await create_chat(client)
    await other.execute("SELECT id FROM chats WHERE id = $1 FOR UPDATE", chat["id"])
    assert client.server.port is not None
    body = b'{"text": "sent by a client that left"}'
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(
        with_server_key(
            f"POST /chats/{chat['id']}/messages/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    )
    answer = await waiting_on_a_lock(db, reader.read(1))  # no answer while the send waits
    # The client leaves while its send waits for the chat's lock: a reset, which
    # the server notices at once (a plain close only shows when it answers).
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
    answer.cancel()
    await asyncio.sleep(0.2)  # the server notices the reset
    await other.execute("ROLLBACK")
    deadline = asyncio.get_running_loop().time() + 10  # a liveness bound
    while not (counted := await send_statuses(client)):
        assert asyncio.get_running_loop().time() < deadline, "the send never finished"
        await asyncio.sleep(0.05)
    assert counted == {"201": 1.0}
    assert await db.fetchval("SELECT count(*) FROM messages WHERE chat_id = $1", chat["id"]) == 1
