"""/chats/{chat_id}/read: a member's read marker."""

from aiohttp import web

from chatsvc import models, queries
from chatsvc.handlers import caller_of, json_response
from chatsvc.keys import DATABASE, SETTINGS
from chatsvc.models import ReadMark
from chatsvc.openapi import BODY_PROBLEMS, CHAT_ID, Operation, Route, Routes, json_content
from chatsvc.parsing import json_body, path_id
from chatsvc.permissions import Action, refusal, roles_allowed, server_refusal
from chatsvc.queries import Refused

_MARKERS = roles_allowed(Action.MARK_READ)


async def mark_read(request: web.Request) -> web.Response:
    caller = caller_of(request)
    chat_id = path_id(request, "chat_id")
    body = await json_body(request, ReadMark, request.app[SETTINGS].body_timeout)
    if caller.user is None:  # the server has no read marker, whatever the chat
        raise server_refusal(Action.MARK_READ)
    state = await queries.mark_read(request.app[DATABASE], chat_id, caller.user, body.message_id, _MARKERS)
    if isinstance(state, Refused):
        raise refusal(caller, state.caller_role, Action.MARK_READ, chat_id)
    return json_response(state)


ROUTES: Routes = {
    "/chats/{chat_id}/read": {
        "PUT": Route(
            mark_read,
            Operation(
                "Mark a chat read up to a message",
                (
                    200,
                    "The caller's read marker: the larger of what it was and `message_id`.",
                    json_content(models.ReadState),
                ),
                (*BODY_PROBLEMS, 403),
                (CHAT_ID,),
                models.ReadMark,
                tags=("read state",),
                description="Members only: the server, which has no read marker, gets 403; a user"
                " who is not a member gets 404. The marker never moves back.",
            ),
        ),
    },
}
