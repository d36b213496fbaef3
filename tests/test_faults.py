"""Acknowledged means durable: PostgreSQL or the service killed under load.

Each test runs its own durable PostgreSQL (fsync and synchronous commit on,
as in production): with the test suite's crash-unsafe settings an
acknowledged commit could legitimately vanish in a crash.
"""

from __future__ import annotations

import asyncio
import collections
import signal
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from pytest_aiohttp import AiohttpClient

from chatsvc import migrate, queries
from chatsvc.app import create_app
from chatsvc.embedded import EmbeddedPostgres
from chatsvc.settings import Settings
from tests.api import create_chat, problem
from tests.credentials import CREDENTIALS, SERVER
from tests.served import environment, serving

SENDERS = 6
ACQUIRE_TIMEOUT = 1.0
STATEMENT_TIMEOUT = 2.0


@pytest.fixture
def durable_server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres(tmp_path / "pg", durable=True) as server:
        migrate.apply(server.url())
        yield server


async def set_wal_writer_delay(url: str, delay: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"ALTER SYSTEM SET wal_writer_delay = '{delay}'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


async def stored_messages(url: str) -> dict[str, list[int]]:
    """Every stored message's ids by text (a text is sent once, so one id each)."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT text, id FROM messages ORDER BY id")
        orphans = await conn.fetchval(
            "SELECT count(*) FROM messages AS m WHERE NOT EXISTS (SELECT FROM chats WHERE id = m.chat_id)"
        )
    finally:
        await conn.close()
    assert orphans == 0
    by_text: dict[str, list[int]] = collections.defaultdict(list)
    for row in rows:
        by_text[row["text"]].append(row["id"])
    return by_text


async def test_the_flush_after_a_send_to_a_followed_chat_puts_that_send_on_disk(
    durable_server: EmbeddedPostgres,
) -> None:
    """Deterministic, where the crash below is a matter of timing: with the WAL
    writer asleep, only sql/events/flush_commits.sql can flush the send's commit."""
    await set_wal_writer_delay(durable_server.url(), "10s")
    await asyncio.sleep(0.5)  # the WAL writer wakes on the reload, then sleeps 10 s
    conn = await asyncpg.connect(durable_server.url())
    try:
        chat_id = await conn.fetchval("INSERT INTO chats (title) VALUES ('t') RETURNING id")
        await conn.execute("INSERT INTO chat_listeners VALUES ($1, pg_backend_pid())", chat_id)
        row = await conn.fetchrow(queries.CREATE_MESSAGE, chat_id, "text", None, None, [])
        assert row is not None and row["unflushed"]
        commit = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
        assert await conn.fetchval("SELECT pg_current_wal_flush_lsn() < $1::pg_lsn", commit)
        assert await conn.fetchval(queries.FLUSH_COMMITS)
        assert await conn.fetchval("SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn", commit)
    finally:
        await conn.close()


@pytest.mark.parametrize("followed", [False, True], ids=["unfollowed", "followed"])
async def test_every_acknowledged_send_survives_a_crash_of_postgresql_and_the_service_recovers(
    aiohttp_client: AiohttpClient, durable_server: EmbeddedPostgres, followed: bool
) -> None:
    """Followed: every chat has an event stream open, so sends commit without waiting
    for their flush and the service flushes before it answers (sql/events/flush_commits.sql).
    Half the senders send with an Idempotency-Key (sql/messages/create_message_once.sql)."""
    settings = Settings(
        **CREDENTIALS,
        database_url=durable_server.url(),
        pool_acquire_timeout=ACQUIRE_TIMEOUT,
        statement_timeout=STATEMENT_TIMEOUT,
    )
    if followed:  # a commit nobody flushes then stays in memory, and is lost in the crash
        await set_wal_writer_delay(durable_server.url(), "10s")
    client = await aiohttp_client(create_app(settings))
    chats = [(await create_chat(client))["id"] for _ in range(3)]
    streams = [await client.get(f"/chats/{chat_id}/events") for chat_id in chats] if followed else []
    assert all(stream.status == 200 for stream in streams)
    acknowledged: dict[str, int] = {}  # text -> id, for every 201
    refused: list[int] = []
    slowest = 0.0
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def sender(n: int) -> None:
        nonlocal slowest
        ids: list[int] = []
        sent = 0
        while not stopping.is_set():
            text = f"sender {n} message {sent}"
            sent += 1
            started = loop.time()
            response = await client.post(
                f"/chats/{chats[n % len(chats)]}/messages/",
                json={"text": text},
                headers={"Idempotency-Key": f"{n}-{sent}"} if n % 2 else {},
            )
            slowest = max(slowest, loop.time() - started)
            if response.status == 201:
                ids.append((await response.json())["id"])
                acknowledged[text] = ids[-1]
            else:
                await problem(response, 503)
                refused.append(response.status)
                await asyncio.sleep(0.05)
        assert ids == sorted(ids)  # one client's sends, one after another: ids only grow

    senders = [asyncio.create_task(sender(n)) for n in range(SENDERS)]
    await asyncio.sleep(1.0)
    before_crash = len(acknowledged)
    await asyncio.to_thread(durable_server.stop, "immediate")  # what a crash looks like
    await asyncio.sleep(1.5)
    await asyncio.to_thread(durable_server.start)  # crash recovery replays the WAL
    recovered = len(acknowledged)
    for _ in range(200):  # the service comes back by itself: no restart
        await asyncio.sleep(0.05)
        if len(acknowledged) > recovered + SENDERS:
            break
    stopping.set()
    await asyncio.gather(*senders)
    for stream in streams:
        stream.close()

    assert before_crash > 0 and refused, (before_crash, len(refused))
    assert len(acknowledged) > recovered + SENDERS, "the service did not recover"
    # Never a hang: a request waits at most for a connection, then a statement.
    assert slowest < ACQUIRE_TIMEOUT + STATEMENT_TIMEOUT + 2
    stored = await stored_messages(durable_server.url())
    for text, message_id in acknowledged.items():
        assert stored.get(text) == [message_id], text  # there, exactly once, under its id
    assert all(len(ids) == 1 for ids in stored.values())  # nothing stored twice


async def test_killing_the_service_under_load_loses_no_acknowledged_send(
    durable_server: EmbeddedPostgres,
) -> None:
    url = durable_server.url()
    env = environment(DATABASE_URL=url)
    acknowledged: dict[str, int] = {}
    with serving(env) as (base, process):
        async with aiohttp.ClientSession(headers=SERVER) as session:
            async with session.post(f"{base}/chats/", json={"title": "killed"}) as response:
                chat_id = (await response.json())["id"]

            async def sender(n: int) -> None:
                sent = 0
                while True:
                    text = f"sender {n} message {sent}"
                    sent += 1
                    try:
                        async with session.post(
                            f"{base}/chats/{chat_id}/messages/", json={"text": text}
                        ) as answer:
                            assert answer.status == 201, await answer.text()
                            acknowledged[text] = (await answer.json())["id"]
                    except aiohttp.ClientError:
                        return  # the service is gone

            senders = [asyncio.create_task(sender(n)) for n in range(SENDERS)]
            await asyncio.sleep(1.0)
            process.send_signal(signal.SIGKILL)
            await asyncio.wait_for(asyncio.gather(*senders), 30)
    assert acknowledged
    stored = await stored_messages(url)
    for text, message_id in acknowledged.items():
        assert stored.get(text) == [message_id], text
    assert all(len(ids) == 1 for ids in stored.values())
    # A new process serves all of it: page through the chat's whole history.
    served: list[int] = []
    with serving(env) as (base, _):
        async with aiohttp.ClientSession(headers=SERVER) as session:
            after = 0
            for _ in range(10_000):  # more pages than the chat holds: bounded, never a hang
                async with session.get(f"{base}/chats/{chat_id}/messages/?after={after}&limit=100") as page:
                    assert page.status == 200
                    body = await page.json()
                served += [message["id"] for message in body["messages"]]
                if not body["has_more"]:
                    break
                after = served[-1]
            else:
                raise AssertionError("has_more never became false")
    assert set(acknowledged.values()) <= set(served)
    assert served == sorted(served) and len(served) == sum(len(ids) for ids in stored.values())
