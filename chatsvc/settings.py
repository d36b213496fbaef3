"""Settings from the environment, parsed and validated once at start-up.

Every variable is listed in ``ENVIRONMENT``; the README's configuration table
mirrors it. A bad value stops start-up with one line naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from jwt.algorithms import HMACAlgorithm
from jwt.exceptions import InvalidKeyError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Seconds = Annotated[float, Field(gt=0, le=3600)]
# Server keys and token secrets: comma-separated in the environment, each long
# enough that guessing is out of reach (the contract: at least 32).
ServerKey = Annotated[str, Field(min_length=32, pattern=r"^[!-~]+$")]
TokenSecret = Annotated[str, Field(min_length=32)]


def _looks_like_a_public_key(secret: str) -> bool:
    # PyJWT's own test, and ours for what older PyJWT releases let through
    # (a PEM block on one line, say).
    if "-----BEGIN " in secret or secret.startswith(("ssh-", "ecdsa-sha2-")):
        return True
    try:
        HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(secret)
    except InvalidKeyError:
        return True
    return False


def default_data_dir() -> Path:
    """Where the embedded PostgreSQL keeps its files when CHATSVC_DATA_DIR is unset.

    Root runs the database as a system user, so its data belongs in the system
    state directory; everyone else gets the XDG data directory.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/chatsvc")
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "chatsvc"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # None: start the embedded PostgreSQL in data_dir.
    database_url: str | None = None
    # The events listener's LISTEN connection: direct or session-pooled, never
    # a transaction pooler (a LISTEN there hears nothing). None: database_url.
    events_database_url: str | None = None
    # Where migrations apply (chatsvc serve at start, chatsvc migrate). None: database_url.
    migrations_database_url: str | None = None
    # A hot standby of database_url for reads (chatsvc/replica.py). None: reads use the primary.
    replica_database_url: str | None = None
    # Longest a read that sent Chatsvc-Position waits for the replica to replay
    # it before it reads the primary instead.
    replica_wait: Annotated[float, Field(ge=0, le=60)] = 0.25
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    pool_min_size: int = Field(1, ge=0, le=1000)
    pool_max_size: int = Field(10, ge=1, le=1000)
    # How long a request waits for a free connection before it gets 503.
    pool_acquire_timeout: Seconds = 5.0
    # Server-side statement_timeout; a statement running longer gets 503.
    statement_timeout: Seconds = 10.0
    # How long a client may take to send a request body before it gets 408.
    body_timeout: Seconds = 30.0
    # How long a connection may go without a complete request head, after it
    # opens or after its previous answer, before it is closed: the idle
    # keep-alive timeout, and the header timeout that stops slowloris clients.
    idle_timeout: Seconds = 15.0
    # asyncpg's prepared-statement cache; 0 behind PgBouncer in transaction mode.
    statement_cache_size: int = Field(100, ge=0, le=100_000)
    log_level: LogLevel = "INFO"
    # On SIGTERM / SIGINT, how long requests in flight may take to finish.
    shutdown_grace: Seconds = 30.0
    # Longest silence on an event stream before a comment line keeps it open
    # (the contract promises at least one every 15 s).
    sse_heartbeat: Annotated[float, Field(gt=0, le=15)] = 15.0
    # Most event streams one process serves at once; more get 503 + Retry-After.
    # An idle stream costs about 15 KiB of memory (measured with 1,000 open).
    sse_max_streams: int = Field(2000, ge=1, le=1_000_000)
    # Most client connections one process keeps open; past it a new one gets
    # 503 + Retry-After and is closed. Lowered at start to what the open-file
    # limit leaves room for (chatsvc/listening.py).
    max_connections: int = Field(10_000, ge=1, le=1_000_000)
    # "off": no credential is checked and every request is the server (local experiments only).
    auth: Literal["on", "off"] = "on"
    # Callers (chatsvc/callers.py): several of each at once, so one can be rotated.
    server_keys: tuple[ServerKey, ...] = ()
    jwt_secrets: tuple[TokenSecret, ...] = ()
    # When set, a user token's aud must contain it.
    jwt_audience: str | None = None
    # Per-user write limit (chatsvc/limits.py): sustained writes per second, and the burst.
    user_write_rate: float = Field(10.0, gt=0, le=1_000_000)
    user_write_burst: int = Field(50, ge=1, le=1_000_000)

    @field_validator("server_keys", "jwt_secrets", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            # The contract's variables are comma-separated; bytes counted in UTF-8 for secrets.
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("jwt_secrets", mode="after")
    @classmethod
    def _secret_bytes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(secret.encode()) < 32 for secret in value):
            raise ValueError("each secret must be at least 32 bytes")
        # PyJWT refuses a PEM or SSH key as an HMAC secret (the RS256/HS256
        # confusion): refused here at start-up, not at the first token.
        if any(_looks_like_a_public_key(secret) for secret in value):
            raise ValueError("each secret must be a shared secret, not a PEM or SSH key")
        return value

    @model_validator(mode="after")
    def _pool_bounds(self) -> Settings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("CHATSVC_POOL_MIN_SIZE: must not exceed CHATSVC_POOL_MAX_SIZE")
        return self

    @model_validator(mode="after")
    def _other_urls_need_the_main_one(self) -> Settings:
        for variable in (
            "CHATSVC_EVENTS_DATABASE_URL",
            "CHATSVC_MIGRATIONS_DATABASE_URL",
            "CHATSVC_REPLICA_DATABASE_URL",
        ):
            if self.database_url is None and getattr(self, ENVIRONMENT[variable]) is not None:
                raise ValueError(
                    f"{variable}: needs DATABASE_URL (without it the service runs its own PostgreSQL)"
                )
        return self

    @property
    def events_url(self) -> str | None:
        """The events listener's database (CHATSVC_EVENTS_DATABASE_URL, else DATABASE_URL)."""
        return self.events_database_url or self.database_url

    @property
    def migrations_url(self) -> str | None:
        """Where migrations apply (CHATSVC_MIGRATIONS_DATABASE_URL, else DATABASE_URL)."""
        return self.migrations_database_url or self.database_url


# environment variable -> Settings field
ENVIRONMENT: Mapping[str, str] = {
    "DATABASE_URL": "database_url",
    "CHATSVC_EVENTS_DATABASE_URL": "events_database_url",
    "CHATSVC_MIGRATIONS_DATABASE_URL": "migrations_database_url",
    "CHATSVC_REPLICA_DATABASE_URL": "replica_database_url",
    "CHATSVC_REPLICA_WAIT": "replica_wait",
    "CHATSVC_HOST": "host",
    "CHATSVC_PORT": "port",
    "CHATSVC_DATA_DIR": "data_dir",
    "CHATSVC_POOL_MIN_SIZE": "pool_min_size",
    "CHATSVC_POOL_MAX_SIZE": "pool_max_size",
    "CHATSVC_POOL_ACQUIRE_TIMEOUT": "pool_acquire_timeout",
    "CHATSVC_STATEMENT_TIMEOUT": "statement_timeout",
    "CHATSVC_BODY_TIMEOUT": "body_timeout",
    "CHATSVC_IDLE_TIMEOUT": "idle_timeout",
    "CHATSVC_STATEMENT_CACHE_SIZE": "statement_cache_size",
    "CHATSVC_LOG_LEVEL": "log_level",
    "CHATSVC_SSE_HEARTBEAT": "sse_heartbeat",
    "CHATSVC_SSE_MAX_STREAMS": "sse_max_streams",
    "CHATSVC_MAX_CONNECTIONS": "max_connections",
    "CHATSVC_SHUTDOWN_GRACE": "shutdown_grace",
    "CHATSVC_AUTH": "auth",
    "CHATSVC_SERVER_KEYS": "server_keys",
    "CHATSVC_JWT_SECRETS": "jwt_secrets",
    "CHATSVC_JWT_AUDIENCE": "jwt_audience",
    "CHATSVC_USER_WRITE_RATE": "user_write_rate",
    "CHATSVC_USER_WRITE_BURST": "user_write_burst",
}
_VARIABLE_OF_FIELD = {field: variable for variable, field in ENVIRONMENT.items()}


SECRET_FIELDS = frozenset({"server_keys", "jwt_secrets"})


class SettingsError(Exception):
    """A bad setting; str() is the one line to print."""


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build Settings from environment variables (empty ones count as unset).

    ``overrides`` are field values that win over the environment, such as
    ``chatsvc serve --port``.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {
        field: environ[variable]
        for variable, field in ENVIRONMENT.items()
        if environ.get(variable, "").strip()
    }
    if "log_level" in values:
        values["log_level"] = str(values["log_level"]).upper()
    if "auth" in values:
        values["auth"] = str(values["auth"]).strip().lower()
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:  # a rule across fields: its message starts with the variable it is about
            raise SettingsError(message) from None
        field = str(error["loc"][0])
        variable = _VARIABLE_OF_FIELD.get(field, field)
        # Credentials are never shown, not even in a refusal to start.
        shown = f", got {values[field]!r}" if field in values and field not in SECRET_FIELDS else ""
        raise SettingsError(f"{variable}: {message}{shown}") from None
