"""Edits and deletions on the event stream, and resuming over them (contract v3: Authors and edits).

A client keeps its view of a chat, {message id: Message}, from the stream
alone: a `message` or `message_updated` event puts its data under its id, a
`message_deleted` event drops that id. The contract promises that a client
which reconnects with `Last-Event-ID: X` and applies what it then receives to
its view as of event X holds exactly the chat's current messages, however the
changes it missed arrive (merged or not). These tests hold the service to
that: live, after a resume (also one cut anywhere in its backfill), and
against writers on two real processes while the client reconnects at random.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from chatsvc import queries
from tests.api import create_chat, fill_chat, parse_time, problem, send
from tests.conftest import Client
from tests.credentials import SERVER, user
from tests.served import environment, serving
from tests.sse import EndOfStream, EventStream, Frame

View = dict[int, dict[str, Any]]
GetJson = Callable[[str], Awaitable[Any]]

MESSAGE_KEYS = {"id", "chat_id", "author", "text", "created_at", "edited_at"}

# The chat's newest event id, as sql/events/get_latest_event_id.sql computes where a stream starts.
LATEST_EVENT_ID = """
SELECT greatest(
    coalesce((SELECT max(id) FROM messages WHERE chat_id = $1), 0),
    coalesce((SELECT max(id) FROM message_changes WHERE chat_id = $1), 0)
)
"""


def apply(view: View, frame: Frame, chat_id: int) -> None:
    """What a client does with an event: checks its shape, then changes its view."""
    data = frame.json()
    assert frame.id is not None, frame
    if frame.event in ("message", "message_updated"):
        assert set(data) == MESSAGE_KEYS and data["chat_id"] == chat_id, frame
        if frame.event == "message":
            assert frame.id == str(data["id"]), frame  # a message's event id is its id
        view[data["id"]] = data
    elif frame.event == "message_deleted":
        assert data == {"chat_id": chat_id, "id": data["id"]}, frame
        view.pop(data["id"], None)
    else:
        raise AssertionError(f"not a change to the chat's messages: {frame}")


def brief(message: dict[str, Any]) -> dict[str, Any]:
    return message | {"text": message["text"][:40]}


def differences(view: View, chat: View) -> str:
    """What a view gets wrong about the chat, briefly (empty when they are equal)."""
    missing = sorted(set(chat) - set(view))
    extra = sorted(set(view) - set(chat))
    wrong = [(brief(view[i]), brief(chat[i])) for i in sorted(set(view) & set(chat)) if view[i] != chat[i]]
    if not (missing or extra or wrong):
        return ""
    return f"missing {missing[:10]} ({len(missing)}), extra {extra[:10]} ({len(extra)}), wrong {wrong[:3]} ({len(wrong)})"


async def chat_read(get_json: GetJson, chat_id: int) -> View:
    """Every message of the chat, from the API: its history pages, oldest first."""
    messages: View = {}
    after = 0
    while True:
        page = await get_json(f"/chats/{chat_id}/messages/?after={after}&limit=100")
        for message in page["messages"]:
            messages[message["id"]] = message
        if not page["has_more"]:
            return messages
        after = page["messages"][-1]["id"]


def json_of(client: Client) -> GetJson:
    async def get_json(path: str) -> Any:
        response = await client.get(path)
        assert response.status == 200, await response.text()
        return await response.json()

    return get_json


async def chat_read_both_ways(client: Client, chat_id: int) -> View:
    """The chat from its history pages, checked against GET /chats/{id}?limit=100 (which holds
    every message of the small chats these tests use)."""
    messages = await chat_read(json_of(client), chat_id)
    response = await client.get(f"/chats/{chat_id}?limit=100")
    assert response.status == 200
    latest = (await response.json())["messages"]
    assert len(messages) <= 100
    assert {m["id"]: m for m in latest} == messages
    return messages


async def open_stream(
    client: Client, chat_id: int, query: str = "", headers: Mapping[str, str] | None = None
) -> EventStream:
    """An event stream, read past its opening frame (subscribed from there)."""
    stream = EventStream(await client.get(f"/chats/{chat_id}/events{query}", headers=headers))
    opening = await stream.frame()
    assert opening.retry == "1000" and opening.event is None
    return stream


async def resume(client: Client, chat_id: int, after: int, how: str = "header") -> EventStream:
    if how == "header":
        return await open_stream(client, chat_id, headers={"Last-Event-ID": str(after)})
    return await open_stream(client, chat_id, f"?after={after}")


async def send_as(client: Client, chat_id: int, text: str, author: str | None) -> dict[str, Any]:
    """A send by the server in a user's name (author None: from the application)."""
    response = await client.post(f"/chats/{chat_id}/messages/", json={"text": text, "author": author})
    assert response.status == 201, await response.text()
    message: dict[str, Any] = await response.json()
    return message


async def edit(
    client: Client, chat_id: int, message_id: int, text: str, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    response = await client.patch(
        f"/chats/{chat_id}/messages/{message_id}", json={"text": text}, headers=headers
    )
    assert response.status == 200, await response.text()
    message: dict[str, Any] = await response.json()
    return message


async def delete(
    client: Client, chat_id: int, message_id: int, headers: Mapping[str, str] | None = None
) -> None:
    response = await client.delete(f"/chats/{chat_id}/messages/{message_id}", headers=headers)
    assert response.status == 204, await response.text()


async def read_until(stream: EventStream, view: View, chat_id: int, event_id: int, after: int) -> list[Frame]:
    """Applies events until the one with event_id; checks that ids only rise, from after on."""
    frames: list[Frame] = []
    previous = after
    while previous != event_id:
        frame = await stream.event()
        assert frame.id is not None and int(frame.id) > previous, (previous, frame)
        previous = int(frame.id)
        apply(view, frame, chat_id)
        frames.append(frame)
    return frames


# -- live edits and deletions -------------------------------------------------------


async def test_an_edit_arrives_as_message_updated_with_the_edited_message_under_a_newer_id(
    client: Client, db: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    stream = await open_stream(client, chat["id"])
    original = await send_as(client, chat["id"], "first", "alice")
    later = await send(client, chat["id"], "second")
    assert await stream.messages(2) == [original, later]
    edited = await edit(client, chat["id"], original["id"], "first, edited")
    assert edited["text"] == "first, edited" and edited["edited_at"] is not None
    assert parse_time(edited["edited_at"]) >= parse_time(original["created_at"])
    unchanged = ("id", "chat_id", "author", "created_at")
    assert {k: edited[k] for k in unchanged} == {k: original[k] for k in unchanged}
    assert original["edited_at"] is None and original["author"] == "alice"
    frame = await stream.event()
    assert frame.event == "message_updated"
    assert frame.json() == edited
    assert frame.id is not None and int(frame.id) > later["id"]
    # Its id is the edit's in the change log (migrations/0007), not the message's.
    logged = await db.fetchval(
        "SELECT id FROM message_changes WHERE chat_id = $1 AND message_id = $2", chat["id"], original["id"]
    )
    assert int(frame.id) == logged
    # A long edit (several NOTIFY payloads) arrives whole, and so do its successors.
    long_text = "長" * 5000
    long_edit = await edit(client, chat["id"], later["id"], long_text)
    again = await edit(client, chat["id"], original["id"], "first, edited twice")
    frames = [await stream.event(), await stream.event()]
    assert [(f.event, f.json()) for f in frames] == [
        ("message_updated", long_edit),
        ("message_updated", again),
    ]
    assert int(frame.id) < int(frames[0].id or 0) < int(frames[1].id or 0)
    stream.close()


async def test_a_deletion_arrives_as_message_deleted_with_exactly_the_chat_and_message_id(
    client: Client,
) -> None:
    chat = await create_chat(client)
    stream = await open_stream(client, chat["id"])
    doomed = await send(client, chat["id"], "doomed")
    kept = await send(client, chat["id"], "kept")
    assert await stream.messages(2) == [doomed, kept]
    await delete(client, chat["id"], doomed["id"])
    frame = await stream.event()
    assert frame.event == "message_deleted"
    assert frame.json() == {"chat_id": chat["id"], "id": doomed["id"]}
    assert frame.data == [f'{{"chat_id":{chat["id"]},"id":{doomed["id"]}}}']  # one data: line, nothing else
    assert frame.id is not None and int(frame.id) > kept["id"]
    next_message = await send(client, chat["id"], "next")
    assert await stream.messages(1) == [next_message]
    assert next_message["id"] > int(frame.id)
    stream.close()


async def test_a_mix_of_sends_edits_and_deletions_arrives_in_order_under_rising_ids(client: Client) -> None:
    chat = await create_chat(client)
    stream = await open_stream(client, chat["id"])
    rng = random.Random(16)
    alive: list[int] = []
    expected: list[tuple[str, Any]] = []
    for n in range(60):
        roll = rng.random()
        if len(alive) < 3 or roll < 0.4:
            message = await send_as(client, chat["id"], f"m{n}", rng.choice([None, "alice", "bob"]))
            alive.append(message["id"])
            expected.append(("message", message))
        elif roll < 0.75:
            expected.append(("message_updated", await edit(client, chat["id"], rng.choice(alive), f"e{n}")))
        else:
            gone = alive.pop(rng.randrange(len(alive)))
            await delete(client, chat["id"], gone)
            expected.append(("message_deleted", {"chat_id": chat["id"], "id": gone}))
    view: View = {}
    previous = 0
    for kind, data in expected:
        frame = await stream.event()
        assert (frame.event, frame.json()) == (kind, data)
        assert frame.id is not None and int(frame.id) > previous, (previous, frame)
        previous = int(frame.id)
        apply(view, frame, chat["id"])
    assert {"message_updated", "message_deleted"} <= {kind for kind, _ in expected}
    assert view == await chat_read_both_ways(client, chat["id"])
    stream.close()


# -- resuming ---------------------------------------------------------------------


async def changes_while_away(client: Client, chat_id: int, old: list[dict[str, Any]]) -> None:
    """Sends, edits and deletions of every kind a resume must carry; old: the chat's
    messages the client has seen (at least 5)."""
    for n in range(3):  # a message edited several times
        await edit(client, chat_id, old[0]["id"], f"edited {n}")
    await edit(client, chat_id, old[1]["id"], "edited, then deleted")
    await delete(client, chat_id, old[1]["id"])
    await delete(client, chat_id, old[2]["id"])  # deleted without an edit
    fleeting = await send(client, chat_id, "created, then deleted")
    await delete(client, chat_id, fleeting["id"])
    fleeting_edited = await send(client, chat_id, "created, edited, then deleted")
    await edit(client, chat_id, fleeting_edited["id"], "edited before its deletion")
    await delete(client, chat_id, fleeting_edited["id"])
    new = await send_as(client, chat_id, "created", "carol")
    await edit(client, chat_id, new["id"], "created, then edited")
    await send(client, chat_id, "created last")
    await edit(client, chat_id, old[3]["id"], "edited after newer sends")


@pytest.mark.parametrize("how", ["header", "query"])
async def test_resuming_after_sends_edits_and_deletions_gives_the_chat_as_it_is_then_live_events(
    client: Client, how: str
) -> None:
    chat = await create_chat(client)
    old = [await send_as(client, chat["id"], f"old {n}", "alice") for n in range(6)]
    view: View = {}
    stream = await open_stream(client, chat["id"], "?after=0")
    await read_until(stream, view, chat["id"], old[-1]["id"], 0)
    seen = old[-1]["id"]
    stream.close()
    assert view == await chat_read_both_ways(client, chat["id"])

    await changes_while_away(client, chat["id"], old)

    resumed = await resume(client, chat["id"], seen, how)
    live = await send(client, chat["id"], "live")  # everything missed comes before it
    frames = await read_until(resumed, view, chat["id"], live["id"], seen)
    truth = await chat_read_both_ways(client, chat["id"])
    assert view == truth, differences(view, truth)
    assert frames[-1].event == "message" and len(frames) > 1
    assert view[old[0]["id"]]["text"] == "edited 2" and view[old[0]["id"]]["edited_at"] is not None
    assert old[1]["id"] not in view and old[2]["id"] not in view
    assert [m["text"] for m in view.values() if m["id"] > seen] == [
        "created, then edited",
        "created last",
        "live",
    ]
    # ... and the stream goes on live.
    edited_live = await edit(client, chat["id"], old[4]["id"], "edited live")
    await delete(client, chat["id"], old[5]["id"])
    frames = [await resumed.event(), await resumed.event()]
    assert [(f.event, f.json()) for f in frames] == [
        ("message_updated", edited_live),
        ("message_deleted", {"chat_id": chat["id"], "id": old[5]["id"]}),
    ]
    for frame in frames:
        apply(view, frame, chat["id"])
    assert view == await chat_read_both_ways(client, chat["id"])
    resumed.close()


async def test_a_resume_cut_anywhere_in_its_backfill_and_resumed_again_converges(client: Client) -> None:
    """The client leaves after each possible number of backfilled events, and resumes
    from the last one it applied: its view ends up right every time."""
    chat = await create_chat(client)
    old = [await send_as(client, chat["id"], f"old {n}", "bob") for n in range(5)]
    at_seen = {m["id"]: m for m in old}
    seen = old[-1]["id"]
    await changes_while_away(client, chat["id"], old)
    end = await send(client, chat["id"], "the end")  # the newest event: the backfill ends with it
    whole: View = dict(at_seen)
    stream = await resume(client, chat["id"], seen)
    backfill = await read_until(stream, whole, chat["id"], end["id"], seen)
    stream.close()
    truth = await chat_read_both_ways(client, chat["id"])
    assert whole == truth
    assert len(backfill) >= 8  # enough to cut it in many places
    for cut in range(len(backfill)):
        view = dict(at_seen)
        # Leaves right after applying the cut-th event (right after opening for 0).
        last = int(backfill[cut - 1].id or 0) if cut else seen
        first = await resume(client, chat["id"], seen)
        await read_until(first, view, chat["id"], last, seen)
        first.close()
        second = await resume(client, chat["id"], last, "query" if cut % 2 else "header")
        await read_until(second, view, chat["id"], end["id"], last)
        second.close()
        assert view == truth, f"cut after {cut} events: {differences(view, truth)}"


async def test_resuming_before_edits_of_old_messages_sends_only_what_changed(
    client: Client, db: asyncpg.Connection
) -> None:
    chat = await create_chat(client)
    await fill_chat(db, chat["id"], 300, "filled ")
    first_page = (await json_of(client)(f"/chats/{chat['id']}/messages/?after=0&limit=10"))["messages"]
    third, fifth, seventh = first_page[2], first_page[4], first_page[6]
    # An edit the client has seen: X is its event id, the chat's newest event.
    stream = await open_stream(client, chat["id"])
    await edit(client, chat["id"], third["id"], "seen edit")
    seen_edit = await stream.event()
    assert seen_edit.event == "message_updated" and seen_edit.id is not None
    stream.close()
    seen = int(seen_edit.id)
    assert seen == await db.fetchval(LATEST_EVENT_ID, chat["id"])

    edited = await edit(client, chat["id"], fifth["id"], "the fifth, edited")
    await delete(client, chat["id"], seventh["id"])
    resumed = await resume(client, chat["id"], seen)
    live = await send(client, chat["id"], "live")
    frames = [await resumed.event() for _ in range(3)]
    assert [(f.event, f.json()) for f in frames] == [
        ("message_updated", edited),
        ("message_deleted", {"chat_id": chat["id"], "id": seventh["id"]}),
        ("message", live),
    ]
    assert seen < int(frames[0].id or 0) < int(frames[1].id or 0) < live["id"]
    resumed.close()


# -- the stream's end ---------------------------------------------------------------


async def test_a_removed_members_stream_ends_after_the_edits_and_deletions_before_it(client: Client) -> None:
    owner, friend = f"owner-{secrets.token_hex(4)}", f"friend-{secrets.token_hex(4)}"
    response = await client.post(
        "/chats/", json={"title": "team", "members": [{"user": friend}]}, headers=user(owner)
    )
    assert response.status == 201
    chat_id = (await response.json())["id"]
    posted = await client.post(f"/chats/{chat_id}/messages/", json={"text": "mine"}, headers=user(friend))
    assert posted.status == 201
    mine = await posted.json()
    stream = await open_stream(client, chat_id, headers=user(friend))
    # And a resumed one, read past its backfill.
    resumed = await open_stream(client, chat_id, headers={**user(friend), "Last-Event-ID": "0"})
    assert await resumed.messages(1) == [mine]
    edited = await edit(client, chat_id, mine["id"], "mine, edited", headers=user(friend))
    await delete(client, chat_id, mine["id"], headers=user(owner))
    for each in (stream, resumed):
        frames = [await each.event(), await each.event()]
        assert [(f.event, f.json()) for f in frames] == [
            ("message_updated", edited),
            ("message_deleted", {"chat_id": chat_id, "id": mine["id"]}),
        ]
    removed = await client.delete(f"/chats/{chat_id}/members/{friend}", headers=user(owner))
    assert removed.status == 204
    for each in (stream, resumed):
        assert all(frame.event is None for frame in await each.ends(within=5))
    await problem(
        await client.get(f"/chats/{chat_id}/events", headers={**user(friend), "Last-Event-ID": "0"}), 404
    )


async def test_chat_deleted_ends_the_stream_after_the_edits_and_deletions_sent_before_it(
    client: Client,
) -> None:
    chat = await create_chat(client)
    messages = [await send(client, chat["id"], f"m{n}") for n in range(3)]
    stream = await open_stream(client, chat["id"])
    resumed = await resume(client, chat["id"], messages[0]["id"])
    assert await resumed.messages(2) == messages[1:]  # its backfill, then the same as the other
    # Back to back, none read yet; the long edit travels in several NOTIFY payloads.
    edited = await edit(client, chat["id"], messages[0]["id"], "長" * 5000)
    await delete(client, chat["id"], messages[1]["id"])
    edited_again = await edit(client, chat["id"], messages[2]["id"], "edited last")
    assert (await client.delete(f"/chats/{chat['id']}")).status == 204
    for each in (stream, resumed):
        frames = [await each.event() for _ in range(4)]
        assert [(f.event, f.json()) for f in frames[:3]] == [
            ("message_updated", edited),
            ("message_deleted", {"chat_id": chat["id"], "id": messages[1]["id"]}),
            ("message_updated", edited_again),
        ]
        frame = frames[3]
        assert frame.event == "chat_deleted" and frame.id is None and frame.json() == {"chat_id": chat["id"]}
        assert await each.ends() == []


async def test_edits_and_deletions_committed_with_the_chats_deletion_all_arrive_before_chat_deleted(
    client: Client, db: asyncpg.Connection
) -> None:
    """One transaction, so that their notifications reach the stream's process together,
    before its stream has sent any: chat_deleted ends the stream after them, not instead."""
    chat = await create_chat(client)
    messages = [await send(client, chat["id"], f"m{n}") for n in range(3)]
    stream = await open_stream(client, chat["id"])
    async with db.transaction():
        edited = await db.fetchrow(
            queries.EDIT_MESSAGE, chat["id"], messages[0]["id"], "長" * 5000, None, [], []
        )
        await db.fetchrow(queries.DELETE_MESSAGE, chat["id"], messages[1]["id"], None, [], [])
        edited_again = await db.fetchrow(
            queries.EDIT_MESSAGE, chat["id"], messages[2]["id"], "last", None, [], []
        )
        assert (await db.fetchrow(queries.DELETE_CHAT, chat["id"], None, []))["deleted_id"] == chat["id"]
    frames = await stream.ends()
    assert [(f.event, f.json()) for f in frames if f.event] == [
        ("message_updated", orjson.loads(edited["message"])),
        ("message_deleted", {"chat_id": chat["id"], "id": messages[1]["id"]}),
        ("message_updated", orjson.loads(edited_again["message"])),
        ("chat_deleted", {"chat_id": chat["id"]}),
    ]


# -- converging against writers on two processes, reconnecting at random -------------

FOLLOWER_ROUNDS = 300  # connections the follower opens while the writers write
WRITERS = 3


class Follower:
    """A client keeping its view from the stream on one process, reconnecting with the
    Last-Event-ID of the last event it applied."""

    def __init__(self, session: aiohttp.ClientSession, base: str, chat_id: int, seed: int) -> None:
        self.session, self.base, self.chat_id, self.seed = session, base, chat_id, seed
        self.view: View = {}
        self.last = 0
        self.connections = 0
        self.kinds: dict[str, int] = {}
        self.ended_by_server = 0

    async def open(self) -> EventStream:
        response = await self.session.get(
            f"{self.base}/chats/{self.chat_id}/events", headers={"Last-Event-ID": str(self.last)}
        )
        stream = EventStream(response)
        opening = await stream.frame()
        assert opening.retry == "1000", f"seed {self.seed}: {opening}"
        self.connections += 1
        return stream

    async def read(
        self, stream: EventStream, count: int, within: float, catch_up_to: int = 0, end: int | None = None
    ) -> None:
        """Applies events up to catch_up_to, then count more; stops early at the event end,
        when none comes within the time, or when the server ends the stream."""
        previous = self.last
        try:
            while (self.last < catch_up_to or count > 0) and self.last != end:
                frame = await stream.event(within)
                assert frame.id is not None and int(frame.id) > previous, (
                    f"seed {self.seed}: event ids must rise within a connection: {previous} then {frame}"
                )
                previous = int(frame.id)
                apply(self.view, frame, self.chat_id)
                self.last = previous
                self.kinds[frame.event or ""] = self.kinds.get(frame.event or "", 0) + 1
                if self.last > catch_up_to:
                    count -= 1
        except TimeoutError:
            pass  # caught up for now, or cut mid-frame: that frame was not applied
        except EndOfStream:
            self.ended_by_server += 1  # e.g. fell too far behind: it resumes like any other


async def test_a_follower_reconnecting_at_random_converges_while_others_send_edit_and_delete(
    make_migrated_database: Callable[[], str],
) -> None:
    """The issue's test: a client follows a chat on process A while writers on A and B send,
    edit and delete at random, and it leaves and comes back at random moments, often in
    the middle of its backfill; once the writers stop its view is the chat as read."""
    seed = int(os.environ.get("CHATSVC_TEST_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    url = make_migrated_database()
    env = environment(DATABASE_URL=url, CHATSVC_SSE_HEARTBEAT="0.5", CHATSVC_LOG_LEVEL="WARNING")
    with serving(env) as (a, _), serving(env) as (b, _):
        db = await asyncpg.connect(url)
        # No total timeout (streams last), but a request that hangs fails the test.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=20)
        async with aiohttp.ClientSession(headers=SERVER, timeout=timeout) as session:
            async with session.post(f"{b}/chats/", json={"title": "converging"}) as response:
                assert response.status == 201
                chat_id = (await response.json())["id"]
            alive: list[int] = []
            ops = {"done": 0, "send": 0, "edit": 0, "delete": 0, "gone": 0}
            stop = asyncio.Event()

            async def write(n: int) -> None:
                wrng = random.Random(f"{seed}-{n}")
                while not stop.is_set():
                    base = wrng.choice((a, b, b))
                    roll = wrng.random()
                    messages = f"{base}/chats/{chat_id}/messages/"
                    if len(alive) < 5 or roll < 0.45:
                        text = f"w{n} {ops['done']}" + ("長" * wrng.randint(700, 4900) if roll < 0.02 else "")
                        author = wrng.choice([None, "alice", "bob", "carol"])
                        async with session.post(messages, json={"text": text, "author": author}) as response:
                            assert response.status == 201, await response.text()
                            alive.append((await response.json())["id"])
                        ops["send"] += 1
                    elif roll < 0.8:
                        target = wrng.choice(alive)
                        text = f"w{n} edit {ops['done']}" + ("長" * 3000 if roll > 0.79 else "")
                        async with session.patch(f"{messages}{target}", json={"text": text}) as response:
                            assert response.status in (200, 404), await response.text()
                            if response.status == 404 and target in alive:  # deleted meanwhile
                                alive.remove(target)
                                ops["gone"] += 1
                        ops["edit"] += 1
                    else:
                        target = alive.pop(wrng.randrange(len(alive)))
                        async with session.delete(f"{messages}{target}") as response:
                            assert response.status in (204, 404), await response.text()
                        ops["delete"] += 1
                    ops["done"] += 1
                    await asyncio.sleep(wrng.uniform(0, 0.01))

            async def away_until(more_ops: int) -> None:
                target = ops["done"] + more_ops
                while ops["done"] < target:
                    if any(writer.done() for writer in writers):  # failed: gather() says why
                        await asyncio.gather(*writers)
                    await asyncio.sleep(0.005)

            follower = Follower(session, a, chat_id, seed)
            cut_in_backfill = went_live = 0
            writers = [asyncio.create_task(write(n)) for n in range(WRITERS)]
            try:
                for _ in range(FOLLOWER_ROUNDS):
                    roll = rng.random()
                    if roll < 0.03:  # a long absence: more than one backfill batch (100) missed
                        await away_until(rng.randint(100, 120))
                    elif roll < 0.25:
                        await away_until(rng.randint(3, 15))
                    latest = await db.fetchval(LATEST_EVENT_ID, chat_id)
                    stream = await follower.open()
                    if rng.random() < 0.3:  # to the end of its backfill, and on into live events
                        await follower.read(stream, rng.randint(1, 5), within=0.5, catch_up_to=latest)
                    else:  # a few events, or many: often not the whole backfill
                        count = rng.choice([0, 1, 2, 3, rng.randint(1, 20), rng.randint(1, 150)])
                        await follower.read(stream, count, within=0.5)
                    if follower.last < latest:  # it left before its backfill was done
                        cut_in_backfill += 1
                    elif follower.last > latest:  # it had caught up: live events too
                        went_live += 1
                    stream.close()
                    if rng.random() < 0.2:
                        await asyncio.sleep(rng.uniform(0, 0.03))
            finally:
                stop.set()
                await asyncio.gather(*writers)

            # The writers have stopped; a last message marks the end of what there is to see.
            async with session.post(f"{b}/chats/{chat_id}/messages/", json={"text": "the end"}) as response:
                end = (await response.json())["id"]
            deadline = asyncio.get_running_loop().time() + 60  # a liveness bound: a lost event ends the test
            while follower.last != end:
                assert asyncio.get_running_loop().time() < deadline, f"seed {seed}: never caught up"
                stream = await follower.open()
                await follower.read(stream, rng.randint(1, 60), within=10, end=end)
                stream.close()

            async def get_json(path: str) -> Any:
                async with session.get(f"{a}{path}") as response:
                    assert response.status == 200
                    return await response.json()

            chat = await chat_read(get_json, chat_id)
        await db.close()
    summary = (
        f"seed {seed} (CHATSVC_TEST_SEED reproduces the follower's choices): {ops}, "
        f"{follower.connections} connections, {cut_in_backfill} cut in a backfill, {went_live} live, "
        f"{follower.ended_by_server} ended by the server, events {follower.kinds}, {len(chat)} messages"
    )
    assert follower.view == chat, f"{summary}: {differences(follower.view, chat)}"
    # The run exercised what it is for.
    assert follower.connections >= FOLLOWER_ROUNDS, summary
    assert cut_in_backfill >= 10, summary
    assert follower.kinds.get("message_updated", 0) > 50 and follower.kinds.get("message_deleted", 0) > 50, (
        summary
    )
    assert len(chat) > 20, summary
