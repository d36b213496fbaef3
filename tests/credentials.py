"""The credentials every test runs with: a server key, a token secret, and user tokens signed by it.

Tests act as the server unless they say otherwise (the v1 and v2 promises
hold for the server caller); the aiohttp_client fixture, served processes and
the raw-socket helpers all send SERVER_KEY by default.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

SERVER_KEY = "test-server-key-0123456789abcdefghijklmnopqrstuvwxyz"
JWT_SECRET = "test-token-secret-0123456789abcdefghijklmnopqrstuvwxyz"
# For Settings(**CREDENTIALS, ...)
CREDENTIALS: dict[str, Any] = {"server_keys": (SERVER_KEY,), "jwt_secrets": (JWT_SECRET,)}
# For served processes' environments.
ENVIRONMENT = {"CHATSVC_SERVER_KEYS": SERVER_KEY, "CHATSVC_JWT_SECRETS": JWT_SECRET}


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


SERVER = bearer(SERVER_KEY)


def token(user: str, *, ttl: float = 3600, secret: str = JWT_SECRET, **claims: Any) -> str:
    """A user token as an application's backend would sign it; claims add or (None) remove."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": user, "iat": now, "exp": now + int(ttl)} | claims
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm="HS256")


def user(name: str) -> dict[str, str]:
    """Headers of a request by that user."""
    return bearer(token(name))


def with_server_key(raw: bytes) -> bytes:
    """A raw request with the server's Authorization header after its request line
    (unless it has one); bytes without a line end go as they are."""
    line, separator, rest = raw.partition(b"\r\n")
    if not separator or b"\r\nauthorization:" in raw.lower():
        return raw
    return b"%s\r\nAuthorization: Bearer %s\r\n%s" % (line, SERVER_KEY.encode(), rest)
