"""create_app(settings): keys, cleanup contexts, middlewares, routes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from aiohttp import web

from chatsvc import activity, idempotency, limits, openapi, queries, replica
from chatsvc.callers import CALLER, Authenticator
from chatsvc.db import DatabaseUnavailable, Pool, connector, open_database
from chatsvc.handlers import chat_events, chats, docs, members, messages, operations, read_state, search
from chatsvc.keys import (
    BACKGROUND,
    DATABASE,
    EVENTS,
    LIFECYCLE,
    METRICS,
    OPENAPI,
    REPLICA,
    SETTINGS,
    WRITE_LIMIT,
    Lifecycle,
)
from chatsvc.live.frames import SHUTTING_DOWN
from chatsvc.live.hub import EventHub
from chatsvc.metrics import Metrics
from chatsvc.observe import observe
from chatsvc.parsing import MAX_BODY_BYTES
from chatsvc.problems import Handler
from chatsvc.routing import Router
from chatsvc.settings import Settings

log = logging.getLogger(__name__)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]

# Every serving process purges expired Idempotency-Keys, and the write buckets
# that are full again, this often (seconds).
KEY_PURGE_INTERVAL = 3600.0
# How often the replica's lag is measured (/metrics), and how long a request
# waits for a replica connection before reading from the primary (seconds).
REPLICA_LAG_INTERVAL = 1.0
REPLICA_ACQUIRE_TIMEOUT = 1.0

# Every route, by path and method, with its OpenAPI operation: each declared
# next to its handler, in its handler module. Each path is served with and
# without a trailing slash, directly: a redirect would lose POST bodies in many clients.
ROUTES: openapi.Routes = {
    **chats.ROUTES,
    **messages.ROUTES,
    **members.ROUTES,
    **read_state.ROUTES,
    **search.ROUTES,
    **chat_events.ROUTES,
    **operations.ROUTES,
    **docs.ROUTES,
}


@functools.cache
def openapi_document() -> bytes:
    """The OpenAPI document, encoded: built by the first create_app of a process (it
    depends on ROUTES and the models only), so commands that serve nothing never build it."""
    return orjson.dumps(openapi.build(ROUTES))


def authenticated(
    handler: Handler,
    authenticator: Authenticator,
    access: openapi.Access,
    write_limit: limits.WriteLimit | None = None,
    *,
    write: bool = False,
) -> Handler:
    """The handler of a protected route: the caller is known before anything else on the
    route runs (a request without a credential is 401 whatever its path or body). With a
    write_limit (the route is a write), a user's request is then charged to that user's
    write limit: past it the answer is 429 and the handler does not run, so nothing is stored.
    This is where writes are charged, but for a route that charges in its own statement
    (Route.charged_by_handler: a send, an edit, a message deletion or a create, whose batch
    charges and writes in one round trip).
    With a replica, a write's success answers its commit position (Chatsvc-Position)."""
    if access == "public":
        return handler
    token_in_query = access == "bearer or query"

    async def handle(request: web.Request) -> web.StreamResponse:
        caller = authenticator.caller_of(request.headers, request.query if token_in_query else None)
        request[CALLER] = caller
        if write_limit is not None:  # the server (also every caller with auth off) is not limited
            await limits.charge_write(request.app[DATABASE], write_limit, caller.user)
        response = await handler(request)
        if write and request.app[REPLICA] is not None and response.status < 300:
            # Sent back on a read, it makes the replica show this write (chatsvc/replica.py).
            # The write is done whatever happens here: without a position the answer goes
            # without the header (a retry could store it twice), and the reads may be stale.
            try:
                response.headers[replica.HEADER] = await replica.after_commit(request.app[DATABASE])
            except DatabaseUnavailable:
                log.warning(
                    "no commit position for %s %s: the database is unavailable", request.method, request.path
                )
        return response

    return handle


def add_routes(
    app: web.Application, routes: openapi.Routes, authenticator: Authenticator, write_limit: limits.WriteLimit
) -> None:
    for path, methods in routes.items():
        for variant in (path, f"{path}/"):
            # One resource per path, so a wrong method gets 405 with the full Allow list.
            resource = app.router.add_resource(variant)
            for method, route in methods.items():
                write = openapi.is_write(method)
                charged = write_limit if write and not route.charged_by_handler else None
                handler = authenticated(
                    route.handler, authenticator, route.operation.access, charged, write=write
                )
                resource.add_route(method, handler)
                if method == "GET":
                    resource.add_route("HEAD", handler)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    app[DATABASE] = await open_database(app[SETTINGS])
    yield
    await app[DATABASE].close()


async def background_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # Opened at the first job's first round, and again after a failure.
    app[BACKGROUND] = Pool(
        connector(settings, "chatsvc-background"), max_size=1, acquire_timeout=settings.pool_acquire_timeout
    )
    yield
    await app[BACKGROUND].close()


async def replica_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.replica_database_url is None:
        app[REPLICA] = None
        yield
        return
    # Opened on demand: a replica that is down at start only sends reads to the primary.
    pool = Pool(
        connector(settings, "chatsvc-replica", settings.replica_database_url),
        max_size=settings.pool_max_size,
        acquire_timeout=min(REPLICA_ACQUIRE_TIMEOUT, settings.pool_acquire_timeout),
    )
    app[REPLICA] = replica.Replica(pool, app[DATABASE], settings.replica_wait)
    yield
    await pool.close()


async def measure_replica_lag(app: web.Application) -> None:
    if (standby := app[REPLICA]) is not None:
        await standby.measure_lag(app[BACKGROUND])


async def events_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[EVENTS] = EventHub(
        connector(settings, "chatsvc-events", settings.events_url),
        functools.partial(queries.notify_listener_check, app[DATABASE]),
        max_subscribers=settings.sse_max_streams,
    )
    await app[EVENTS].start()
    yield
    await app[EVENTS].close()


async def purge_keys(app: web.Application) -> None:
    """Expired Idempotency-Keys, then full write buckets."""
    purges = (
        ("expired Idempotency-Keys", idempotency.purge_expired_keys),
        ("full user write buckets", limits.purge_full_buckets),
    )
    for what, purge in purges:
        try:
            purged = await purge(app[BACKGROUND])
        except Exception:  # the next round tries again
            log.warning("purging %s failed", what, exc_info=True)
        else:
            log.info("purged %d %s", purged, what)


async def flush_activity(app: web.Application) -> None:
    """Copies the activity of chats unlisted since the last round to their members.
    A failure is logged when it starts and when it ends, not every round."""
    lifecycle = app[LIFECYCLE]
    try:
        await activity.flush(app[BACKGROUND])
    except Exception:  # the next round tries again; listings stay exact meanwhile
        if not lifecycle.activity_flush_failing:
            log.warning("flushing chats' activity failed; retrying every round", exc_info=True)
        lifecycle.activity_flush_failing = True
    else:
        if lifecycle.activity_flush_failing:
            log.info("flushing chats' activity works again")
        lifecycle.activity_flush_failing = False


def every(interval: float, job: Callable[[web.Application], Awaitable[None]]) -> CleanupContext:
    """A cleanup context that runs job(app) every interval seconds while the app serves."""

    async def run_forever(app: web.Application) -> None:
        while True:
            await asyncio.sleep(interval)
            await job(app)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run_forever(app), name=f"chatsvc-{job.__name__}")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx


async def on_shutdown(app: web.Application) -> None:
    app[LIFECYCLE].shutting_down = True
    app[EVENTS].end_all(SHUTTING_DOWN)  # event streams end now; other requests may finish


def create_app(settings: Settings) -> web.Application:
    with warnings.catch_warnings():
        # aiohttp deprecates passing a router (since 3.0; 3.14 still takes it). Ours is its
        # UrlDispatcher with a faster lookup (chatsvc/routing.py); tests/test_routing.py
        # fails if aiohttp stops taking it.
        warnings.simplefilter("ignore", DeprecationWarning)
        app = web.Application(
            router=Router(),
            client_max_size=MAX_BODY_BYTES,
            middlewares=[observe],
            handler_args={
                # Bodies arrive as sent: compressed ones reach our 415 check instead
                # of being inflated (or, for an unknown codec, refused as plain
                # text) by the parser, and the 64 KiB limit is on what arrives.
                "auto_decompress": False,
                # A request whose client leaves runs to its end (a send that reached
                # the database is stored), not cancelled half-way. run_app's default,
                # pinned here because aiohttp's test server turns it on.
                "handler_cancellation": False,
            },
        )
    app[SETTINGS] = settings
    app[LIFECYCLE] = Lifecycle()
    app[OPENAPI] = openapi_document()
    app[METRICS] = Metrics(lambda: (app.get(DATABASE), app.get(EVENTS), app.get(REPLICA)))
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(background_ctx)
    app.cleanup_ctx.append(replica_ctx)
    app.cleanup_ctx.append(events_ctx)
    app.cleanup_ctx.append(every(KEY_PURGE_INTERVAL, purge_keys))
    app.cleanup_ctx.append(every(activity.ACTIVITY_FLUSH_INTERVAL, flush_activity))
    if settings.replica_database_url is not None:
        app.cleanup_ctx.append(every(REPLICA_LAG_INTERVAL, measure_replica_lag))
    app.on_shutdown.append(on_shutdown)
    authenticator = Authenticator(
        settings.server_keys, settings.jwt_secrets, settings.jwt_audience, enabled=settings.auth == "on"
    )
    app[WRITE_LIMIT] = limits.WriteLimit(settings.user_write_rate, settings.user_write_burst)
    add_routes(app, ROUTES, authenticator, app[WRITE_LIMIT])
    return app
