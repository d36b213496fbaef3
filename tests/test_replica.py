"""Reads from a real hot standby (CHATSVC_REPLICA_DATABASE_URL; chatsvc/replica.py).

A primary and a standby streaming from it (tests/standby.py). A write answers
Chatsvc-Position; a read that sends it back sees the write, from the replica
once it has replayed that far, else from the primary. Without it a read is
the replica's, as stale as it is. History paging there skips nothing. A
replica that cannot be reached sends reads to the primary; event streams
never use the replica.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pytest_aiohttp import AiohttpClient

from chatsvc import migrate
from chatsvc.app import create_app
from chatsvc.embedded import EmbeddedPostgres
from chatsvc.keys import REPLICA
from chatsvc.replica import HEADER
from chatsvc.settings import Settings
from tests.api import create_chat, send
from tests.conftest import Client
from tests.credentials import CREDENTIALS
from tests.sse import EventStream
from tests.standby import primary_and_standby

POSITION = re.compile(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedPostgres, EmbeddedPostgres]]:
    with primary_and_standby(tmp_path_factory.mktemp("replication")) as (primary, standby):
        migrate.apply(primary.url())
        yield primary, standby


def replayed_everything(primary: EmbeddedPostgres, standby: EmbeddedPostgres) -> None:
    with psycopg.connect(primary.url()) as conn:
        position = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
    with psycopg.connect(standby.url(), autocommit=True) as conn:
        for _ in range(1000):
            row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s", position).fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the standby did not catch up")


def standby_reads(standby: EmbeddedPostgres) -> int:
    """Transactions the standby has run in the service's database (reads, as it is read-only)."""
    with psycopg.connect(standby.url(), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = 'chatsvc'").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
async def replicated(
    aiohttp_client: AiohttpClient, cluster: tuple[EmbeddedPostgres, EmbeddedPostgres]
) -> Client:
    primary, standby = cluster
    replayed_everything(primary, standby)
    settings = Settings(
        **CREDENTIALS, database_url=primary.url(), replica_database_url=standby.url(), replica_wait=0.3
    )
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def replay_paused(cluster: tuple[EmbeddedPostgres, EmbeddedPostgres]) -> Iterator[None]:
    """The standby receives WAL but applies none of it: as stale as a replica can get."""
    _, standby = cluster
    with psycopg.connect(standby.url(), autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")


@pytest.fixture
def apply_delay(cluster: tuple[EmbeddedPostgres, EmbeddedPostgres]) -> Iterator[None]:
    """The standby applies each commit 20 ms after the primary made it: an asynchronous replica
    a little behind, as one over a network is (on one machine it is usually in time)."""
    _, standby = cluster
    with psycopg.connect(standby.url(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET recovery_min_apply_delay = '20ms'")
        conn.execute("SELECT pg_reload_conf()")
        try:
            yield
        finally:
            conn.execute("ALTER SYSTEM RESET recovery_min_apply_delay")
            conn.execute("SELECT pg_reload_conf()")


async def test_300_write_then_read_cycles_with_the_position_are_never_stale(
    replicated: Client, cluster: tuple[EmbeddedPostgres, EmbeddedPostgres], apply_delay: None
) -> None:
    _, standby = cluster
    chats = [await create_chat(replicated) for _ in range(5)]
    reads_before = standby_reads(standby)
    stale = unasked = 0
    for n in range(300):
        chat = random.choice(chats)
        response = await replicated.post(f"/chats/{chat['id']}/messages/", json={"text": f"cycle {n}"})
        assert response.status == 201
        position = response.headers[HEADER]
        assert POSITION.fullmatch(position)
        sent = await response.json()
        read = await replicated.get(f"/chats/{chat['id']}", params={"limit": "1"}, headers={HEADER: position})
        assert read.status == 200
        stale += [message["id"] for message in (await read.json())["messages"]] != [sent["id"]]
        if n % 10 == 0:  # and without the position, right after a write: the replica as it is
            second = await replicated.post(f"/chats/{chat['id']}/messages/", json={"text": f"unasked {n}"})
            read = await replicated.get(f"/chats/{chat['id']}", params={"limit": "1"})
            unasked += (await read.json())["messages"][0]["id"] != (await second.json())["id"]
    assert stale == 0
    assert unasked >= 15  # of 30: the replica is behind, so the position is what made the others fresh
    # They were the replica's to serve (it answered most of them; a few it was too slow for).
    assert standby_reads(standby) - reads_before >= 150


async def test_a_read_with_the_position_reads_the_primary_when_the_replica_is_behind_and_one_without_is_stale(
    replicated: Client, replay_paused: None
) -> None:
    chat = await create_chat(replicated)
    response = await replicated.post(f"/chats/{chat['id']}/messages/", json={"text": "after the pause"})
    position = response.headers[HEADER]
    started = time.monotonic()
    fresh = await replicated.get(f"/chats/{chat['id']}", headers={HEADER: position})
    waited = time.monotonic() - started
    assert fresh.status == 200 and [m["text"] for m in (await fresh.json())["messages"]] == [
        "after the pause"
    ]
    assert waited >= 0.3  # CHATSVC_REPLICA_WAIT, then the primary
    # Without the position: the replica's view, which has not seen the chat at all yet.
    assert (await replicated.get(f"/chats/{chat['id']}")).status == 404
    # A position that is not one reads the primary too.
    garbled = await replicated.get(f"/chats/{chat['id']}", headers={HEADER: "yesterday"})
    assert garbled.status == 200


async def test_history_paging_on_the_replica_never_skips_a_message(
    replicated: Client, cluster: tuple[EmbeddedPostgres, EmbeddedPostgres]
) -> None:
    """Pages read from the replica, without the position, while sends go on: backwards from
    the newest, and forwards from the start, each page's cursor the last one's."""
    primary, _ = cluster
    chat = await create_chat(replicated)
    for n in range(200):
        await send(replicated, chat["id"], f"before {n}")
    writing = True

    async def keep_sending() -> None:
        n = 0
        while writing:
            await send(replicated, chat["id"], f"during {n}")
            n += 1

    sender = asyncio.create_task(keep_sending())
    try:
        backwards: list[int] = []
        page: dict[str, Any] = await (await replicated.get(f"/chats/{chat['id']}/messages/?limit=7")).json()
        while page["messages"]:
            backwards += [message["id"] for message in reversed(page["messages"])]
            before = page["messages"][0]["id"]
            page = await (
                await replicated.get(f"/chats/{chat['id']}/messages/?limit=7&before={before}")
            ).json()
        forwards: list[int] = []
        after = 0
        for _ in range(200):
            page = await (await replicated.get(f"/chats/{chat['id']}/messages/?limit=7&after={after}")).json()
            forwards += [message["id"] for message in page["messages"]]
            if not page["messages"]:
                break
            after = page["messages"][-1]["id"]
    finally:
        writing = False
        await sender
    with psycopg.connect(primary.url()) as conn:
        stored = [
            row[0]
            for row in conn.execute("SELECT id FROM messages WHERE chat_id = %s ORDER BY id", (chat["id"],))
        ]
    assert backwards == sorted((i for i in stored if i <= backwards[0]), reverse=True)
    assert len(backwards) >= 100  # the replica may be a few sends behind
    assert forwards == stored[: len(forwards)] and len(forwards) >= 100


async def test_a_replica_that_cannot_be_reached_sends_reads_to_the_primary(
    aiohttp_client: AiohttpClient, cluster: tuple[EmbeddedPostgres, EmbeddedPostgres], tmp_path: Path
) -> None:
    primary, _ = cluster
    nowhere = f"postgresql://postgres@/chatsvc?host={tmp_path}&port=5432"  # no server has a socket there
    client = await aiohttp_client(
        create_app(Settings(**CREDENTIALS, database_url=primary.url(), replica_database_url=nowhere))
    )
    chat = await create_chat(client)
    sent = await send(client, chat["id"], "read anyway")
    for headers in ({}, {HEADER: "0/0"}):
        read = await client.get(f"/chats/{chat['id']}", headers=headers)
        assert read.status == 200 and (await read.json())["messages"] == [sent]
    replica = client.app[REPLICA]
    assert replica is not None and not replica.up
    metrics = await (await client.get("/metrics")).text()
    assert "chatsvc_replica_up 0.0" in metrics


async def test_event_streams_and_their_history_come_from_the_primary(
    replicated: Client, replay_paused: None
) -> None:
    chat = await create_chat(replicated)
    first = await send(replicated, chat["id"], "first")
    response = await replicated.get(f"/chats/{chat['id']}/events", headers={"Last-Event-ID": "0"})
    stream = EventStream(response)
    assert (await stream.frame()).retry == "1000"
    assert await stream.messages(1) == [first]  # the history the replica has not replayed yet
    live = await send(replicated, chat["id"], "live")
    assert await stream.messages(1) == [live]
    stream.close()


async def test_the_replica_lag_is_in_the_metrics(
    replicated: Client, cluster: tuple[EmbeddedPostgres, EmbeddedPostgres]
) -> None:
    for _ in range(100):  # measured every second
        metrics = await (await replicated.get("/metrics")).text()
        if "chatsvc_replica_lag_seconds" in metrics:
            break
        await asyncio.sleep(0.05)
    assert "chatsvc_replica_up 1.0" in metrics
    assert re.search(r"^chatsvc_replica_lag_seconds [0-9.e+-]+$", metrics, re.MULTILINE)
    assert re.search(r"^chatsvc_replica_lag_bytes [0-9.e+-]+$", metrics, re.MULTILINE)


async def test_without_a_replica_writes_answer_no_position(client: Client) -> None:
    response = await client.post("/chats/", json={"title": "no replica"})
    assert response.status == 201 and HEADER not in response.headers
