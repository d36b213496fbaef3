"""X-Request-ID, the JSON access log and /metrics (contract v2, operations)."""

from __future__ import annotations

import asyncio
import logging
import re
from urllib.parse import urlsplit

import asyncpg
import orjson
import pytest
from pytest_aiohttp import AiohttpClient

from chatsvc.app import ROUTES, create_app
from chatsvc.logs import JsonFormatter
from chatsvc.metrics import BUCKET_LABELS
from chatsvc.settings import Settings
from tests.api import create_chat, scrape, send, waiting_on_a_lock
from tests.conftest import Client
from tests.credentials import CREDENTIALS


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


# -- request ids ------------------------------------------------------------------


async def test_every_answer_carries_a_generated_request_id(client: Client) -> None:
    chat = await create_chat(client)
    responses = [
        await client.get(f"/chats/{chat['id']}"),
        await client.get("/chats/0"),  # a problem answer
        await client.get("/no/such/route"),
        await client.put("/chats/"),
        await client.head(f"/chats/{chat['id']}/events"),
        await client.get("/docs/assets/swagger-ui.css"),  # a file, sent after the handler returns
    ]
    stream = await client.get(f"/chats/{chat['id']}/events")  # started by its handler
    responses.append(stream)
    stream.close()
    ids = [response.headers["X-Request-ID"] for response in responses]
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids)
    assert len(set(ids)) == len(ids)


async def test_an_incoming_request_id_is_kept_and_an_insane_one_replaced(client: Client) -> None:
    kept = await client.get("/healthz", headers={"X-Request-ID": "trace-4bf92f3577b34da6"})
    assert kept.headers["X-Request-ID"] == "trace-4bf92f3577b34da6"
    for insane in ("has space", "x" * 201):
        replaced = await client.get("/healthz", headers={"X-Request-ID": insane})
        assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["X-Request-ID"])


async def test_an_event_stream_carries_its_request_id(client: Client) -> None:
    chat = await create_chat(client)
    response = await client.get(f"/chats/{chat['id']}/events", headers={"X-Request-ID": "stream-1"})
    assert response.status == 200 and response.headers["X-Request-ID"] == "stream-1"
    response.close()


# -- the access log ---------------------------------------------------------------


async def test_one_json_access_line_per_request_without_bodies(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    chat = await create_chat(client, "TITLE-NOT-LOGGED")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="chatsvc.access"):
        await send(client, chat["id"], "MESSAGE-TEXT-NOT-LOGGED")
        response = await client.get(f"/chats/{chat['id']}?limit=5", headers={"X-Request-ID": "read-1"})
    records = [record for record in caplog.records if record.name == "chatsvc.access"]
    assert len(records) == 2
    lines = [orjson.loads(JsonFormatter().format(record)) for record in records]
    sent, read = lines
    assert sent["method"] == "POST" and sent["route"] == "/chats/{chat_id}/messages" and sent["status"] == 201
    assert read["route"] == "/chats/{chat_id}" and read["status"] == 200
    # The path as requested, without its query string.
    assert sent["path"] == f"/chats/{chat['id']}/messages/" and read["path"] == f"/chats/{chat['id']}"
    assert read["request_id"] == "read-1" == response.headers["X-Request-ID"]
    assert all(isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0 for line in lines)
    assert {"time", "level", "logger", "message"} <= set(read)
    everything = "".join(JsonFormatter().format(record) for record in caplog.records)
    assert "NOT-LOGGED" not in everything


def test_errors_are_json_with_their_traceback() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.getLogger("chatsvc.test").makeRecord(
            "chatsvc.test",
            logging.ERROR,
            __file__,
            1,
            "failed %s",
            ("here",),
            exc_info=__import__("sys").exc_info(),
        )
    line = orjson.loads(JsonFormatter().format(record))
    assert line["level"] == "ERROR" and line["message"] == "failed here"
    assert "RuntimeError: boom" in line["exception"]


# -- /metrics ---------------------------------------------------------------------


async def test_requests_are_counted_by_route_template_and_status(client: Client) -> None:
    chat = await create_chat(client)
    for _ in range(3):
        await client.get(f"/chats/{chat['id']}")
        await client.get(f"/chats/{chat['id']}/")
    await client.get("/chats/9223372036854775807")
    await client.get("/nowhere/12345")
    metrics = await scrape(client)
    read = labels(method="GET", route="/chats/{chat_id}", status="200")
    assert metrics[("chatsvc_http_requests_total", read)] == 6
    assert (
        metrics[("chatsvc_http_requests_total", labels(method="GET", route="/chats/{chat_id}", status="404"))]
        == 1
    )
    assert metrics[("chatsvc_http_request_duration_seconds_count", read)] == 6
    assert ("chatsvc_http_requests_total", labels(method="GET", route="unmatched", status="404")) in metrics
    routes = {value for _, label_set in metrics for key, value in label_set if key == "route"}
    assert routes <= {*(path.rstrip("/") or "/" for path in ROUTES), "unmatched"}, routes


async def test_request_durations_fall_in_cumulative_buckets(client: Client) -> None:
    for _ in range(3):
        assert (await client.get("/healthz")).status == 200
    metrics = await scrape(client)
    health = {"method": "GET", "route": "/healthz", "status": "200"}
    name = "chatsvc_http_request_duration_seconds"
    *buckets, infinite = [metrics[(f"{name}_bucket", labels(**health, le=le))] for le in BUCKET_LABELS]
    assert buckets == sorted(buckets) and buckets[-1] <= infinite
    assert infinite == metrics[(f"{name}_count", labels(**health))] == 3
    # Each took at least a microsecond, and none ten minutes: they are in the finite buckets.
    assert buckets[-1] == 3 and metrics[(f"{name}_sum", labels(**health))] > 3e-6


async def test_the_listener_gauge_says_whether_live_events_are_connected(
    aiohttp_client: AiohttpClient, server_url: str, empty_database_url: str
) -> None:
    client = await aiohttp_client(create_app(Settings(**CREDENTIALS, database_url=empty_database_url)))
    listener_gauge: tuple[str, frozenset[tuple[str, str]]] = (
        "chatsvc_events_listener_connected",
        frozenset(),
    )
    assert (await scrape(client))[listener_gauge] == 1
    name = urlsplit(empty_database_url).path.lstrip("/")
    admin = await asyncpg.connect(server_url)
    try:
        # The listener loses its connection and cannot open another (the pool keeps its own).
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'chatsvc-events' AND datname = $1",
            name,
        )
        await poll_metric(client, listener_gauge, 0)
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await poll_metric(client, listener_gauge, 1)  # it reconnects by itself
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def poll_metric(client: Client, metric: tuple[str, frozenset[tuple[str, str]]], value: float) -> None:
    """Waits until metric has value; fails after 10 s (the listener retries at most 5 s apart)."""
    deadline = asyncio.get_running_loop().time() + 10
    while (await scrape(client))[metric] != value:
        assert asyncio.get_running_loop().time() < deadline, f"{metric[0]} never became {value}"
        await asyncio.sleep(0.05)


async def test_pool_and_stream_gauges(
    aiohttp_client: AiohttpClient, database_url: str, db: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    client = await aiohttp_client(
        create_app(Settings(**CREDENTIALS, database_url=database_url, pool_min_size=1, pool_max_size=1))
    )
    chat = await create_chat(client)
    stream = await client.get(f"/chats/{chat['id']}/events")
    metrics = await scrape(client)
    assert metrics[("chatsvc_sse_subscribers", frozenset())] == 1
    assert metrics[("chatsvc_pool_max_size", frozenset())] == 1
    assert metrics[("chatsvc_pool_size", frozenset())] == 1
    stream.close()
    # The only connection waits on a lock; a second request waits for the connection.
    await other.execute("SELECT id FROM chats WHERE id = $1 FOR UPDATE", chat["id"])
    holding = await waiting_on_a_lock(db, client.post(f"/chats/{chat['id']}/messages/", json={"text": "x"}))
    waiting = asyncio.ensure_future(client.get(f"/chats/{chat['id']}"))
    for _ in range(100):
        metrics = await scrape(client)
        if metrics[("chatsvc_pool_waiters", frozenset())] == 1:
            break
        await asyncio.sleep(0.02)
    assert metrics[("chatsvc_pool_waiters", frozenset())] == 1
    assert metrics[("chatsvc_pool_in_use", frozenset())] == 1
    await other.execute("ROLLBACK")
    assert (await holding).status == 201 and (await waiting).status == 200
    metrics = await scrape(client)
    assert metrics[("chatsvc_pool_waiters", frozenset())] == 0
    assert metrics[("chatsvc_pool_in_use", frozenset())] == 0
