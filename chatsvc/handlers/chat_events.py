"""/chats/{chat_id}/events: a chat's new, edited and deleted messages as Server-Sent Events (chatsvc/live/)."""

from __future__ import annotations

from aiohttp import web

from chatsvc import parameters, queries
from chatsvc.handlers import caller_of
from chatsvc.keys import DATABASE, EVENTS, SETTINGS
from chatsvc.live.frames import HEADERS
from chatsvc.live.stream import run_stream
from chatsvc.observe import REQUEST_ID_HEADER, request_id
from chatsvc.openapi import CHAT_ID, EVENT_STREAM, SSE_EVENT, Operation, Route, Routes
from chatsvc.parameters import EVENTS_AFTER
from chatsvc.parsing import path_id, resume_point
from chatsvc.permissions import Action, chat_not_found, roles_allowed

_READERS = roles_allowed(Action.READ)


async def chat_events(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    chat_id = path_id(request, "chat_id")
    resume_after = resume_point(request, EVENTS_AFTER.name)
    db = request.app[DATABASE]
    hub = request.app[EVENTS]
    # TooManySubscribers: 503 (chatsvc/errors.py)
    with hub.subscribe(chat_id, caller.user) as subscription:
        # Read after subscribing and watching: whatever commits later arrives
        # live, and so does the removal of a member who may follow it now.
        if not await hub.watch(chat_id):
            raise chat_not_found(chat_id)
        latest = await queries.get_latest_event_id(db, chat_id, caller.user, _READERS)
        if latest is None:  # deleted since, or the caller may not follow it
            raise chat_not_found(chat_id)
        response = web.StreamResponse(headers={**HEADERS, REQUEST_ID_HEADER: request_id()})
        if request.method == "HEAD":
            return response
        await response.prepare(request)
        await run_stream(
            request,
            response,
            subscription,
            db,
            chat_id=chat_id,
            sent_up_to=latest if resume_after is None else resume_after,
            latest=latest,
            heartbeat=request.app[SETTINGS].sse_heartbeat,
        )
        return response


ROUTES: Routes = {
    "/chats/{chat_id}/events": {
        "GET": Route(
            chat_events,
            Operation(
                "Follow a chat live (Server-Sent Events)",
                (
                    200,
                    EVENT_STREAM,
                    {"text/event-stream": {"schema": SSE_EVENT}},
                ),
                (404, 422, 503),
                (
                    CHAT_ID,
                    parameters.EVENTS_AFTER.openapi(),
                    parameters.LAST_EVENT_ID,
                ),
                access="bearer or query",
            ),
        ),
    },
}
