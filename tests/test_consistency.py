"""Read-your-writes and monotonic reads across two `chatsvc serve` processes, under load.

What a client of a scaled-out deployment relies on, whatever either process
batches or keeps (contract v3; issue 19 asks every fast path to keep it):
a write answered by one process is seen by the next read on the other, and
no client sees a chat go back in time. Many users write and read at once,
so that each process batches their requests together, against one real
database. No timing is asserted: only what each answer holds.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.credentials import SERVER, user
from tests.served import environment, serving

WRITERS = 8  # users, each writing and then reading its writes back on the other process
READERS = 4  # users, each reading the same chat from both processes in turn
ROUNDS = 12  # per writer: a send, an edit, a send and a deletion each round
VERSION = re.compile(r" v(\d+)$")


def version_of(text: str) -> int:
    found = VERSION.search(text)
    assert found is not None, text
    return int(found.group(1))


async def test_a_write_on_one_process_is_read_on_the_other_and_no_read_goes_back_in_time(
    make_migrated_database: Callable[[], str],
) -> None:
    env = environment(
        DATABASE_URL=make_migrated_database(),
        CHATSVC_USER_WRITE_RATE="10000",
        CHATSVC_USER_WRITE_BURST="10000",
    )
    writers = [f"writer-{n}" for n in range(WRITERS)]
    readers = [f"reader-{n}" for n in range(READERS)]
    with serving(env) as (a, _), serving(env) as (b, _):
        async with aiohttp.ClientSession() as session:

            async def call(
                method: str, url: str, headers: dict[str, str], body: Any = None
            ) -> tuple[int, Any]:
                async with session.request(method, url, json=body, headers=headers) as response:
                    return response.status, await response.json() if response.status != 204 else None

            members = [{"user": name} for name in writers + readers]
            status, chat = await call("POST", f"{a}/chats/", SERVER, {"title": "kept", "members": members})
            assert status == 201
            status, doomed = await call(
                "POST", f"{a}/chats/", SERVER, {"title": "doomed", "members": members}
            )
            assert status == 201
            kept, gone = chat["id"], doomed["id"]
            writing = True

            async def seen_on_both(path: str, headers: dict[str, str]) -> list[tuple[int, Any]]:
                """The same read from each process in turn."""
                return [await call("GET", f"{base}{path}", headers) for base in (b, a)]

            async def write(name: str, first: str, other: str) -> None:
                """Each write on one process, then read on both: it is there, as written."""
                headers = user(name)
                for n in range(ROUNDS):
                    there, back = (first, other) if n % 2 == 0 else (other, first)
                    status, sent = await call(
                        "POST", f"{there}/chats/{kept}/messages/", headers, {"text": f"{name} {n} v0"}
                    )
                    assert status == 201
                    message = f"/chats/{kept}/messages/{sent['id']}"
                    assert await seen_on_both(message, headers) == [(200, sent)] * 2
                    for status, latest in await seen_on_both(f"/chats/{kept}?limit=50", headers):
                        assert status == 200 and sent in latest["messages"]
                    status, edited = await call(
                        "PATCH", f"{back}{message}", headers, {"text": f"{name} {n} v1"}
                    )
                    assert status == 200 and edited["text"] == f"{name} {n} v1"
                    assert await seen_on_both(message, headers) == [(200, edited)] * 2

                    status, sent = await call(
                        "POST", f"{there}/chats/{gone}/messages/", headers, {"text": "doomed"}
                    )
                    assert status == 201
                    message = f"/chats/{gone}/messages/{sent['id']}"
                    assert await seen_on_both(message, headers) == [(200, sent)] * 2
                    assert (await call("DELETE", f"{back}{message}", headers))[0] == 204
                    assert [status for status, _ in await seen_on_both(message, headers)] == [404, 404]
                    for status, latest in await seen_on_both(f"/chats/{gone}?limit=50", headers):
                        assert status == 200 and sent["id"] not in [m["id"] for m in latest["messages"]]

            async def read(name: str) -> int:
                """The kept chat, from both processes in turn: its newest message never goes
                back, and no message's text goes back to an earlier version. How many reads."""
                headers = user(name)
                newest, versions = 0, dict[int, int]()
                for count in itertools.count(1):
                    status, latest = await call("GET", f"{(a, b)[count % 2]}/chats/{kept}?limit=50", headers)
                    assert status == 200
                    ids = [message["id"] for message in latest["messages"]]
                    assert ids == sorted(ids) and (not ids or ids[-1] >= newest)
                    newest = max(ids, default=newest)
                    for message in latest["messages"]:
                        version = version_of(message["text"])
                        assert version >= versions.get(message["id"], 0), message
                        versions[message["id"]] = version
                    if not writing:
                        return count
                raise AssertionError("unreachable")

            reading = [asyncio.create_task(read(name)) for name in readers]
            try:
                turns = [(a, b), (b, a)]  # half the writers start on each process
                await asyncio.gather(*(write(name, *turns[n % 2]) for n, name in enumerate(writers)))
            finally:
                writing = False
                reads = await asyncio.gather(*reading, return_exceptions=True)
            for count in reads:
                if isinstance(count, BaseException):
                    raise count
                assert count > 1
            status, history = await call("GET", f"{a}/chats/{kept}/messages/?limit=100", SERVER)
            assert status == 200 and len(history["messages"]) == WRITERS * ROUNDS
            assert all(message["text"].endswith(" v1") for message in history["messages"])
