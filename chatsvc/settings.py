"""Settings from the environment, parsed and validated once at start-up.

Every variable is listed in ``ENVIRONMENT``; the README's configuration table
mirrors it. A bad value stops start-up with one line naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Seconds = Annotated[float, Field(gt=0, le=3600)]


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

    @model_validator(mode="after")
    def _pool_bounds(self) -> Settings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("must not exceed CHATSVC_POOL_MAX_SIZE")
        return self


# environment variable -> Settings field
ENVIRONMENT: Mapping[str, str] = {
    "DATABASE_URL": "database_url",
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
}
_VARIABLE_OF_FIELD = {field: variable for variable, field in ENVIRONMENT.items()}
# A cross-field rule is reported against the variable that the message names.
_VARIABLE_OF_RULE = {"": "CHATSVC_POOL_MIN_SIZE"}


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
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        variable = _VARIABLE_OF_FIELD.get(field) or _VARIABLE_OF_RULE.get(field, field)
        shown = f", got {values[field]!r}" if field in values else ""
        message = error["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{variable}: {message}{shown}") from None
