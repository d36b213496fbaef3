"""Resource exhaustion: slow and idle clients, and more requests than the pool serves.

The bounds asserted here are starvation bounds (a normal request is answered,
and within a second), not performance claims: those come from bench/run.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable

import aiohttp
import asyncpg
import orjson
from aiohttp import ClientResponse
from pytest_aiohttp import AiohttpClient

from chatsvc import listening
from chatsvc.app import create_app
from chatsvc.keys import DATABASE
from chatsvc.settings import Settings
from tests.api import create_chat, problem, read_answer, waiting_on_a_lock
from tests.credentials import CREDENTIALS, SERVER, with_server_key
from tests.served import environment, serving, until_closed

SLOW_CLIENTS = 300
IDLE_STREAMS = 300
STARVATION_BOUND = 1.0  # seconds: a normal request slower than this counts as starved
# A whole request on a connection of its own, which the service then closes.
HEALTH_CHECK = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


async def slowloris(port: int, stop: asyncio.Event) -> None:
    """A client that sends its request's headers one byte at a time, forever."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        while not stop.is_set():
            writer.write(b"a")
            await writer.drain()
            await asyncio.sleep(0.5)
    except ConnectionError:
        pass  # the service may close it; that is allowed
    finally:
        writer.close()


async def idle_stream(port: int, chat_id: int, stop: asyncio.Event) -> None:
    """An event stream that is opened and then never read."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(with_server_key(f"GET /chats/{chat_id}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode()))
    await stop.wait()
    writer.close()


async def test_slow_and_idle_clients_do_not_starve_normal_requests(make_database: Callable[[], str]) -> None:
    env = environment(DATABASE_URL=make_database(), CHATSVC_LOG_LEVEL="WARNING", CHATSVC_SSE_HEARTBEAT="1")
    with serving(env) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        async with aiohttp.ClientSession(headers=SERVER) as session:
            async with session.post(f"{base}/chats/", json={"title": "busy"}) as created:
                chat_id = (await created.json())["id"]
            stop = asyncio.Event()
            attackers = [asyncio.create_task(slowloris(port, stop)) for _ in range(SLOW_CLIENTS)]
            attackers += [asyncio.create_task(idle_stream(port, chat_id, stop)) for _ in range(IDLE_STREAMS)]
            await asyncio.sleep(2)  # all connected, trickling and idling
            slowest = 0.0
            for n in range(50):
                started = time.monotonic()
                async with session.post(f"{base}/chats/{chat_id}/messages/", json={"text": f"m{n}"}) as sent:
                    assert sent.status == 201
                async with session.get(f"{base}/chats/{chat_id}?limit=5") as read:
                    assert read.status == 200
                slowest = max(slowest, time.monotonic() - started)
            async with session.get(f"{base}/metrics") as scraped:
                assert f"chatsvc_sse_subscribers {IDLE_STREAMS}.0" in await scraped.text()
            stop.set()
            await asyncio.gather(*attackers)
    assert slowest < STARVATION_BOUND


async def test_a_flood_past_the_pool_waits_a_bounded_time_then_gets_503(
    aiohttp_client: AiohttpClient, database_url: str, other: asyncpg.Connection
) -> None:
    settings = Settings(
        **CREDENTIALS, database_url=database_url, pool_min_size=1, pool_max_size=1, pool_acquire_timeout=0.5
    )
    client = await aiohttp_client(create_app(settings))
    chat = await create_chat(client)
    await other.execute("SELECT id FROM chats WHERE id = $1 FOR UPDATE", chat["id"])
    # The pool's only connection now waits on that lock, inside a send.
    stuck = await waiting_on_a_lock(other, client.post(f"/chats/{chat['id']}/messages/", json={"text": "x"}))

    # 100 connections at once: fewer than the test server's listen backlog
    # (128), past which connects wait for a SYN retry, 1 s later.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=SERVER) as flooding:

        async def timed_read() -> tuple[float, ClientResponse]:
            started = time.monotonic()
            response = await flooding.get(client.make_url(f"/chats/{chat['id']}"))
            await response.read()
            return time.monotonic() - started, response

        flood = await asyncio.gather(*(timed_read() for _ in range(100)))
    for elapsed, response in flood:
        await problem(response, 503)
        assert response.headers["Retry-After"]
        assert elapsed < 0.5 + STARVATION_BOUND  # the acquire timeout, then the answer
    assert client.app[DATABASE].waiting == 0  # nobody is left in line
    await other.execute("ROLLBACK")
    assert (await stuck).status == 201
    assert (await client.get(f"/chats/{chat['id']}")).status == 200


async def test_connections_past_the_cap_get_503_and_the_open_ones_keep_being_served(
    make_database: Callable[[], str],
) -> None:
    cap = 40
    env = environment(
        DATABASE_URL=make_database(), CHATSVC_LOG_LEVEL="WARNING", CHATSVC_MAX_CONNECTIONS=str(cap)
    )
    with serving(env) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        async with aiohttp.ClientSession(
            headers=SERVER
        ) as session:  # one keep-alive connection, open before the others
            async with session.post(f"{base}/chats/", json={"title": "capped"}) as created:
                chat_id = (await created.json())["id"]
            idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(cap - 1)]
            await asyncio.sleep(0.5)  # all accepted: the cap is reached
            refused, _ = until_closed(base, HEALTH_CHECK)
            head, _, body = refused.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 ")
            assert b"\r\nContent-Type: application/problem+json\r\n" in head
            assert b"\r\nRetry-After: 1\r\n" in head
            assert orjson.loads(body)["status"] == 503
            slowest = 0.0
            for n in range(20):  # the connection already open is served as before
                started = time.monotonic()
                async with session.post(f"{base}/chats/{chat_id}/messages/", json={"text": f"m{n}"}) as sent:
                    assert sent.status == 201
                slowest = max(slowest, time.monotonic() - started)
            assert slowest < STARVATION_BOUND
            async with session.get(f"{base}/metrics") as scraped:
                assert "\nchatsvc_connections_refused_total 1.0\n" in await scraped.text()
            for _, writer in idle[:5]:
                writer.close()
            await asyncio.sleep(0.5)
            assert until_closed(base, HEALTH_CHECK)[0].startswith(b"HTTP/1.1 200 ")  # room again
            for _, writer in idle[5:]:
                writer.close()


def test_the_cap_leaves_room_for_the_pool_under_the_open_file_limit() -> None:
    """A process allowed 300 open files keeps 300 - pool - reserve of them for clients."""
    probe = (
        "import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300));"
        "from chatsvc.listening import connection_limit;"
        "print(connection_limit(10_000, 10), connection_limit(100, 10))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == [str(300 - 10 - listening.RESERVED_DESCRIPTORS), "100"]


async def seconds_until_closed(port: int, start: bytes | None, limit: float = 10) -> float:
    """How long the service takes to close a connection that sends nothing, or start
    and then a byte every 0.2 s; inf if it is still open after limit seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened = time.monotonic()
    try:
        if start is not None:
            writer.write(start)
        while time.monotonic() < opened + limit:
            if start is not None:
                writer.write(b"a")  # a header value that never ends
            try:
                if await asyncio.wait_for(reader.read(1000), 0.2) == b"":
                    return time.monotonic() - opened
            except TimeoutError:
                continue
            except ConnectionError:
                return time.monotonic() - opened
        return float("inf")
    finally:
        writer.close()


def post_request(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def answer_on(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bytes:
    """Sends request on an open connection and reads one whole answer (a Content-Length body)."""
    writer.write(with_server_key(request))
    return await read_answer(reader, within=5)


async def test_connections_without_a_whole_request_head_are_closed_after_the_idle_timeout(
    make_database: Callable[[], str],
) -> None:
    timeout = 1.0
    env = environment(
        DATABASE_URL=make_database(),
        CHATSVC_LOG_LEVEL="WARNING",
        CHATSVC_IDLE_TIMEOUT=str(timeout),
        CHATSVC_SSE_HEARTBEAT="0.5",
    )
    with serving(env) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        # Silent, and trickling headers that never end (slowloris): closed at the
        # timeout, not before it (the lower bound catches a timeout set too
        # short) and not long after (a liveness bound, 3x).
        for start in (None, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "):
            seconds = await seconds_until_closed(port, start)
            assert timeout * 0.9 <= seconds <= timeout * 3, (start, seconds)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            created = await answer_on(reader, writer, post_request("/chats/", b'{"title": "idle"}'))
            chat_id = orjson.loads(created.partition(b"\r\n\r\n")[2])["id"]
            # A client that pauses less than the timeout keeps its connection:
            # the same socket answers each time (a raw socket cannot reconnect unseen).
            for _ in range(3):
                await asyncio.sleep(timeout / 2)
                answer = await answer_on(reader, writer, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert answer.startswith(b"HTTP/1.1 200 ")
            # An event stream is an answer in progress: it stays open past the timeout.
            writer.write(with_server_key(f"GET /chats/{chat_id}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode()))
            await asyncio.sleep(timeout * 2.5)
            sender_reader, sender_writer = await asyncio.open_connection("127.0.0.1", port)
            sent = await answer_on(
                sender_reader, sender_writer, post_request(f"/chats/{chat_id}/messages/", b'{"text": "late"}')
            )
            sender_writer.close()
            assert sent.startswith(b"HTTP/1.1 201 ")
            seen = b""
            async with asyncio.timeout(5):
                while b"late" not in seen:
                    chunk = await reader.read(65536)
                    assert chunk, "the event stream was closed"
                    seen += chunk
        finally:
            writer.close()
