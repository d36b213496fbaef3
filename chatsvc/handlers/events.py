"""/chats/{chat_id}/events: a chat's new messages as Server-Sent Events.

A fresh stream carries only messages sent after it opened. A resumed one
(Last-Event-ID or ?after=) first carries the messages it missed, read from the
database, then live ones; the overlap between the two is skipped by id, so
nothing is lost or repeated across a reconnect.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from chatsvc import queries
from chatsvc.db import DatabaseUnavailable
from chatsvc.events import INTERRUPTED, Event, message_event
from chatsvc.handlers import chat_not_found
from chatsvc.keys import DATABASE, EVENTS, SETTINGS
from chatsvc.parsing import path_id, resume_point

BACKFILL_BATCH = 100  # messages read per query while catching a resumed stream up
SEND_TIMEOUT = 30.0  # seconds a client may leave a frame unread before it is cut off
HEARTBEAT = b": keep-alive\n\n"
# Tells EventSource to reconnect after 1 s (browsers default to about 3 s).
OPENING = b"retry: 1000\n\n"
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each event on at once
}


async def chat_events(request: web.Request) -> web.StreamResponse:
    chat_id = path_id(request, "chat_id")
    resume_after = resume_point(request)
    db = request.app[DATABASE]
    hub = request.app[EVENTS]
    with hub.subscribe(chat_id) as subscription:  # TooManySubscribers: 503 (chatsvc/errors.py)
        # Read after subscribing and watching: whatever commits later arrives live.
        if not await hub.watch(chat_id):
            raise chat_not_found(chat_id)
        latest = await queries.get_latest_message_id(db, chat_id)
        if latest is None:  # deleted since
            raise chat_not_found(chat_id)
        response = web.StreamResponse(headers=HEADERS)
        if request.method == "HEAD":
            return response
        await response.prepare(request)
        try:
            await _send(request, response, OPENING)
            sent_up_to = latest if resume_after is None else resume_after
            while sent_up_to < latest:  # the messages a resumed stream missed
                try:
                    missed = await queries.list_message_events(
                        db, chat_id, sent_up_to, latest, BACKFILL_BATCH
                    )
                except DatabaseUnavailable:
                    await _send(request, response, INTERRUPTED.frame)
                    return response
                if not missed:
                    break  # the chat was deleted meanwhile; its event is pending
                for message_id, message_json in missed:
                    await _send(request, response, message_event(message_id, message_json).frame)
                    sent_up_to = message_id
            # A comment every heartbeat seconds, busy or quiet: the contract
            # promises one at least every 15 s, whatever else is sent.
            heartbeat = request.app[SETTINGS].sse_heartbeat
            loop = asyncio.get_running_loop()
            heartbeat_due = loop.time() + heartbeat
            while True:
                event: Event | None = await subscription.next(max(0.0, heartbeat_due - loop.time()))
                if event is not None and (event.message_id == 0 or event.message_id > sent_up_to):
                    await _send(request, response, event.frame)
                    sent_up_to = max(sent_up_to, event.message_id)
                    if event.final:
                        break
                if loop.time() >= heartbeat_due:
                    await _send(request, response, HEARTBEAT)
                    heartbeat_due = loop.time() + heartbeat
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client left; nothing more to send
        return response


async def _send(request: web.Request, response: web.StreamResponse, frame: bytes) -> None:
    """Writes a frame; a client that leaves it unread for SEND_TIMEOUT is cut off."""
    try:
        async with asyncio.timeout(SEND_TIMEOUT):
            await response.write(frame)
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("the client stopped reading") from None
