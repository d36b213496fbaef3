"""Batching (chatsvc/batching.py): reads, and sends, that queue for a connection share one statement.

Against the session's real PostgreSQL through the real pool and SQL file,
with a pool of one connection held by the test, so that who waits is certain.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Sequence
from typing import Any

import asyncpg
import orjson
import pytest

from chatsvc import activity, batching, changes, creates, queries, reads, sends
from chatsvc.db import DatabaseUnavailable, Pool, open_database
from chatsvc.limits import TooManyWrites, WriteLimit
from chatsvc.queries import Members
from chatsvc.settings import Settings
from tests.api import fill_chat
from tests.credentials import CREDENTIALS

# The server sends here: never charged, but a send carries its app's limit.
LIMIT = WriteLimit(10, 50)


@pytest.fixture
async def chats(pool: Pool) -> list[int]:
    """Three chats holding 0, 1 and 5 messages."""
    ids = []
    async with pool.connection() as conn:
        for size in (0, 1, 5):
            chat_id = await conn.fetchval("INSERT INTO chats (title) VALUES ('batched') RETURNING id")
            await fill_chat(conn, chat_id, size, "m")
            ids.append(chat_id)
    return ids


async def one_by_one(pool: Pool, wanted: list[tuple[int, int]]) -> list[str | None]:
    return [await reads.read_chat(pool, chat_id, limit, None) for chat_id, limit in wanted]


async def test_reads_queued_behind_a_busy_connection_join_one_batch_and_get_their_own_answers(
    pool: Pool, chats: list[int]
) -> None:
    missing = 2**62
    wanted = [(chat_id, limit) for chat_id in [*chats, missing] for limit in (1, 3, 20)]
    wanted += wanted[:4]  # the same read twice in one batch
    expected = await one_by_one(pool, wanted)
    held = await pool.acquire()
    pending = [asyncio.create_task(reads.read_chat(pool, *read, None)) for read in wanted]
    await asyncio.sleep(0.05)
    assert pool.waiting == 1  # the batch's runner; every other read joined its batch
    pool.release(held)
    assert await asyncio.gather(*pending) == expected
    assert expected.count(None) == 3  # the missing chat, at each limit
    shown = orjson.loads(next(found for found in expected if found is not None and '"m5"' in found))
    assert [message["text"] for message in shown["messages"]] == ["m5"]  # limit 1: the newest only


async def test_a_read_runs_alone_at_once_when_a_connection_is_idle(pool: Pool, chats: list[int]) -> None:
    read = asyncio.create_task(reads.read_chat(pool, chats[2], 2, None))
    await asyncio.sleep(0)
    assert pool.waiting == 0
    found = await read
    assert found is not None and len(orjson.loads(found)["messages"]) == 2


async def test_a_full_batch_starts_another(pool: Pool, chats: list[int]) -> None:
    held = await pool.acquire()
    # Distinct keys: the chat at every limit, then more limits than a batch holds.
    wanted = [(chats[2], limit) for limit in range(1, batching.MAX_BATCH + 6)]
    pending = [asyncio.create_task(reads.read_chat(pool, *read, None)) for read in wanted]
    await asyncio.sleep(0.05)
    assert pool.waiting == 1  # the first batch's runner; the second batch waits for its turn
    assert reads.CHAT_READS.collecting(pool) == 5
    pool.release(held)
    answers = await asyncio.gather(*pending)
    assert [len(orjson.loads(found or "")["messages"]) for found in answers] == [
        min(limit, 5) for _, limit in wanted
    ]


async def test_when_the_runner_cannot_get_a_connection_the_whole_batch_is_unavailable(
    pool: Pool, chats: list[int]
) -> None:
    pool.acquire_timeout = 0.1
    held = await pool.acquire()
    pending = [asyncio.create_task(reads.read_chat(pool, chat_id, 5, None)) for chat_id in chats]
    results = await asyncio.gather(*pending, return_exceptions=True)
    assert all(isinstance(result, DatabaseUnavailable) for result in results), results
    pool.release(held)
    pool.acquire_timeout = 2
    assert await reads.read_chat(pool, chats[0], 5, None) is not None  # and it recovers


async def test_a_failing_batch_statement_fails_every_read_in_it(
    pool: Pool, chats: list[int], other: asyncpg.Connection
) -> None:
    """The statement itself fails (here: cancelled by statement_timeout while a lock blocks it)."""
    held = await pool.acquire()
    await held.execute("SET statement_timeout = 200")
    pool.release(held)
    await other.execute("LOCK TABLE chats IN ACCESS EXCLUSIVE MODE")
    held = await pool.acquire()
    pending = [asyncio.create_task(reads.read_chat(pool, chat_id, 5, None)) for chat_id in chats]
    await asyncio.sleep(0.05)
    pool.release(held)
    results = await asyncio.gather(*pending, return_exceptions=True)
    await other.execute("ROLLBACK")
    assert all(isinstance(result, DatabaseUnavailable) for result in results), results


async def fill_in_flight(db: Pool, chat_id: int) -> list[asyncio.Task[str | None]]:
    """MAX_IN_FLIGHT batches, each of one read, each holding a connection (started one by one)."""
    running = []
    for limit in range(1, batching.MAX_IN_FLIGHT + 1):
        running.append(asyncio.create_task(reads.read_chat(db, chat_id, limit, None)))
        for _ in range(500):
            await asyncio.sleep(0.01)
            if db.size - db.idle == limit:
                break
    assert db.size - db.idle == batching.MAX_IN_FLIGHT
    return running


async def test_at_most_max_in_flight_batches_run_and_the_next_collects_meanwhile(
    database_url: str, chats: list[int], other: asyncpg.Connection
) -> None:
    wide = await open_database(
        Settings(**CREDENTIALS, database_url=database_url, pool_max_size=10, pool_acquire_timeout=2)
    )
    try:
        await other.execute(
            "LOCK TABLE chats IN ACCESS EXCLUSIVE MODE"
        )  # every read now blocks in its statement
        running = await fill_in_flight(wide, chats[0])
        queued = [asyncio.create_task(reads.read_chat(wide, chat_id, 5, None)) for chat_id in chats]
        await asyncio.sleep(0.1)
        # The first ones hold a connection each; the rest wait together, holding none.
        assert wide.size - wide.idle == batching.MAX_IN_FLIGHT
        assert wide.waiting == 0
        await other.execute("ROLLBACK")
        answers = await asyncio.gather(*running, *queued)
        assert all(answer is not None for answer in answers)
    finally:
        await wide.close()


async def test_while_a_batch_runs_the_one_behind_it_takes_half_of_the_requests_in_hand(
    database_url: str, chats: list[int], other: asyncpg.Connection
) -> None:
    """A batch collecting behind a running one stops at half of the requests in hand
    (at least MIN_HALF); the rest start another, and each read gets its own answer."""
    wide = await open_database(
        Settings(**CREDENTIALS, database_url=database_url, pool_max_size=10, pool_acquire_timeout=5)
    )
    try:
        await other.execute("LOCK TABLE chats IN ACCESS EXCLUSIVE MODE")
        running = await fill_in_flight(wide, chats[2])
        burst = 4 * batching.MIN_HALF
        wanted = [(chats[2], limit) for limit in range(1, burst + 1)]  # distinct keys
        queued = [
            asyncio.create_task(reads.read_chat(wide, *read, None)) for read in wanted[: batching.MIN_HALF]
        ]
        await asyncio.sleep(0.05)
        assert reads.CHAT_READS.collecting(wide) == batching.MIN_HALF  # one batch, whatever half is
        queued += [
            asyncio.create_task(reads.read_chat(wide, *read, None)) for read in wanted[batching.MIN_HALF :]
        ]
        await asyncio.sleep(0.1)
        # The batch collecting now holds at most half of the requests in hand.
        assert 0 < reads.CHAT_READS.collecting(wide) <= (burst + 2) // 2
        await other.execute("ROLLBACK")
        answers = await asyncio.gather(*queued)
        assert [len(orjson.loads(found or "")["messages"]) for found in answers] == [
            min(limit, 5) for _, limit in wanted
        ]
        assert all(answer is not None for answer in await asyncio.gather(*running))
    finally:
        await wide.close()


async def test_a_batch_that_waits_for_its_turn_past_the_acquire_timeout_is_unavailable(
    database_url: str, chats: list[int], other: asyncpg.Connection
) -> None:
    wide = await open_database(
        Settings(**CREDENTIALS, database_url=database_url, pool_max_size=10, pool_acquire_timeout=0.3)
    )
    try:
        await other.execute("LOCK TABLE chats IN ACCESS EXCLUSIVE MODE")
        running = await fill_in_flight(wide, chats[0])
        with pytest.raises(DatabaseUnavailable):
            await reads.read_chat(wide, chats[1], 5, None)
        await other.execute("ROLLBACK")
        assert all(answer is not None for answer in await asyncio.gather(*running))
    finally:
        await wide.close()


# -- sends ------------------------------------------------------------------------


async def stored(pool: Pool, chat_id: int) -> list[tuple[int, str]]:
    async with pool.connection() as conn:
        rows = await conn.fetch("SELECT id, text FROM messages WHERE chat_id = $1 ORDER BY id", chat_id)
    return [(row["id"], row["text"]) for row in rows]


async def test_sends_queued_behind_a_busy_connection_join_one_batch_and_each_stores_its_own_message(
    pool: Pool, chats: list[int]
) -> None:
    empty, missing = chats[0], 2**62
    wanted = [(chats[1], "a"), (empty, "b"), (missing, "c"), (empty, "d"), (empty, "d"), (chats[2], "e")]
    held = await pool.acquire()
    pending_sends = [
        asyncio.create_task(sends.send_message(pool, *send, None, None, LIMIT)) for send in wanted
    ]
    await asyncio.sleep(0.05)
    assert pool.waiting == 1  # the batch's runner; every other send joined its batch
    pool.release(held)
    created = await asyncio.gather(*pending_sends)
    assert created[2] is None  # no such chat: that send alone finds nothing
    for (chat_id, text), message in zip(wanted, created, strict=True):
        if message is not None:
            body = orjson.loads(message.json)
            assert (body["id"], body["chat_id"], body["text"]) == (message.id, chat_id, text)
    # Two equal sends are two messages; a chat's messages are stored in the order they were sent.
    ids_in_empty = [created[n].id for n in (1, 3, 4)]  # type: ignore[union-attr]
    assert await stored(pool, empty) == list(zip(ids_in_empty, ["b", "d", "d"], strict=True))
    assert ids_in_empty == sorted(ids_in_empty)


async def test_a_message_the_database_refuses_fails_alone_and_the_rest_of_its_batch_is_stored(
    pool: Pool, chats: list[int], other: asyncpg.Connection
) -> None:
    """The database may refuse what the service accepted (here: a constraint a DBA added)."""
    await other.execute("ROLLBACK")
    await other.execute("ALTER TABLE messages ADD CONSTRAINT no_refused CHECK (text <> 'refused') NOT VALID")
    try:
        held = await pool.acquire()
        texts = ["before", "refused", "after"]
        pending_sends = [
            asyncio.create_task(sends.send_message(pool, chats[0], text, None, None, LIMIT)) for text in texts
        ]
        await asyncio.sleep(0.05)
        assert pool.waiting == 1
        pool.release(held)
        before, refused, after = await asyncio.gather(*pending_sends, return_exceptions=True)
        assert isinstance(refused, asyncpg.CheckViolationError)
        assert [text for _, text in await stored(pool, chats[0])] == ["before", "after"]
        assert isinstance(before, queries.Created) and isinstance(after, queries.Created)
    finally:
        await other.execute("ALTER TABLE messages DROP CONSTRAINT no_refused")


async def test_a_send_to_a_chat_held_elsewhere_goes_alone_and_holds_up_nothing_batched_with_it(
    pool: Pool, chats: list[int], other: asyncpg.Connection
) -> None:
    busy, free = chats[0], chats[1]
    await other.execute("SELECT FROM chats WHERE id = $1 FOR UPDATE", busy)  # e.g. a delete in progress
    held = await pool.acquire()
    waiting = asyncio.create_task(sends.send_message(pool, busy, "waits", None, None, LIMIT))
    passing = asyncio.create_task(sends.send_message(pool, free, "passes", None, None, LIMIT))
    await asyncio.sleep(0.05)
    assert sends.SENDS.collecting(pool) == 2  # one batch
    pool.release(held)
    stored_free = await asyncio.wait_for(passing, 5)
    assert stored_free is not None and not waiting.done()  # the batch skipped the busy chat
    await other.execute("ROLLBACK")
    stored_busy = await asyncio.wait_for(waiting, 5)  # alone, once the lock is gone
    assert stored_busy is not None
    assert [text for _, text in await stored(pool, busy)] == ["waits"]
    assert [text for _, text in await stored(pool, free)][-1] == "passes"


# -- edits ------------------------------------------------------------------------


async def edited_chat(pool: Pool, author: str, others: list[str]) -> tuple[int, list[int]]:
    """A chat whose members are author and others; five messages by author, one by the server."""
    async with pool.connection() as conn:
        chat_id = await conn.fetchval("INSERT INTO chats (title) VALUES ('edited') RETURNING id")
        await conn.execute(
            "INSERT INTO chat_members (chat_id, user_id) SELECT $1, unnest($2::text[])",
            chat_id,
            [author, *others],
        )
        await fill_chat(conn, chat_id, 5, "by author ", author)
        await fill_chat(conn, chat_id, 1, "by the server ")
        ids = [
            row["id"]
            for row in await conn.fetch("SELECT id FROM messages WHERE chat_id = $1 ORDER BY id", chat_id)
        ]
    return chat_id, ids


async def queued(
    pool: Pool, batched: batching.Batched[Any, Any], calls: Sequence[Awaitable[Any]]
) -> list[Any]:
    """What the calls return (or raise), queued behind a busy connection so that they make
    one batch of batched."""
    held = await pool.acquire()
    pending = [asyncio.ensure_future(call) for call in calls]
    await asyncio.sleep(0.05)
    assert pool.waiting == 1 and batched.collecting(pool) == len(calls)  # one batch
    pool.release(held)
    return await asyncio.gather(*pending, return_exceptions=True)


async def queued_edits(
    pool: Pool, wanted: Sequence[tuple[int, int, str, str | None]], limit: WriteLimit = LIMIT
) -> list[Any]:
    """The edits (chat id, message id, text, caller user), made in one batch."""
    return await queued(pool, changes.EDITS, [changes.edit_message(pool, *edit, limit) for edit in wanted])


async def test_edits_queued_together_each_get_what_their_caller_may_do(pool: Pool) -> None:
    ann, bob, eve = (f"{name}-edits" for name in ("ann", "bob", "eve"))
    chat_id, ids = await edited_chat(pool, ann, [bob])
    missing = 2**62
    wanted = [
        (chat_id, ids[5], "server's", None),  # the server edits any message
        (chat_id, ids[0], "ann's", ann),  # an author their own
        (chat_id, ids[1], "bob's", bob),  # a member not another's: 403
        (chat_id, ids[2], "eve's", eve),  # a stranger: 404
        (chat_id, missing, "nowhere", ann),  # no such message: 404
        (missing, ids[3], "nowhere", None),  # no such chat: 404
        (chat_id, ids[0], "ann's again", ann),  # the same message twice: goes alone, after
    ]
    server, own, other, stranger, no_message, no_chat, again = await queued_edits(pool, wanted)
    assert isinstance(server, str) and orjson.loads(server)["text"] == "server's"
    assert isinstance(own, str) and orjson.loads(own)["text"] == "ann's"
    assert isinstance(again, str) and orjson.loads(again)["text"] == "ann's again"
    assert other == queries.MessageRefused("member", True)
    assert stranger == queries.MessageRefused(None, True)
    assert no_message == queries.MessageRefused("member", False)
    assert no_chat == queries.MessageRefused(None, False)
    async with pool.connection() as conn:
        texts = [
            row["text"]
            for row in await conn.fetch("SELECT text FROM messages WHERE chat_id = $1 ORDER BY id", chat_id)
        ]
        logged = await conn.fetch(
            "SELECT id, message_id FROM message_changes WHERE chat_id = $1 ORDER BY id", chat_id
        )
    assert texts == ["ann's again", "by author 2", "by author 3", "by author 4", "by author 5", "server's"]
    # Each edit done is logged under an event id of its own: the batch's two, then the one alone.
    assert sorted(row["message_id"] for row in logged[:2]) == [ids[0], ids[5]]
    assert [row["message_id"] for row in logged[2:]] == [ids[0]]


async def test_an_edit_batch_charges_each_users_edits_and_a_second_edit_of_a_message_alone(
    pool: Pool,
) -> None:
    ann = "ann-charged-edits"
    chat_id, ids = await edited_chat(pool, ann, [])
    limit = WriteLimit(0.001, 2)  # two edits now, the next in 1,000 s
    wanted = [
        (chat_id, ids[0], "first", ann),
        (chat_id, ids[0], "twice", ann),
        (chat_id, ids[1], "second", ann),
    ]
    first, twice, second = await queued_edits(pool, wanted, limit)
    assert isinstance(first, str) and isinstance(second, str)
    # The batch took both tokens; the second edit of ids[0], charged alone, finds none.
    assert isinstance(twice, TooManyWrites)
    assert [row[1] for row in (await stored(pool, chat_id))[:2]] == ["first", "second"]
    (refused,) = await queued_edits(pool, [(chat_id, ids[2], "third", ann)], limit)
    assert isinstance(refused, TooManyWrites)  # and the next batch finds none either
    assert (await stored(pool, chat_id))[2][1] == "by author 3"


async def test_an_edit_in_a_chat_held_elsewhere_goes_alone_and_holds_up_nothing_batched_with_it(
    pool: Pool, other: asyncpg.Connection
) -> None:
    busy, busy_ids = await edited_chat(pool, "ann-busy-edits", [])
    free, free_ids = await edited_chat(pool, "ann-busy-edits", [])
    await other.execute("SELECT FROM chats WHERE id = $1 FOR UPDATE", busy)  # e.g. a delete in progress
    held = await pool.acquire()
    waiting = asyncio.create_task(changes.edit_message(pool, busy, busy_ids[5], "waits", None, LIMIT))
    passing = asyncio.create_task(changes.edit_message(pool, free, free_ids[5], "passes", None, LIMIT))
    await asyncio.sleep(0.05)
    assert changes.EDITS.collecting(pool) == 2  # one batch
    pool.release(held)
    passed = await asyncio.wait_for(passing, 5)
    assert isinstance(passed, str) and orjson.loads(passed)["text"] == "passes"
    assert not waiting.done()  # the batch skipped the busy chat
    await other.execute("ROLLBACK")
    waited = await asyncio.wait_for(waiting, 5)  # alone, once the lock is gone
    assert isinstance(waited, str) and orjson.loads(waited)["text"] == "waits"


# -- deletions of messages ----------------------------------------------------------


async def queued_deletions(
    pool: Pool, wanted: Sequence[tuple[int, int, str | None]], limit: WriteLimit = LIMIT
) -> list[Any]:
    """The deletions (chat id, message id, caller user), made in one batch."""
    return await queued(
        pool, changes.DELETES, [changes.delete_message(pool, *deletion, limit) for deletion in wanted]
    )


async def chat_row(pool: Pool, chat_id: int) -> asyncpg.Record:
    async with pool.connection() as conn:
        row: asyncpg.Record = await conn.fetchrow(
            "SELECT last_message_id, last_deleted_seq, listed_activity FROM chats WHERE id = $1", chat_id
        )
    return row


async def test_deletions_queued_together_each_get_what_their_caller_may_do(pool: Pool) -> None:
    ann, bob, eve = (f"{name}-deletions" for name in ("ann", "bob", "eve"))
    chat_id, ids = await edited_chat(pool, ann, [bob])
    missing = 2**62
    wanted = [
        (chat_id, ids[5], None),  # the server deletes any message
        (chat_id, ids[0], ann),  # an author their own
        (chat_id, ids[1], bob),  # a member not another's: 403
        (chat_id, ids[2], eve),  # a stranger: 404
        (chat_id, missing, ann),  # no such message: 404
        (missing, ids[3], None),  # no such chat: 404
        (chat_id, ids[0], ann),  # the same message twice: goes alone, after, and finds it gone
    ]
    server, own, other, stranger, no_message, no_chat, again = await queued_deletions(pool, wanted)
    assert server is None and own is None
    assert other == queries.MessageRefused("member", True)
    assert stranger == queries.MessageRefused(None, True)
    assert no_message == queries.MessageRefused("member", False)
    assert no_chat == queries.MessageRefused(None, False)
    assert again == queries.MessageRefused("member", False)
    assert [text for _, text in await stored(pool, chat_id)] == [f"by author {n}" for n in (2, 3, 4, 5)]
    async with pool.connection() as conn:
        logged = await conn.fetch(
            "SELECT message_id, seq FROM message_changes WHERE chat_id = $1 AND deleted ORDER BY id", chat_id
        )
    # Each deletion done is logged, with the message's seq, under an event id of its own.
    assert sorted((row["message_id"], row["seq"]) for row in logged) == [(ids[0], 1), (ids[5], 6)]
    # The newest message went: the chat's activity falls back to the newest one left.
    chat = await chat_row(pool, chat_id)
    assert (chat["last_message_id"], chat["last_deleted_seq"], chat["listed_activity"]) == (ids[4], 6, None)


async def test_a_batch_deleting_a_chats_newest_messages_falls_back_past_all_of_them(pool: Pool) -> None:
    """The statement still sees the messages it deletes: the chat's newest message left is
    found past every one of them, and a chat emptied in one batch has none."""
    emptied, emptied_ids = await edited_chat(pool, "ann-newest-deleted", [])
    kept, kept_ids = await edited_chat(pool, "ann-newest-deleted", [])
    wanted = [(kept, kept_ids[5], None), (kept, kept_ids[3], None), (kept, kept_ids[4], None)]
    wanted += [(emptied, message_id, None) for message_id in reversed(emptied_ids)]
    assert await queued_deletions(pool, wanted) == [None] * 9
    chat = await chat_row(pool, kept)
    assert (chat["last_message_id"], chat["last_deleted_seq"]) == (kept_ids[2], 6)
    assert [message_id for message_id, _ in await stored(pool, kept)] == kept_ids[:3]
    chat = await chat_row(pool, emptied)
    assert (chat["last_message_id"], chat["last_deleted_seq"]) == (None, 6)
    shown = await reads.read_chat(pool, kept, 20, None)
    assert shown is not None and [m["id"] for m in orjson.loads(shown)["messages"]] == kept_ids[:3]


async def test_a_deletion_batch_charges_each_users_deletions_and_a_second_one_of_a_message_alone(
    pool: Pool,
) -> None:
    ann = "ann-charged-deletions"
    chat_id, ids = await edited_chat(pool, ann, [])
    limit = WriteLimit(0.001, 2)  # two deletions now, the next in 1,000 s
    first, twice, second = await queued_deletions(
        pool, [(chat_id, ids[0], ann)] * 2 + [(chat_id, ids[1], ann)], limit
    )
    assert first is None and second is None
    # The batch took both tokens; the second deletion of ids[0], charged alone, finds none.
    assert isinstance(twice, TooManyWrites)
    (refused,) = await queued_deletions(pool, [(chat_id, ids[2], ann)], limit)
    assert isinstance(refused, TooManyWrites)  # and the next batch finds none either
    assert [message_id for message_id, _ in await stored(pool, chat_id)] == ids[2:]


async def test_a_deletion_in_a_chat_held_elsewhere_goes_alone_and_holds_up_nothing_batched_with_it(
    pool: Pool, other: asyncpg.Connection
) -> None:
    busy, busy_ids = await edited_chat(pool, "ann-busy-deletions", [])
    free, free_ids = await edited_chat(pool, "ann-busy-deletions", [])
    await other.execute("SELECT FROM chats WHERE id = $1 FOR UPDATE", busy)  # e.g. a send in progress
    held = await pool.acquire()
    waiting = asyncio.create_task(changes.delete_message(pool, busy, busy_ids[5], None, LIMIT))
    passing = asyncio.create_task(changes.delete_message(pool, free, free_ids[5], None, LIMIT))
    await asyncio.sleep(0.05)
    assert changes.DELETES.collecting(pool) == 2  # one batch
    pool.release(held)
    assert await asyncio.wait_for(passing, 5) is None
    assert not waiting.done()  # the batch skipped the busy chat
    await other.execute("ROLLBACK")
    assert await asyncio.wait_for(waiting, 5) is None  # alone, once the lock is gone
    assert [message_id for message_id, _ in await stored(pool, free)] == free_ids[:5]
    assert [message_id for message_id, _ in await stored(pool, busy)] == busy_ids[:5]


async def test_history_pages_queued_together_each_get_what_their_caller_may_read(
    pool: Pool, chats: list[int]
) -> None:
    """One statement answers pages of several chats, both ways, for several callers: each
    page is its own caller's (a member's, a stranger's: none, the server's), as alone."""
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO chat_members (chat_id, user_id) VALUES ($1, 'alice')", chats[2])
        ids = [
            row["id"]
            for row in await conn.fetch("SELECT id FROM messages WHERE chat_id = $1 ORDER BY id", chats[2])
        ]
    missing = 2**62
    before = [
        (chat_id, cursor, limit, user)
        for chat_id in (*chats, missing)
        for cursor in (None, ids[3])
        for limit in (1, 2)
        for user in (None, "alice", "bob")
    ]
    after = [(chat_id, ids[1], 2, user) for chat_id in (*chats, missing) for user in (None, "alice", "bob")]
    reads_alone = [reads.read_history_before(pool, *page) for page in before]
    reads_alone += [reads.read_history_after(pool, *page) for page in after]
    expected = [await read for read in reads_alone]
    held = await pool.acquire()
    pending = [asyncio.create_task(reads.read_history_before(pool, *page)) for page in before]
    pending += [asyncio.create_task(reads.read_history_after(pool, *page)) for page in after]
    await asyncio.sleep(0.05)
    assert pool.waiting == 2  # one runner per direction; every other page joined its batch
    assert reads.PAGES_BEFORE.collecting(pool) == len(before) and reads.PAGES_AFTER.collecting(pool) == len(
        after
    )
    pool.release(held)
    assert await asyncio.gather(*pending) == expected
    # Alone, as the contract says: a stranger and a missing chat get nothing; alice and the server the page.
    answers = dict(zip([*before, *after], expected, strict=True))
    assert answers[(chats[2], None, 2, "bob")] is None and answers[(missing, None, 2, None)] is None
    newest = orjson.loads(answers[(chats[2], None, 2, "alice")] or "")
    assert [m["text"] for m in newest["messages"]] == ["m4", "m5"] and newest["has_more"]
    assert answers[(chats[2], None, 2, None)] == answers[(chats[2], None, 2, "alice")]
    older = orjson.loads(answers[(chats[2], ids[3], 2, None)] or "")
    assert [m["id"] for m in older["messages"]] == ids[1:3] and older["has_more"]
    forward = orjson.loads(answers[(chats[2], ids[1], 2, "alice")] or "")
    assert [m["id"] for m in forward["messages"]] == ids[2:4] and forward["has_more"]
    assert orjson.loads(answers[(chats[0], ids[1], 2, None)] or "") == {"messages": [], "has_more": False}


async def test_messages_and_member_pages_queued_together_each_get_what_their_caller_may_read(
    pool: Pool, chats: list[int]
) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO chat_members (chat_id, user_id) VALUES ($1, 'alice'), ($1, 'carol')", chats[2]
        )
        newest = await conn.fetchval("SELECT max(id) FROM messages WHERE chat_id = $1", chats[2])
    missing = 2**62
    messages = [
        (chat_id, message_id, user)
        for chat_id in (*chats, missing)
        for message_id in (newest, newest - 1, missing)
        for user in (None, "alice", "bob")
    ]
    members = [
        (chat_id, after, limit, user)
        for chat_id in (*chats, missing)
        for after in ("", "alice")
        for limit in (1, 5)
        for user in (None, "alice", "bob")
    ]
    expected = [await reads.read_message(pool, *read) for read in messages]
    expected += [await reads.read_members(pool, *page) for page in members]
    held = await pool.acquire()
    pending = [asyncio.create_task(reads.read_message(pool, *read)) for read in messages]
    pending += [asyncio.create_task(reads.read_members(pool, *page)) for page in members]
    await asyncio.sleep(0.05)
    assert pool.waiting == 2  # one runner per statement
    assert reads.MESSAGE_READS.collecting(pool) == len(messages)
    assert reads.MEMBER_PAGES.collecting(pool) == len(members)
    pool.release(held)
    assert await asyncio.gather(*pending) == expected
    answers = dict(zip([*messages, *members], expected, strict=True))
    assert orjson.loads(answers[(chats[2], newest, "alice")] or "")["text"] == "m5"
    assert answers[(chats[2], newest, "bob")] is None and answers[(chats[1], newest, None)] is None
    first = orjson.loads(answers[(chats[2], "", 1, "alice")] or "")
    assert [m["user"] for m in first["members"]] == ["alice"] and first["next_after"] == "alice"
    rest = orjson.loads(answers[(chats[2], "alice", 5, None)] or "")
    assert [m["user"] for m in rest["members"]] == ["carol"] and rest["next_after"] is None
    assert answers[(chats[2], "", 5, "bob")] is None and answers[(missing, "", 5, None)] is None
    assert orjson.loads(answers[(chats[0], "", 5, None)] or "") == {"members": [], "next_after": None}


async def test_listings_queued_together_each_get_their_own_users_chats(pool: Pool, chats: list[int]) -> None:
    # Users of their own: the other tests' chats are in this database too.
    alice, bob, eve = (f"{name}-{chats[0]}" for name in ("alice", "bob", "eve"))
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO chat_members (chat_id, user_id) VALUES ($1, $3), ($2, $3), ($2, $4)",
            chats[1],
            chats[2],
            alice,
            bob,
        )
    wanted = [
        (before, limit, user) for before in (None, chats[2]) for limit in (1, 5) for user in (alice, bob, eve)
    ]
    expected = [await reads.read_listing(pool, *listing) for listing in wanted]
    held = await pool.acquire()
    pending = [asyncio.create_task(reads.read_listing(pool, *listing)) for listing in wanted]
    await asyncio.sleep(0.05)
    assert pool.waiting == 1 and reads.USER_LISTINGS.collecting(pool) == len(wanted)
    pool.release(held)
    assert await asyncio.gather(*pending) == expected
    answers = {key: orjson.loads(answer) for key, answer in zip(wanted, expected, strict=True)}
    assert [chat["id"] for chat in answers[(None, 5, alice)]["chats"]] == [chats[2], chats[1]]
    assert answers[(None, 1, alice)]["next_before"] == chats[2]
    assert [chat["id"] for chat in answers[(chats[2], 5, alice)]["chats"]] == [chats[1]]
    assert [chat["id"] for chat in answers[(None, 5, bob)]["chats"]] == [chats[2]]
    assert answers[(None, 5, bob)]["next_before"] is None
    assert answers[(None, 5, eve)] == {"chats": [], "next_before": None}


async def test_a_read_that_joins_a_waiting_batch_sees_every_write_committed_before_it_arrived(
    pool: Pool, chats: list[int], db: asyncpg.Connection
) -> None:
    """Read-your-writes through a batch: its statement starts once it has a connection, after
    every read in it arrived, so a read never gets an answer older than its own arrival."""
    held = await pool.acquire()
    first = asyncio.create_task(reads.read_history_before(pool, chats[1], None, 10, None))
    await asyncio.sleep(0.05)  # the batch's runner waits for the connection the test holds
    await fill_chat(db, chats[1], 1, "written while the batch waited ")
    joined = asyncio.create_task(reads.read_history_before(pool, chats[1], None, 10, None))
    await asyncio.sleep(0.05)
    assert reads.PAGES_BEFORE.collecting(pool) == 1  # the same key: the second read joined the first's
    pool.release(held)
    for answer in await asyncio.gather(first, joined):
        texts = [message["text"] for message in orjson.loads(answer or "")["messages"]]
        assert texts[-1] == "written while the batch waited 1"


async def test_listings_by_activity_queued_together_each_get_their_own_users_chats(
    pool: Pool, chats: list[int]
) -> None:
    alice, bob = (f"{name}-by-activity-{chats[0]}" for name in ("alice", "bob"))
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO chat_members (chat_id, user_id) VALUES ($1, $3), ($2, $3), ($2, $4)",
            chats[1],
            chats[2],
            alice,
            bob,
        )
    first = queries.FIRST_BY_ACTIVITY
    wanted = [(first, limit, user) for limit in (1, 5) for user in (alice, bob, "nobody")]
    # Chats inserted by SQL are unlisted; flushed, their members' copies list them.
    for flushed in (False, True):
        if flushed:
            await activity.flush(pool, kept=0)
        expected = [await reads.read_listing_by_activity(pool, *listing) for listing in wanted]
        held = await pool.acquire()
        pending = [asyncio.create_task(reads.read_listing_by_activity(pool, *listing)) for listing in wanted]
        await asyncio.sleep(0.05)
        assert pool.waiting == 1 and reads.USER_LISTINGS_BY_ACTIVITY.collecting(pool) == len(wanted)
        pool.release(held)
        assert await asyncio.gather(*pending) == expected
        answers = {key: orjson.loads(answer) for key, answer in zip(wanted, expected, strict=True)}
        # chats[2] was written to last (5 messages after chats[1]'s one): most recently active.
        assert [chat["id"] for chat in answers[(first, 5, alice)]["chats"]] == [chats[2], chats[1]]
        assert [chat["id"] for chat in answers[(first, 1, alice)]["chats"]] == [chats[2]]
        assert answers[(first, 1, alice)]["next_cursor"] is not None
        assert [chat["id"] for chat in answers[(first, 5, bob)]["chats"]] == [chats[2]]
        assert answers[(first, 5, "nobody")] == {"chats": [], "next_cursor": None}


async def test_the_servers_listings_queued_together_share_a_statement_each(
    pool: Pool, chats: list[int]
) -> None:
    """The server lists every chat; its listings batch as a user's do, one statement per order."""
    first = queries.FIRST_BY_ACTIVITY
    by_id = [(before, limit, None) for before in (None, chats[2] + 1, chats[2]) for limit in (1, 2)]
    by_activity = [(first, limit, None) for limit in (1, 3)]
    expected = [await reads.read_listing(pool, *listing) for listing in by_id]
    expected += [await reads.read_listing_by_activity(pool, *listing) for listing in by_activity]
    held = await pool.acquire()
    pending = [asyncio.create_task(reads.read_listing(pool, *listing)) for listing in by_id]
    pending += [
        asyncio.create_task(reads.read_listing_by_activity(pool, *listing)) for listing in by_activity
    ]
    await asyncio.sleep(0.05)
    assert reads.SERVER_LISTINGS.collecting(pool) == len(by_id)
    assert reads.SERVER_LISTINGS_BY_ACTIVITY.collecting(pool) == len(by_activity)
    pool.release(held)
    assert await asyncio.gather(*pending) == expected
    answers = {
        key: orjson.loads(answer) for key, answer in zip([*by_id, *by_activity], expected, strict=True)
    }
    # The fixture's chats are the newest and (chats[2] written to last) the most recently active.
    assert [chat["id"] for chat in answers[(None, 2, None)]["chats"]] == [chats[2], chats[1]]
    assert answers[(None, 2, None)]["next_before"] == chats[1]
    assert answers[(chats[2] + 1, 1, None)] == answers[(None, 1, None)]
    assert [chat["id"] for chat in answers[(chats[2], 2, None)]["chats"]] == [chats[1], chats[0]]
    assert answers[(chats[2], 1, None)]["chats"][0]["last_message"]["text"] == "m1"
    assert [chat["id"] for chat in answers[(first, 3, None)]["chats"]] == [chats[2], chats[1], chats[0]]
    assert [chat["id"] for chat in answers[(first, 1, None)]["chats"]] == [chats[2]]
    assert answers[(first, 1, None)]["next_cursor"] is not None


# -- creates ----------------------------------------------------------------------


async def queued_creates(
    pool: Pool, wanted: Sequence[tuple[str, Members, str | None]], limit: WriteLimit = LIMIT
) -> list[Any]:
    """The creates (title, members, caller user), made in one batch."""
    return await queued(
        pool, creates.CREATES, [creates.create_chat(pool, *create, limit) for create in wanted]
    )


async def test_a_create_batch_charges_each_users_creates_and_creates_only_those_granted(pool: Pool) -> None:
    """Burst 2 and no refill to speak of: a user's third create in the batch is refused
    and creates nothing; another user's and the server's are not held back by it."""
    ann, bob = (f"{name}-charged-creates-{os.urandom(4).hex()}" for name in ("ann", "bob"))
    limit = WriteLimit(0.001, 2)  # two creates now, the next in 1,000 s
    owner = Members([ann], ["owner"])
    wanted = [
        ("ann 1", owner, ann),
        ("bob 1", Members([bob], ["owner"]), bob),
        ("ann 2", owner, ann),
        ("server's", Members([], []), None),
        ("ann 3", owner, ann),
    ]
    ann_1, bob_1, ann_2, server, ann_3 = await queued_creates(pool, wanted, limit)
    assert isinstance(ann_3, TooManyWrites) and ann_3.status == 429
    assert 998 <= int(ann_3.headers["Retry-After"]) <= 1000
    for (title, _, _), chat in zip(wanted, (ann_1, bob_1, ann_2, server), strict=False):
        assert isinstance(chat, queries.Created) and orjson.loads(chat.json)["title"] == title
    async with pool.connection() as conn:
        anns = await conn.fetchval("SELECT count(*) FROM chat_members WHERE user_id = $1", ann)
        assert anns == 2  # nothing of the refused one was stored
        buckets = await conn.fetch(
            "SELECT user_id, granted FROM user_write_buckets WHERE user_id = ANY ($1) ORDER BY user_id",
            [ann, bob],
        )
    assert [(row["user_id"], row["granted"]) for row in buckets] == [(ann, 2), (bob, 1)]
    (again,) = await queued_creates(pool, [("ann 4", owner, ann)], limit)
    assert isinstance(again, TooManyWrites)  # the bucket is empty: charged across batches too


async def test_creates_queued_together_each_make_their_own_chat_with_its_own_members(pool: Pool) -> None:
    wanted = [
        ("alone", Members([], [])),
        ("alice's", Members(["alice"], ["owner"])),
        ("alone", Members([], [])),  # two equal creates are two chats
        ("three", Members(["bob", "carol", "dave"], ["owner", "member", "member"])),
    ]
    created = await queued_creates(pool, [(title, members, None) for title, members in wanted])
    assert len({chat.id for chat in created}) == len(wanted)
    async with pool.connection() as conn:
        for (title, members), chat in zip(wanted, created, strict=True):
            body = orjson.loads(chat.json)
            assert (body["id"], body["title"]) == (chat.id, title)
            rows = await conn.fetch(
                "SELECT user_id, role FROM chat_members WHERE chat_id = $1 ORDER BY user_id", chat.id
            )
            assert [(row["user_id"], row["role"]) for row in rows] == list(
                zip(members.users, members.roles, strict=True)
            )


async def test_a_chat_the_database_refuses_fails_alone_and_the_rest_of_its_batch_is_created(
    pool: Pool, other: asyncpg.Connection
) -> None:
    await other.execute("ROLLBACK")
    await other.execute("ALTER TABLE chats ADD CONSTRAINT no_refused CHECK (title <> 'refused') NOT VALID")
    try:
        titles = ["before", "refused", "after"]
        before, refused, after = await queued_creates(
            pool, [(title, Members([], []), None) for title in titles]
        )
        assert isinstance(refused, asyncpg.CheckViolationError)
        for title, chat in (("before", before), ("after", after)):
            assert isinstance(chat, queries.Created) and orjson.loads(chat.json)["title"] == title
    finally:
        await other.execute("ALTER TABLE chats DROP CONSTRAINT no_refused")
