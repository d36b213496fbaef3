"""GET /chats/{id}/events: Server-Sent Events through LISTEN/NOTIFY (contract v2)."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from pytest_aiohttp import AiohttpClient

from chatsvc import queries
from chatsvc.app import create_app
from chatsvc.db import DatabaseUnavailable, connector
from chatsvc.keys import EVENTS
from chatsvc.live import stream as live_stream
from chatsvc.live.frames import TOO_SLOW
from chatsvc.live.hub import DEAF, EventHub
from chatsvc.settings import Settings
from tests.api import create_chat, error_locations, problem, send, waiting_on_a_lock
from tests.conftest import Client
from tests.credentials import CREDENTIALS, with_server_key
from tests.sse import EventStream

PER_WRITE = timedelta(seconds=0.1)  # create_messages.sql charges users only: these are the server


async def open_stream(
    client: Client, chat_id: int, query: str = "", headers: Mapping[str, str] | None = None
) -> EventStream:
    """An event stream, read past its opening frame (the subscription is live from there)."""
    response = await client.get(f"/chats/{chat_id}/events{query}", headers=headers)
    assert response.headers["Cache-Control"] == "no-cache"
    stream = EventStream(response)
    opening = await stream.frame()
    assert opening.retry == "1000" and opening.event is None
    return stream


async def send_many(client: Client, chat_id: int, count: int, prefix: str = "m") -> list[dict[str, Any]]:
    return [await send(client, chat_id, f"{prefix}{n}") for n in range(count)]


# -- live events ------------------------------------------------------------------


async def test_a_fresh_stream_gets_no_history_then_each_new_message(client: Client) -> None:
    chat = await create_chat(client)
    await send_many(client, chat["id"], 3, "old")
    stream = await open_stream(client, chat["id"])
    sent = await send_many(client, chat["id"], 3, "new")
    assert await stream.messages(3) == sent
    stream.close()


async def test_message_events_carry_the_exact_message_json(client: Client) -> None:
    chat = await create_chat(client)
    stream = await open_stream(client, chat["id"])
    texts = [
        "line one\nline two\r\nthree",  # newlines stay inside the one data: line
        'quotes " and \\ backslash, emoji 🎉, RTL שלום',
        "\u2028 separators \u2029 and control \x01\x1f",
        "長" * 5000,  # 5000 code points, 15000 UTF-8 bytes: several NOTIFY payloads
        "\x01" * 5000,  # 30000 bytes once JSON-escaped
        "x" * 5000,
    ]
    sent = [await send(client, chat["id"], text) for text in texts]
    assert await stream.messages(len(sent)) == sent
    stream.close()


async def test_events_only_for_their_own_chat(client: Client) -> None:
    watched, other = await create_chat(client), await create_chat(client)
    stream = await open_stream(client, watched["id"])
    await send(client, other["id"], "elsewhere")
    mine = await send(client, watched["id"], "here")
    assert await stream.messages(1) == [mine]
    stream.close()


async def test_many_subscribers_of_one_chat_each_get_every_message(client: Client) -> None:
    chat = await create_chat(client)
    streams = [await open_stream(client, chat["id"]) for _ in range(20)]
    sent = await send_many(client, chat["id"], 10)
    for stream in streams:
        assert await stream.messages(10) == sent
        stream.close()


async def test_one_listening_connection_per_process_whatever_the_subscribers(
    client: Client, db: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    streams = [await open_stream(client, chat["id"]) for _ in range(15)]
    listeners = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'chatsvc-events' AND datname = current_database()"
    )
    # This test's app and none other hold one: other tests' apps are closed by now.
    assert listeners == 1
    for stream in streams:
        stream.close()


async def test_a_send_on_one_process_reaches_a_listener_on_another(
    aiohttp_client: AiohttpClient, client: Client, settings: Settings
) -> None:
    other_process = await aiohttp_client(create_app(settings))
    chat = await create_chat(client)
    stream = await open_stream(other_process, chat["id"])
    sent = await send_many(client, chat["id"], 5)
    assert await stream.messages(5) == sent
    assert (await client.delete(f"/chats/{chat['id']}")).status == 204
    assert (await stream.event()).event == "chat_deleted"
    stream.close()


async def test_heartbeat_comments_keep_a_quiet_stream_open(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings.model_copy(update={"sse_heartbeat": 0.2})))
    chat = await create_chat(client)
    stream = await open_stream(client, chat["id"])
    for _ in range(3):
        frame = await stream.frame(within=2)
        assert frame.comments and frame.event is None and frame.id is None
    message = await send(client, chat["id"])
    assert await stream.messages(1) == [message]
    stream.close()


async def test_heartbeats_keep_coming_while_messages_flow(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings.model_copy(update={"sse_heartbeat": 0.3})))
    chat = await create_chat(client)
    stream = await open_stream(client, chat["id"])
    loop = asyncio.get_running_loop()
    started, comments, messages = loop.time(), 0, 0
    while loop.time() - started < 1.5:
        await send(client, chat["id"])  # busier than the heartbeat
        async with asyncio.timeout(10):  # a liveness bound: the message comes in milliseconds
            while True:
                frame = await stream.frame()
                comments += bool(frame.comments)
                if frame.event == "message":
                    messages += 1
                    break
    assert messages > 5
    assert comments >= 3  # about one per 0.3 s, although the stream never fell quiet
    stream.close()


def test_the_heartbeat_is_at_most_15_seconds_by_default() -> None:
    assert Settings().sse_heartbeat == 15


# -- resuming ---------------------------------------------------------------------


async def test_a_reconnect_with_last_event_id_gets_exactly_the_missed_messages_then_live_ones(
    client: Client,
) -> None:
    chat = await create_chat(client)
    stream = await open_stream(client, chat["id"])
    await send_many(client, chat["id"], 2)
    seen = await stream.messages(2)
    stream.close()
    missed = await send_many(client, chat["id"], 4, "missed")
    resumed = await open_stream(client, chat["id"], headers={"Last-Event-ID": str(seen[-1]["id"])})
    assert await resumed.messages(4) == missed
    live = await send_many(client, chat["id"], 2, "live")
    assert await resumed.messages(2) == live
    resumed.close()


async def test_a_stream_resumed_while_a_send_is_in_flight_receives_that_message(
    client: Client, db: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    """The send's trigger ran before the stream registered (so it did not notify), and
    it commits after: registering waits for the chat's row lock, so the stream's
    history read then sees the message (sql/events/watch_chat.sql)."""
    chat = await create_chat(client)
    seen = await send(client, chat["id"], "seen")
    await other.fetchrow(
        queries.CREATE_MESSAGES, [chat["id"]], ["in flight"], [None], [None], [], PER_WRITE, 50
    )
    opening = await waiting_on_a_lock(
        db,
        open_stream(client, chat["id"], headers={"Last-Event-ID": str(seen["id"])}),
        application="chatsvc-events",
    )
    await other.execute("COMMIT")
    stream = await opening
    assert [message["text"] for message in await stream.messages(1)] == ["in flight"]
    live = await send(client, chat["id"], "live")
    assert await stream.messages(1) == [live]
    stream.close()


async def test_after_resumes_like_last_event_id_and_the_header_wins(client: Client) -> None:
    chat = await create_chat(client)
    sent = await send_many(client, chat["id"], 5)
    by_query = await open_stream(client, chat["id"], f"?after={sent[1]['id']}")
    assert await by_query.messages(3) == sent[2:]
    by_query.close()
    both = await open_stream(
        client, chat["id"], f"?after={sent[0]['id']}", headers={"Last-Event-ID": str(sent[3]["id"])}
    )
    assert await both.messages(1) == sent[4:]
    later = await send(client, chat["id"], "later")
    assert await both.messages(1) == [later]
    both.close()


async def test_after_zero_replays_a_long_history_in_order_then_goes_live(client: Client) -> None:
    chat = await create_chat(client)
    sent = await send_many(client, chat["id"], 230)  # more than one backfill batch
    stream = await open_stream(client, chat["id"], "?after=0")
    assert await stream.messages(230) == sent
    live = await send(client, chat["id"], "live")
    assert await stream.messages(1) == [live]
    stream.close()


async def test_reconnecting_again_and_again_while_others_send_loses_and_repeats_nothing(
    client: Client,
) -> None:
    chat = await create_chat(client)
    start = await send(client, chat["id"], "start")
    done = asyncio.Event()
    sent: list[int] = []

    async def sender() -> None:
        for n in range(150):
            sent.append((await send(client, chat["id"], f"s{n}"))["id"])
            if n % 10 == 0:
                await asyncio.sleep(0.01)

    async def reader() -> list[int]:
        received: list[int] = []
        last = start["id"]
        rng = random.Random(7)
        deadline = asyncio.get_running_loop().time() + 120  # a liveness bound: a lost message ends the test
        while not (done.is_set() and received and received[-1] == max(sent)):
            assert asyncio.get_running_loop().time() < deadline, f"never caught up: {received[-5:]}"
            stream = await open_stream(client, chat["id"], headers={"Last-Event-ID": str(last)})
            try:
                for _ in range(rng.randint(1, 12)):
                    frame = await stream.event(within=2)
                    received.append(int(frame.id or 0))
                    last = received[-1]
            except TimeoutError:
                pass  # caught up with the senders for now
            stream.close()
        return received

    reading = asyncio.create_task(reader())
    await asyncio.gather(sender(), sender())
    done.set()
    received = await asyncio.wait_for(reading, 60)
    assert received == sorted(sent)


# -- the chat's end ---------------------------------------------------------------


async def test_deleting_the_chat_sends_every_earlier_message_then_chat_deleted_and_ends(
    client: Client,
) -> None:
    chat = await create_chat(client)
    stream = await open_stream(client, chat["id"])
    # Sent and deleted back to back: the last message must still arrive first,
    # even a long one that travels in several NOTIFY payloads.
    sent = [*await send_many(client, chat["id"], 3), await send(client, chat["id"], "長" * 5000)]
    assert (await client.delete(f"/chats/{chat['id']}")).status == 204
    assert await stream.messages(4) == sent
    deleted = await stream.event()
    assert deleted.event == "chat_deleted" and deleted.id is None
    assert deleted.json() == {"chat_id": chat["id"]}  # a data: line, which EventSource needs
    assert await stream.ends() == []
    await problem(await client.get(f"/chats/{chat['id']}/events"), 404)


async def test_a_resuming_stream_of_a_chat_deleted_meanwhile_is_404(client: Client) -> None:
    chat = await create_chat(client)
    message = await send(client, chat["id"])
    assert (await client.delete(f"/chats/{chat['id']}")).status == 204
    response = await client.get(f"/chats/{chat['id']}/events", headers={"Last-Event-ID": str(message["id"])})
    await problem(response, 404)


# -- errors -----------------------------------------------------------------------


async def test_a_missing_chat_is_404(client: Client) -> None:
    await problem(await client.get("/chats/9223372036854775807/events"), 404)
    await problem(await client.get("/chats/0/events"), 404)
    await problem(await client.get("/chats/x/events?after=1"), 404)


@pytest.mark.parametrize("value", ["abc", "-1", "", "1.5", " 5x", "0x10"])
async def test_a_bad_resume_point_is_422(client: Client, value: str) -> None:
    chat = await create_chat(client)
    body = await problem(await client.get(f"/chats/{chat['id']}/events", params={"after": value}), 422)
    assert error_locations(body) == [["query", "after"]]
    if value.strip():  # aiohttp's client drops an empty header
        response = await client.get(f"/chats/{chat['id']}/events", headers={"Last-Event-ID": value})
        assert error_locations(await problem(response, 422)) == [["header", "Last-Event-ID"]]
    # A bad ?after= is 422 even when a good Last-Event-ID decides where to resume.
    response = await client.get(
        f"/chats/{chat['id']}/events", params={"after": value}, headers={"Last-Event-ID": "0"}
    )
    assert response.status == 422  # before reading: a stream opened by mistake never ends
    assert error_locations(await problem(response, 422)) == [["query", "after"]]


# -- slow subscribers, lost listener, shutdown --------------------------------------


async def test_a_subscriber_that_falls_behind_is_dropped_without_holding_up_the_others(
    database_url: str, db: asyncpg.Connection
) -> None:
    """The hub itself, on real NOTIFYs: one subscriber reads, the other never does."""
    hub = EventHub(
        connector(Settings(**CREDENTIALS, database_url=database_url), "chatsvc-events"),
        lambda token: db.fetchval(queries.NOTIFY_LISTENER_CHECK, token),
        backlog=5,
    )
    await hub.start()
    try:
        chat_id = await db.fetchval("INSERT INTO chats (title) VALUES ('slow') RETURNING id")
        with hub.subscribe(chat_id) as reading, hub.subscribe(chat_id) as stalled:
            assert await hub.watch(chat_id)
            received = []
            for n in range(12):
                await db.fetchrow(
                    queries.CREATE_MESSAGES, [chat_id], [f"m{n}"], [None], [None], [], PER_WRITE, 50
                )
                event = await reading.next(5)
                assert event is not None
                received.append(event.event_id)
            assert len(set(received)) == 12
            assert stalled.ended
            pending = [await stalled.next(1) for _ in range(7)]
            # What it had, then the end, then nothing: no more is kept for it.
            assert [event.event_id for event in pending[:5] if event] == received[:5]
            assert pending[5:] == [TOO_SLOW, None]
            assert hub.subscriber_count == 2
        assert hub.subscriber_count == 0
    finally:
        await hub.close()


async def test_streams_end_cleanly_when_the_listener_connection_is_lost_and_resume_after(
    client: Client, db: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    stream = await open_stream(client, chat["id"])
    first = await send(client, chat["id"], "before")
    assert await stream.messages(1) == [first]
    await db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'chatsvc-events' AND datname = current_database()"
    )
    frames = await stream.ends()
    assert frames and "reconnect with Last-Event-ID" in frames[-1].comments[0]
    missed = await send(client, chat["id"], "while reconnecting")
    for _ in range(100):  # the listener comes back by itself
        response = await client.get(
            f"/chats/{chat['id']}/events", headers={"Last-Event-ID": str(first["id"])}
        )
        if response.status != 503:
            break
        assert response.headers["Retry-After"]
        response.close()
        await asyncio.sleep(0.05)
    resumed = EventStream(response)
    assert await resumed.messages(1) == [missed]
    live = await send(client, chat["id"], "after")
    assert await resumed.messages(1) == [live]
    resumed.close()


async def until(condition: Callable[[], bool], seconds: float = 15) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within the time")


async def test_the_listener_serves_streams_only_once_it_hears_its_own_check_at_start_and_after_a_reconnect(
    database_url: str, db: asyncpg.Connection
) -> None:
    """A LISTEN that hears nothing (as one through a transaction pooler) serves no stream. Here
    the listener is deaf because its checks are not sent while `deaf` is set."""
    deaf = asyncio.Event()

    async def send_check(token: str) -> None:
        if not deaf.is_set():
            await db.fetchval(queries.NOTIFY_LISTENER_CHECK, token)

    deaf.set()
    hub = EventHub(
        connector(Settings(**CREDENTIALS, database_url=database_url), "chatsvc-events"), send_check
    )
    await hub.start()
    try:
        assert not hub.listening and hub.not_listening_because == DEAF
        with pytest.raises(DatabaseUnavailable), hub.subscribe(1):
            pass
        deaf.clear()
        await until(lambda: hub.listening)  # the next attempt hears its check
        deaf.set()
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'chatsvc-events' AND datname = current_database()"
        )
        # Reconnected, and checked again: deaf again.
        await until(lambda: not hub.listening and hub.not_listening_because == DEAF)
    finally:
        await hub.close()


async def test_streams_end_cleanly_on_shutdown(aiohttp_client: AiohttpClient, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    chat = await create_chat(client)
    stream = await open_stream(client, chat["id"])
    await client.app.shutdown()  # what SIGTERM runs before waiting for in-flight requests
    frames = await stream.ends()
    assert "shutting down" in frames[-1].comments[0]
    assert client.app[EVENTS].subscriber_count == 0


async def test_a_client_that_leaves_is_unsubscribed(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings.model_copy(update={"sse_heartbeat": 0.1})))
    chat = await create_chat(client)
    stream = await open_stream(client, chat["id"])
    assert client.app[EVENTS].subscriber_count == 1
    stream.close()
    for _ in range(100):  # noticed at the next heartbeat at the latest
        if client.app[EVENTS].subscriber_count == 0:
            break
        await asyncio.sleep(0.05)
    assert client.app[EVENTS].subscriber_count == 0


async def test_foreign_notifications_on_the_channel_are_ignored(
    client: Client, db: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    stream = await open_stream(client, chat["id"])
    for junk in ("junk", "message x", f"message {chat['id']} 1 1/1", "chat_deleted", "chat_deleted x", ""):
        await db.execute("SELECT pg_notify('chatsvc_events', $1)", junk)
    message = await send(client, chat["id"])
    assert await stream.messages(1) == [message]
    stream.close()


async def test_a_live_event_for_a_message_the_stream_has_sent_is_not_repeated(
    client: Client, db: asyncpg.Connection
) -> None:
    """A resumed stream's history and its live events overlap (it subscribes before it
    reads); the overlap is skipped by id. Here the repeat is forced: the triggers' own
    notification for a message already sent, sent again."""
    chat = await create_chat(client)
    seen = await send(client, chat["id"], "seen")
    missed = await send(client, chat["id"], "missed")
    stream = await open_stream(client, chat["id"], headers={"Last-Event-ID": str(seen["id"])})
    assert await stream.messages(1) == [missed]
    await db.execute(
        "SELECT pg_notify('chatsvc_events', format('message %s %s 1/1 %s', chat_id, id, to_json(m)))"
        " FROM (SELECT id, chat_id, text, created_at FROM messages WHERE id = $1) AS m",
        missed["id"],
    )
    live = await send(client, chat["id"], "live")
    assert await stream.messages(1) == [live]  # not missed a second time
    stream.close()


async def test_a_resume_point_past_every_id_is_accepted_and_sends_nothing_below_it(client: Client) -> None:
    chat = await create_chat(client)
    await send(client, chat["id"], "before")
    stream = await open_stream(client, chat["id"], headers={"Last-Event-ID": "9" * 5000})
    await send(client, chat["id"], "after")  # its id is below the client's: it has "seen" it
    assert (await client.delete(f"/chats/{chat['id']}")).status == 204
    assert (await stream.event()).event == "chat_deleted"
    stream.close()


# -- who pays for NOTIFY --------------------------------------------------------


async def notifications_during(listener: asyncio.Queue[str], action: Awaitable[Any]) -> list[str]:
    await action
    await asyncio.sleep(0.3)  # a NOTIFY arrives within milliseconds of its commit
    heard = []
    while not listener.empty():
        heard.append(listener.get_nowait())
    return heard


async def watchers(db: asyncpg.Connection, chat_id: int) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM chat_listeners WHERE chat_id = $1", chat_id)
    return count


async def eavesdrop(database_url: str) -> tuple[asyncpg.Connection, asyncio.Queue[str]]:
    """A connection of its own listening on the events channel, and what it hears."""
    heard: asyncio.Queue[str] = asyncio.Queue()
    eavesdropper = await asyncpg.connect(database_url)
    await eavesdropper.add_listener("chatsvc_events", lambda *args: heard.put_nowait(args[-1]))
    return eavesdropper, heard


async def test_sends_notify_only_while_some_stream_watches_their_chat(
    aiohttp_client: AiohttpClient, settings: Settings, db: asyncpg.Connection, database_url: str
) -> None:
    # Heartbeats every 0.1 s: the service notices a client has gone at its next write.
    client = await aiohttp_client(create_app(settings.model_copy(update={"sse_heartbeat": 0.1})))
    chat = await create_chat(client)
    eavesdropper, heard = await eavesdrop(database_url)
    try:
        assert await notifications_during(heard, send(client, chat["id"], "unwatched")) == []
        stream = await open_stream(client, chat["id"])
        assert await watchers(db, chat["id"]) == 1
        second = await open_stream(client, chat["id"])  # the same process: still one registration
        assert await watchers(db, chat["id"]) == 1
        watched = await notifications_during(heard, send(client, chat["id"], "watched"))
        assert [payload.split(" ")[0] for payload in watched] == ["message"]
        assert [m["text"] for m in await stream.messages(1)] == ["watched"]
        stream.close()
        second.close()
        for _ in range(100):  # unregistered once the process notices its last stream has gone
            if await watchers(db, chat["id"]) == 0:
                break
            await asyncio.sleep(0.05)
        assert await watchers(db, chat["id"]) == 0
        assert await notifications_during(heard, send(client, chat["id"], "unwatched again")) == []
        # A stream resuming over the unwatched gap gets what was sent meanwhile.
        resumed = await open_stream(client, chat["id"], "?after=0")
        assert [m["text"] for m in await resumed.messages(3)] == ["unwatched", "watched", "unwatched again"]
        resumed.close()
    finally:
        await eavesdropper.close()


SENDS_OF_ONE: dict[
    str, Callable[[int], tuple[Any, ...]]
] = {  # each send statement: one message as the server
    "create_message": lambda chat_id: (queries.CREATE_MESSAGE, chat_id, "text", None, None, []),
    "create_messages": lambda chat_id: (
        queries.CREATE_MESSAGES,
        [chat_id],
        ["text"],
        [None],
        [None],
        [],
        PER_WRITE,
        50,
    ),
    "create_message_once": lambda chat_id: (
        queries.CREATE_MESSAGE_ONCE,
        chat_id,
        "text",
        None,
        None,
        [],
        "key",
        "fingerprint",
    ),
}


@pytest.mark.parametrize("statement", SENDS_OF_ONE)
async def test_a_send_to_a_followed_chat_commits_without_waiting_for_its_flush_and_says_so(
    client: Client, db: asyncpg.Connection, statement: str
) -> None:
    """The flush itself (sql/events/flush_commits.sql, after such a send) is what
    test_faults.py's followed crash proves; this pins which sends need it."""
    for followed in (False, True):
        chat = await create_chat(client)
        if followed:  # as a process's listener registers (sql/events/watch_chat.sql)
            await db.execute("INSERT INTO chat_listeners VALUES ($1, pg_backend_pid())", chat["id"])
        transaction = db.transaction()  # rolled back: only the transaction's setting is looked at
        await transaction.start()
        try:
            await db.execute("SET LOCAL synchronous_commit = on")  # the tests' server runs with it off
            rows = await db.fetch(*SENDS_OF_ONE[statement](chat["id"]))
            assert [row["unflushed"] for row in rows] == [followed]
            assert await db.fetchval("SHOW synchronous_commit") == ("off" if followed else "on")
        finally:
            await transaction.rollback()


async def test_a_watched_chat_deleted_takes_its_registrations_with_it(
    client: Client, db: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    stream = await open_stream(client, chat["id"])
    assert await watchers(db, chat["id"]) == 1
    assert (await client.delete(f"/chats/{chat['id']}")).status == 204
    assert (await stream.event()).event == "chat_deleted"
    assert await watchers(db, chat["id"]) == 0


async def test_a_send_with_an_idempotency_key_is_live_once_and_its_retry_is_not_announced(
    client: Client, database_url: str
) -> None:
    chat = await create_chat(client)
    stream = await open_stream(client, chat["id"])
    eavesdropper, heard = await eavesdrop(database_url)
    try:

        async def keyed_send() -> None:
            response = await client.post(
                f"/chats/{chat['id']}/messages/", json={"text": "once"}, headers={"Idempotency-Key": "k1"}
            )
            assert response.status == 201

        assert len(await notifications_during(heard, keyed_send())) == 1
        assert await notifications_during(heard, keyed_send()) == []  # a replay stores nothing
        assert [m["text"] for m in await stream.messages(1)] == ["once"]
        after = await send(client, chat["id"], "next")
        assert [m["id"] for m in await stream.messages(1)] == [after["id"]]  # nothing in between
    finally:
        await eavesdropper.close()
        stream.close()


async def test_registrations_of_gone_listeners_are_pruned_when_a_listener_connects(
    client: Client, db: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    stream = await open_stream(client, chat["id"])
    own = await db.fetchval("SELECT listener_pid FROM chat_listeners WHERE chat_id = $1", chat["id"])
    # A process that was killed left this behind (no backend has this pid).
    gone = await db.fetchval("SELECT max(pid) + 100000 FROM pg_stat_activity")
    await db.execute("INSERT INTO chat_listeners VALUES ($1, $2)", chat["id"], gone)
    await db.execute("SELECT pg_terminate_backend($1)", own)
    await stream.ends()
    for _ in range(100):  # the listener reconnects by itself, and prunes
        if not await db.fetchval(
            "SELECT count(*) FROM chat_listeners WHERE listener_pid = ANY($1::int[])", [own, gone]
        ):
            break
        await asyncio.sleep(0.05)
    assert not await db.fetchval(
        "SELECT count(*) FROM chat_listeners WHERE listener_pid = ANY($1::int[])", [own, gone]
    )


async def test_streams_past_the_per_process_limit_get_503_and_the_rest_keeps_working(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    limited = settings.model_copy(update={"sse_max_streams": 2, "sse_heartbeat": 0.1})
    client = await aiohttp_client(create_app(limited))
    chat = await create_chat(client)
    streams = [await open_stream(client, chat["id"]) for _ in range(2)]
    refused = await client.get(f"/chats/{chat['id']}/events")
    await problem(refused, 503)
    assert refused.headers["Retry-After"]
    assert (await client.get(f"/chats/{chat['id']}")).status == 200  # other requests are served
    message = await send(client, chat["id"])
    for stream in streams:
        assert await stream.messages(1) == [message]
    streams.pop().close()
    for _ in range(100):  # a place frees once the service notices the client left
        response = await client.get(f"/chats/{chat['id']}/events")
        if response.status == 200:
            break
        response.close()
        await asyncio.sleep(0.05)
    assert response.status == 200
    assert client.app[EVENTS].subscriber_count == 2
    response.close()
    streams[0].close()


async def test_a_client_that_stops_reading_is_cut_off_after_the_send_timeout(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SEND_TIMEOUT is 30 s; here 0.5 s. The client's socket takes little and is never read,
    so once the kernel's buffers and the transport's are full, a frame cannot be written."""
    assert live_stream.SEND_TIMEOUT == 30  # as the README says
    monkeypatch.setattr(live_stream, "SEND_TIMEOUT", 0.5)
    chat = await create_chat(client)
    assert client.server.port is not None
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", client.server.port))
    try:
        await asyncio.get_running_loop().sock_sendall(
            sock, with_server_key(f"GET /chats/{chat['id']}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        )
        hub = client.app[EVENTS]
        deadline = asyncio.get_running_loop().time() + 30  # a liveness bound
        while hub.subscriber_count == 0:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        sent = 0
        while hub.subscriber_count:  # each event is about 5 KB, and nobody reads them
            assert asyncio.get_running_loop().time() < deadline, f"still subscribed after {sent} sends"
            await send(client, chat["id"], "x" * 5000)
            sent += 1
        assert sent < 2000
    finally:
        sock.close()
    # Everything else keeps being served.
    assert (await client.get(f"/chats/{chat['id']}?limit=1")).status == 200
