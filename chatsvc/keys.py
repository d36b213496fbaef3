"""Typed keys for everything the application object holds."""

from dataclasses import dataclass

from aiohttp import web

from chatsvc.db import Pool
from chatsvc.limits import WriteLimit
from chatsvc.live.hub import EventHub
from chatsvc.metrics import Metrics
from chatsvc.replica import Replica
from chatsvc.settings import Settings


@dataclass
class Lifecycle:
    """Mutable run state (the application's own mapping is frozen once it starts)."""

    shutting_down: bool = False
    activity_flush_failing: bool = False  # logged once per outage (chatsvc/app.py)
    statement_cache_hinted: bool = False  # logged once (chatsvc/errors.py)


SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Pool)
# One connection of its own for the background jobs (key purges, the activity flush):
# they never wait in the requests' line, nor hold a connection a request waits for.
BACKGROUND = web.AppKey("background", Pool)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
EVENTS = web.AppKey("events", EventHub)
# The hot standby reads may use (chatsvc/replica.py); None without CHATSVC_REPLICA_DATABASE_URL.
REPLICA: web.AppKey[Replica | None] = web.AppKey("replica")
METRICS = web.AppKey("metrics", Metrics)
OPENAPI = web.AppKey("openapi", bytes)  # the OpenAPI document, encoded once
WRITE_LIMIT = web.AppKey("write_limit", WriteLimit)  # the per-user write limit (chatsvc/limits.py)
