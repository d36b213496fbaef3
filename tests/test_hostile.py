"""Hostile input from outside: raw bytes on a socket to a real `chatsvc serve`.

Every answer is a 4xx (problem+json wherever the service itself answers) or
a closed connection: never a 5xx, a stack trace or a hang. Afterwards the
service still serves, and nothing was stored or executed that should not be.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.credentials import with_server_key
from tests.served import (
    call,
    complete,
    environment,
    exchange,
    output_of,
    serving,
    status_of,
    timed_exchange,
    until_closed,
)

# Requests aiohttp's HTTP parser itself refuses, before any routing: answered
# as problem+json by the service's connection handler (chatsvc/listening.py),
# then closed.
PARSER_LEVEL = {
    "garbage request line": b"GARBAGE\r\n\r\n",
    "header without a colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
    "NUL in a header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "a 100 KB header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    "a 100 KB request line": b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "broken chunked encoding": (
        b"POST /chats/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n"
    ),
    "both Content-Length and chunked": (
        b"POST /chats/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    ),
    "a negative Content-Length": b"POST /chats/ HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
}


def post(path: str, body: bytes, content_type: str = "application/json", extra: bytes = b"") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


def get(path: str, extra: bytes = b"") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode() + extra + b"\r\n"


# Requests the service itself answers, each with its contract status, as problem+json.
SERVICE_LEVEL: dict[str, tuple[bytes, int]] = {
    "invalid UTF-8 in the body": (post("/chats/", b'{"title": "\xff\xfe"}'), 400),
    "a lone surrogate escape": (post("/chats/", b'{"title": "\\ud800"}'), 400),
    "JSON nested 30,000 deep": (post("/chats/", b"[" * 30_000 + b"]" * 30_000), 400),
    "JSON nested 100,000 deep (past 64 KiB)": (post("/chats/", b"[" * 100_000 + b"]" * 100_000), 413),
    "JSON nested 1,000 deep in a field": (
        post("/chats/", b'{"title": ' + b"[" * 1000 + b"]" * 1000 + b"}"),
        422,
    ),
    "a number past 64 bits": (post("/chats/", b'{"title": 123456789012345678901234567890}'), 422),
    "a number past 64 bits as a cursor": (
        get("/chats/1/messages/?after=-123456789012345678901234567890"),
        422,
    ),
    "a number past float": (post("/chats/", b'{"title": 1e400}'), 400),
    "NaN": (post("/chats/", b'{"title": NaN}'), 400),
    "a number where text belongs": (post("/chats/", b'{"title": 5}'), 422),
    "truncated JSON": (post("/chats/", b'{"title": "x'), 400),
    "an empty body": (post("/chats/", b""), 400),
    "JSON that is not an object": (post("/chats/", b'"title"'), 422),
    "text/plain": (post("/chats/", b'{"title": "x"}', "text/plain"), 415),
    "no content type": (
        b"POST /chats/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        415,
    ),
    "a gzip body": (post("/chats/", b"\x1f\x8b\x08\x00", extra=b"Content-Encoding: gzip\r\n"), 415),
    "a Content-Length of 10 MB": (
        (
            b"POST /chats/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\nConnection: close\r\n\r\n{"
        ),
        413,
    ),
    "an id past int64": (get("/chats/99999999999999999999999999"), 404),
    "SQL in the path": (get("/chats/1;DROP%20TABLE%20chats"), 404),
    "SQL in a cursor": (get("/chats/1/messages/?before=1%20OR%201=1"), 422),
    "SQL in limit": (get("/chats/1?limit=1;DELETE%20FROM%20chats"), 422),
    "a path that climbs out of the assets": (get("/docs/assets/..%2F..%2F..%2Fetc%2Fpasswd"), 404),
    "an absolute-form target": (
        b"GET http://elsewhere.example/chats/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        200,
    ),
    "percent-encoded garbage": (get("/chats/%FF%FE"), 404),
    "a malformed Idempotency-Key": (
        post("/chats/", b'{"title": "x"}', extra="Idempotency-Key: é\r\n".encode()),
        400,
    ),
    "Last-Event-ID that is SQL": (get("/chats/1/events", b"Last-Event-ID: 0 OR 1=1\r\n"), 422),
}

SQL_STRINGS = [
    "'; DROP TABLE chats; --",
    "1' OR '1'='1",
    '"; DELETE FROM messages; --',
    "$1; SELECT pg_sleep(10)",
    "Robert'); DROP TABLE messages;--",
    "\\x00\\'",
    "%s%s%s%n",
    "{{7*7}}",
]


@pytest.fixture(scope="module")
def served(make_database: Callable[[], str]) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    """One `chatsvc serve` for the module: its base URL, its database and its process (for its log)."""
    url = make_database()
    with serving(environment(DATABASE_URL=url, CHATSVC_BODY_TIMEOUT="2")) as (base, process):
        yield base, url, process


@pytest.fixture
def service(served: tuple[str, str, subprocess.Popen[str]]) -> tuple[str, str]:
    base, url, _ = served
    return base, url


@pytest.mark.parametrize("raw", PARSER_LEVEL.values(), ids=PARSER_LEVEL.keys())
def test_what_the_http_parser_refuses_is_a_4xx_problem_and_a_closed_connection(
    service: tuple[str, str], raw: bytes
) -> None:
    base, _ = service
    answer, closed = until_closed(base, raw)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert 400 <= status_of(answer) < 500, answer[:300]
    assert b"content-type: application/problem+json" in head.lower(), head
    assert json.loads(body)["status"] == status_of(answer)
    assert closed
    assert b"Traceback" not in answer
    assert call("GET", f"{base}/healthz")[0] == 200


@pytest.mark.parametrize(("raw", "status"), SERVICE_LEVEL.values(), ids=SERVICE_LEVEL.keys())
def test_hostile_requests_get_their_contract_status_as_problem_json(
    service: tuple[str, str], raw: bytes, status: int
) -> None:
    base, _ = service
    answer = exchange(base, raw)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert status_of(answer) == status, answer[:500]
    assert b"Traceback" not in answer
    if status >= 400:
        assert b"content-type: application/problem+json" in head.lower(), head
        assert json.loads(body)["status"] == status
    assert call("GET", f"{base}/healthz")[0] == 200


def test_a_body_that_never_arrives_is_408_within_the_body_timeout(service: tuple[str, str]) -> None:
    base, _ = service
    # 5 bytes short, then silence. (aiohttp then lingers up to 10 s for the
    # rest before it closes: bounded, and the answer is already out.)
    answer, seconds = timed_exchange(base, post("/chats/", b'{"title": "x"}')[:-5])
    assert status_of(answer) == 408
    assert 2 <= seconds < 5  # CHATSVC_BODY_TIMEOUT is 2 here


@pytest.mark.parametrize("hostile", SQL_STRINGS)
def test_sql_in_titles_and_texts_is_stored_verbatim_and_never_run(
    service: tuple[str, str], hostile: str
) -> None:
    base, url = service
    status, chat = call("POST", f"{base}/chats/", {"title": hostile})
    assert status == 201 and chat["title"] == hostile
    status, message = call("POST", f"{base}/chats/{chat['id']}/messages/", {"text": hostile})
    assert status == 201 and message["text"] == hostile
    assert call("GET", f"{base}/chats/{chat['id']}")[1]["messages"][0]["text"] == hostile
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT c.title, m.text FROM chats AS c JOIN messages AS m ON m.chat_id = c.id WHERE c.id = %s",
            (chat["id"],),
        ).fetchone()
        assert row == (hostile, hostile)
        assert conn.execute("SELECT count(*) FROM chats").fetchone() is not None  # the tables are still there


# -- Expect: 100-continue ----------------------------------------------------------


def head(method: str, path: str, *fields: str, version: str = "1.1") -> bytes:
    return (
        f"{method} {path} HTTP/{version}\r\nHost: x\r\n" + "".join(f"{f}\r\n" for f in fields) + "\r\n"
    ).encode()


JSON = "Content-Type: application/json"
EXPECT = "Expect: 100-continue"

# Requests whose headers alone decide their answer: each gets it at once, never
# an invitation to send the body it announces.
DECIDED_BY_HEADERS = {
    "a 10 GB body": (head("POST", "/chats/", JSON, "Content-Length: 10000000000", EXPECT), 413),
    "a media type that is not JSON": (
        head("POST", "/chats/", "Content-Type: text/plain", "Content-Length: 20", EXPECT),
        415,
    ),
    "a compressed body": (
        head("POST", "/chats/", JSON, "Content-Encoding: gzip", "Content-Length: 20", EXPECT),
        415,
    ),
    "no such route": (head("POST", "/nowhere/", JSON, "Content-Length: 20", EXPECT), 404),
    "no such chat id": (head("POST", "/chats/0/messages/", JSON, "Content-Length: 20", EXPECT), 404),
    "a method the route lacks": (head("PUT", "/chats/", JSON, "Content-Length: 20", EXPECT), 405),
    "a malformed Idempotency-Key": (
        head("POST", "/chats/", JSON, "Content-Length: 20", "Idempotency-Key: ", EXPECT),
        400,
    ),
    "an expectation other than 100-continue": (
        head("POST", "/chats/", JSON, "Content-Length: 20", "Expect: 200-ok"),
        417,
    ),
}


def first_answer(base: str, raw: bytes, then: bytes = b"", timeout: float = 5) -> tuple[bytes, bytes]:
    """Sends raw, reads the first response head; then sends `then` and reads what follows until closed."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(with_server_key(raw))
        first = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in first and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            first += chunk
        rest = b""
        if then:
            sock.sendall(then)
            while time.monotonic() < deadline and not complete(rest):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
    return first, rest


@pytest.mark.parametrize(("raw", "status"), DECIDED_BY_HEADERS.values(), ids=DECIDED_BY_HEADERS.keys())
def test_expect_100_continue_gets_the_final_answer_its_headers_decide_without_an_invitation(
    service: tuple[str, str], raw: bytes, status: int
) -> None:
    base, _ = service
    answer, _ = first_answer(base, raw)
    assert status_of(answer) == status, answer[:300]
    assert b"100 Continue" not in answer
    assert b"content-type: application/problem+json" in answer.lower()


def test_expect_100_continue_invites_a_body_that_can_succeed_and_stores_it(service: tuple[str, str]) -> None:
    base, _ = service
    body = b'{"title": "invited"}'
    invitation, answer = first_answer(
        base, head("POST", "/chats/", JSON, f"Content-Length: {len(body)}", EXPECT), body
    )
    assert invitation == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert status_of(answer) == 201, answer[:300]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["title"] == "invited"


def test_expect_100_continue_from_http_1_0_is_ignored_as_http_says(service: tuple[str, str]) -> None:
    base, _ = service
    body = b'{"title": "one-oh"}'
    raw = head("POST", "/chats/", JSON, f"Content-Length: {len(body)}", EXPECT, version="1.0") + body
    answer, _ = first_answer(base, raw)
    assert status_of(answer) == 201 and b"100 Continue" not in answer


def test_a_client_that_leaves_after_announcing_a_huge_body_is_no_error(service: tuple[str, str]) -> None:
    base, _ = service
    host, port = base.removeprefix("http://").split(":")
    for _ in range(5):
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                with_server_key(head("POST", "/chats/", JSON, "Content-Length: 10000000000", EXPECT))
            )
    assert call("GET", f"{base}/healthz")[0] == 200  # and the log check below finds no error


# -- the log ------------------------------------------------------------------------


def test_hostile_requests_leave_bounded_info_lines_and_no_error_or_traceback_in_the_log(
    served: tuple[str, str, subprocess.Popen[str]],
) -> None:
    """Last in this module: its log then holds everything the tests above sent too."""
    base, _, process = served
    for raw in PARSER_LEVEL.values():
        until_closed(base, raw)
    for raw, _ in (*SERVICE_LEVEL.values(), *DECIDED_BY_HEADERS.values()):
        exchange(base, raw)
    time.sleep(0.5)  # what is logged after an answer (a client gone) has been written
    lines = [json.loads(line) for line in output_of(process).splitlines() if line.strip()]
    assert [line for line in lines if line["level"] in ("ERROR", "CRITICAL")] == []
    assert not [line for line in lines if "exception" in line or "Traceback" in line["message"]]
    refused = [line for line in lines if line["message"] == "refused a malformed request"]
    assert len(refused) >= len(PARSER_LEVEL)
    assert {line["level"] for line in refused} == {"INFO"}
    # The client sent 100 KB header lines; what is logged of them stays short.
    assert max(len(json.dumps(line)) for line in lines) < 1000
