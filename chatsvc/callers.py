"""Who is calling (contract v3, Callers): the server, by one of its keys, or a user, by a token.

A credential is `Authorization: Bearer <credential>` (event streams also take
`?access_token=`, as browsers' EventSource cannot send headers). It is either
one of the server keys, compared in constant time with every configured key,
or a JWT signed with HS256 by one of the token secrets, verified by PyJWT
with the algorithm pinned: a token naming any other algorithm (`none`,
`RS256` with the secret as a public key, ...) is refused before any key is
used. Whatever is refused gets 401 with a detail saying why, never the
credential itself.

Verified tokens are cached until they expire (bounded, per process): a client
sends the same token with every request, and verifying it again each time
costs about 115 µs of CPU (PyJWT on this project's machine, 2026-12-01):
more than a whole get_chat answer, about 90 µs at the README's 10,800 req/s.
A cached one takes 1.5 µs.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import jwt
from aiohttp import web

from chatsvc.models import USER_ID_PATTERN
from chatsvc.problems import Problem

ALGORITHM = "HS256"
LEEWAY_SECONDS = 30
_USER_ID = re.compile(USER_ID_PATTERN)
# Verified tokens kept per process; past it the oldest goes first.
TOKEN_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Caller:
    """The server (user None), or a user by id."""

    user: str | None = None

    @property
    def is_server(self) -> bool:
        return self.user is None


SERVER = Caller()
# Set on every request to a protected route before its handler runs (chatsvc/app.py).
CALLER = web.RequestKey("caller", Caller)


class Unauthorized(Problem):
    status = 401

    def __init__(self, detail: str, *, credential_sent: bool = True) -> None:
        challenge = 'Bearer error="invalid_token"' if credential_sent else "Bearer"
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


# PyJWT's refusals, by class, as the detail says them (most specific first).
_REFUSALS: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.ExpiredSignatureError, "The token has expired (exp)."),
    (jwt.ImmatureSignatureError, "The token is not valid yet (nbf or iat in the future)."),
    (jwt.InvalidAudienceError, "The token is not meant for this service (aud)."),
    (jwt.InvalidAlgorithmError, f"The token's algorithm is not {ALGORITHM}."),
    (jwt.InvalidSignatureError, "The token's signature does not match (bad signature)."),
    (jwt.DecodeError, "The credential is malformed: neither a server key nor a well-formed JWT."),
)


# Server keys are visible ASCII (settings.ServerKey), JWTs base64url and dots: anything else is malformed.
_CREDENTIAL = re.compile(r"[!-~]+")


def user_id_problem(user: object) -> str | None:
    """Why user is not a valid user id, or None when it is."""
    if not isinstance(user, str) or not _USER_ID.fullmatch(user):
        return "must be 1 to 255 visible ASCII characters (U+0021 to U+007E)"
    return None


class Authenticator:
    """Turns a request's credential into its Caller, or refuses it with Unauthorized."""

    def __init__(
        self,
        server_keys: tuple[str, ...],
        jwt_secrets: tuple[str, ...],
        audience: str | None = None,
        *,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self._server_keys = tuple(key.encode() for key in server_keys)
        self._secrets = jwt_secrets
        self._audience = audience
        self._verified: dict[str, tuple[Caller, float]] = {}  # token -> (caller, exp)

    def caller_of(self, headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> Caller:
        """The caller a request's Authorization header (or, where query is given, its
        access_token) names. Unauthorized when there is none or it is refused."""
        if not self.enabled:
            return SERVER
        authorization = headers.get("Authorization")
        if authorization is None:
            token = None if query is None else query.get("access_token")
            if token is None:
                raise Unauthorized(
                    "No credential: send Authorization: Bearer <server key or user token>.",
                    credential_sent=False,
                )
            return self.caller_for(token)
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise Unauthorized("The Authorization header is malformed: expected Bearer and a credential.")
        return self.caller_for(credential.strip())

    def caller_for(self, credential: str) -> Caller:
        if not _CREDENTIAL.fullmatch(credential):
            raise Unauthorized("The credential is malformed: it must be visible ASCII characters only.")
        cached = self._verified.get(credential)
        if cached is not None:
            caller, expires = cached
            if time.time() < expires + LEEWAY_SECONDS:
                return caller
            del self._verified[credential]
        offered = credential.encode()
        # Every key is compared, whichever matches, so the time taken says nothing about which.
        matched = False
        for key in self._server_keys:
            matched |= hmac.compare_digest(offered, key)
        if matched:
            return SERVER
        caller, expires = self._verify_token(credential)
        if len(self._verified) >= TOKEN_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[credential] = (caller, expires)
        return caller

    def _verify_token(self, token: str) -> tuple[Caller, float]:
        if not self._secrets:
            raise Unauthorized("The credential is not a server key, and this service takes no user tokens.")
        claims: dict[str, object] | None = None
        for secret in self._secrets:
            try:
                claims = jwt.decode(
                    token,
                    secret,
                    algorithms=[ALGORITHM],
                    audience=self._audience,
                    leeway=LEEWAY_SECONDS,
                    options={"require": ["exp", "sub"], "verify_sub": False},
                )
                break
            except jwt.InvalidSignatureError:
                continue  # another secret may have signed it (rotation)
            except jwt.InvalidTokenError as exc:
                raise Unauthorized(_refusal(exc)) from None
        if claims is None:
            raise Unauthorized(_refusal(jwt.InvalidSignatureError()))
        user = claims["sub"]
        if user_id_problem(user) is not None:
            raise Unauthorized("The token's sub claim is not a user id (1 to 255 visible ASCII characters).")
        expires = claims["exp"]
        assert isinstance(user, str) and isinstance(expires, int | float)  # PyJWT checked exp
        return Caller(user), float(expires)


def _refusal(exc: jwt.InvalidTokenError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):  # exp and sub, and aud where an audience is set
        return f"The token lacks a required claim ({exc.claim})."
    for kind, detail in _REFUSALS:
        if isinstance(exc, kind):
            return detail
    return "The token is not valid (a claim is malformed)."


def issue_token(user: str, secret: str, ttl_seconds: int, audience: str | None = None) -> str:
    """A user token for `chatsvc token` (development and scripts)."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": user, "iat": now, "exp": now + ttl_seconds}
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
