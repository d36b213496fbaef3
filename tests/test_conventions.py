"""The contract's conventions: slashes, ids, HEAD, 405, media types, sizes, bad JSON."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from chatsvc.app import create_app
from chatsvc.settings import Settings
from tests.api import JSON, create_chat, problem, raw_exchange, send
from tests.conftest import Client

MAX_BODY = 65_536


# -- trailing slashes, answered directly -------------------------------------


async def test_every_route_works_with_and_without_a_trailing_slash(client: Client) -> None:
    for path in ("/chats", "/chats/"):
        response = await client.post(path, json={"title": path}, allow_redirects=False)
        assert response.status == 201, path
    chat = await create_chat(client)
    for path in (f"/chats/{chat['id']}/messages", f"/chats/{chat['id']}/messages/"):
        response = await client.post(path, json={"text": path}, allow_redirects=False)
        assert response.status == 201, path
    for path in (f"/chats/{chat['id']}", f"/chats/{chat['id']}/"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 200, path
        assert len((await response.json())["messages"]) == 2
    for path in (f"/chats/{chat['id']}", f"/chats/{(await create_chat(client))['id']}/"):
        assert (await client.delete(path, allow_redirects=False)).status == 204, path


# -- path ids ----------------------------------------------------------------

BAD_IDS = [
    "abc", "0", "00", "-1", "+1", "1.0", "1e3", "0x1f", "%201", "1%20", "%D9%A3",  # Arabic-Indic 3
    "9223372036854775808",  # 2**63: does not fit a signed 64-bit integer
    "99999999999999999999999999999999999999", "1" * 400, "9" * 5000,
]  # fmt: skip


@pytest.mark.parametrize("chat_id", BAD_IDS)
async def test_an_id_that_is_not_a_positive_int64_is_404(client: Client, chat_id: str) -> None:
    await problem(await client.get(f"/chats/{chat_id}"), 404)
    await problem(await client.delete(f"/chats/{chat_id}"), 404)
    await problem(await client.post(f"/chats/{chat_id}/messages/", json={"text": "x"}), 404)


async def test_the_largest_int64_id_is_an_ordinary_missing_chat(client: Client) -> None:
    body = await problem(await client.get("/chats/9223372036854775807"), 404)
    assert "9223372036854775807" in body["detail"]


async def test_leading_zeros_name_the_same_chat(client: Client) -> None:
    chat = await create_chat(client)
    response = await client.get(f"/chats/000{chat['id']}")
    assert response.status == 200
    assert (await response.json())["id"] == chat["id"]


# -- HEAD, 405, 404 ----------------------------------------------------------


async def test_every_get_route_answers_head(client: Client) -> None:
    chat = await create_chat(client)
    get = await client.get(f"/chats/{chat['id']}")
    head = await client.head(f"/chats/{chat['id']}")
    assert head.status == 200
    assert head.headers["Content-Type"] == get.headers["Content-Type"]
    assert await head.read() == b""
    assert (await client.head(f"/chats/{chat['id']}/")).status == 200
    assert (await client.head("/chats/9223372036854775807")).status == 404
    assert (await client.head("/healthz")).status == 200
    message = await send(client, chat["id"])
    for path in (
        "/chats/",
        f"/chats/{chat['id']}/messages/",
        f"/chats/{chat['id']}/messages/{message['id']}",
        f"/chats/{chat['id']}/events",
    ):
        get_headers = (await client.get(path)).headers if not path.endswith("events") else None
        head = await client.head(path)
        assert head.status == 200, path
        assert await head.read() == b""
        if get_headers is not None:
            assert head.headers["Content-Type"] == get_headers["Content-Type"]
    assert (await client.head("/chats/1/messages/9223372036854775807")).status == 404
    assert head.headers["Content-Type"] == "text/event-stream"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/chats", {"GET", "HEAD", "POST"}),
        ("DELETE", "/chats/", {"GET", "HEAD", "POST"}),
        ("POST", "/chats/1", {"GET", "HEAD", "DELETE"}),
        ("PATCH", "/chats/1/", {"GET", "HEAD", "DELETE"}),
        ("PUT", "/chats/1", {"GET", "HEAD", "DELETE"}),
        ("PUT", "/chats/1/messages/", {"GET", "HEAD", "POST"}),
        ("DELETE", "/chats/1/messages", {"GET", "HEAD", "POST"}),
        ("PUT", "/chats/1/messages/1", {"GET", "HEAD", "PATCH", "DELETE"}),
        ("POST", "/chats/1/events", {"GET", "HEAD"}),
        ("GET", "/chats/1/read", {"PUT"}),
    ],
)
async def test_wrong_method_is_405_with_allow(
    client: Client, method: str, path: str, allowed: set[str]
) -> None:
    await problem(await client.request(method, path), 405)
    response = await client.request(method, path)
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == allowed


@pytest.mark.parametrize("path", ["/", "/chat", "/chats/1/message", "/chats/1/messages/1/x", "/docs/../etc"])
async def test_unknown_route_is_404_problem_json(client: Client, path: str) -> None:
    await problem(await client.get(path), 404)
    await problem(await client.post(path, json={}), 404)


# -- media types and encodings -----------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8",
     "Application/JSON", "application/vnd.chatsvc+json", "application/merge-patch+json; charset=utf-8"],
)  # fmt: skip
async def test_json_media_types_are_accepted(client: Client, content_type: str) -> None:
    response = await client.post(
        "/chats/", data=b'{"title": "typed"}', headers={"Content-Type": content_type}
    )
    assert response.status == 201


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonp",
     "text/json", "application/octet-stream", ""],
)  # fmt: skip
async def test_other_media_types_are_415(client: Client, db: asyncpg.Connection, content_type: str) -> None:
    count_before = await db.fetchval("SELECT count(*) FROM chats")
    await problem(
        await client.post("/chats/", data=b'{"title": "x"}', headers={"Content-Type": content_type}), 415
    )
    assert await db.fetchval("SELECT count(*) FROM chats") == count_before


async def test_missing_content_type_is_415(client: Client) -> None:
    # skip_auto_headers: aiohttp would otherwise label bytes application/octet-stream.
    response = await client.post("/chats/", data=b'{"title": "x"}', skip_auto_headers=["Content-Type"])
    await problem(response, 415)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "x-unknown"])
async def test_compressed_bodies_are_415(client: Client, encoding: str) -> None:
    body = gzip.compress(b'{"title": "x"}') if encoding == "gzip" else b'{"title": "x"}'
    headers = {**JSON, "Content-Encoding": encoding}
    await problem(await client.post("/chats/", data=body, headers=headers), 415)


async def test_identity_encoding_is_fine(client: Client) -> None:
    headers = {**JSON, "Content-Encoding": "identity"}
    assert (await client.post("/chats/", data=b'{"title": "x"}', headers=headers)).status == 201


# -- body size ---------------------------------------------------------------


def padded_body(size: int, field: str = "title") -> bytes:
    """A valid JSON object of exactly size bytes: the field plus an ignored padding field."""
    head = f'{{"{field}": "x", "pad": "'.encode()
    body = head + b"a" * (size - len(head) - 2) + b'"}'
    assert len(body) == size
    return body


async def chunks(body: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_body_of_exactly_64_kib_is_accepted(client: Client) -> None:
    assert (await client.post("/chats/", data=padded_body(MAX_BODY), headers=JSON)).status == 201
    chat = await create_chat(client)
    response = await client.post(
        f"/chats/{chat['id']}/messages/", data=padded_body(MAX_BODY, "text"), headers=JSON
    )
    assert response.status == 201


async def test_chunked_body_of_exactly_64_kib_is_accepted(client: Client) -> None:
    response = await client.post("/chats/", data=chunks(padded_body(MAX_BODY)), headers=JSON)
    assert response.status == 201


async def test_body_over_64_kib_is_413(client: Client, db: asyncpg.Connection) -> None:
    count_before = await db.fetchval("SELECT count(*) FROM chats")
    await problem(await client.post("/chats/", data=padded_body(MAX_BODY + 1), headers=JSON), 413)
    await problem(await client.post("/chats/", data=padded_body(10 * MAX_BODY), headers=JSON), 413)
    assert await db.fetchval("SELECT count(*) FROM chats") == count_before


async def test_a_content_length_past_64_kib_is_413_before_the_body_arrives(client: Client) -> None:
    """Refused from the header alone: the client sent 10 bytes of the 70,000 it announced,
    so an answer that waited for the body would come only at the body timeout."""
    head = (
        b"POST /chats/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 70000\r\n\r\n"
    )
    answer = await raw_exchange(client, head + b'{"title": ')
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"application/problem+json" in answer


async def test_chunked_body_over_64_kib_is_413(client: Client) -> None:
    await problem(await client.post("/chats/", data=chunks(padded_body(MAX_BODY + 1)), headers=JSON), 413)
    chat = await create_chat(client)
    body = padded_body(MAX_BODY * 3, "text")
    await problem(await client.post(f"/chats/{chat['id']}/messages/", data=chunks(body), headers=JSON), 413)


async def test_the_service_keeps_serving_after_a_413(client: Client) -> None:
    await problem(await client.post("/chats/", data=padded_body(MAX_BODY + 1), headers=JSON), 413)
    assert (await client.post("/chats/", json={"title": "still here"})).status == 201


# -- bodies that are not JSON ------------------------------------------------

NOT_JSON = {
    "empty": b"",
    "whitespace": b"  \n ",
    "truncated": b'{"title": "x"',
    "trailing-garbage": b'{"title": "x"} x',
    "single-quotes": b"{'title': 'x'}",
    "NaN": b'{"title": "x", "n": NaN}',
    "Infinity": b'{"title": "x", "n": Infinity}',
    "-Infinity": b'{"title": "x", "n": -Infinity}',
    "huge-exponent": b'{"title": "x", "n": 1e999}',
    "invalid-utf8": b'{"title": "\xff\xfe"}',
    "overlong-utf8": b'{"title": "\xc0\xaf"}',
    "utf8-encoded-surrogate": b'{"title": "\xed\xa0\x80"}',
    "lone-surrogate-escape": b'{"title": "\\ud800"}',
    "deep-nesting": b'{"title": "x", "n": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "utf16": '{"title": "x"}'.encode("utf-16"),
}


@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
async def test_body_that_is_not_valid_json_is_400(
    client: Client, db: asyncpg.Connection, body: bytes
) -> None:
    count_before = await db.fetchval("SELECT count(*) FROM chats")
    await problem(await client.post("/chats/", data=body, headers=JSON), 400)
    assert await db.fetchval("SELECT count(*) FROM chats") == count_before
    chat = await create_chat(client)
    await problem(await client.post(f"/chats/{chat['id']}/messages/", data=body, headers=JSON), 400)


async def test_duplicate_keys_take_the_last_value(client: Client) -> None:
    # RFC 8259 leaves duplicates to the parser; ours keeps the last, like most.
    response = await client.post("/chats/", data=b'{"title": "first", "title": "last"}', headers=JSON)
    assert (await response.json())["title"] == "last"


async def test_utf8_byte_order_mark_is_400(client: Client) -> None:
    # RFC 8259 section 8.1: a sender must not add a BOM; we do not guess.
    await problem(await client.post("/chats/", data=b'\xef\xbb\xbf{"title": "x"}', headers=JSON), 400)


# -- times -------------------------------------------------------------------


async def test_times_are_rfc3339_utc_with_an_explicit_offset(client: Client) -> None:
    chat = await create_chat(client)
    message = await send(client, chat["id"])
    body = await (await client.get(f"/chats/{chat['id']}")).json()
    for value in (
        chat["created_at"],
        message["created_at"],
        body["created_at"],
        body["messages"][0]["created_at"],
    ):
        assert value.endswith(("Z", "+00:00")) and "T" in value, value


# -- bodies that stall or stop -----------------------------------------------


SHORT_BODY = (
    b"POST /chats/ HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n"
    b'{"title": "x"}'  # 14 of the 50 bytes promised
)


async def test_a_body_that_stalls_is_408_after_the_body_timeout(
    aiohttp_client: AiohttpClient, settings: Settings, db: asyncpg.Connection
) -> None:
    client = await aiohttp_client(create_app(settings.model_copy(update={"body_timeout": 0.3})))
    count_before = await db.fetchval("SELECT count(*) FROM chats")
    answer = await raw_exchange(client, SHORT_BODY)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"Content-Type: application/problem+json" in head
    assert json.loads(body)["status"] == 408
    assert await db.fetchval("SELECT count(*) FROM chats") == count_before


async def test_a_client_leaving_mid_body_is_not_a_server_error(
    aiohttp_client: AiohttpClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    answered: list[int] = []

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        answered.append(response.status)

    app = create_app(settings)
    app.on_response_prepare.append(record)
    client = await aiohttp_client(app)
    await raw_exchange(client, SHORT_BODY, close_after_send=True)
    for _ in range(500):  # until the server noticed the close and answered (to nobody)
        if answered:
            break
        await asyncio.sleep(0.01)
    assert answered == [400]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
