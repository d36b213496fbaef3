"""The per-user write limit (contract v3, Limits): a token bucket per user, shared by every
process on the database; the server, reads and CHATSVC_AUTH=off are never limited.

Writes here are POST /chats/ (a user may create chats) and sends, which their
batch charges in its own statement. Each test's users are
its own (random ids), so tests sharing the session's database share no bucket.
A rate of 0.01 per second refills nothing within a test: exactly `burst`
writes are accepted; rates of 20 and 5 per second show the refill.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientResponse
from pytest_aiohttp import AiohttpClient

from chatsvc import app as app_module
from chatsvc import limits, openapi
from chatsvc.app import ROUTES, create_app
from chatsvc.db import open_database
from chatsvc.settings import Settings
from chatsvc.sql import STATEMENTS
from tests.api import problem, waiting_on_a_lock
from tests.conftest import Client
from tests.credentials import CREDENTIALS, user
from tests.served import call, environment, serving

# Refills nothing within a test (one token per 100 s).
NO_REFILL = 0.01

Limited = Callable[..., Awaitable[Client]]


@pytest.fixture
def limited(aiohttp_client: AiohttpClient, database_url: str) -> Limited:
    """An app on the session's database with the given write limit (and other settings)."""

    async def client_with(rate: float, burst: int, **settings: Any) -> Client:
        app = create_app(
            Settings(
                **CREDENTIALS,
                database_url=settings.pop("database_url", database_url),
                user_write_rate=rate,
                user_write_burst=burst,
                **settings,
            )
        )
        return await aiohttp_client(app)

    return client_with


def someone() -> dict[str, str]:
    """The headers of a user no other test has."""
    return user(f"user-{secrets.token_hex(6)}")


async def create(client: Client, headers: dict[str, str], **extra_headers: str) -> ClientResponse:
    response = await client.post("/chats/", json={"title": "limited"}, headers={**headers, **extra_headers})
    await response.read()
    return response


async def statuses(client: Client, headers: dict[str, str], count: int) -> list[int]:
    return [(await create(client, headers)).status for _ in range(count)]


async def test_a_burst_is_accepted_and_the_next_write_is_429_with_retry_after(limited: Limited) -> None:
    client = await limited(rate=NO_REFILL, burst=3)
    alice = someone()
    assert await statuses(client, alice, 3) == [201, 201, 201]
    refused = await create(client, alice)
    body = await problem(refused, 429)
    # One token comes back in 100 s, less the milliseconds the burst took.
    assert refused.headers["Retry-After"] == "100"
    assert "Retry in 100 s" in body["detail"]
    assert await statuses(client, alice, 2) == [429, 429]  # refusals take nothing, and give nothing


async def test_retry_after_is_rounded_up_and_a_write_then_is_accepted(limited: Limited) -> None:
    """At 0.9 per second a token takes 1.11 s: Retry-After 2 (rounded, or cut, it would say 1
    and the retry would be refused), and after 2 s the write is accepted."""
    client = await limited(rate=0.9, burst=1)
    alice = someone()
    assert await statuses(client, alice, 1) == [201]
    refused = await create(client, alice)
    await problem(refused, 429)
    assert refused.headers["Retry-After"] == "2"
    await asyncio.sleep(int(refused.headers["Retry-After"]))
    assert await statuses(client, alice, 1) == [201]


async def test_after_one_token_s_time_the_user_may_write_again(limited: Limited) -> None:
    rate = 20.0
    client = await limited(rate=rate, burst=5)
    alice = someone()
    refused = None
    for _ in range(100):  # the burst, and what refills while it is sent
        response = await create(client, alice)
        if response.status == 429:
            refused = response
            break
        assert response.status == 201
    assert refused is not None, "never limited"
    assert refused.headers["Retry-After"] == "1"  # at least 1, though a token is 50 ms away
    await asyncio.sleep(1 / rate)  # a refusal is never more than one token away from a write
    assert await statuses(client, alice, 1) == [201]


async def test_a_refused_write_stores_nothing(aiohttp_client: AiohttpClient, empty_database_url: str) -> None:
    client = await aiohttp_client(
        create_app(
            Settings(
                **CREDENTIALS, database_url=empty_database_url, user_write_rate=NO_REFILL, user_write_burst=2
            )
        )
    )
    alice = someone()
    assert await statuses(client, alice, 2) == [201, 201]
    assert (await create(client, alice)).status == 429
    assert (await create(client, alice, **{"Idempotency-Key": "refused-key"})).status == 429
    # A write charged before its handler runs is refused before its body is read:
    # an invalid one is 429 too, not 422.
    invalid = await client.put(
        "/chats/1/members/someone", data=b"{", headers={**alice, "Content-Type": "application/json"}
    )
    await problem(invalid, 429)
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM chats") == 2
        assert await conn.fetchval("SELECT count(*) FROM chat_idempotency_keys") == 0
    finally:
        await conn.close()


async def test_a_write_the_handler_refuses_still_counts(limited: Limited) -> None:
    """A write charged before its handler runs counts whatever the handler answers; an
    unkeyed create, charged by the statement that would store it, reads its body
    first, and an invalid one (422) never reaches the statement: it takes nothing."""
    client = await limited(rate=NO_REFILL, burst=2)
    alice = someone()
    invalid = await client.post("/chats/", json={"title": ""}, headers=alice)
    await problem(invalid, 422)
    await problem(await client.delete(f"/chats/{2**62}", headers=alice), 404)
    assert await statuses(client, alice, 2) == [201, 429]


async def test_a_bucket_idle_for_long_holds_one_burst_not_more(
    limited: Limited, db: asyncpg.Connection
) -> None:
    client = await limited(rate=NO_REFILL, burst=2)
    name = f"user-{secrets.token_hex(6)}"
    # Full for an hour: the refill stopped at the burst (36 more tokens, were it not capped).
    await db.execute(
        "INSERT INTO user_write_buckets (user_id, full_at, granted)"
        " VALUES ($1, clock_timestamp() - interval '1 hour', 0)",
        name,
    )
    assert await statuses(client, user(name), 3) == [201, 201, 429]


async def test_one_user_s_limit_leaves_another_user_alone(limited: Limited) -> None:
    client = await limited(rate=NO_REFILL, burst=2)
    alice, bob = someone(), someone()
    assert await statuses(client, alice, 3) == [201, 201, 429]
    assert await statuses(client, bob, 3) == [201, 201, 429]
    assert await statuses(client, alice, 1) == [429]


async def test_the_server_is_never_limited(limited: Limited, db: asyncpg.Connection) -> None:
    client = await limited(rate=NO_REFILL, burst=1)
    buckets = await db.fetchval("SELECT count(*) FROM user_write_buckets")
    for _ in range(5):
        response = await client.post("/chats/", json={"title": "server"})  # the server key
        assert response.status == 201
    assert await db.fetchval("SELECT count(*) FROM user_write_buckets") == buckets  # not even charged


async def test_reads_are_never_limited_and_take_nothing(limited: Limited) -> None:
    client = await limited(rate=NO_REFILL, burst=2)
    alice = someone()
    chat = await (await create(client, alice)).json()
    for _ in range(10):  # would have emptied the bucket, were reads charged
        for method in ("GET", "HEAD"):
            for path in ("/chats/", f"/chats/{chat['id']}", f"/chats/{chat['id']}/messages/"):
                response = await client.request(method, path, headers=alice)
                assert response.status == 200, (method, path, response.status)
                await response.read()
    assert await statuses(client, alice, 2) == [201, 429]
    response = await client.get("/chats/", headers=alice)  # an emptied bucket still reads
    assert response.status == 200


async def test_with_auth_off_nobody_is_limited(limited: Limited) -> None:
    client = await limited(rate=NO_REFILL, burst=1, auth="off")
    alice = someone()  # ignored: with auth off every caller is the server
    assert await statuses(client, alice, 5) == [201] * 5
    assert await statuses(client, {}, 5) == [201] * 5


async def test_two_apps_on_one_database_share_each_user_s_limit(limited: Limited) -> None:
    first, second = await limited(rate=NO_REFILL, burst=4), await limited(rate=NO_REFILL, burst=4)
    alice = someone()
    accepted = [(await create(client, alice)).status for client in (first, second, first, second)]
    assert accepted == [201] * 4
    assert (await create(first, alice)).status == 429
    assert (await create(second, alice)).status == 429


async def test_concurrent_writes_of_one_user_on_two_apps_take_exactly_the_burst(limited: Limited) -> None:
    first, second = await limited(rate=NO_REFILL, burst=5), await limited(rate=NO_REFILL, burst=5)
    alice = someone()
    answers = await asyncio.gather(*(create(client, alice) for client in (first, second) * 15))
    assert sorted(answer.status for answer in answers) == [201] * 5 + [429] * 25


async def test_a_charge_waits_for_the_bucket_s_row_and_then_sees_it_as_it_is(
    limited: Limited, db: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    """A charge racing with another on the same user waits for that one's row lock and then
    charges the bucket as the other left it, not as it was when it started."""
    client = await limited(rate=NO_REFILL, burst=5)
    name = f"user-{secrets.token_hex(6)}"
    alice = user(name)
    assert await statuses(client, alice, 1) == [201]  # 4 tokens left
    await other.execute("SELECT FROM user_write_buckets WHERE user_id = $1 FOR UPDATE", name)
    racing = await waiting_on_a_lock(db, create(client, alice))
    # Meanwhile the other charges empty it (every token taken), and commit.
    await other.execute(
        "UPDATE user_write_buckets SET full_at = clock_timestamp() + interval '500 s' WHERE user_id = $1",
        name,
    )
    await other.execute("COMMIT")
    assert (await racing).status == 429


def test_two_served_processes_accept_at_most_burst_plus_rate_times_elapsed(
    make_migrated_database: Callable[[], str],
) -> None:
    """One user alternating between two processes gets one limit, not one per process."""
    rate, burst = 5.0, 3
    env = environment(
        DATABASE_URL=make_migrated_database(),
        CHATSVC_USER_WRITE_RATE=str(rate),
        CHATSVC_USER_WRITE_BURST=str(burst),
        CHATSVC_LOG_LEVEL="WARNING",
    )
    alice = someone()
    with serving(env) as (first, _), serving(env) as (second, _):
        outcomes: list[int] = []
        started = time.monotonic()
        while time.monotonic() - started < 2:
            for base in (first, second):
                status, body = call("POST", f"{base}/chats/", {"title": "served"}, headers=alice)
                assert status in (201, 429), body
                outcomes.append(status)
        elapsed = time.monotonic() - started  # from before the first write to after the last
    accepted = outcomes.count(201)
    assert outcomes[:burst] == [201] * burst
    # Without a shared limit each process would accept about burst + rate * elapsed.
    assert accepted <= burst + rate * elapsed + 1, (accepted, elapsed, len(outcomes))
    assert outcomes.count(429) > accepted  # the bound was reached, many times over


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    assert [
        limits.retry_after_seconds(timedelta(seconds=seconds)) for seconds in (0, 0.000001, 1, 1.000001, 99.5)
    ] == [1, 1, 1, 2, 100]


async def test_the_purge_deletes_full_buckets_only_in_batches(empty_database_url: str) -> None:
    settings = Settings(**CREDENTIALS, database_url=empty_database_url, user_write_rate=NO_REFILL)
    database = await open_database(settings)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await conn.execute(
            "INSERT INTO user_write_buckets (user_id, full_at, granted)"
            " SELECT 'user-' || n, clock_timestamp() + CASE WHEN n % 3 = 0 THEN interval '1 hour'"
            " ELSE interval '-1 s' END, 0 FROM generate_series(1, 20) AS n"
        )
        # 14 full ones go, in batches of 3 users; the 6 not full stay.
        assert await limits.purge_full_buckets(database, batch_size=3) == 14
        kept = await conn.fetch("SELECT user_id FROM user_write_buckets ORDER BY user_id")
        assert sorted(int(row["user_id"].removeprefix("user-")) for row in kept) == [3, 6, 9, 12, 15, 18]
        # A purged user's bucket is full, as it was: a whole burst.
        assert await limits.purge_full_buckets(database, batch_size=3) == 0
        limit = limits.WriteLimit(NO_REFILL, 2)
        for _ in range(2):
            await limits.charge_write(database, limit, "user-1")
        with pytest.raises(limits.TooManyWrites):
            await limits.charge_write(database, limit, "user-1")
    finally:
        await conn.close()
        await database.close()


async def test_serve_purges_full_buckets_with_the_keys(
    aiohttp_client: AiohttpClient, settings: Settings, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hourly (KEY_PURGE_INTERVAL) in every serving process; here every 50 ms, to see it happen."""
    name = f"user-{secrets.token_hex(6)}"
    await db.execute(
        "INSERT INTO user_write_buckets (user_id, full_at, granted) VALUES ($1, clock_timestamp(), 0)",
        name,
    )
    monkeypatch.setattr(app_module, "KEY_PURGE_INTERVAL", 0.05)
    await aiohttp_client(create_app(settings))
    deadline = time.monotonic() + 10
    while await db.fetchval("SELECT count(*) FROM user_write_buckets WHERE user_id = $1", name):
        assert time.monotonic() < deadline, "the full bucket was never purged"
        await asyncio.sleep(0.05)


async def test_the_purge_keeps_a_bucket_a_charge_takes_from_meanwhile(empty_database_url: str) -> None:
    """The purge saw the bucket full, but a charge had its row: the purge waits for it and
    then sees the bucket not full any more."""
    database = await open_database(Settings(**CREDENTIALS, database_url=empty_database_url))
    db, other = await asyncpg.connect(empty_database_url), await asyncpg.connect(empty_database_url)
    try:
        await db.execute(
            "INSERT INTO user_write_buckets (user_id, full_at, granted)"
            " VALUES ('alice', clock_timestamp() - interval '1 s', 0)"
        )
        await other.execute("BEGIN")
        await other.execute("UPDATE user_write_buckets SET full_at = clock_timestamp() + interval '1 hour'")
        purging = await waiting_on_a_lock(db, limits.purge_full_buckets(database))
        await other.execute("COMMIT")
        assert await purging == 0
        assert await db.fetchval("SELECT count(*) FROM user_write_buckets") == 1
    finally:
        await other.close()
        await db.close()
        await database.close()


@pytest.mark.parametrize("user_id", ["", "a b", "é", "x" * 256, "tab\there"])
async def test_the_table_takes_only_user_ids(db: asyncpg.Connection, user_id: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "INSERT INTO user_write_buckets (user_id, full_at, granted) VALUES ($1, now(), 0)", user_id
        )
    await db.execute(  # the longest, and every visible ASCII character
        "INSERT INTO user_write_buckets (user_id, full_at, granted) VALUES ($1, now(), 0), ($2, now(), 0)"
        " ON CONFLICT DO NOTHING",
        "x" * 255,
        "".join(map(chr, range(0x21, 0x7F))),
    )


async def test_every_protected_write_is_charged_and_documents_429(client: Client) -> None:
    """Every route but GET (and HEAD) behind a credential is charged (chatsvc/app.py), its
    operation lists 429 with Retry-After, and take_user_writes's header names it."""
    doc = await (await client.get("/openapi.json")).json()
    writes = set()
    for path, methods in ROUTES.items():
        for method, route in methods.items():
            responses = doc["paths"][openapi.documented_path(path)][method.lower()]["responses"]
            limited = route.operation.access != "public" and method not in ("GET", "HEAD")
            assert ("429" in responses) == limited, (method, path)
            if limited:
                writes.add((method, path))
                assert "Retry-After" in responses["429"]["headers"]
                assert responses["429"]["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }
    assert writes >= {
        ("POST", "/chats"),
        ("POST", "/chats/{chat_id}/messages"),
        ("DELETE", "/chats/{chat_id}"),
    }
    assert STATEMENTS["take_user_writes"].routes == writes


# -- sends: charged by the batch's own statement (sql/messages/create_messages.sql) --


async def send_as(client: Client, chat_id: int, headers: dict[str, str], **extra: str) -> ClientResponse:
    response = await client.post(
        f"/chats/{chat_id}/messages/", json={"text": "hi"}, headers={**headers, **extra}
    )
    await response.read()
    return response


async def member_chat(client: Client, name: str) -> int:
    response = await client.post("/chats/", json={"title": "sends", "members": [{"user": name}]})
    chat_id: int = (await response.json())["id"]
    return chat_id


async def test_a_users_sends_past_the_burst_are_429_and_store_nothing(
    limited: Limited, db: asyncpg.Connection
) -> None:
    client = await limited(rate=NO_REFILL, burst=3)
    name = f"user-{secrets.token_hex(6)}"
    chat_id = await member_chat(client, name)
    statuses = [(await send_as(client, chat_id, user(name))).status for _ in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    refused = await send_as(client, chat_id, user(name))
    await problem(refused, 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert await db.fetchval("SELECT count(*) FROM messages WHERE chat_id = $1", chat_id) == 3
    keyed = await send_as(client, chat_id, user(name), **{"Idempotency-Key": "over-the-limit"})
    assert keyed.status == 429  # a keyed send is charged before it runs
    assert await db.fetchval("SELECT count(*) FROM message_idempotency_keys WHERE chat_id = $1", chat_id) == 0


async def test_concurrent_sends_of_one_user_on_two_apps_store_exactly_the_burst(
    limited: Limited, db: asyncpg.Connection
) -> None:
    """Sends that arrive together share a statement, which charges them all: a user's
    first sends in it take the tokens there are, the rest are 429."""
    first, second = await limited(rate=NO_REFILL, burst=7), await limited(rate=NO_REFILL, burst=7)
    name = f"user-{secrets.token_hex(6)}"
    chats = [await member_chat(first, name) for _ in range(3)]
    answers = await asyncio.gather(
        *(send_as(client, chats[n % 3], user(name)) for n, client in enumerate((first, second) * 20))
    )
    assert sorted(answer.status for answer in answers) == [201] * 7 + [429] * 33
    stored = await db.fetchval("SELECT count(*) FROM messages WHERE chat_id = ANY ($1::bigint[])", chats)
    assert stored == 7


async def test_sends_and_other_writes_share_one_bucket(limited: Limited) -> None:
    client = await limited(rate=NO_REFILL, burst=3)
    name = f"user-{secrets.token_hex(6)}"
    chat_id = await member_chat(client, name)
    assert (await create(client, user(name))).status == 201
    assert (await send_as(client, chat_id, user(name))).status == 201
    assert (await create(client, user(name))).status == 201
    assert (await send_as(client, chat_id, user(name))).status == 429
    assert (await create(client, user(name))).status == 429


async def test_a_send_that_waits_for_a_busy_chat_is_charged_once(
    limited: Limited, db: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    """The batch charged it, skipped its busy chat, and it goes alone without a second charge."""
    client = await limited(rate=NO_REFILL, burst=2)
    name = f"user-{secrets.token_hex(6)}"
    chat_id = await member_chat(client, name)
    await other.execute("SELECT FROM chats WHERE id = $1 FOR NO KEY UPDATE", chat_id)
    waiting = await waiting_on_a_lock(db, send_as(client, chat_id, user(name)))
    await other.execute("COMMIT")
    assert (await waiting).status == 201
    assert (await send_as(client, chat_id, user(name))).status == 201
    assert (await send_as(client, chat_id, user(name))).status == 429


async def test_a_users_message_deletions_past_the_burst_are_429_and_delete_nothing(
    limited: Limited, db: asyncpg.Connection
) -> None:
    """Deletions of messages are charged by their batch's statement
    (sql/messages/delete_messages.sql): a refused one deletes nothing, and one the
    statement refuses otherwise (404) counts as any write does."""
    client = await limited(rate=NO_REFILL, burst=3)
    name = f"user-{secrets.token_hex(6)}"
    chat_id = await member_chat(client, name)
    ids = []
    for _ in range(4):  # the server sends in the user's name: no charge
        sent = await client.post(f"/chats/{chat_id}/messages/", json={"text": "hi", "author": name})
        ids.append((await sent.json())["id"])
    await problem(await client.delete(f"/chats/{chat_id}/messages/{2**62}", headers=user(name)), 404)
    answers = [
        await client.delete(f"/chats/{chat_id}/messages/{message_id}", headers=user(name))
        for message_id in ids
    ]
    assert [answer.status for answer in answers] == [204, 204, 429, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert (
        await db.fetchval("SELECT array_agg(id ORDER BY id) FROM messages WHERE chat_id = $1", chat_id)
        == ids[2:]
    )


def _charge_upsert(name: str, per_write: str, burst: str) -> str:
    """The bucket upsert of a statement, comments and layout dropped, its parameters renamed."""
    text = STATEMENTS[name].text
    upsert = text[
        text.index("INSERT INTO user_write_buckets") : text.index("RETURNING user_id, full_at, granted")
    ]
    code = " ".join(line.split("--")[0] for line in upsert.splitlines())
    return " ".join(code.replace(per_write, "PER_WRITE").replace(burst, "BURST").split())


@pytest.mark.parametrize(
    ("statement", "per_write", "burst"),
    [
        ("create_messages", "$6", "$7"),
        ("edit_messages", "$7", "$8"),
        ("delete_messages", "$6", "$7"),
        ("create_chat", "$6", "$7"),
    ],
)
def test_a_batch_that_charges_its_own_writes_does_the_same_upsert_as_every_other_write(
    statement: str, per_write: str, burst: str
) -> None:
    """Batched sends, edits, message deletions and creates are charged by a copy of
    take_user_writes.sql's upsert in their own statement (one round trip fewer per
    batch): each copy must count alike. A copy rather than a function the five call,
    so that each statement reads whole on its own."""
    assert _charge_upsert(statement, per_write, burst) == _charge_upsert("take_user_writes", "$2", "$3")
