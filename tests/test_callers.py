"""Callers (contract v3): who may call, proved against the real app, and the log of a served process.

GET /chats/ answers 200 to any valid caller, so it is the route that shows a
credential is accepted here; what a user may see of a chat is the members'
tests' business. Every refusal is checked whole: 401, problem+json, the
challenge, a detail saying why, and no trace of the credential in the answer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import ClientResponse
from pytest_aiohttp import AiohttpClient

from chatsvc import callers
from chatsvc.app import create_app
from chatsvc.settings import Settings
from tests.api import problem
from tests.conftest import Client
from tests.credentials import CREDENTIALS, JWT_SECRET, SERVER, SERVER_KEY, bearer, token
from tests.served import call, environment, serving, stop
from tests.sse import EventStream

OTHER_KEY = "test-server-key-2-0123456789abcdefghijklmnopqrstuvwxyz"
OTHER_SECRET = "test-token-secret-2-0123456789abcdefghijklmnopqrstuvwxyz"
AUDIENCE = "chat.example"
# A public key, as an attacker of the RS256/HS256 confusion would use it for an HMAC secret.
PUBLIC_KEY = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
    "4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n"
    "-----END PUBLIC KEY-----\n"
)


def raw_exchange(
    base: str, request: bytes, until: bytes | None = None, timeout: float = 5
) -> tuple[bytes, bool]:
    """Sends request bytes exactly as given (no server key added); what comes back until the
    connection closes, `until` arrives or the timeout passes, and whether it was closed."""
    host, port = base.removeprefix("http://").split(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (until and until in received):
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                return received, True
            received += chunk
    return received, False


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def claims(user: str = "alice", ttl: int = 3600, **more: Any) -> dict[str, Any]:
    now = int(time.time())
    return {k: v for k, v in ({"sub": user, "iat": now, "exp": now + ttl} | more).items() if v is not None}


def forged(
    header: dict[str, Any], payload: dict[str, Any], key: bytes | None = None, digest: Any = None
) -> str:
    """A compact JWT with any header, HMAC-signed with key (no signature without one)."""
    signed = f"{segment(header)}.{segment(payload)}"
    if key is None:
        return f"{signed}."
    signature = hmac.new(key, signed.encode(), digest or hashlib.sha256).digest()
    return f"{signed}.{b64(signature)}"


def hs(bits: int) -> str:
    """A token signed with the secret, properly, by HMAC-SHA384 or -512: a valid token of another algorithm."""
    return forged(
        {"alg": f"HS{bits}", "typ": "JWT"}, claims(), JWT_SECRET.encode(), getattr(hashlib, f"sha{bits}")
    )


@pytest.fixture
def app_with(aiohttp_client: AiohttpClient, database_url: str) -> Callable[..., Any]:
    """The app with these settings, its client sending no credential unless a request does."""

    async def make(**settings: Any) -> Client:
        configured = Settings(**(CREDENTIALS | {"database_url": database_url} | settings))
        return await aiohttp_client(create_app(configured), headers={})

    return make


@pytest.fixture
async def anonymous(app_with: Callable[..., Any]) -> Client:
    client: Client = await app_with()
    return client


async def accepted(client: Client, credential: str) -> bool:
    response = await client.get("/chats/", headers=bearer(credential))
    assert response.status in (200, 401), await response.text()
    return response.status == 200


async def refused(response: ClientResponse, *, says: str, sent: str | None = None) -> dict[str, Any]:
    """A 401 as the contract has it; sent: the credential, which nothing of the answer may show."""
    body = await problem(response, 401)
    challenge = 'Bearer error="invalid_token"' if sent is not None else "Bearer"
    assert response.headers["WWW-Authenticate"] == challenge
    assert says.lower() in body["detail"].lower(), body["detail"]
    if sent is not None:
        answer = json.dumps(body) + json.dumps(dict(response.headers))
        for part in [sent, *sent.split(".")]:
            if len(part) >= 4:  # a JWT's segments, a key; not an empty signature or a lone "."
                assert part not in answer, (part, answer)
    return body


# -- what is accepted --------------------------------------------------------------------


async def test_each_of_two_server_keys_and_tokens_of_each_of_two_secrets_are_accepted(
    app_with: Callable[..., Any],
) -> None:
    client = await app_with(server_keys=(SERVER_KEY, OTHER_KEY), jwt_secrets=(JWT_SECRET, OTHER_SECRET))
    assert await accepted(client, SERVER_KEY) and await accepted(client, OTHER_KEY)
    assert await accepted(client, token("alice")) and await accepted(
        client, token("bob", secret=OTHER_SECRET)
    )
    third = "test-token-secret-3-0123456789abcdefghijklmnopqrstuvwxyz"
    unknown = token("carol", secret=third)
    await refused(await client.get("/chats/", headers=bearer(unknown)), says="bad signature", sent=unknown)
    await refused(await client.get("/chats/", headers=bearer(third)), says="malformed", sent=third)


async def test_the_scheme_is_case_insensitive(anonymous: Client) -> None:
    for scheme in ("bearer", "BEARER", "Bearer"):
        assert (
            await anonymous.get("/chats/", headers={"Authorization": f"{scheme} {SERVER_KEY}"})
        ).status == 200


async def test_a_user_id_of_255_visible_ascii_characters_is_accepted(anonymous: Client) -> None:
    assert await accepted(anonymous, token("!" + "~" * 253 + "a"))
    assert await accepted(anonymous, token("a"))


async def test_expiry_and_nbf_within_the_30_seconds_of_leeway_are_accepted(anonymous: Client) -> None:
    assert callers.LEEWAY_SECONDS == 30
    now = int(time.time())
    assert await accepted(anonymous, token("alice", exp=now - 20))
    assert await accepted(anonymous, token("alice", nbf=now + 20))


# -- what is refused, and how it says so --------------------------------------------------


async def test_no_credential_is_401_with_a_bare_challenge(anonymous: Client) -> None:
    await refused(await anonymous.get("/chats/"), says="No credential")


FORGED_TOKENS: dict[str, tuple[Callable[[], str], str]] = {
    "alg none": (lambda: forged({"alg": "none", "typ": "JWT"}, claims()), "algorithm"),
    "alg None, signed": (lambda: forged({"alg": "None"}, claims(), JWT_SECRET.encode()), "algorithm"),
    "alg absent": (lambda: forged({"typ": "JWT"}, claims(), JWT_SECRET.encode()), "algorithm"),
    "HS384": (lambda: hs(384), "algorithm"),
    "HS512": (lambda: hs(512), "algorithm"),
    # RS256 in the header, HMAC-signed with the very secret: an algorithm taken
    # from the token would verify it. Pinned to HS256, it is refused first.
    "RS256 signed with the secret": (
        lambda: forged({"alg": "RS256", "typ": "JWT"}, claims(), JWT_SECRET.encode()),
        "algorithm",
    ),
    "RS256 signed with a public key as HMAC secret": (
        lambda: forged({"alg": "RS256", "typ": "JWT"}, claims(), PUBLIC_KEY.encode()),
        "algorithm",
    ),
    "HS256 signed with a public key (the confusion)": (
        lambda: forged({"alg": "HS256", "typ": "JWT"}, claims(), PUBLIC_KEY.encode()),
        "bad signature",
    ),
    "wrong secret": (lambda: token("alice", secret="not-the-secret-0123456789abcdefghijkl"), "bad signature"),
    "signature of another payload": (
        lambda: ".".join([*token("mallory").split(".")[:2], token("alice").split(".")[2]]),
        "bad signature",
    ),
    "expired beyond the leeway": (lambda: token("alice", exp=int(time.time()) - 31), "expired"),
    "long expired": (lambda: token("alice", ttl=-3600), "expired"),
    "nbf beyond the leeway": (lambda: token("alice", nbf=int(time.time()) + 60), "not valid yet"),
    "iat in the future": (lambda: token("alice", iat=int(time.time()) + 600), "not valid yet"),
    "exp missing": (lambda: token("alice", exp=None), "(exp)"),
    "exp not a number": (lambda: token("alice", exp="tomorrow"), "malformed"),
    "sub missing": (lambda: token(None), "(sub)"),  # type: ignore[arg-type]
    "sub of 256 characters": (lambda: token("a" * 256), "sub"),
    "sub empty": (lambda: token(""), "sub"),
    "sub with a space": (lambda: token("al ice"), "sub"),
    "sub not ASCII": (lambda: token("alicé"), "sub"),
    "sub with a control character": (lambda: token("ali\tce"), "sub"),
    "sub a number": (lambda: token(42), "sub"),  # type: ignore[arg-type]
    "sub a list": (lambda: token(["alice"]), "sub"),  # type: ignore[arg-type]
    # RFC 7519: a principal not named in aud must reject, and none is named here.
    "aud when no audience is configured": (lambda: token("alice", aud=AUDIENCE), "aud"),
    "garbage": (lambda: "garbage-that-is-no-credential-at-all", "malformed"),
    "a bad base64 segment": (
        lambda: f"{token('alice').split('.')[0]}.@@not*base64@@.{b64(b'x' * 32)}",
        "malformed",
    ),
    "a header that is not JSON": (
        lambda: f"{b64(b'not json')}.{segment(claims())}.{b64(b'x' * 32)}",
        "malformed",
    ),
    "two segments": (lambda: ".".join(token("alice").split(".")[:2]), "malformed"),
    "four segments": (lambda: f"{token('alice')}.{b64(b'more')}", "malformed"),
    "a server key with one character changed": (lambda: SERVER_KEY[:-1] + "Z", "malformed"),
    "a server key's prefix": (lambda: SERVER_KEY[:32], "malformed"),
}


@pytest.mark.parametrize(("make", "says"), FORGED_TOKENS.values(), ids=FORGED_TOKENS.keys())
async def test_a_forged_or_invalid_token_is_401_saying_why_and_never_echoing_it(
    anonymous: Client, make: Callable[[], str], says: str
) -> None:
    credential = make()
    await refused(await anonymous.get("/chats/", headers=bearer(credential)), says=says, sent=credential)


async def test_with_an_audience_set_aud_must_contain_it(app_with: Callable[..., Any]) -> None:
    client = await app_with(jwt_audience=AUDIENCE)
    assert await accepted(client, token("alice", aud=AUDIENCE))
    assert await accepted(client, token("alice", aud=["other.example", AUDIENCE]))
    for credential, says in [
        (token("alice", aud="other.example"), "aud"),
        (token("alice", aud=["other.example"]), "aud"),
        (token("alice"), "(aud)"),
        (token("alice", aud=[]), "(aud)"),
        (token("alice", aud=42), "aud"),
    ]:
        await refused(await client.get("/chats/", headers=bearer(credential)), says=says, sent=credential)
    assert await accepted(client, SERVER_KEY)  # the server has no audience


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNzd29yZA==", "Bearer", "Bearer   ", "Token " + SERVER_KEY, SERVER_KEY, "", "Bearer\t"],
)
async def test_a_malformed_authorization_header_is_401(anonymous: Client, authorization: str) -> None:
    response = await anonymous.get("/chats/", headers={"Authorization": authorization})
    # What is secret in it is anything but the scheme's name.
    secret = " ".join(
        word for word in authorization.split() if word.lower() not in ("bearer", "basic", "token")
    )
    await refused(response, says="malformed", sent=secret)


async def test_a_credential_that_is_not_ascii_is_401_not_500(anonymous: Client) -> None:
    assert anonymous.server.port is not None
    for raw in (SERVER_KEY.encode() + b"\xff\xfe", token("alice").encode() + "é".encode()):
        reader, writer = await asyncio.open_connection("127.0.0.1", anonymous.server.port)
        writer.write(
            b"GET /chats/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer "
            + raw
            + b"\r\n\r\n"
        )
        answer = await reader.read()
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 401 "), answer[:300]
        assert b'\r\nWWW-Authenticate: Bearer error="invalid_token"\r\n' in head
        assert b"malformed" in body and raw[:20] not in body


async def test_a_cached_token_is_refused_once_past_its_expiry_and_the_leeway(anonymous: Client) -> None:
    """Verified tokens are cached (chatsvc/callers.py); the cache must not outlive them."""
    credential = token("alice", exp=int(time.time()) - 27)  # within the leeway, for 3 s more at most
    assert await accepted(anonymous, credential)
    assert await accepted(anonymous, credential)  # from the cache
    await asyncio.sleep(4.5)
    await refused(await anonymous.get("/chats/", headers=bearer(credential)), says="expired", sent=credential)


# -- credentials before anything else -------------------------------------------------------


async def test_credentials_are_checked_before_the_body_the_path_and_the_chat(anonymous: Client) -> None:
    for response in [
        await anonymous.post("/chats/", data=b"{not json", headers={"Content-Type": "application/json"}),
        await anonymous.post("/chats/", json={"title": 123}),
        await anonymous.post("/chats/", data=b"x" * 70_000, headers={"Content-Type": "application/json"}),
        await anonymous.post("/chats/", data=b"{}", headers={"Content-Type": "text/plain"}),
        await anonymous.post(
            "/chats/", data=b"{}", headers={"Content-Type": "application/json", "Idempotency-Key": ""}
        ),
        await anonymous.get("/chats/999999999"),
        await anonymous.get("/chats/abc"),
        await anonymous.get("/chats/99999999999999999999999/messages/"),
        await anonymous.get("/chats/?limit=0"),
        await anonymous.delete("/chats/999999999"),
        await anonymous.head("/chats/999999999"),
    ]:
        assert response.status == 401, (response.method, response.url, await response.text())
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_wrong_method_is_405_and_no_route_404_whoever_asks(anonymous: Client) -> None:
    """The router answers these before any route's handler, so before the credential check:
    they say only which methods and paths exist, which /openapi.json says to anyone."""
    wrong_method = await anonymous.put("/chats/")
    await problem(wrong_method, 405)
    assert "POST" in wrong_method.headers["Allow"]
    await problem(await anonymous.get("/nowhere"), 404)


# -- event streams and ?access_token= ------------------------------------------------------


async def test_event_streams_take_the_credential_as_access_token(anonymous: Client) -> None:
    created = await anonymous.post("/chats/", json={"title": "followed"}, headers=SERVER)
    chat_id = (await created.json())["id"]
    for credential in (SERVER_KEY, token("alice")):
        if credential != SERVER_KEY:  # a chat of the user's own, so the user may follow it
            mine = await anonymous.post("/chats/", json={"title": "mine"}, headers=bearer(credential))
            assert mine.status == 201
            chat_id = (await mine.json())["id"]
        response = await anonymous.get(f"/chats/{chat_id}/events", params={"access_token": credential})
        stream = EventStream(response)
        assert (await stream.frame()).retry == "1000"  # open: its first frame
        response.close()
    for credential, says in [
        (token("alice", secret=OTHER_SECRET), "bad signature"),
        ("garbage-token", "malformed"),
    ]:
        response = await anonymous.get(f"/chats/{chat_id}/events", params={"access_token": credential})
        await refused(response, says=says, sent=credential)
    await refused(
        await anonymous.get(f"/chats/{chat_id}/events", params={"access_token": ""}),
        says="malformed",
        sent="",
    )
    await refused(await anonymous.get(f"/chats/{chat_id}/events"), says="No credential")


async def test_a_header_wins_over_access_token(anonymous: Client) -> None:
    created = await anonymous.post("/chats/", json={"title": "both"}, headers=SERVER)
    events = f"/chats/{(await created.json())['id']}/events"
    response = await anonymous.get(events, params={"access_token": "garbage-token"}, headers=SERVER)
    assert response.status == 200
    response.close()
    forged_header = bearer("garbage-in-the-header")
    response = await anonymous.get(events, params={"access_token": SERVER_KEY}, headers=forged_header)
    await refused(response, says="malformed", sent="garbage-in-the-header")


@pytest.mark.parametrize("path", ["/chats/", "/chats/1", "/chats/1/messages/", "/chats/1/messages/1"])
async def test_other_routes_ignore_access_token(anonymous: Client, path: str) -> None:
    response = await anonymous.get(path, params={"access_token": SERVER_KEY})
    await refused(response, says="No credential")


# -- public routes, and checking off ---------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/", "/docs/assets/swagger-ui.css"],
)
async def test_public_routes_need_no_credential_and_ignore_a_bad_one(anonymous: Client, path: str) -> None:
    assert (await anonymous.get(path)).status == 200
    assert (await anonymous.head(path)).status == 200
    assert (await anonymous.get(path, headers=bearer("garbage-token"))).status == 200


async def test_with_auth_off_every_request_is_the_server(app_with: Callable[..., Any]) -> None:
    client = await app_with(auth="off", server_keys=(), jwt_secrets=())
    created = await client.post("/chats/", json={"title": "unchecked"})
    assert created.status == 201
    chat_id = (await created.json())["id"]
    assert (await client.get("/chats/", headers=bearer("garbage-token"))).status == 200
    assert (await client.get(f"/chats/{chat_id}", headers={"Authorization": "Basic eDp5"})).status == 200
    assert (await client.delete(f"/chats/{chat_id}")).status == 204


# -- no credential in any log line ---------------------------------------------------------------


def test_a_served_process_logs_no_credential_it_was_sent(make_database: Callable[[], str]) -> None:
    env = environment(DATABASE_URL=make_database(), CHATSVC_LOG_LEVEL="DEBUG")
    user_token = token("alice")
    sent = [SERVER_KEY, user_token]
    with serving(env) as (base, process):
        status, chat = call("POST", f"{base}/chats/", {"title": "logged"})
        assert status == 201
        assert call("GET", f"{base}/chats/", headers=bearer(user_token))[0] == 200
        status, own = call("POST", f"{base}/chats/", {"title": "alice's"}, headers=bearer(user_token))
        assert status == 201
        for chat_id, credential in ((chat["id"], SERVER_KEY), (own["id"], user_token)):
            stream, _ = raw_exchange(
                base,
                f"GET /chats/{chat_id}/events?access_token={credential} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
                until=b"retry: 1000",
            )
            assert stream.startswith(b"HTTP/1.1 200 ") and b"retry: 1000" in stream, stream[:300]
        forgeries = [
            forged({"alg": "none"}, claims()),
            token("alice", secret=OTHER_SECRET),
            token("alice", ttl=-3600),
            hs(512),
            OTHER_KEY,
        ]
        sent += forgeries
        for credential in forgeries:
            assert call("GET", f"{base}/chats/", headers=bearer(credential))[0] == 401
            request = f"GET /chats/{chat['id']}/events?access_token={credential} HTTP/1.1\r\nHost: x\r\n"
            answer, _ = raw_exchange(base, f"{request}Connection: close\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 401 "), answer[:300]
        # Requests the HTTP parser refuses, its complaint quoting the line that holds the credential.
        for malformed in [
            f"GET /chats/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SERVER_KEY}\x00\r\n\r\n",
            f"GET /chats/ HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer {user_token}\r\n\r\n",
            f"GET /chats/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SERVER_KEY}\r\n Folded: {SERVER_KEY}\r\n\r\n",
            f"GET /chats/{chat['id']}/events?access_token={user_token} HTTP/1.1 and more\r\nHost: x\r\n\r\n",
            f"GET /chats/{chat['id']}/events?access_token={SERVER_KEY}\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
        ]:
            answer, closed = raw_exchange(base, malformed.encode())
            assert answer.startswith(b"HTTP/1.0 400 ") and closed, answer[:300]
            assert SERVER_KEY.encode() not in answer and user_token.encode() not in answer
        # Without a credential, a body announced with Expect: 100-continue is never invited
        # (the test server has aiohttp's own Expect handling, so this is checked here).
        announced = b"POST /chats/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        announced += b"Content-Length: 10000000\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        answer, _ = raw_exchange(base, announced)
        assert answer.startswith(b"HTTP/1.1 401 ") and b"100 Continue" not in answer, answer[:300]
        time.sleep(0.5)  # what is logged after an answer has been written
        output = stop(process)
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert sum(line["message"] == "refused a malformed request" for line in lines) == 5
    streams = [line for line in lines if line.get("route") == "/chats/{chat_id}/events"]
    assert len(streams) == 2 + len(forgeries)
    assert all("?" not in line["path"] for line in streams)  # the path only, never the query
    for credential in sent:
        for part in [credential, *credential.split(".")]:
            if len(part) >= 8:  # each JWT's segments, its signature most of all
                assert part not in output, part
        assert credential[:16] not in output
