"""/chats/{chat_id}/members/ and /chats/{chat_id}/members/{user}"""

from aiohttp import web

from chatsvc import models, queries, reads
from chatsvc.handlers import caller_of, json_response, reading_database
from chatsvc.keys import DATABASE, SETTINGS
from chatsvc.models import MemberUpdate
from chatsvc.openapi import BODY_PROBLEMS, CHAT_ID, Operation, Route, Routes, json_content
from chatsvc.parameters import MEMBERS_AFTER, MEMBERS_LIMIT
from chatsvc.parsing import json_body, path_id, path_user
from chatsvc.permissions import Action, allows, chat_not_found, refusal, roles_allowed
from chatsvc.problems import NotFound

USER = {
    "name": "user",
    "in": "path",
    "required": True,
    "description": "The member's user id (1 to 255 visible ASCII characters, percent-encoded as a URL needs).",
    "schema": {"type": "string", "pattern": models.USER_ID_PATTERN},
}


def _user(request: web.Request, chat_id: int) -> str:
    user = path_user(request, "user")
    if user is None:  # not a user id: like any missing resource
        raise NotFound(f"Chat {chat_id} has no such member.")
    return user


async def list_members(request: web.Request) -> web.Response:
    caller = caller_of(request)
    chat_id = path_id(request, "chat_id")
    limit = MEMBERS_LIMIT.parse(request)
    after = MEMBERS_AFTER.parse(request)
    page = await reads.read_members(await reading_database(request), chat_id, after or "", limit, caller.user)
    if page is None:
        raise chat_not_found(chat_id)
    return json_response(page)


async def put_member(request: web.Request) -> web.Response:
    caller = caller_of(request)
    chat_id = path_id(request, "chat_id")
    user = _user(request, chat_id)
    body = await json_body(request, MemberUpdate, request.app[SETTINGS].body_timeout, optional=True)
    put = await queries.put_member(
        request.app[DATABASE], chat_id, user, body.role, caller.user, roles_allowed(Action.MANAGE_MEMBERS)
    )
    if isinstance(put, queries.Refused):
        raise refusal(caller, put.caller_role, Action.MANAGE_MEMBERS, chat_id)
    return json_response(put.json, status=201 if put.added else 200)


async def remove_member(request: web.Request) -> web.Response:
    caller = caller_of(request)
    chat_id = path_id(request, "chat_id")
    user = _user(request, chat_id)
    # Removing oneself is leaving; removing anyone else is managing the members.
    action = Action.LEAVE if user == caller.user else Action.MANAGE_MEMBERS
    removal = await queries.remove_member(
        request.app[DATABASE], chat_id, user, caller.user, roles_allowed(action)
    )
    if removal.removed:
        return web.Response(status=204)
    if not removal.chat_exists or not allows(caller, removal.caller_role, action):
        raise refusal(caller, removal.caller_role, action, chat_id)
    raise NotFound(f"{user!r} is not a member of chat {chat_id}.")


MEMBER_PROBLEMS = (403, 404, 503)

ROUTES: Routes = {
    "/chats/{chat_id}/members": {
        "GET": Route(
            list_members,
            Operation(
                "A chat's members, by user id",
                (
                    200,
                    "One page of members; follow `next_after` until it is null.",
                    json_content(models.MemberPage),
                ),
                (404, 422, 503),
                (CHAT_ID, MEMBERS_LIMIT.openapi(), MEMBERS_AFTER.openapi()),
                tags=("members",),
            ),
        ),
    },
    "/chats/{chat_id}/members/{user}": {
        "PUT": Route(
            put_member,
            Operation(
                "Add a member, or set a member's role",
                (
                    201,
                    "Added.",
                    json_content(models.Member),
                ),
                tuple(sorted({*BODY_PROBLEMS, *MEMBER_PROBLEMS})),
                (CHAT_ID, USER),
                models.MemberUpdate,
                tags=("members",),
                description="The body is optional: without one the role is `member`."
                " Owners and the server may do this; a member gets 403.",
                also_ok=((200, "It was a member already; its role is now the one given."),),
                body_required=False,
            ),
        ),
        "DELETE": Route(
            remove_member,
            Operation(
                "Remove a member, or leave",
                (204, "Removed; their open event streams on the chat end.", None),
                MEMBER_PROBLEMS,
                (CHAT_ID, USER),
                tags=("members",),
                description="A member may remove themselves (leave); removing others is for owners"
                " and the server (a member gets 403). 404 when that user is not a member.",
            ),
        ),
    },
}
