"""Races, again and again: only contract statuses, and a consistent database after.

RACE_ROUNDS rounds of each race (default 100 in the test command; the README's
reliability report runs 1,000), checked in the database afterwards.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

import asyncpg

from tests.api import create_chat
from tests.conftest import Client

ROUNDS = int(os.environ.get("RACE_ROUNDS", "100"))


async def assert_consistent(db: asyncpg.Connection) -> None:
    """No message without its chat, no key without its chat, and no key without its message
    unless that message was deleted (the key stays, so its retry is 404, not a new message)."""
    orphans = await db.fetchval(
        """
        SELECT (SELECT count(*) FROM messages AS m WHERE NOT EXISTS (SELECT FROM chats WHERE id = m.chat_id))
             + (SELECT count(*) FROM message_idempotency_keys AS k
                WHERE NOT EXISTS (SELECT FROM messages WHERE chat_id = k.chat_id AND id = k.message_id)
                    AND NOT EXISTS (
                        SELECT FROM message_changes AS c
                        WHERE c.chat_id = k.chat_id AND c.message_id = k.message_id AND c.deleted
                    ))
        """
    )
    assert orphans == 0


async def test_sends_racing_a_delete_of_their_chat(client: Client, db: asyncpg.Connection) -> None:
    statuses: Counter[int] = Counter()
    acknowledged: list[int] = []
    for _ in range(ROUNDS):
        chat = await create_chat(client)
        sends = [client.post(f"/chats/{chat['id']}/messages/", json={"text": f"m{n}"}) for n in range(4)]
        answers = await asyncio.gather(*sends[:2], client.delete(f"/chats/{chat['id']}"), *sends[2:])
        statuses.update(answer.status for answer in answers)
        assert answers[2].status == 204  # the delete always wins in the end
        acknowledged += [(await answer.json())["id"] for answer in answers if answer.status == 201]
        assert (await client.get(f"/chats/{chat['id']}")).status == 404
    assert set(statuses) <= {201, 204, 404}, statuses
    # A send acknowledged before the delete went with its chat.
    assert await db.fetchval("SELECT count(*) FROM messages WHERE id = ANY($1::bigint[])", acknowledged) == 0
    await assert_consistent(db)


async def test_idempotent_retries_racing_each_other_store_one_message(
    client: Client, db: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    for n in range(ROUNDS):
        key = f"race-{n}"
        retries = [
            client.post(
                f"/chats/{chat['id']}/messages/", json={"text": f"t{n}"}, headers={"Idempotency-Key": key}
            )
            for _ in range(5)
        ]
        answers = await asyncio.gather(*retries)
        assert [answer.status for answer in answers] == [201] * 5
        ids = {(await answer.json())["id"] for answer in answers}
        assert len(ids) == 1
        assert sum(answer.headers.get("Idempotent-Replayed") == "true" for answer in answers) == 4
    assert await db.fetchval("SELECT count(*) FROM messages WHERE chat_id = $1", chat["id"]) == ROUNDS
    await assert_consistent(db)


async def test_idempotent_chat_creates_racing_each_other_create_one_chat(
    client: Client, db: asyncpg.Connection
) -> None:
    for n in range(ROUNDS):
        key = f"chat-race-{n}"
        answers = await asyncio.gather(
            *(
                client.post("/chats/", json={"title": f"c{n}"}, headers={"Idempotency-Key": key})
                for _ in range(5)
            )
        )
        assert [answer.status for answer in answers] == [201] * 5
        assert len({(await answer.json())["id"] for answer in answers}) == 1
        assert await db.fetchval("SELECT count(*) FROM chats WHERE title = $1", f"c{n}") == 1


async def test_many_creates_in_parallel_get_distinct_chats(client: Client, db: asyncpg.Connection) -> None:
    before = await db.fetchval("SELECT count(*) FROM chats")
    created: list[int] = []
    for _ in range(ROUNDS // 10):
        answers = await asyncio.gather(
            *(client.post("/chats/", json={"title": "parallel"}) for _ in range(20))
        )
        assert [answer.status for answer in answers] == [201] * 20
        created += [(await answer.json())["id"] for answer in answers]
    assert len(set(created)) == len(created)
    assert await db.fetchval("SELECT count(*) FROM chats") - before == len(created)
