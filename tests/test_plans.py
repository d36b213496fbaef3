"""Query plans: every read costs the same whatever the chat's size or the page's depth.

EXPLAIN ANALYZE of the real SQL files on a chat of 50,000 messages among
20,000 chats with 500 users in them, after ANALYZE, so the planner sees
realistic statistics. Reads are explained for the server and for a user
(READER, a member of the big chat and of 1,000 others), whose reads also
probe their membership and, where a user sees their read state, count what
they have not read: READER has read nothing, so the big chat holds 50,000
messages unread by them. Chats have a change log, as edits and deletions
leave it: every 50th message of the big chat was edited, every small chat's
first message too, and every 10th small chat's first message deleted since.
Two more users have 1,000 chats each, for listings whose costs must not grow
with unread counts (contract, Read state [v3]): LISTER, whose newest chat
holds another 50,000 messages that others wrote and they have not read, the
rest empty, and EMPTY_LISTER, whose chats are all empty. Writes (sends,
edits, deletions, read markers) are explained inside transactions that are
rolled back: EXPLAIN ANALYZE really runs them.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from chatsvc import queries
from chatsvc.live.stream import BACKFILL_BATCH
from tests.api import fill_chat, fill_chats

BIG = 50_000
CHATS = 20_000
USERS = 500  # each small chat has one of them as its owner
READER = "reader"  # a member of the big chat and of every 20th small chat
ROLES = "{owner,member}"
OWNERS = "{owner}"  # the roles that may edit or delete any message (chatsvc/permissions.py)
# The same, for statements run directly rather than explained.
ROLE_LIST = ["owner", "member"]
OWNER_LIST = ["owner"]
CALLERS = [None, READER]  # the server, and a user
LISTED = 1_000  # the chats of each of the two users below
LISTER = "lister"  # a member of LISTED - 1 empty chats, then of the unread chat (BIG messages by WRITER)
EMPTY_LISTER = "empty-lister"  # a member of the same empty chats and of one more, all empty
WRITER = "writer"


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
        # The change log, as sql/messages/edit_message.sql and delete_message.sql leave
        # it: edits, then deletions (of messages that are not their chat's newest).
        await conn.execute(
            "WITH edited AS ("
            "    UPDATE messages SET text = 'edited', edited_at = clock_timestamp()"
            "    WHERE CASE WHEN chat_id = $1 THEN seq % 50 = 0 ELSE seq = 1 END"
            "    RETURNING chat_id, id"
            ")"
            " INSERT INTO message_changes (chat_id, id, message_id, deleted)"
            " SELECT chat_id, nextval(pg_get_serial_sequence('messages', 'id')), id, false"
            " FROM edited ORDER BY chat_id, id",
            chat_id,
        )
        await conn.execute(
            "WITH deleted AS ("
            "    DELETE FROM messages WHERE chat_id <> $1 AND chat_id % 10 = 0 AND seq = 1"
            "    RETURNING chat_id, id, seq"
            ")"
            " INSERT INTO message_changes (chat_id, id, message_id, deleted, seq)"
            " SELECT chat_id, nextval(pg_get_serial_sequence('messages', 'id')), id, true, seq"
            " FROM deleted ORDER BY chat_id",
            chat_id,
        )
        # The listing users' chats, newer than all of the above: the empty ones, then the
        # unread one, so that the lister's first page (by id and by activity) holds it.
        empties = await conn.fetch(
            "INSERT INTO chats (title) SELECT 'empty ' || n FROM generate_series(1, $1) AS n RETURNING id",
            LISTED,
        )
        unread = await conn.fetchval("INSERT INTO chats (title) VALUES ('unread') RETURNING id")
        await fill_chat(conn, unread, BIG, author=WRITER)
        await conn.execute(
            "INSERT INTO chat_members (chat_id, user_id) SELECT unnest($1::bigint[]), $2",
            [row["id"] for row in empties[: LISTED - 1]] + [unread],
            LISTER,
        )
        await conn.execute(
            "INSERT INTO chat_members (chat_id, user_id) SELECT unnest($1::bigint[]), $2",
            [row["id"] for row in empties],
            EMPTY_LISTER,
        )
        # Every chat listed, as the service's activity flush leaves them (chatsvc/activity.py).
        while await conn.fetchval(queries.FLUSH_ACTIVITY, 1000, 0):
            pass
        await conn.execute("ANALYZE chats; ANALYZE messages; ANALYZE chat_members; ANALYZE message_changes")
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


@asynccontextmanager
async def rolled_back(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """A transaction undone whatever happens in it: EXPLAIN ANALYZE of a write really writes."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        yield
    finally:
        await transaction.rollback()


def pg_array(values: list[Any]) -> str:
    """A PostgreSQL array literal (None: NULL; strings quoted, so that '' is one)."""

    def element(value: Any) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, str):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return str(value)

    return "{" + ",".join(map(element, values)) + "}"


def pg_arrays(*columns: list[Any]) -> list[str]:
    """Array literals of a batch's columns, one per column."""
    return [pg_array(column) for column in columns]


def no_table_sorted_or_scanned_whole(plan: list[dict[str, Any]], limit: int) -> None:
    """No sequential scan, and any Sort is of a page's worth of rows, never of a chat's."""
    for node in plan:
        assert node["Node Type"] != "Seq Scan", plan
        if node["Node Type"] == "Sort":
            assert node["Actual Rows"] <= limit + 1, plan


# An index in key order, or, when the planner expects a page's worth of rows in
# the cursor's range, a bitmap of that range; or rows named by their ctid (the key
# purges delete the batch they locked that way).
INDEXED = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Tid Scan")


def scans_of(plan: list[dict[str, Any]] | dict[str, Any], relation: str) -> list[dict[str, Any]]:
    """The scans of relation in a plan, or under one node of it."""
    found = nodes(plan) if isinstance(plan, dict) else plan
    return [node for node in found if node.get("Relation Name") == relation and "Scan" in node["Node Type"]]


# Each index's first column (tests/schema.txt). An index scan without a condition on it
# reads the whole index, whatever rows it then returns.
LEADING: dict[str, str | None] = {
    "chat_idempotency_keys_created_at": "created_at",
    "chat_idempotency_keys_pkey": "caller",
    "chat_listeners_pkey": "chat_id",
    "chat_members_pkey": "chat_id",
    "chat_members_user_id_activity": "user_id",
    "chat_members_user_id_chat_id": "user_id",
    "chats_activity_id": "activity",
    "chats_pkey": "id",
    "chats_unlisted": None,  # partial: all of it is what is read (the chats unlisted now)
    "message_changes_chat_id_seq": "chat_id",
    "message_changes_pkey": "chat_id",
    "message_idempotency_keys_created_at": "created_at",
    "message_idempotency_keys_pkey": "chat_id",
    "messages_chat_id_author_id": "chat_id",
    "messages_id_for_search": "id",
    "messages_pkey": "chat_id",
    "messages_search": "to_tsvector",
    "user_write_buckets_pkey": "user_id",
}


def rows_read(
    plan: list[dict[str, Any]] | dict[str, Any], relation: str, by_first_column: bool = True
) -> list[dict[str, Any]]:
    """The plan's scans of relation, each checked to use an index, and (by_first_column)
    to enter it by its first column (a bitmap's, in the Bitmap Index Scan under it)."""
    scans = scans_of(plan, relation)
    for node in scans:
        assert node["Node Type"] in INDEXED, node
        for index_scan in nodes(node) if by_first_column else ():
            if "Index Name" in index_scan and (leading := LEADING[index_scan["Index Name"]]):
                # An end of the index read for min() or max(): PostgreSQL 17+ states no
                # condition for it (16 says "id IS NOT NULL"), and it reads one entry.
                if "Index Cond" not in index_scan and per_loop(index_scan) <= 1:
                    continue
                assert re.search(rf"\((ROW\()?{leading}\b", index_scan.get("Index Cond", "")), index_scan
    return scans


def per_loop(node: dict[str, Any]) -> float:
    """The rows a scan read in one run: those it returned and those a filter then dropped,
    which were read all the same. EXPLAIN gives the average over the scan's runs (rounded
    before PostgreSQL 18): a bound per run holds on average, so one chat's count of its
    50,000 messages among 20 chats listed still shows as 2,500 a run."""
    return float(
        node["Actual Rows"]
        + node.get("Rows Removed by Filter", 0)
        + node.get("Rows Removed by Index Recheck", 0)
    )


def total_rows(scans: list[dict[str, Any]]) -> float:
    """The rows the scans read over all their runs."""
    return sum((per_loop(node) * int(node["Actual Loops"]) for node in scans), 0.0)


def updates_of(plan: list[dict[str, Any]], relation: str) -> list[dict[str, Any]]:
    return [
        node
        for node in plan
        if node["Node Type"] == "ModifyTable"
        and node["Operation"] == "Update"
        and node["Relation Name"] == relation
    ]


def alias(node: dict[str, Any]) -> str:
    """The scan's table alias in the SQL file (EXPLAIN numbers its repeats: seen_1)."""
    return re.sub(r"_\d+$", "", node["Alias"])


def read_state_probes(plan: list[dict[str, Any]], chats: int, latest: int = 1, own: int = 0) -> float:
    """Checks a listing's (or GET /chats/{id}'s) reads of messages and of the change log,
    and returns how many rows they read. Each runs at most once per chat listed, as an
    index scan, and reads at most: the chat's latest messages (`messages`, backward on
    messages_pkey) `latest`; for a user, the probes of the unread count
    (sql/chats/list_chats_of_user.sql): the newest message up to the read marker (`seen`,
    backward on messages_pkey) one, the deletions above it (`gone`, on
    message_changes_chat_id_seq) one (this data deletes one message per chat at most), and
    the member's own messages above it (`own`, on messages_chat_id_author_id led by the
    member as author, never through the others' messages) `own`. A read under any other
    alias is one the SQL files do not have, and fails."""
    bounds = {"messages": latest, "seen": 1, "gone": 1, "own": own}
    scans = rows_read(plan, "messages") + rows_read(plan, "message_changes")
    for node in scans:
        assert node["Node Type"] in ("Index Scan", "Index Only Scan"), node
        name = alias(node)
        assert name in bounds, node
        assert per_loop(node) <= bounds[name], node
        assert node["Actual Loops"] <= chats, node
        if name == "gone":
            assert (node["Relation Name"], node["Index Name"]) == (
                "message_changes",
                "message_changes_chat_id_seq",
            )
        elif name == "own":
            assert (node["Relation Name"], node["Index Name"]) == ("messages", "messages_chat_id_author_id")
            assert "(author = member.user_id)" in node["Index Cond"], node
        else:
            assert (node["Relation Name"], node["Index Name"]) == ("messages", "messages_pkey"), node
            assert node["Scan Direction"] == "Backward", node
    return total_rows(scans)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("limit", [1, 20, 100])
@pytest.mark.parametrize("batch", [1, 3, 64])
async def test_latest_messages_read_only_limit_rows_from_the_index(
    plans: tuple[asyncpg.Connection, int], limit: int, batch: int, caller: str | None
) -> None:
    """One chat or a batch of them (the big one, small ones, a missing one): index lookups only.
    For READER, the big chat's 50,000 unread messages cost the few probes of any chat."""
    conn, chat_id = plans
    others = await conn.fetch("SELECT id FROM chats WHERE id <> $1 ORDER BY id LIMIT $2", chat_id, batch - 1)
    chats = [chat_id, *(row["id"] for row in others)][: batch - 1 or 1]
    if batch > 1:
        chats.append(2**62)  # no such chat
    array = "{" + ",".join(map(str, chats)) + "}"
    limits = "{" + ",".join([str(limit)] * len(chats)) + "}"
    users = pg_array([caller] * len(chats))
    plan = await explain(conn, queries.GET_CHATS_WITH_LATEST_MESSAGES, array, limits, users, ROLES)
    assert rows_read(plan, "messages"), plan
    read_state_probes(plan, len(chats), latest=limit)  # per chat, not 50,000
    counted = [node for node in rows_read(plan, "messages") if alias(node) == "own" and node["Actual Loops"]]
    assert bool(counted) == (caller is not None)  # a user's unread count was computed
    on_chats = [node for node in plan if node.get("Relation Name") == "chats"]
    assert on_chats and all(node["Node Type"] in ("Index Scan", "Index Only Scan") for node in on_chats)
    assert sum(node["Actual Loops"] for node in on_chats) == len(chats)
    on_members = rows_read(plan, "chat_members")  # one membership probe per chat, for a user
    assert total_rows(on_members) <= (len(chats) if caller else 0)
    assert not any(node["Node Type"] == "Seq Scan" for node in plan)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("batch", [1, 3, 64])
async def test_sends_lock_and_count_in_their_chats_rows_by_key(
    plans: tuple[asyncpg.Connection, int], batch: int, caller: str | None
) -> None:
    """One send or a batch of them (to the big chat, small ones, twice to one, to a missing one):
    each chat's row is locked, then its counters moved once, through chats_pkey."""
    conn, chat_id = plans
    others = await conn.fetch("SELECT id FROM chats WHERE id <> $1 ORDER BY id LIMIT $2", chat_id, batch)
    chats = [chat_id, *(row["id"] for row in others)][: max(batch - 2, 1)]
    if batch > 1:
        chats += [chat_id, 2**62]  # the big chat again; no such chat
    existing = len(set(chats)) - (batch > 1)
    # The chats a send is stored in: every one for the server, the caller's for a user.
    stored = await conn.fetchval(
        "SELECT count(*) FROM chats WHERE id = ANY ($1::bigint[])"
        " AND ($2::text IS NULL OR id IN (SELECT chat_id FROM chat_members WHERE user_id = $2))",
        chats,
        caller,
    )
    array = "{" + ",".join(map(str, chats)) + "}"
    texts = "{" + ",".join(["planned"] * len(chats)) + "}"
    authors = users = pg_array([caller] * len(chats))
    async with rolled_back(conn):  # EXPLAIN ANALYZE really inserts
        plan = await explain(
            conn, queries.CREATE_MESSAGES, array, texts, authors, users, ROLES, "1 us", 1000000
        )
    scans = rows_read(plan, "chats")
    assert scans and all(node.get("Index Name") == "chats_pkey" for node in scans), plan
    locks = [node for node in plan if node["Node Type"] == "LockRows"]
    assert len(locks) == 1 and total_rows(scans_of(locks[0], "chats")) == existing
    updates = updates_of(plan, "chats")
    assert len(updates) == 1 and total_rows(scans_of(updates[0], "chats")) == stored
    assert total_rows(rows_read(plan, "chat_members")) <= (len(chats) if caller else 0)
    assert not any(node["Node Type"] == "Seq Scan" for node in plan)


@pytest.mark.parametrize("caller", CALLERS)
async def test_a_send_alone_locks_and_counts_in_its_chats_row_by_key(
    plans: tuple[asyncpg.Connection, int], caller: str | None
) -> None:
    """sql/messages/create_message.sql, for a send whose chat a batch found busy."""
    conn, chat_id = plans
    async with rolled_back(conn):
        plan = await explain(conn, queries.CREATE_MESSAGE, chat_id, "planned", caller, caller, ROLES)
    scans = rows_read(plan, "chats")
    assert scans and all(node.get("Index Name") == "chats_pkey" for node in scans), plan
    locks = [node for node in plan if node["Node Type"] == "LockRows"]
    assert len(locks) == 1 and total_rows(scans_of(locks[0], "chats")) == 1
    updates = updates_of(plan, "chats")
    assert len(updates) == 1 and total_rows(scans_of(updates[0], "chats")) == 1
    assert total_rows(scans) == 2  # the lock, then the counters
    assert total_rows(rows_read(plan, "chat_members")) == (1 if caller else 0)
    assert not rows_read(plan, "messages")  # the message's seq comes from the chat's row
    assert not any(node["Node Type"] == "Seq Scan" for node in plan)


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
        # Batches of one page.
        (
            queries.LIST_MESSAGES_BEFORE,
            (*pg_arrays([chat_id], [cursor], [limit], [caller]), ROLES),
        ),
        (
            queries.LIST_MESSAGES_AFTER,
            (*pg_arrays([chat_id], [cursor - limit - 1], [limit], [caller]), ROLES),
        ),
        (queries.LIST_CHAT_EVENTS, (chat_id, cursor - limit - 1, cursor, limit)),
    ):
        plan = await explain(conn, statement, *args)
        scans = rows_read(plan, "messages")
        assert scans and all(node.get("Index Name", "messages_pkey") == "messages_pkey" for node in scans)
        # The page (an entry past it at most) and a probe of the chat's end: not the whole chat.
        assert total_rows(scans) <= limit + 2
        # A backfill's changes in the range (none here: they came after these messages).
        changes = rows_read(plan, "message_changes")
        assert all(node.get("Index Name") == "message_changes_pkey" for node in changes)
        assert total_rows(changes) <= limit
        assert total_rows(rows_read(plan, "chat_members")) <= (1 if caller else 0)
        no_table_sorted_or_scanned_whole(plan, limit)


@pytest.mark.parametrize("statement", [queries.LIST_MESSAGES_BEFORE, queries.LIST_MESSAGES_AFTER])
async def test_a_batch_of_history_pages_reads_each_page_and_no_more(
    plans: tuple[asyncpg.Connection, int], statement: str
) -> None:
    """Pages that arrive together share one statement (chatsvc/reads.py): at three depths,
    for the server and a user, each still reads its page and a probe of the chat's end."""
    conn, chat_id = plans
    low, high = await conn.fetchrow("SELECT min(id), max(id) FROM messages WHERE chat_id = $1", chat_id)
    cursors = [high - 10, (low + high) // 2, low + 200] * 2
    callers = [None] * 3 + [CALLERS[-1]] * 3
    limits = [50] * 6
    arrays = pg_arrays([chat_id] * 6, cursors, limits, callers)
    plan = await explain(conn, statement, *arrays, ROLES)
    scans = rows_read(plan, "messages")
    assert scans and all(node.get("Index Name", "messages_pkey") == "messages_pkey" for node in scans)
    assert total_rows(scans) <= 6 * (50 + 2)
    assert total_rows(rows_read(plan, "chat_members")) <= 3
    no_table_sorted_or_scanned_whole(plan, 50)


@pytest.mark.parametrize("limit", [1, 20, 100])
async def test_chat_pages_read_at_most_limit_plus_one_rows_at_any_depth(
    plans: tuple[asyncpg.Connection, int], limit: int
) -> None:
    conn, _ = plans
    low, high = await conn.fetchrow("SELECT min(id), max(id) FROM chats")
    for before in (queries.NEWEST, (low + high) // 2, low + limit):
        plan = await explain(conn, queries.LIST_CHATS, *pg_arrays([before], [limit]))
        scans = rows_read(plan, "chats")
        assert scans and all(node.get("Index Name", "chats_pkey") == "chats_pkey" for node in scans)
        assert total_rows(scans) <= limit + 2
        read_state_probes(plan, limit)  # the server's: each chat's newest message
        no_table_sorted_or_scanned_whole(plan, limit)


@pytest.mark.parametrize("limit", [1, 20, 100])
async def test_a_users_chat_pages_read_at_most_limit_plus_one_entries_of_their_own_index(
    plans: tuple[asyncpg.Connection, int], limit: int
) -> None:
    """GET /chats/ for a user: their entries of chat_members_user_id_chat_id (which
    leads with the user), then one chats_pkey lookup and the read state's probes per chat listed."""
    conn, _ = plans
    low, high = await conn.fetchrow(
        "SELECT min(chat_id), max(chat_id) FROM chat_members WHERE user_id = $1", READER
    )
    for before in (queries.NEWEST, (low + high) // 2, low + 20 * limit):
        plan = await explain(conn, queries.LIST_CHATS_OF_USER, *pg_arrays([before], [limit], [READER]))
        members = rows_read(plan, "chat_members")
        assert members and total_rows(members) <= limit + 2
        # In the generic plan the service runs, the page and the probe for an
        # older chat read the user's own entries (custom plans, should that
        # setting be lost, may read the primary key where the statistics say
        # the user is common: still within the bound above).
        if await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan":
            assert all(node["Index Name"] == "chat_members_user_id_chat_id" for node in members), plan
        assert total_rows(rows_read(plan, "chats")) <= limit
        read_state_probes(plan, limit)
        no_table_sorted_or_scanned_whole(plan, limit)


@pytest.mark.parametrize("state", ["never read", "half read", "own messages since"])
async def test_a_users_listing_reads_as_much_with_50000_unread_messages_as_with_none(
    plans: tuple[asyncpg.Connection, int], state: str
) -> None:
    """Read state [v3]: LISTER, with 1,000 chats one of which holds 50,000 messages by others
    that they have not read (none of them, half of them, or none and then sent 3 of their own),
    lists their first page as EMPTY_LISTER, whose 1,000 chats are empty, does: the unread
    chat adds its few probes (at most one row each, and the user's own messages above the
    marker), never a count of its messages. Its unread_count says 1000 ("1000 or more")."""
    conn, _ = plans
    unread = await conn.fetchval("SELECT id FROM chats WHERE title = 'unread'")
    own = 3 if state == "own messages since" else 0
    async with rolled_back(conn):
        if state == "half read":
            await conn.execute(
                "UPDATE chat_members SET last_read_id = ("
                "    SELECT id FROM messages WHERE chat_id = $1 ORDER BY id OFFSET $3 LIMIT 1"
                ") WHERE chat_id = $1 AND user_id = $2",
                unread,
                LISTER,
                BIG // 2,
            )
        for _ in range(own):
            assert await conn.fetchrow(queries.CREATE_MESSAGE, unread, "mine", LISTER, LISTER, ROLE_LIST)
        row = await conn.fetchrow(queries.LIST_CHATS_OF_USER, [queries.NEWEST], [20], [LISTER])
        listing = json.loads(row["listing"])
        first_pages = ([queries.NEWEST], [20])
        plan = await explain(conn, queries.LIST_CHATS_OF_USER, *pg_arrays(*first_pages, [LISTER]))
        empty_plan = await explain(conn, queries.LIST_CHATS_OF_USER, *pg_arrays(*first_pages, [EMPTY_LISTER]))
    chats = listing["chats"]
    assert len(chats) == 20 and chats[0]["id"] == unread
    assert [chat["unread_count"] for chat in chats] == [1000] + [0] * 19
    empty_read = read_state_probes(empty_plan, 20)
    read = read_state_probes(plan, 20, own=own)
    own_read = [node for node in rows_read(plan, "messages") if alias(node) == "own"]
    assert total_rows(own_read) == own and sum(node["Actual Loops"] for node in own_read) == 1
    # The unread chat's newest message, the newest one up to the marker (probed twice:
    # read_up_to is used twice), its deletions above it (none) and the lister's own messages.
    assert read <= empty_read + 3 + own
    for listed in (plan, empty_plan):
        assert total_rows(rows_read(listed, "chat_members")) <= 20 + 1
        assert total_rows(rows_read(listed, "chats")) <= 20
        no_table_sorted_or_scanned_whole(listed, 20)


@pytest.mark.parametrize("unlisted", [0, 60])
@pytest.mark.parametrize("user", [LISTER, READER])
async def test_a_users_listing_by_activity_reads_its_page_and_the_unlisted_chats(
    plans: tuple[asyncpg.Connection, int], user: str, unlisted: int
) -> None:
    """GET /chats/?order=activity for a user of about 1,000 chats, first page and from a
    cursor halfway down: as its SQL header says, the page (and one entry past it) of the
    user's copies of their chats' activity, read backward on chat_members_user_id_activity,
    plus the chats unlisted at the time (sends since the last flush), each found in
    chats_unlisted and probed for membership; then, for the page's 20 chats only, a
    membership probe and the read state's probes. Never the user's ~1,000 memberships."""
    conn, _ = plans
    async with rolled_back(conn):
        ranking = (
            "SELECT c.id, c.activity FROM chat_members AS m JOIN chats AS c ON c.id = m.chat_id"
            " WHERE m.user_id = $1 ORDER BY c.activity DESC, c.id DESC"
        )
        ranked = await conn.fetch(ranking, user)
        middle = queries.ActivityCursor(ranked[len(ranked) // 2]["activity"], ranked[len(ranked) // 2]["id"])
        # Sends since the last flush: chats unlisted, a third of them the user's, their
        # activity moved above every listed one (the page must merge both kinds). The
        # user's are those right below the halfway cursor, where their stale copies lie.
        mine = [row["id"] for row in ranked[len(ranked) // 2 + 1 :][: unlisted // 3]]
        others = await conn.fetch(
            "SELECT id FROM chats WHERE id NOT IN (SELECT chat_id FROM chat_members WHERE user_id = $1)"
            " ORDER BY id LIMIT $2",
            user,
            unlisted - len(mine),
        )
        await conn.execute(
            "UPDATE chats SET last_message_id = (SELECT max(activity) FROM chats) + id, listed_activity = NULL"
            " WHERE id = ANY ($1::bigint[])",
            mine + [row["id"] for row in others],
        )
        ranked = await conn.fetch(ranking, user)
        for cursor in (queries.FIRST_BY_ACTIVITY, middle):
            columns = ([cursor.activity], [cursor.chat_id], [20], [user])  # a batch of one listing
            row = await conn.fetchrow(queries.LIST_CHATS_OF_USER_BY_ACTIVITY, *columns)
            listing = json.loads(row["listing"])
            below = [row["id"] for row in ranked if (row["activity"], row["id"]) < cursor]
            assert [chat["id"] for chat in listing["chats"]] == below[:20]
            plan = await explain(conn, queries.LIST_CHATS_OF_USER_BY_ACTIVITY, *pg_arrays(*columns))
            members, chats = rows_read(plan, "chat_members"), rows_read(plan, "chats")
            copies = [node for node in members if node["Index Name"] == "chat_members_user_id_activity"]
            assert copies and total_rows(copies) <= 20 + 1 + len(mine), plan
            assert all(node["Scan Direction"] == "Backward" for node in copies), plan
            # The walk's lookups of its chats, the unlisted chats, the page's chats.
            assert total_rows(chats) <= (20 + 1 + len(mine)) + unlisted + 20, plan
            assert total_rows(members) <= total_rows(copies) + unlisted + 20, plan
            read_state_probes(plan, 20)
            no_table_sorted_or_scanned_whole(plan, 20)


@pytest.mark.parametrize("kept", [0, 20])
async def test_the_activity_flush_reads_the_unlisted_chats_and_their_members_only(
    plans: tuple[asyncpg.Connection, int], kept: int
) -> None:
    """sql/chats/flush_activity.sql with 50 chats unlisted among 21,000, the kept most
    recently active of them left so: the partial index chats_unlisted (all of it, 50
    entries), then per chat listed its members through chat_members_pkey and its row
    through chats_pkey (twice: locked, then updated); nothing of the listed chats."""
    conn, _ = plans
    async with rolled_back(conn):
        unlisted = await conn.fetch(
            "UPDATE chats SET listed_activity = NULL WHERE id IN (SELECT chat_id FROM chat_members"
            " WHERE user_id = $1 ORDER BY chat_id LIMIT 50) RETURNING id",
            READER,
        )
        members = await conn.fetchval(
            "SELECT count(*) FROM chat_members WHERE chat_id = ANY ($1::bigint[])",
            [row["id"] for row in unlisted],
        )
        hot = await conn.fetch(
            "SELECT id FROM chats WHERE listed_activity IS NULL ORDER BY activity DESC, id DESC LIMIT $1",
            kept,
        )
        plan = await explain(conn, queries.FLUSH_ACTIVITY, 1000, kept)
        left = await conn.fetch(
            "SELECT id FROM chats WHERE listed_activity IS NULL ORDER BY activity DESC, id DESC"
        )
        assert left == hot
        chats = rows_read(plan, "chats")
        assert {node["Index Name"] for node in chats} <= {"chats_unlisted", "chats_pkey"}, plan
        assert total_rows(chats) <= len(unlisted) + 2 * (len(unlisted) - kept), plan
        on_members = rows_read(plan, "chat_members")
        assert {node["Index Name"] for node in on_members} == {"chat_members_pkey"}, plan
        # The members, give or take EXPLAIN's rounding of each chat's average (per_loop).
        assert total_rows(on_members) <= members + len(unlisted), plan
        no_table_sorted_or_scanned_whole(plan, 1000)


async def test_a_round_of_the_activity_flush_costs_its_batch_not_the_backlog(
    plans: tuple[asyncpg.Connection, int],
) -> None:
    """A backlog of 2,000 unlisted chats (a burst of creates) under statistics taken when
    none was: a round of 10, 100 kept, reads the 110 entries of chats_unlisted it walks,
    then its 10 chats by key, twice; never the rest of the backlog."""
    conn, _ = plans
    async with rolled_back(conn):
        await conn.execute(
            "UPDATE chats SET listed_activity = NULL WHERE id IN (SELECT id FROM chats ORDER BY id LIMIT 2000)"
        )
        plan = await explain(conn, queries.FLUSH_ACTIVITY, 10, 100)
        chats = rows_read(plan, "chats")
        assert {node["Index Name"] for node in chats} <= {"chats_unlisted", "chats_pkey"}, plan
        assert total_rows(chats) <= 110 + 2 * 10, plan
        on_members = rows_read(plan, "chat_members")
        assert {node["Index Name"] for node in on_members} == {"chat_members_pkey"}, plan
        no_table_sorted_or_scanned_whole(plan, 10)


@pytest.mark.parametrize("limit", [1, 20, 100])
async def test_the_servers_listing_by_activity_reads_at_most_limit_plus_one_entries_at_any_depth(
    plans: tuple[asyncpg.Connection, int], limit: int
) -> None:
    """GET /chats/?order=activity for the server: the page (and one entry past it) of
    chats_activity_id, read backward from the cursor, then per chat listed one chats_pkey
    lookup and its newest message; first page, from a cursor halfway down, and the last page."""
    conn, _ = plans
    ranked = await conn.fetch("SELECT id, activity FROM chats ORDER BY activity DESC, id DESC")
    cursors = [queries.FIRST_BY_ACTIVITY] + [
        queries.ActivityCursor(row["activity"], row["id"])
        for row in (ranked[len(ranked) // 2], ranked[-limit - 2])
    ]
    for cursor in cursors:
        args = ([cursor.activity], [cursor.chat_id], [limit])
        listing = json.loads((await conn.fetchrow(queries.LIST_CHATS_BY_ACTIVITY, *args))["listing"])
        below = [row["id"] for row in ranked if (row["activity"], row["id"]) < cursor]
        assert [chat["id"] for chat in listing["chats"]] == below[:limit] and listing["next_cursor"]
        plan = await explain(conn, queries.LIST_CHATS_BY_ACTIVITY, *pg_arrays(*args))
        scans = rows_read(plan, "chats")
        ordered = [node for node in scans if node.get("Index Name") == "chats_activity_id"]
        assert ordered and total_rows(ordered) <= limit + 1
        lookups = [node for node in scans if node not in ordered]
        assert all(node.get("Index Name") == "chats_pkey" for node in lookups), plan
        assert total_rows(lookups) <= limit
        read_state_probes(plan, limit)
        no_table_sorted_or_scanned_whole(plan, limit)


async def test_a_resumed_stream_reads_what_it_missed_not_what_the_chat_holds(
    plans: tuple[asyncpg.Connection, int],
) -> None:
    """GET /chats/{id}/events resumed from the big chat's newest event (after its 50,000
    messages and 1,000 edits), once 2 old messages were edited, 1 deleted and 1 sent: the
    backfill reads those 3 entries of the change log, the message sent, and one lookup
    per change, never the chat's messages or its earlier changes."""
    conn, chat_id = plans
    async with rolled_back(conn):
        resumed_from = await conn.fetchval(queries.GET_LATEST_EVENT_ID, chat_id, None, ROLE_LIST)
        old = [
            row["id"]
            for row in await conn.fetch(
                "SELECT id FROM messages WHERE chat_id = $1 ORDER BY id LIMIT 3", chat_id
            )
        ]
        for message_id in old[:2]:
            edited = await conn.fetchrow(
                queries.EDIT_MESSAGE, chat_id, message_id, "again", None, OWNER_LIST, ROLE_LIST
            )
            assert edited["message"] is not None
        deleted = await conn.fetchrow(queries.DELETE_MESSAGE, chat_id, old[2], None, OWNER_LIST, ROLE_LIST)
        assert deleted["deleted"]
        sent = await conn.fetchrow(queries.CREATE_MESSAGE, chat_id, "since", None, None, ROLE_LIST)
        latest = await conn.fetchval(queries.GET_LATEST_EVENT_ID, chat_id, None, ROLE_LIST)
        args = (chat_id, resumed_from, latest, BACKFILL_BATCH)
        events = await conn.fetch(queries.LIST_CHAT_EVENTS, *args)
        plan = await explain(conn, queries.LIST_CHAT_EVENTS, *args)
    assert [(event["kind"], event["message_id"]) for event in events] == [
        ("message_updated", old[0]),
        ("message_updated", old[1]),
        ("message_deleted", old[2]),
        ("message", sent["id"]),
    ]
    changes = rows_read(plan, "message_changes")
    assert changes and all(node.get("Index Name") == "message_changes_pkey" for node in changes), plan
    assert total_rows(changes) == 3
    messages = rows_read(plan, "messages")
    assert messages and all(node.get("Index Name") == "messages_pkey" for node in messages), plan
    assert total_rows(messages) <= 1 + 3  # the message sent; a lookup per change (the deleted one's: none)
    no_table_sorted_or_scanned_whole(plan, BACKFILL_BATCH)


@pytest.mark.parametrize("caller", CALLERS)
async def test_single_message_and_stream_start_read_one_index_entry(
    plans: tuple[asyncpg.Connection, int], caller: str | None
) -> None:
    """GET of one message; where a fresh event stream starts: the newest entry of
    messages_pkey and of message_changes_pkey (the big chat has 1,000 changes)."""
    conn, chat_id = plans
    message_id = await conn.fetchval("SELECT max(id) FROM messages WHERE chat_id = $1", chat_id)
    for statement, args, relations in (
        (queries.GET_MESSAGE, (*pg_arrays([chat_id], [message_id], [caller]), ROLES), ["messages"]),
        (queries.GET_LATEST_EVENT_ID, (chat_id, caller, ROLES), ["messages", "message_changes"]),
    ):
        plan = await explain(conn, statement, *args)
        for relation in relations:
            scans = rows_read(plan, relation)
            assert scans and total_rows(scans) == 1, plan
        assert total_rows(rows_read(plan, "chat_members")) == (1 if caller else 0)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("statement", ["edit", "delete"])
async def test_an_edit_or_a_deletion_looks_up_its_message_by_key(
    plans: tuple[asyncpg.Connection, int], statement: str, caller: str | None
) -> None:
    """PATCH and DELETE of an old message of the big chat: one messages_pkey lookup (for
    READER, a member who may not change others' messages, one more tells 403 from 404), one
    chats_pkey lookup (the lock; a deletion that happens, one more: it moves the chat's
    last_deleted_seq), and for a user one membership probe; the change log is only written."""
    conn, chat_id = plans
    message_id = await conn.fetchval(
        "SELECT id FROM messages WHERE chat_id = $1 ORDER BY id OFFSET 100 LIMIT 1", chat_id
    )
    async with rolled_back(conn):
        if statement == "edit":
            plan = await explain(
                conn, queries.EDIT_MESSAGE, chat_id, message_id, "edited", caller, OWNERS, ROLES
            )
        else:
            plan = await explain(conn, queries.DELETE_MESSAGE, chat_id, message_id, caller, OWNERS, ROLES)
    messages = rows_read(plan, "messages")
    assert messages and all(node.get("Index Name") == "messages_pkey" for node in messages), plan
    assert all(per_loop(node) <= 1 and node["Actual Loops"] <= 1 for node in messages), plan
    assert total_rows(messages) == (1 if caller is None else 2)
    chats = rows_read(plan, "chats")
    assert chats and all(node.get("Index Name") == "chats_pkey" for node in chats), plan
    # An old message: the chat's newest stays, and no messages probe looks for the one before.
    assert total_rows(chats) == (2 if statement == "delete" and caller is None else 1)
    assert total_rows(rows_read(plan, "chat_members")) == (1 if caller else 0)
    assert not scans_of(plan, "message_changes")
    assert not any(node["Node Type"] == "Seq Scan" for node in plan)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("batch", [1, 3, 64])
async def test_a_batch_of_edits_looks_up_each_message_by_key(
    plans: tuple[asyncpg.Connection, int], batch: int, caller: str | None
) -> None:
    """A batch of edits of old messages of the big chat, one of a missing chat among them:
    one messages_pkey lookup per edit (for READER, who may not edit others' messages, one
    more each tells 403 from 404), the chats locked through chats_pkey, for a user one
    membership probe per edit; the change log is only written."""
    conn, chat_id = plans
    message_ids = [
        row["id"]
        for row in await conn.fetch(
            "SELECT id FROM messages WHERE chat_id = $1 ORDER BY id OFFSET 100 LIMIT $2", chat_id, batch
        )
    ]
    chat_ids = [chat_id] * batch
    if batch > 1:
        chat_ids[-1] = 2**62  # no such chat
    args = pg_arrays(chat_ids, message_ids, ["edited"] * batch, [caller] * batch)
    async with rolled_back(conn):
        plan = await explain(conn, queries.EDIT_MESSAGES, *args, OWNERS, ROLES, "1 us", 1000000)
    messages = rows_read(plan, "messages")
    assert messages and all(node.get("Index Name") == "messages_pkey" for node in messages), plan
    assert all(per_loop(node) <= 1 for node in messages), plan
    in_chat = batch - (batch > 1)
    assert total_rows(messages) == in_chat * (1 if caller is None else 2)
    chats = rows_read(plan, "chats")
    assert chats and all(node.get("Index Name") == "chats_pkey" for node in chats), plan
    assert total_rows(rows_read(plan, "chat_members")) == (in_chat if caller else 0)
    assert not scans_of(plan, "message_changes")
    assert not any(node["Node Type"] == "Seq Scan" for node in plan)


async def test_deleting_the_newest_message_finds_the_one_before_it_in_one_entry(
    plans: tuple[asyncpg.Connection, int],
) -> None:
    """When the big chat's newest message goes, its activity falls back to the one before,
    found by one backward step of messages_pkey, not a scan of the chat."""
    conn, chat_id = plans
    newest, before = [
        row["id"]
        for row in await conn.fetch(
            "SELECT id FROM messages WHERE chat_id = $1 ORDER BY id DESC LIMIT 2", chat_id
        )
    ]
    async with rolled_back(conn):
        plan = await explain(conn, queries.DELETE_MESSAGE, chat_id, newest, None, OWNERS, ROLES)
        assert await conn.fetchval("SELECT last_message_id FROM chats WHERE id = $1", chat_id) == before
    updates = updates_of(plan, "chats")
    assert len(updates) == 1
    probes = rows_read(updates[0], "messages")
    assert probes and all(
        (node.get("Index Name"), node.get("Scan Direction")) == ("messages_pkey", "Backward")
        for node in probes
    ), plan
    assert total_rows(probes) == 1
    assert total_rows(rows_read(updates[0], "chats")) == 1
    assert total_rows(rows_read(plan, "messages")) == 2  # the deleted message's lookup, then the probe
    assert not any(node["Node Type"] == "Seq Scan" for node in plan)


@pytest.mark.parametrize("user", [READER, "not-a-member"])
async def test_marking_read_probes_one_membership_by_its_key(
    plans: tuple[asyncpg.Connection, int], user: str
) -> None:
    """PUT /chats/{id}/read: the membership's row, found by its whole key (chat and user:
    the primary key, or chat_members_user_id_chat_id, which holds the same two columns),
    read and updated; nothing else is read."""
    conn, chat_id = plans
    newest = await conn.fetchval("SELECT max(id) FROM messages WHERE chat_id = $1", chat_id)
    async with rolled_back(conn):
        plan = await explain(conn, queries.MARK_READ, chat_id, user, newest, ROLES)
    members = rows_read(plan, "chat_members")
    assert members, plan
    for node in members:
        assert node["Node Type"] in ("Index Scan", "Index Only Scan"), node
        assert node["Index Name"] in ("chat_members_pkey", "chat_members_user_id_chat_id"), node
        assert "(chat_id = " in node["Index Cond"] and "(user_id = " in node["Index Cond"], node
        assert per_loop(node) <= 1 and node["Actual Loops"] <= 1, node
    assert len(updates_of(plan, "chat_members")) == 1
    read = {node["Relation Name"] for node in plan if "Relation Name" in node and "Scan" in node["Node Type"]}
    assert read == {"chat_members"}, plan


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
            arrays = pg_arrays([chat_id], [after], [20], [caller])  # a batch of one page
            plan = await explain(conn, queries.LIST_MEMBERS, *arrays, ROLES)
            members = rows_read(plan, "chat_members")
            assert members and total_rows(members) <= 20 + 2 + (1 if caller else 0), plan
            no_table_sorted_or_scanned_whole(plan, 20)


async def test_keyed_sends_find_their_key_by_index(plans: tuple[asyncpg.Connection, int]) -> None:
    conn, chat_id = plans
    # The keys tables are empty here; prove an index serves. Which one is left to the
    # planner: on empty tables every path costs nothing, and it may well pick a key's
    # index entered by a later column.
    await conn.execute("SET enable_seqscan = off")
    try:
        async with rolled_back(conn):
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
                    rows_read(plan, relation, by_first_column=False)
    finally:
        await conn.execute("RESET enable_seqscan")


async def test_the_plans_explained_are_the_generic_ones_the_service_runs(
    plans: tuple[asyncpg.Connection, int],
) -> None:
    """A guard on explain() itself: a generic plan shows $n where a custom plan shows values."""
    conn, chat_id = plans
    plan = await explain(conn, queries.GET_LATEST_EVENT_ID, chat_id, None, ROLES)
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
    async with rolled_back(conn):  # EXPLAIN ANALYZE really charges and deletes
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


# -- Search (sql/search/search_messages.sql) ------------------------------------

SEARCH_CHATS = 1_000  # one of SEARCH_BIG messages, the rest of SEARCH_SMALL each
SEARCH_BIG = 100_000
SEARCH_SMALL = 100
SEARCHER = "searcher"  # a member of the big chat and of 49 small ones
# Every message holds "often" or "seldom" (every other one each) and "word<n>"; one in
# 25,000 holds "rarity" too. Written as sql/messages/ would number them.
SEARCH_FILL = """
WITH filled AS (
    INSERT INTO messages (chat_id, seq, text)
    SELECT c.id, n,
        'msg ' || CASE WHEN n % 2 = 0 THEN 'often' ELSE 'seldom' END
            || CASE WHEN (c.id + n) % 25000 = 7 THEN ' rarity' ELSE '' END || ' word' || (n % 3000)
    FROM chats AS c, generate_series(1, CASE WHEN c.id = $1::bigint THEN $2::integer ELSE $3::integer END) AS n
    ORDER BY c.id, n
    RETURNING chat_id, id
)
UPDATE chats
SET sent_count = counted.messages, last_message_id = counted.newest, listed_activity = NULL
FROM (SELECT chat_id, count(*) AS messages, max(id) AS newest FROM filled GROUP BY chat_id) AS counted
WHERE chats.id = counted.chat_id
"""


@pytest.fixture(scope="module")
def search_database(make_migrated_database: Callable[[], str]) -> str:
    return make_migrated_database()


@pytest.fixture
async def searched(search_database: str) -> AsyncIterator[tuple[asyncpg.Connection, int]]:
    """SEARCH_CHATS chats of about 200,000 messages, ANALYZEd; the connection and the big chat."""
    conn = await asyncpg.connect(search_database)
    big = await conn.fetchval("SELECT min(id) FROM chats")
    if big is None:
        await conn.execute(
            "INSERT INTO chats (title) SELECT 'c' || n FROM generate_series(1, $1) AS n", SEARCH_CHATS
        )
        big = await conn.fetchval("SELECT min(id) FROM chats")
        await conn.execute(SEARCH_FILL, big, SEARCH_BIG, SEARCH_SMALL)
        await conn.execute(
            "INSERT INTO chat_members (chat_id, user_id, role)"
            " SELECT id, $1, 'member' FROM chats WHERE id = $2 OR id IN (SELECT id FROM chats ORDER BY id DESC LIMIT 49)",
            SEARCHER,
            big,
        )
        # Others in every chat, 20 each among 1,000 users, as a service in use has them.
        await conn.execute(
            "INSERT INTO chat_members (chat_id, user_id, role)"
            " SELECT id, 'user-' || ((id * 20 + n) % 1000), 'member' FROM chats, generate_series(1, 20) AS n"
            " ON CONFLICT DO NOTHING"
        )
        await conn.execute("VACUUM ANALYZE")
    yield conn, big
    await conn.close()


async def explain_search(conn: asyncpg.Connection, *args: object) -> list[dict[str, Any]]:
    """The search's executed plan as served: in a transaction planned for the values."""
    async with rolled_back(conn):
        await conn.execute(queries.PLAN_FOR_THE_VALUES)
        return await explain(conn, queries.SEARCH_MESSAGES, *args)


SEARCH_SCOPES = [
    (None, False),
    (SEARCHER, False),
    (None, True),
    (SEARCHER, True),
]  # (caller, the big chat only)


@pytest.mark.parametrize(("caller", "in_big_chat"), SEARCH_SCOPES)
async def test_a_rare_word_reads_its_matches_from_the_index_and_nothing_else(
    searched: tuple[asyncpg.Connection, int], caller: str | None, in_big_chat: bool
) -> None:
    """ "rarity" holds in about 1 message in 25,000: messages_search gives its matches (and
    a bitmap of them is read, rechecked, filtered by scope and sorted), never a walk of
    messages, whatever the scope."""
    conn, big = searched
    chat_id = big if in_big_chat else None
    matches = await conn.fetchval("SELECT count(*) FROM messages WHERE text LIKE '%rarity%'")
    assert 5 <= matches <= 20
    plan = await explain_search(conn, "rarity", chat_id, queries.NEWEST, 20, caller, ROLES)
    scans = rows_read(plan, "messages")
    assert {node["Node Type"] for node in scans} == {"Bitmap Heap Scan"}, plan
    # The bitmap's own index scans (not those of the subplan listing the user's chats).
    bitmaps = [node for scan in scans for node in scan["Plans"] if node["Parent Relationship"] == "Outer"]
    assert [node["Index Name"] for node in bitmaps] == ["messages_search"], plan
    assert total_rows(scans) <= matches, plan
    no_table_sorted_or_scanned_whole(plan, matches)


@pytest.mark.parametrize(("caller", "in_big_chat"), SEARCH_SCOPES)
@pytest.mark.parametrize("depth", ["newest", "halfway"])
async def test_a_common_word_stops_after_a_page(
    searched: tuple[asyncpg.Connection, int], caller: str | None, in_big_chat: bool, depth: str
) -> None:
    """ "often" holds in every other message: the newest messages of the scope are walked
    backward from the cursor (messages_id_for_search across chats, messages_pkey in one),
    checked one by one, until the page (and one more) is found; about twice the page is
    read, never the word's 100,000 matches."""
    conn, big = searched
    chat_id = big if in_big_chat else None
    before = queries.NEWEST
    if depth == "halfway":
        before = await conn.fetchval(
            "SELECT id FROM messages WHERE chat_id = $1 AND seq = $2", big, SEARCH_BIG // 2
        )
    limit = 20
    listing = json.loads(
        await conn.fetchval(queries.SEARCH_MESSAGES, "often", chat_id, before, limit, caller, ROLE_LIST)
    )
    assert len(listing["messages"]) == limit and listing["next_before"]
    plan = await explain_search(conn, "often", chat_id, before, limit, caller, ROLES)
    scans = rows_read(plan, "messages")
    assert all(
        node["Node Type"] == "Index Scan" and node["Scan Direction"] == "Backward" for node in scans
    ), plan
    assert {node["Index Name"] for node in scans} == {
        "messages_pkey" if in_big_chat else "messages_id_for_search"
    }, plan
    # Every other message matches; a user's walk also passes the other chats' newest ones.
    assert total_rows(scans) <= 4 * (limit + 1), plan
    no_table_sorted_or_scanned_whole(plan, limit)


async def test_a_users_search_starts_at_their_newest_message_not_at_what_others_sent_since(
    searched: tuple[asyncpg.Connection, int],
) -> None:
    """5,000 messages holding a common word sent since to a chat SEARCHER is not in: the
    user's search for it reads what it read before (the walk starts at the newest
    message of their chats), and finds what it found before."""
    word = "often"
    conn, _ = searched
    alone = await conn.fetchval(
        "SELECT max(id) FROM chats WHERE id NOT IN (SELECT chat_id FROM chat_members WHERE user_id = $1)",
        SEARCHER,
    )
    args = (word, None, queries.NEWEST, 20, SEARCHER)
    quiet = json.loads(await conn.fetchval(queries.SEARCH_MESSAGES, *args, ROLE_LIST))
    read_quiet = total_rows(rows_read(await explain_search(conn, *args, ROLES), "messages"))
    async with rolled_back(conn):
        await conn.execute(
            "WITH sent AS (INSERT INTO messages (chat_id, seq, text)"
            " SELECT $1, 100000 + n, 'often ' || n FROM generate_series(1, 5000) AS n RETURNING id)"
            " UPDATE chats SET last_message_id = (SELECT max(id) FROM sent), listed_activity = NULL WHERE id = $1",
            alone,
        )
        busy = json.loads(await conn.fetchval(queries.SEARCH_MESSAGES, *args, ROLE_LIST))
        plan = await explain_search(conn, *args, ROLES)
    assert busy == quiet
    assert total_rows(rows_read(plan, "messages")) <= read_quiet + 1, plan
