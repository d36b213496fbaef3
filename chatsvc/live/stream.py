"""One event stream's life once its response is open: what it missed, then live events.

A resumed stream first sends what it missed, read from the database up to
the newest event at the moment it subscribed (sql/events/list_chat_events.sql:
messages sent, edited and deleted since, each as it is now), then its live
events; the two overlap (it subscribed before it read), and the overlap is
skipped by event id, so nothing is lost or repeated across a reconnect. A comment goes out
every heartbeat seconds, busy or quiet, and a client that leaves a frame
unread for SEND_TIMEOUT is cut off.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from chatsvc import queries
from chatsvc.db import DatabaseUnavailable, Pool
from chatsvc.live.frames import (
    HEARTBEAT,
    INTERRUPTED,
    OPENING,
    Event,
    message_deleted_event,
    message_event,
    message_updated_event,
)
from chatsvc.live.hub import Subscription

BACKFILL_BATCH = 100  # events read per query while catching a resumed stream up
SEND_TIMEOUT = 30.0  # seconds a client may leave a frame unread before it is cut off


async def run_stream(
    request: web.Request,
    response: web.StreamResponse,
    subscription: Subscription,
    db: Pool,
    *,
    chat_id: int,
    sent_up_to: int,
    latest: int,
    heartbeat: float,
) -> None:
    """Sends what the stream missed (event ids in sent_up_to..latest), then live events,
    until the subscription ends or the client leaves."""
    try:
        await _send(request, response, OPENING)
        while sent_up_to < latest:  # what a resumed stream missed
            try:
                missed = await queries.list_chat_events(db, chat_id, sent_up_to, latest, BACKFILL_BATCH)
            except DatabaseUnavailable:
                await _send(request, response, INTERRUPTED.frame)
                return
            if not missed:
                break  # nothing left up to latest (or the chat was deleted: its event is pending)
            for change in missed:
                await _send(request, response, _backfill_event(chat_id, change).frame)
                sent_up_to = change.id
        # A comment every heartbeat seconds, busy or quiet: the contract
        # promises one at least every 15 s, whatever else is sent.
        loop = asyncio.get_running_loop()
        heartbeat_due = loop.time() + heartbeat
        while True:
            event: Event | None = await subscription.next(max(0.0, heartbeat_due - loop.time()))
            if event is not None and (event.event_id == 0 or event.event_id > sent_up_to):
                await _send(request, response, event.frame)
                sent_up_to = max(sent_up_to, event.event_id)
                if event.final:
                    break
            if loop.time() >= heartbeat_due:
                await _send(request, response, HEARTBEAT)
                heartbeat_due = loop.time() + heartbeat
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client left; nothing more to send


def _backfill_event(chat_id: int, change: queries.ChatEvent) -> Event:
    if change.message_json is None:
        return message_deleted_event(change.id, chat_id, change.message_id)
    if change.kind == "message":
        return message_event(change.id, change.message_json)
    return message_updated_event(change.id, change.message_json)


async def _send(request: web.Request, response: web.StreamResponse, frame: bytes) -> None:
    """Writes a frame; a client that leaves it unread for SEND_TIMEOUT is cut off."""
    try:
        async with asyncio.timeout(SEND_TIMEOUT):
            await response.write(frame)
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("the client stopped reading") from None
