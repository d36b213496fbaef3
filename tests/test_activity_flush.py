"""A user's listing by activity reads members' copies of their chats' activity
(migrations/0008), flushed in the background (chatsvc/activity.py): exact before,
during and after each flush, whatever races it."""

from __future__ import annotations

import asyncio
import random

import asyncpg

from chatsvc import activity, queries
from chatsvc.db import Pool
from chatsvc.keys import DATABASE
from tests.api import waiting_on_a_lock
from tests.conftest import Client
from tests.credentials import SERVER, user
from tests.test_read_state import activity_ids, chat_with, post_as, someone

# Member copies that a listing would trust (their chat is listed) but that do not hold
# the chat's activity: none may ever exist, in any snapshot.
STALE_COPIES = """
SELECT count(*)
FROM chats AS c
JOIN chat_members AS m ON m.chat_id = c.id
WHERE c.id = ANY ($1::bigint[]) AND c.listed_activity IS NOT NULL AND m.activity <> c.listed_activity
"""

# What the listing must show, read from chats themselves.
TRUTH = """
SELECT c.id
FROM chats AS c
JOIN chat_members AS m ON m.chat_id = c.id AND m.user_id = $1
ORDER BY c.activity DESC, c.id DESC
"""


async def add_member(client: Client, chat_id: int, who: str) -> None:
    response = await client.put(f"/chats/{chat_id}/members/{who}", json={"role": "member"}, headers=SERVER)
    assert response.status in (200, 201), await response.text()


async def delete_newest(client: Client, chat_id: int) -> None:
    page = await (await client.get(f"/chats/{chat_id}?limit=1", headers=SERVER)).json()
    if page["messages"]:
        message_id = page["messages"][0]["id"]
        response = await client.delete(f"/chats/{chat_id}/messages/{message_id}", headers=SERVER)
        assert response.status in (204, 404), await response.text()


async def test_a_chat_is_created_listed_with_its_members_copies_in(
    client: Client, db: asyncpg.Connection
) -> None:
    """A create (with and without an Idempotency-Key, by a user and by the server) lists
    its chat at once, at its creation's activity, which each member's copy holds: the
    flush has nothing of it to rewrite."""
    alice, bob = someone("alice"), someone("bob")
    by_alice = {"title": "new", "members": [{"user": bob}]}  # alice joins as its owner
    by_server = {"title": "new", "members": [{"user": alice, "role": "owner"}, {"user": bob}]}
    created = []
    for body, headers in (
        (by_alice, user(alice)),
        (by_alice, {**user(alice), "Idempotency-Key": someone("key")}),
        (by_server, SERVER),
        (by_server, {**SERVER, "Idempotency-Key": someone("key")}),
    ):
        response = await client.post("/chats/", json=body, headers=headers)
        assert response.status == 201, await response.text()
        created.append((await response.json())["id"])
    rows = await db.fetch(
        "SELECT c.id, c.activity, c.listed_activity, array_agg(m.activity) AS copies"
        " FROM chats AS c JOIN chat_members AS m ON m.chat_id = c.id WHERE c.id = ANY ($1) GROUP BY c.id",
        created,
    )
    assert len(rows) == len(created)
    for row in rows:
        assert row["listed_activity"] == row["activity"] and row["copies"] == [row["activity"]] * 2, dict(row)
    assert await activity_ids(client, bob) == created[::-1]


async def test_the_listing_follows_a_model_whether_or_not_the_flush_has_run(client: Client) -> None:
    """Random sends, deletions of a chat's newest message, new members and flushes (whole
    or partial), in one sequence; after each step both users' listings (pages of 2) are
    the model's order: a chat ranks by its newest message, or by its creation when it has
    none."""
    rng = random.Random(16)
    alice, bob = someone("alice"), someone("bob")
    order: dict[int, list[int]] = {}  # chat -> the ticks of its creation and of its messages left
    members: dict[str, set[int]] = {alice: set(), bob: set()}
    tick = 0
    db: Pool = client.app[DATABASE]
    for _ in range(6):
        chat_id = await chat_with(client, alice)
        tick += 1
        order[chat_id] = [tick]
        members[alice].add(chat_id)
    for step in range(80):
        chat_id = rng.choice(sorted(order))
        action = rng.choice(("send", "send", "delete", "join", "flush", "flush"))
        if action == "send":
            await post_as(client, chat_id, None)
            tick += 1
            order[chat_id].append(tick)
        elif action == "delete" and len(order[chat_id]) > 1:
            await delete_newest(client, chat_id)
            order[chat_id].pop()
        elif action == "join":
            await add_member(client, chat_id, bob)
            members[bob].add(chat_id)
        elif action == "flush":  # all of them, or all but the two most recently active
            await activity.flush(db, kept=rng.choice((0, 2)))
        for who in (alice, bob):
            expected = sorted(members[who], key=lambda c: (order[c][-1], c), reverse=True)
            assert await activity_ids(client, who, limit=2) == expected, (step, action, who)


async def test_flushes_racing_sends_deletions_and_new_members_never_leave_a_stale_copy(
    client: Client, db: asyncpg.Connection
) -> None:
    """Writers send, delete newest messages and add members in a few chats while two
    flushers (this test's and the app's own, every ACTIVITY_FLUSH_INTERVAL) run flat out;
    a checker meanwhile finds no listed chat with a member copy that differs from it (in
    its snapshot), and every listing is the chats' own order once the writers stop."""
    alice = someone("alice")
    chats = [await chat_with(client, alice) for _ in range(4)]
    newcomers = [someone("newcomer") for _ in range(30)]
    pool: Pool = client.app[DATABASE]
    stop = asyncio.Event()
    stale_seen = 0
    flushed = 0

    async def writer(seed: int) -> None:
        rng = random.Random(seed)
        for n in range(40):
            chat_id = rng.choice(chats)
            roll = rng.random()
            if roll < 0.5:
                await post_as(client, chat_id, None)
            elif roll < 0.75:
                await delete_newest(client, chat_id)
            else:
                await add_member(client, chat_id, newcomers[(seed * 40 + n) % len(newcomers)])

    async def flusher() -> None:
        nonlocal flushed
        while not stop.is_set():
            flushed += await activity.flush(pool, kept=0)

    async def checker() -> None:
        nonlocal stale_seen
        while not stop.is_set():
            stale_seen += await db.fetchval(STALE_COPIES, chats)
            await asyncio.sleep(0)

    background = [asyncio.create_task(flusher()), asyncio.create_task(checker())]
    await asyncio.gather(*(writer(seed) for seed in range(4)))
    stop.set()
    await asyncio.gather(*background)
    assert stale_seen == 0
    assert flushed > 0  # the flushes did run among the writes
    # Flushed to the end: by this test's flush, or by the app's if it holds the lock.
    unlisted = "SELECT count(*) FROM chats WHERE id = ANY ($1) AND listed_activity IS NULL"
    for _ in range(100):
        await activity.flush(pool, kept=0)
        if not await db.fetchval(unlisted, chats):
            break
        await asyncio.sleep(0.05)
    assert await db.fetchval(unlisted, chats) == 0
    assert await db.fetchval(STALE_COPIES, chats) == 0
    for who in [alice, *newcomers]:
        truth = [row["id"] for row in await db.fetch(TRUTH, who) if row["id"] in chats]
        assert await activity_ids(client, who, limit=3) == truth, who


async def test_a_member_being_added_holds_off_sends_until_its_copy_is_in(
    client: Client, db: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    """A member added in an open transaction holds the chat's activity read under its
    share lock: a send to the chat waits for it (sql/members/put_member.sql). Without the
    wait, the send and then a flush would list the chat at the send's activity while the
    new member's copy, committed after, held the activity from before."""
    alice, carol = someone("alice"), someone("carol")
    chat_id = await chat_with(client, alice)
    pool: Pool = client.app[DATABASE]
    await activity.flush(pool, kept=0)
    await other.fetchrow(queries.PUT_MEMBER, chat_id, carol, "member", None, ["owner"])  # in its transaction
    sent = await waiting_on_a_lock(db, post_as(client, chat_id, None))
    await activity.flush(pool, kept=0)
    await other.execute("COMMIT")
    await sent
    await activity.flush(pool, kept=0)
    assert await db.fetchval(STALE_COPIES, [chat_id]) == 0
    assert await activity_ids(client, carol) == [chat_id]
    newer = await chat_with(client, carol)
    await post_as(client, chat_id, None)
    assert await activity_ids(client, carol) == [chat_id, newer]


async def test_a_flush_leaves_the_chats_it_keeps_unlocked(empty_database_url: str) -> None:
    """The most recently active unlisted chats, which the flush leaves unlisted, are the
    ones being written to: while a flush's transaction is open, a writer locks them at
    once (a locking clause beside the flush's OFFSET would hold them)."""
    flusher, writer = [await asyncpg.connect(empty_database_url) for _ in range(2)]
    try:
        chats = [
            await flusher.fetchval("INSERT INTO chats (title) VALUES ($1) RETURNING id", f"chat {n}")
            for n in range(5)
        ]
        await flusher.execute("BEGIN")
        assert await flusher.fetchval(queries.FLUSH_ACTIVITY, 10, 3) == 2  # the two oldest
        for kept in chats[2:]:  # the three newest: kept unlisted, and free
            await writer.execute("SET lock_timeout = '100ms'")
            await writer.execute("SELECT FROM chats WHERE id = $1 FOR NO KEY UPDATE", kept)
        listed = await writer.fetch("SELECT id FROM chats WHERE listed_activity IS NOT NULL")
        assert listed == []  # nothing committed yet
    finally:
        await flusher.close()
        await writer.close()
