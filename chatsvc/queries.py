"""One typed async function per SQL file in sql/, named after the file. No HTTP in here.

Each runs its statement and shapes the row, nothing more: reads return the
JSON PostgreSQL rendered, ready to send as a response body. How statements
are combined (batching, the fallback for a busy chat, retrying a racing
Idempotency-Key, purging in batches) is decided in chatsvc/reads.py,
chatsvc/sends.py and chatsvc/idempotency.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import asyncpg

from chatsvc.sql import statement

if TYPE_CHECKING:  # chatsvc.db opens connections with read_session_settings
    from chatsvc.db import Database

CREATE_CHAT = statement("create_chat", ":many")
CREATE_CHAT_ONCE = statement("create_chat_once", ":one")
LIST_CHATS = statement("list_chats", ":many")
LIST_CHATS_OF_USER = statement("list_chats_of_user", ":many")
LIST_CHATS_BY_ACTIVITY = statement("list_chats_by_activity", ":many")
LIST_CHATS_OF_USER_BY_ACTIVITY = statement("list_chats_of_user_by_activity", ":many")
FLUSH_ACTIVITY = statement("flush_activity", ":val")
GET_CHATS_WITH_LATEST_MESSAGES = statement("get_chats_with_latest_messages", ":many")
DELETE_CHAT = statement("delete_chat", ":one")
ALLOW_A_LONG_DELETE = statement("allow_a_long_delete", ":one")
CREATE_MESSAGE = statement("create_message", ":one")
CREATE_MESSAGES = statement("create_messages", ":many")
CREATE_MESSAGE_ONCE = statement("create_message_once", ":one")
FLUSH_COMMITS = statement("flush_commits", ":val")
GET_MESSAGE = statement("get_message", ":many")
EDIT_MESSAGE = statement("edit_message", ":one")
EDIT_MESSAGES = statement("edit_messages", ":many")
DELETE_MESSAGE = statement("delete_message", ":one")
DELETE_MESSAGES = statement("delete_messages", ":many")
LIST_MESSAGES_BEFORE = statement("list_messages_before", ":many")
LIST_MESSAGES_AFTER = statement("list_messages_after", ":many")
LIST_CHAT_EVENTS = statement("list_chat_events", ":many")
LIST_MEMBERS = statement("list_members", ":many")
PUT_MEMBER = statement("put_member", ":one")
REMOVE_MEMBER = statement("remove_member", ":one")
MARK_READ = statement("mark_read", ":one")
GET_LATEST_EVENT_ID = statement("get_latest_event_id", ":val")
WATCH_CHAT = statement("watch_chat", ":val")
UNWATCH_CHAT = statement("unwatch_chat", ":exec")
FORGET_GONE_LISTENERS = statement("forget_gone_listeners", ":exec")
NOTIFY_LISTENER_CHECK = statement("notify_listener_check", ":val")
PURGE_CHAT_IDEMPOTENCY_KEYS = statement("purge_chat_idempotency_keys", ":val")
PURGE_MESSAGE_IDEMPOTENCY_KEYS = statement("purge_message_idempotency_keys", ":val")
LIST_APPLIED_MIGRATIONS = statement("list_applied_migrations", ":many")
READ_SESSION_SETTINGS = statement("read_session_settings", ":many")
CURRENT_POSITION = statement("current_position", ":val")
REPLAYED = statement("replayed", ":val")
MEASURE_REPLICA_LAG = statement("measure_replica_lag", ":one")
SEARCH_MESSAGES = statement("search_messages", ":val")
PLAN_FOR_THE_VALUES = statement("plan_for_the_values", ":exec")

# The largest bigint: the exclusive upper cursor of a first page going back.
NEWEST = 2**63 - 1


class Created(NamedTuple):
    id: int
    json: str  # the created resource as the API renders it
    # An Idempotency-Key retry: nothing new was stored, json is the first result.
    replayed: bool = False
    # For a replay: whether the retry's body (trimmed) equals the first request's.
    same_body: bool = True


class Throttled(NamedTuple):
    """A write the user's write limit refused: how long until a token is there."""

    retry_after: timedelta


class Members(NamedTuple):
    """A chat's members as its create statement takes them: users and their roles, in step."""

    users: list[str]
    roles: list[str]


class Refused(NamedTuple):
    """A statement that did nothing for its caller: their role in the chat (None: not a member)."""

    caller_role: str | None


class MemberPut(NamedTuple):
    json: str  # the member as the API renders it
    added: bool  # the user was not a member before


class Removal(NamedTuple):
    chat_exists: bool
    caller_role: str | None  # None: the caller is not a member
    removed: bool  # the member was there, and the caller could remove them


class MessageRefused(NamedTuple):
    """An edit or deletion that was not done: the caller's role in the chat (None: not a
    member) and whether the chat holds the message."""

    caller_role: str | None
    found: bool


class ActivityCursor(NamedTuple):
    """Where a page of GET /chats/?order=activity starts: below this chat's (activity, id)."""

    activity: int
    chat_id: int


FIRST_BY_ACTIVITY = ActivityCursor(NEWEST, NEWEST)


class ChatEvent(NamedTuple):
    """One event of a resumed stream's backfill (sql/events/list_chat_events.sql)."""

    id: int
    kind: str  # message, message_updated or message_deleted
    message_id: int
    message_json: str | None  # the Message as it is now; None for message_deleted


class KeyedResourceGone(Exception):
    """An Idempotency-Key whose chat (or message) has been deleted since the first request."""

    def __init__(self, key: str, resource: str = "chat") -> None:
        super().__init__(key)
        self.resource = resource  # "chat" or "message"


def _created(row: asyncpg.Record, json_column: str) -> Created:
    return Created(row["id"], row[json_column], row["replayed"], row["same_body"])


async def create_chats(
    conn: asyncpg.Connection,
    chats: Sequence[tuple[str, Members]],
    users: Sequence[str | None],
    per_write: timedelta,
    burst: int,
) -> dict[int, Created | Throttled]:
    """Charges each user's creates to their write limit and creates each (title, members)
    allowed (the i-th by the i-th caller user; None: the server), in one statement: by
    each one's position, its chat, or Throttled when the write limit refused it.
    Run for a batch of creates (chatsvc/creates.py)."""
    positions = [position for position, (_, members) in enumerate(chats, 1) for _ in members.users]
    member_users = [user for _, members in chats for user in members.users]
    roles = [role for _, members in chats for role in members.roles]
    rows = await conn.fetch(
        CREATE_CHAT, [title for title, _ in chats], positions, member_users, roles, users, per_write, burst
    )
    return {
        row["position"] - 1: Created(row["id"], row["chat"])
        if row["retry_after"] is None
        else Throttled(row["retry_after"])
        for row in rows
    }


async def create_chat_once(
    db: Database, title: str, members: Members, caller: str, key: str, fingerprint: str
) -> Created:
    """The chat this Idempotency-Key created, creating it on the key's first use.

    Raises KeyedResourceGone when the key's chat has been deleted since, and
    asyncpg.UniqueViolationError when a request racing with the same key won
    (idempotency.run_keyed runs it again).
    """
    async with db.connection() as conn:
        row = await conn.fetchrow(
            CREATE_CHAT_ONCE, title, members.users, members.roles, caller, key, fingerprint
        )
    assert row is not None  # the statement returns the created or the recorded chat
    if row["chat"] is None:
        raise KeyedResourceGone(key)
    return _created(row, "chat")


async def flush_activity(db: Database, batch_size: int, kept: int) -> int:
    """Lists up to batch_size unlisted chats (migrations/0008), all but the kept most
    recently active; how many were listed."""
    async with db.connection() as conn:
        listed: int = await conn.fetchval(FLUSH_ACTIVITY, batch_size, kept)
    return listed


async def read_each(
    conn: asyncpg.Connection, statement: str, wanted: Sequence[tuple[Any, ...]], *shared: Any
) -> dict[tuple[Any, ...], str | None]:
    """Runs a batch read (an sql/ file taking one array per column of the wanted keys,
    then the parameters all share, such as the member roles allowed to read, and
    returning each key's columns then its answer): each wanted key -> its answer as
    JSON, or None when there is no such chat or the caller may not read it. Run for a
    batch of reads (chatsvc/reads.py)."""
    rows = await conn.fetch(statement, *zip(*wanted, strict=True), *shared)
    answers: dict[tuple[Any, ...], str | None] = {}
    for row in rows:
        *key, answer = row.values()
        answers[tuple(key)] = answer
    return answers


# How long asyncpg waits for a chat's delete, which the server lets run as
# long as it takes: a bound for a server that stopped answering, not for the work.
LONG_DELETE_TIMEOUT = 3600.0


async def delete_chat(
    db: Database, chat_id: int, user: str | None, roles: list[str], lock_timeout_ms: int
) -> Refused | None:
    """None when the chat was deleted (its messages went with it, in the same statement);
    else who was refused. Never cut off by the statement timeout, whatever the chat's size;
    its lock waits are (lock_timeout_ms)."""
    async with db.connection() as conn, conn.transaction():
        await conn.fetchrow(ALLOW_A_LONG_DELETE, str(lock_timeout_ms))
        row = await conn.fetchrow(DELETE_CHAT, chat_id, user, roles, timeout=LONG_DELETE_TIMEOUT)
    return None if row["deleted_id"] is not None else Refused(row["caller_role"])


async def _make_durable(conn: asyncpg.Connection, rows: Sequence[asyncpg.Record]) -> None:
    """Flushes a send's commit that did not wait for its flush (a send to a followed
    chat: sql/events/flush_commits.sql says why), so that it is durable when answered."""
    if any(row["unflushed"] for row in rows):
        await conn.fetchval(FLUSH_COMMITS)


async def create_messages(
    conn: asyncpg.Connection,
    chat_ids: Sequence[int],
    texts: Sequence[str],
    authors: Sequence[str | None],
    users: Sequence[str | None],
    roles: list[str],
    per_write: timedelta,
    burst: int,
) -> dict[int, Created | Throttled | None]:
    """Charges each user's sends to their write limit and stores one message per send
    allowed (the i-th chat id, text, author and caller user), in one statement: by
    each send's position, its Created; Throttled when the write limit refused it;
    None when another transaction held its chat (the statement skipped it).
    Positions of chats that do not exist, or whose caller may not send there, are
    missing. Run for a batch of sends (chatsvc/sends.py). Durable when it returns: a
    batch with a send to a followed chat is flushed first (sql/events/flush_commits.sql)."""
    rows = await conn.fetch(CREATE_MESSAGES, chat_ids, texts, authors, users, roles, per_write, burst)
    await _make_durable(conn, rows)
    results: dict[int, Created | Throttled | None] = {}
    for row in rows:
        if row["id"] is not None:
            results[row["position"] - 1] = Created(row["id"], row["message"])
        elif row["retry_after"] is not None:
            results[row["position"] - 1] = Throttled(row["retry_after"])
        else:
            results[row["position"] - 1] = None
    return results


async def create_message(
    db: Database, chat_id: int, text: str, author: str | None, user: str | None, roles: list[str]
) -> Created | None:
    """The stored message, waiting for the chat's lock; None when the chat does not
    exist or the caller may not send there."""
    async with db.connection() as conn:
        row = await conn.fetchrow(CREATE_MESSAGE, chat_id, text, author, user, roles)
        await _make_durable(conn, [row] if row is not None else [])
    return None if row is None else Created(row["id"], row["message"])


async def create_message_once(
    db: Database,
    chat_id: int,
    text: str,
    author: str | None,
    user: str | None,
    roles: list[str],
    key: str,
    fingerprint: str,
) -> Created | None:
    """The message this caller's Idempotency-Key stored in the chat, storing it on the
    key's first use.

    None when the chat does not exist (its keys went with it) or the caller may
    not send there; KeyedResourceGone when the key's message has been deleted
    since; asyncpg.UniqueViolationError when a request racing with the same key won.
    """
    async with db.connection() as conn:
        row = await conn.fetchrow(CREATE_MESSAGE_ONCE, chat_id, text, author, user, roles, key, fingerprint)
        await _make_durable(conn, [row] if row is not None else [])
    if row is None:
        return None
    if row["message"] is None:
        raise KeyedResourceGone(key, "message")
    return _created(row, "message")


async def edit_message(
    db: Database,
    chat_id: int,
    message_id: int,
    text: str,
    user: str | None,
    any_roles: list[str],
    own_roles: list[str],
) -> str | MessageRefused:
    """The edited message as JSON; MessageRefused when nothing was edited."""
    async with db.connection() as conn:
        row = await conn.fetchrow(EDIT_MESSAGE, chat_id, message_id, text, user, any_roles, own_roles)
    if row["message"] is None:
        return MessageRefused(row["caller_role"], row["found"])
    message_json: str = row["message"]
    return message_json


async def edit_messages(
    conn: asyncpg.Connection,
    chat_ids: Sequence[int],
    message_ids: Sequence[int],
    texts: Sequence[str],
    users: Sequence[str | None],
    any_roles: list[str],
    own_roles: list[str],
    per_write: timedelta,
    burst: int,
) -> dict[int, str | MessageRefused | Throttled | None]:
    """Charges each user's edits to their write limit and makes every edit allowed
    (the i-th chat id, message id, text and caller user; each message at most once),
    in one statement: by each edit's position, the edited message as JSON;
    MessageRefused when the caller may not edit it or it is not there; Throttled when
    the write limit refused it; None when another transaction held its chat (the
    statement skipped it). Run for a batch of edits (chatsvc/changes.py)."""
    rows = await conn.fetch(
        EDIT_MESSAGES, chat_ids, message_ids, texts, users, any_roles, own_roles, per_write, burst
    )
    return _changes(rows, len(chat_ids), "message")


async def delete_messages(
    conn: asyncpg.Connection,
    chat_ids: Sequence[int],
    message_ids: Sequence[int],
    users: Sequence[str | None],
    any_roles: list[str],
    own_roles: list[str],
    per_write: timedelta,
    burst: int,
) -> dict[int, Literal[True] | MessageRefused | Throttled | None]:
    """Charges each user's deletions to their write limit and makes every deletion allowed
    (the i-th chat id, message id and caller user; each message at most once), in one
    statement: by each deletion's position, True when it was deleted; otherwise as
    edit_messages answers. Run for a batch of deletions (chatsvc/changes.py)."""
    rows = await conn.fetch(
        DELETE_MESSAGES, chat_ids, message_ids, users, any_roles, own_roles, per_write, burst
    )
    return _changes(rows, len(chat_ids), "deleted")


def _changes(rows: list[asyncpg.Record], count: int, done: str) -> dict[int, Any]:
    """Each change's outcome by position, from a statement that edits or deletes messages
    in a batch: its done column when not null (the edited message, or true for a
    deletion), Throttled,
    None (busy: its chat was held elsewhere) or MessageRefused (no row: no such chat)."""
    results: dict[int, Any] = {position: MessageRefused(None, False) for position in range(count)}
    for row in rows:
        position = row["position"] - 1
        if row[done] is not None:
            results[position] = row[done]
        elif row["retry_after"] is not None:
            results[position] = Throttled(row["retry_after"])
        elif row["busy"]:
            results[position] = None
        else:
            results[position] = MessageRefused(row["caller_role"], row["found"])
    return results


async def delete_message(
    db: Database, chat_id: int, message_id: int, user: str | None, any_roles: list[str], own_roles: list[str]
) -> MessageRefused | None:
    """None when the message was deleted; MessageRefused when it was not."""
    async with db.connection() as conn:
        row = await conn.fetchrow(DELETE_MESSAGE, chat_id, message_id, user, any_roles, own_roles)
    return None if row["deleted"] else MessageRefused(row["caller_role"], row["found"])


async def search_messages(
    db: Database,
    q: str,
    chat_id: int | None,
    before: int | None,
    limit: int,
    user: str | None,
    roles: list[str],
) -> str | None:
    """A page of the messages holding every word of q, newest first, as JSON {messages,
    next_before}; None when chat_id names no chat the caller may read. Planned for
    these values (the words' frequencies decide how to find them), in a transaction
    of its own so that the setting ends with it."""
    async with db.connection() as conn, conn.transaction():
        await conn.execute(PLAN_FOR_THE_VALUES)
        page: str | None = await conn.fetchval(
            SEARCH_MESSAGES, q, chat_id, NEWEST if before is None else before, limit, user, roles
        )
    return page


async def get_latest_event_id(db: Database, chat_id: int, user: str | None, roles: list[str]) -> int | None:
    """The chat's newest event id (0 when it never had a message); None when there is no
    such chat or the caller may not follow it."""
    async with db.connection() as conn:
        latest: int | None = await conn.fetchval(GET_LATEST_EVENT_ID, chat_id, user, roles)
    return latest


async def put_member(
    db: Database, chat_id: int, member: str, role: str, user: str | None, roles: list[str]
) -> MemberPut | Refused:
    """The member added or with its role set; Refused when there is no such chat or the
    caller may not manage its members."""
    async with db.connection() as conn:
        row = await conn.fetchrow(PUT_MEMBER, chat_id, member, role, user, roles)
    if row["member"] is None:
        return Refused(row["caller_role"])
    return MemberPut(row["member"], row["added"])


async def remove_member(
    db: Database, chat_id: int, member: str, user: str | None, roles: list[str]
) -> Removal:
    async with db.connection() as conn:
        row = await conn.fetchrow(REMOVE_MEMBER, chat_id, member, user, roles)
    return Removal(row["chat_exists"], row["caller_role"], row["removed"])


async def mark_read(
    db: Database, chat_id: int, user: str, message_id: int, roles: list[str]
) -> str | Refused:
    """The member's read state as JSON {chat_id, last_read_id}, its marker moved forward to
    message_id; Refused when there is no such chat or the user may not mark it read."""
    async with db.connection() as conn:
        row = await conn.fetchrow(MARK_READ, chat_id, user, message_id, roles)
    if row["state"] is None:
        return Refused(row["caller_role"])
    state: str = row["state"]
    return state


async def list_chat_events(db: Database, chat_id: int, after: int, up_to: int, limit: int) -> list[ChatEvent]:
    """The chat's events with after < id <= up_to, in id order, at most limit."""
    async with db.connection() as conn:
        rows = await conn.fetch(LIST_CHAT_EVENTS, chat_id, after, up_to, limit)
    return [ChatEvent(row["id"], row["kind"], row["message_id"], row["message"]) for row in rows]


# The next three run on a process's LISTEN connection (chatsvc/live/hub.py), not the pool.


async def watch_chat(listener: asyncpg.Connection, chat_id: int) -> bool:
    """Registers the listener as watching the chat; False when there is no such chat."""
    return await listener.fetchval(WATCH_CHAT, chat_id) is not None


async def unwatch_chat(listener: asyncpg.Connection, chat_id: int) -> None:
    await listener.execute(UNWATCH_CHAT, chat_id)


async def forget_gone_listeners(listener: asyncpg.Connection) -> None:
    await listener.execute(FORGET_GONE_LISTENERS)


async def notify_listener_check(db: Database, token: str) -> None:
    """Through the pool: a notification the listener that just connected must hear."""
    async with db.connection() as conn:
        await conn.fetchval(NOTIFY_LISTENER_CHECK, token)


async def purge_chat_idempotency_keys(db: Database, retention: timedelta, batch_size: int) -> int:
    """Deletes up to batch_size chat keys older than retention; how many went."""
    async with db.connection() as conn:
        deleted: int = await conn.fetchval(PURGE_CHAT_IDEMPOTENCY_KEYS, retention, batch_size)
    return deleted


async def purge_message_idempotency_keys(db: Database, retention: timedelta, batch_size: int) -> int:
    """Deletes up to batch_size message keys older than retention; how many went."""
    async with db.connection() as conn:
        deleted: int = await conn.fetchval(PURGE_MESSAGE_IDEMPOTENCY_KEYS, retention, batch_size)
    return deleted


async def read_session_settings(conn: asyncpg.Connection, names: list[str]) -> dict[str, str]:
    """The session's settings of those names (lower case), in their base units."""
    return {row["name"]: row["setting"] for row in await conn.fetch(READ_SESSION_SETTINGS, names)}


async def current_position(conn: asyncpg.Connection) -> str:
    """On the primary: its WAL position now, past every commit completed before."""
    position: str = await conn.fetchval(CURRENT_POSITION)
    return position


async def replayed(db: Database, position: str) -> bool:
    """On the replica: whether it has replayed up to position."""
    async with db.connection() as conn:
        return bool(await conn.fetchval(REPLAYED, position))


async def measure_replica_lag(db: Database, primary_position: str) -> tuple[float, float]:
    """On the replica: (WAL bytes, seconds) behind primary_position."""
    async with db.connection() as conn:
        row = await conn.fetchrow(MEASURE_REPLICA_LAG, primary_position)
    return row["lag_bytes"], row["lag_seconds"]


async def list_applied_migrations(db: Database) -> frozenset[str]:
    """The ids of the migrations applied to the database; none when it was never migrated."""
    try:
        async with db.connection() as conn:
            rows = await conn.fetch(LIST_APPLIED_MIGRATIONS)
    except asyncpg.UndefinedTableError:
        return frozenset()
    return frozenset(row["migration_id"] for row in rows)


# -- The per-user write limit (chatsvc/limits.py) ---------------------------------

TAKE_USER_WRITES = statement("take_user_writes", ":many")
PURGE_FULL_USER_WRITE_BUCKETS = statement("purge_full_user_write_buckets", ":one")


class Granted(NamedTuple):
    granted: int  # how many of the user's charges took a token: the first ones
    retry_after: timedelta | None  # for the others: how long until the bucket holds one


async def take_user_writes(
    conn: asyncpg.Connection, users: Sequence[str], per_write: timedelta, burst: int
) -> dict[str, Granted]:
    """Charges one write per entry of users (repeats allowed) to their buckets, in one
    statement: by user, how many were granted. Run for a batch of charges (chatsvc/limits.py)."""
    rows = await conn.fetch(TAKE_USER_WRITES, users, per_write, burst)
    return {row["user_id"]: Granted(row["granted"], row["retry_after"]) for row in rows}


async def purge_full_user_write_buckets(db: Database, after: str, batch_size: int) -> tuple[str | None, int]:
    """Deletes the full buckets among the next batch_size users after `after`:
    (the last user examined, or None when none followed; how many went)."""
    async with db.connection() as conn:
        row = await conn.fetchrow(PURGE_FULL_USER_WRITE_BUCKETS, after, batch_size)
    assert row is not None  # an aggregate row
    return row["last_user_id"], row["purged"]
