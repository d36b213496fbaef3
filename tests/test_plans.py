"""Query plans: every read costs the same whatever the chat's size or the page's depth.

EXPLAIN ANALYZE of the real SQL files on a chat of 50,000 messages among
20,000 chats with 500 users in them, after ANALYZE, so the planner sees
realistic statistics. Reads are explained for the server and for a user
(READER, a member of the big chat and of 1,000 others), whose reads also
probe their membership.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import pytest

from chatsvc import queries
from tests.api import fill_chat, fill_chats

BIG = 50_000
CHATS = 20_000
USERS = 500  # each small chat has one of them as its owner
READER = "reader"  # a member of the big chat and of every 20th small chat
ROLES = "{owner,member}"
CALLERS = [None, READER]  # the server, and a user


@pytest.fixture(scope="module")
def big_database(make_migrated_database: Callable[[], str]) -> str:
    return make_migrated_database()


@pytest.fixture
async def big(big_database: str) -> AsyncIterator[tuple[asyncpg.Connection, int]]:
    conn = await asyncpg.connect(big_database)
    chat_id = await conn.fetchval("SELECT id FROM chats WHERE title = 'big'")
    if chat_id is None:
        chat_id = await conn.fetchval("INSERT INTO chats (title) VALUES ('big') RETURNING id")
        await conn.execute(
            "INSERT INTO chats (title) SELECT 'small ' || n FROM generate_series(1, $1) AS n", CHATS
        )
        smalls = [row["id"] for row in await conn.fetch("SELECT id FROM chats WHERE id <> $1", chat_id)]
        await fill_chats(conn, smalls, 2, "m")
        await fill_chat(conn, chat_id, BIG)
        await conn.execute(
            "INSERT INTO chat_members (chat_id, user_id, role)"
            " SELECT id, 'user-' || id % $1, 'owner' FROM chats WHERE id <> $2",
            USERS,
            chat_id,
        )
        await conn.execute(
            "INSERT INTO chat_members (chat_id, user_id)"
            " SELECT id, $1 FROM chats WHERE id = $2 OR id % 20 = 0 ON CONFLICT DO NOTHING",
            READER,
            chat_id,
        )
        await conn.execute("ANALYZE chats; ANALYZE messages; ANALYZE chat_members")
    yield conn, chat_id
    await conn.close()


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def explain(conn: asyncpg.Connection, statement: str, *args: object) -> list[dict[str, Any]]:
    """The executed plan of statement run as the service runs it: prepared, then executed.

    EXPLAIN of a statement with parameters would plan it for these values, a
    custom plan, whatever plan_cache_mode says; EXECUTE of a prepared statement
    follows the session's plan_cache_mode, as the service's statements do.
    """
    # The values as SQL literals, quoted by PostgreSQL (EXECUTE takes no bound parameters).
    literals = await conn.fetchval(
        "SELECT string_agg(quote_nullable(value), ', ' ORDER BY n)"
        " FROM unnest($1::text[]) WITH ORDINALITY AS v(value, n)",
        [None if arg is None else str(arg) for arg in args],
    )
    await conn.execute(f"PREPARE planned AS {statement}")
    try:
        raw = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE planned({literals or ''})")
    finally:
        await conn.execute("DEALLOCATE planned")
    return list(nodes(json.loads(raw)[0]["Plan"]))


def pg_array(values: list[Any]) -> str:
    """A PostgreSQL array literal (None: NULL)."""
    return "{" + ",".join("NULL" if value is None else str(value) for value in values) + "}"


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("limit", [1, 20, 100])
@pytest.mark.parametrize("batch", [1, 3, 64])
async def test_latest_messages_read_only_limit_rows_from_the_index(
    plans: tuple[asyncpg.Connection, int], limit: int, batch: int, caller: str | None
) -> None:
    """One chat or a batch of them (the big one, small ones, a missing one): index lookups only."""
    conn, chat_id = plans
    others = await conn.fetch("SELECT id FROM chats WHERE id <> $1 ORDER BY id LIMIT $2", chat_id, batch - 1)
    chats = [chat_id, *(row["id"] for row in others)][: batch - 1 or 1]
    if batch > 1:
        chats.append(2**62)  # no such chat
    array = "{" + ",".join(map(str, chats)) + "}"
    limits = "{" + ",".join([str(limit)] * len(chats)) + "}"
    users = pg_array([caller] * len(chats))
    plan = await explain(conn, queries.GET_CHATS_WITH_LATEST_MESSAGES, array, limits, users, ROLES)
    on_messages = [node for node in plan if node.get("Relation Name") == "messages"]
    assert on_messages, plan
    for node in on_messages:
        assert node["Node Type"] in ("Index Scan", "Index Only Scan"), node["Node Type"]
        assert node["Index Name"] == "messages_pkey"
        assert node["Scan Direction"] == "Backward"
        assert node["Actual Rows"] <= limit  # per chat, not 50,000
    on_chats = [node for node in plan if node.get("Relation Name") == "chats"]
    assert on_chats and all(node["Node Type"] in ("Index Scan", "Index Only Scan") for node in on_chats)
    assert sum(node["Actual Loops"] for node in on_chats) == len(chats)
    on_members = rows_read(plan, "chat_members")  # one membership probe per chat, for a user
    assert total_rows(on_members) <= (len(chats) if caller else 0)
    assert not any(node["Node Type"] == "Seq Scan" for node in plan)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("batch", [1, 3, 64])
async def test_sends_lock_their_chats_rows_by_key(
    plans: tuple[asyncpg.Connection, int], batch: int, caller: str | None
) -> None:
    """One send or a batch of them (to the big chat, small ones, twice to one, to a missing one)."""
    conn, chat_id = plans
    others = await conn.fetch("SELECT id FROM chats WHERE id <> $1 ORDER BY id LIMIT $2", chat_id, batch)
    chats = [chat_id, *(row["id"] for row in others)][: max(batch - 2, 1)]
    if batch > 1:
        chats += [chat_id, 2**62]  # the big chat again; no such chat
    array = "{" + ",".join(map(str, chats)) + "}"
    texts = "{" + ",".join(["planned"] * len(chats)) + "}"
    transaction = conn.transaction()
    await transaction.start()
    authors = users = pg_array([caller] * len(chats))
    plan = await explain(conn, queries.CREATE_MESSAGES, array, texts, authors, users, ROLES, "1 us", 1000000)
    await transaction.rollback()  # EXPLAIN ANALYZE really inserts
    scans = [node for node in plan if node.get("Relation Name") == "chats"]
    assert scans and all(node["Node Type"] in ("Index Scan", "Index Only Scan") for node in scans), plan
    assert sum(node["Actual Rows"] for node in scans) == len(set(chats)) - (batch > 1)
    assert any(node["Node Type"] == "LockRows" for node in plan)
    assert total_rows(rows_read(plan, "chat_members")) <= (len(chats) if caller else 0)
    assert not any(node["Node Type"] == "Seq Scan" for node in plan)


def no_table_sorted_or_scanned_whole(plan: list[dict[str, Any]], limit: int) -> None:
    """No sequential scan, and any Sort is of a page's worth of rows, never of a chat's."""
    for node in plan:
        assert node["Node Type"] != "Seq Scan", plan
        if node["Node Type"] == "Sort":
            assert node["Actual Rows"] <= limit + 1, plan


# An index in key order, or, when the planner expects a page's worth of rows in
# the cursor's range, a bitmap of that range.
INDEXED = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")


def rows_read(plan: list[dict[str, Any]], relation: str) -> list[dict[str, Any]]:
    """The plan's scans of relation, each checked to use an index."""
    scans = [node for node in plan if node.get("Relation Name") == relation and "Scan" in node["Node Type"]]
    for node in scans:
        assert node["Node Type"] in INDEXED, node
    return scans


def total_rows(scans: list[dict[str, Any]]) -> int:
    return sum(node["Actual Rows"] * node["Actual Loops"] for node in scans)


@pytest.fixture(params=["force_generic_plan", "auto"])
async def plans(
    request: pytest.FixtureRequest, big: tuple[asyncpg.Connection, int]
) -> AsyncIterator[tuple[asyncpg.Connection, int]]:
    """big, under both kinds of plan: the generic one the service forces (chatsvc/db.py),
    and the custom ones PostgreSQL would choose by default, should that setting be lost."""
    conn, chat_id = big
    await conn.execute(f"SET plan_cache_mode = {request.param}")
    yield conn, chat_id
    await conn.execute("RESET plan_cache_mode")


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("limit", [1, 50, 100])
@pytest.mark.parametrize("depth", ["newest", "middle", "oldest"])
async def test_history_pages_read_at_most_limit_plus_one_rows_at_any_depth(
    plans: tuple[asyncpg.Connection, int], limit: int, depth: str, caller: str | None
) -> None:
    conn, chat_id = plans
    low, high = await conn.fetchrow("SELECT min(id), max(id) FROM messages WHERE chat_id = $1", chat_id)
    cursor = {"newest": high, "middle": (low + high) // 2, "oldest": low + limit}[depth]
    for statement, args in (
        (queries.LIST_MESSAGES_BEFORE, (chat_id, cursor, limit, caller, ROLES)),
        (queries.LIST_MESSAGES_AFTER, (chat_id, cursor - limit - 1, limit, caller, ROLES)),
        (queries.LIST_MESSAGE_EVENTS, (chat_id, cursor - limit - 1, cursor, limit)),
    ):
        plan = await explain(conn, statement, *args)
        scans = rows_read(plan, "messages")
        assert scans and all(node.get("Index Name", "messages_pkey") == "messages_pkey" for node in scans)
        # The page (an entry past it at most) and a probe of the chat's end: not the whole chat.
        assert total_rows(scans) <= limit + 2
        assert total_rows(rows_read(plan, "chat_members")) <= (1 if caller else 0)
        no_table_sorted_or_scanned_whole(plan, limit)


@pytest.mark.parametrize("limit", [1, 20, 100])
async def test_chat_pages_read_at_most_limit_plus_one_rows_at_any_depth(
    plans: tuple[asyncpg.Connection, int], limit: int
) -> None:
    conn, _ = plans
    low, high = await conn.fetchrow("SELECT min(id), max(id) FROM chats")
    for before in (queries.NEWEST, (low + high) // 2, low + limit):
        plan = await explain(conn, queries.LIST_CHATS, before, limit)
        scans = rows_read(plan, "chats")
        assert scans and all(node.get("Index Name", "chats_pkey") == "chats_pkey" for node in scans)
        assert total_rows(scans) <= limit + 2
        no_table_sorted_or_scanned_whole(plan, limit)


@pytest.mark.parametrize("limit", [1, 20, 100])
async def test_a_users_chat_pages_read_at_most_limit_plus_one_entries_of_their_own_index(
    plans: tuple[asyncpg.Connection, int], limit: int
) -> None:
    """GET /chats/ for a user: their entries of chat_members_user_id_chat_id (which
    leads with the user), then one chats_pkey lookup per chat listed."""
    conn, _ = plans
    low, high = await conn.fetchrow(
        "SELECT min(chat_id), max(chat_id) FROM chat_members WHERE user_id = $1", READER
    )
    for before in (queries.NEWEST, (low + high) // 2, low + 20 * limit):
        plan = await explain(conn, queries.LIST_CHATS_OF_USER, before, limit, READER)
        members = rows_read(plan, "chat_members")
        assert members and total_rows(members) <= limit + 2
        # In the generic plan the service runs, the page and the probe for an
        # older chat read the user's own entries (custom plans, should that
        # setting be lost, may read the primary key where the statistics say
        # the user is common: still within the bound above).
        if await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan":
            assert all(node["Index Name"] == "chat_members_user_id_chat_id" for node in members), plan
        assert total_rows(rows_read(plan, "chats")) <= limit
        no_table_sorted_or_scanned_whole(plan, limit)


@pytest.mark.parametrize("caller", CALLERS)
async def test_single_message_and_stream_start_read_one_index_entry(
    plans: tuple[asyncpg.Connection, int], caller: str | None
) -> None:
    conn, chat_id = plans
    message_id = await conn.fetchval("SELECT max(id) FROM messages WHERE chat_id = $1", chat_id)
    for statement, args in (
        (queries.GET_MESSAGE, (chat_id, message_id, caller, ROLES)),
        (queries.GET_LATEST_MESSAGE_ID, (chat_id, caller, ROLES)),
    ):
        plan = await explain(conn, statement, *args)
        scans = rows_read(plan, "messages")
        assert scans and sum(node["Actual Rows"] for node in scans) == 1
        assert total_rows(rows_read(plan, "chat_members")) == (1 if caller else 0)


async def test_members_pages_read_at_most_limit_plus_one_entries(
    plans: tuple[asyncpg.Connection, int],
) -> None:
    conn, chat_id = plans
    await conn.execute(
        "INSERT INTO chat_members (chat_id, user_id) SELECT $1, 'member-' || n FROM generate_series(1, 2000) AS n"
        " ON CONFLICT DO NOTHING",
        chat_id,
    )
    for caller in CALLERS:
        for after in ("", "member-1500"):
            plan = await explain(conn, queries.LIST_MEMBERS, chat_id, after, 20, caller, ROLES)
            members = rows_read(plan, "chat_members")
            assert members and total_rows(members) <= 20 + 2 + (1 if caller else 0), plan
            no_table_sorted_or_scanned_whole(plan, 20)


async def test_keyed_sends_find_their_key_by_index(plans: tuple[asyncpg.Connection, int]) -> None:
    conn, chat_id = plans
    await conn.execute("SET enable_seqscan = off")  # the keys tables are empty here; prove an index serves
    try:
        transaction = conn.transaction()
        await transaction.start()
        for statement, args in (
            (queries.CREATE_MESSAGE_ONCE, (chat_id, "planned", READER, READER, ROLES, "plan-key", "f")),
            (queries.CREATE_CHAT_ONCE, ("planned", "{}", "{}", READER, "plan-key", "f")),
            (queries.PURGE_CHAT_IDEMPOTENCY_KEYS, ("24 hours", 1000)),
            (queries.PURGE_MESSAGE_IDEMPOTENCY_KEYS, ("24 hours", 1000)),
        ):
            plan = await explain(conn, statement, *args)
            for relation in (
                "chats",
                "messages",
                "chat_members",
                "chat_idempotency_keys",
                "message_idempotency_keys",
            ):
                rows_read(plan, relation)
        await transaction.rollback()
    finally:
        await conn.execute("RESET enable_seqscan")


async def test_the_plans_explained_are_the_generic_ones_the_service_runs(
    plans: tuple[asyncpg.Connection, int],
) -> None:
    """A guard on explain() itself: a generic plan shows $n where a custom plan shows values."""
    conn, chat_id = plans
    plan = await explain(conn, queries.GET_MESSAGE, chat_id, 1, None, ROLES)
    conditions = " ".join(str(node.get("Index Cond", "")) for node in plan)
    generic = await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
    assert ("$1" in conditions) == generic, conditions


async def test_a_write_charge_probes_one_key_and_the_bucket_purge_reads_one_batch(
    plans: tuple[asyncpg.Connection, int],
) -> None:
    """A charge is one probe of the primary key (the upsert's arbiter) per user, for a user
    with a bucket and for one without, alone or in a batch; a purge batch reads its batch
    of the primary key, not the table."""
    conn, _ = plans
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute(
        "INSERT INTO user_write_buckets (user_id, full_at, granted)"
        " SELECT 'user-' || n, clock_timestamp() - interval '1 s', 0 FROM generate_series(1, $1) AS n",
        CHATS,
    )
    await conn.execute("ANALYZE user_write_buckets")
    for users, conflicting, inserted in (
        (["user-1"], 1, 0),
        (["new-user"], 0, 1),
        (["user-2", "user-3", "user-2", "another-new-user"], 2, 1),
    ):
        plan = await explain(conn, queries.TAKE_USER_WRITES, pg_array(users), "0.1 s", 5)
        upserts = [node for node in plan if node["Node Type"] == "ModifyTable"]
        assert len(upserts) == 1 and upserts[0]["Operation"] == "Insert", plan
        upsert = upserts[0]
        assert upsert["Conflict Resolution"] == "UPDATE"
        assert upsert["Conflict Arbiter Indexes"] == ["user_write_buckets_pkey"]
        assert (upsert["Conflicting Tuples"], upsert["Tuples Inserted"]) == (conflicting, inserted)
        assert not any("Scan" in node["Node Type"] and "Relation Name" in node for node in plan), plan
    plan = await explain(conn, queries.PURGE_FULL_USER_WRITE_BUCKETS, "user-5", 100)
    scans = rows_read(plan, "user_write_buckets")
    assert scans and all(
        node.get("Index Name", "user_write_buckets_pkey") == "user_write_buckets_pkey" for node in scans
    )
    assert total_rows(scans) <= 2 * 100  # the batch, then its rows to delete
    await transaction.rollback()  # EXPLAIN ANALYZE really charges and deletes
