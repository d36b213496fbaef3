"""/chats/ and /chats/{chat_id}"""

from aiohttp import web

from chatsvc import creates, limits, models, parameters, queries, reads
from chatsvc.callers import Caller
from chatsvc.handlers import caller_of, created_response, json_response, reading_database
from chatsvc.idempotency import chat_fingerprint, run_keyed
from chatsvc.keys import DATABASE, SETTINGS, WRITE_LIMIT
from chatsvc.models import ChatCreate
from chatsvc.openapi import (
    BODY_PROBLEMS,
    CHAT_ID,
    CHAT_LINKS,
    CREATED_HEADERS,
    Operation,
    Route,
    Routes,
    json_content,
)
from chatsvc.parameters import (
    CHAT_MESSAGES_LIMIT,
    CHATS_BEFORE,
    CHATS_CURSOR,
    CHATS_LIMIT,
    CHATS_ORDER,
    IDEMPOTENCY_KEY,
)
from chatsvc.parsing import idempotency_key, json_body, path_id
from chatsvc.permissions import OWNER, Action, chat_not_found, refusal, roles_allowed
from chatsvc.problems import ValidationFailed
from chatsvc.queries import FIRST_BY_ACTIVITY, ActivityCursor, Members


def members_of_new_chat(caller: Caller, body: ChatCreate) -> Members:
    """The members a new chat starts with: those listed, and a user who creates it as
    its first owner (whatever role the list gives them)."""
    listed: list[tuple[str, str]] = [
        (member.user, member.role) for member in body.members if member.user != caller.user
    ]
    if caller.user is not None:
        listed.insert(0, (caller.user, OWNER))
    return Members([user for user, _ in listed], [role for _, role in listed])


async def create_chat(request: web.Request) -> web.Response:
    caller = caller_of(request)
    key = idempotency_key(request)
    body = await json_body(request, ChatCreate, request.app[SETTINGS].body_timeout)
    members = members_of_new_chat(caller, body)
    db, limit = request.app[DATABASE], request.app[WRITE_LIMIT]
    if key is None:  # charged to the user's write limit by the batch's statement
        chat = await creates.create_chat(db, body.title, members, caller.user, limit)
    else:
        await limits.charge_write(db, limit, caller.user)
        digest = chat_fingerprint(body.title, members.users, members.roles)
        # A key whose chat was deleted since: KeyedResourceGone, 404 (chatsvc/errors.py).
        chat = await run_keyed(
            queries.create_chat_once, db, body.title, members, caller.user or "", key, digest
        )
    return created_response(chat, location=f"/chats/{chat.id}")


def _not_with(order: str, name: str) -> ValidationFailed:
    return ValidationFailed([{"loc": ["query", name], "msg": f"does not page a listing by {order}"}])


async def list_chats(request: web.Request) -> web.Response:
    caller = caller_of(request)
    limit = CHATS_LIMIT.parse(request)
    order = CHATS_ORDER.parse(request)
    before, cursor = CHATS_BEFORE.parse(request), CHATS_CURSOR.parse(request)
    db = await reading_database(request)
    if order == "activity":
        if before is not None:
            raise _not_with(order, CHATS_BEFORE.name)
        start = FIRST_BY_ACTIVITY if cursor is None else ActivityCursor(*cursor)
        return json_response(await reads.read_listing_by_activity(db, start, limit, caller.user))
    if cursor is not None:
        raise _not_with(order, CHATS_CURSOR.name)
    return json_response(await reads.read_listing(db, before, limit, caller.user))


async def get_chat(request: web.Request) -> web.Response:
    caller = caller_of(request)
    chat_id = path_id(request, "chat_id")
    limit = CHAT_MESSAGES_LIMIT.parse(request)
    chat_json = await reads.read_chat(await reading_database(request), chat_id, limit, caller.user)
    if chat_json is None:
        raise chat_not_found(chat_id)
    return json_response(chat_json)


async def delete_chat(request: web.Request) -> web.Response:
    caller = caller_of(request)
    chat_id = path_id(request, "chat_id")
    refused = await queries.delete_chat(
        request.app[DATABASE],
        chat_id,
        caller.user,
        roles_allowed(Action.DELETE_CHAT),
        lock_timeout_ms=int(request.app[SETTINGS].statement_timeout * 1000),
    )
    if refused is not None:
        raise refusal(caller, refused.caller_role, Action.DELETE_CHAT, chat_id)
    return web.Response(status=204)


ROUTES: Routes = {
    "/chats": {
        "GET": Route(
            list_chats,
            Operation(
                "List chats, newest or most recently active first",
                (
                    200,
                    (
                        "One page of chats; follow `next_before` (or, by activity, `next_cursor`) until"
                        " it is null. For a user each chat carries their `last_read_id` and `unread_count`."
                    ),
                    {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/ChatPage"},
                                    {"$ref": "#/components/schemas/ChatActivityPage"},
                                ]
                            }
                        }
                    },
                ),
                (422, 503),
                (
                    parameters.CHATS_LIMIT.openapi(),
                    parameters.CHATS_ORDER.openapi(),
                    parameters.CHATS_BEFORE.openapi(),
                    parameters.CHATS_CURSOR.openapi(),
                ),
                description="For a user, the chats they are a member of; for the server, every chat."
                " `before` pages `order=created` (the default) and `cursor` pages `order=activity`;"
                " either with the other order is 422 (a rule across parameters, which JSON Schema"
                " cannot state for separate query parameters). By activity, a chat whose activity"
                " does not change while a client pages appears exactly once.",
            ),
        ),
        "POST": Route(
            create_chat,
            Operation(
                "Create a chat",
                (
                    201,
                    "The chat (or, for an Idempotency-Key retry, the chat the key created).",
                    json_content(models.Chat),
                ),
                BODY_PROBLEMS,
                (IDEMPOTENCY_KEY,),
                models.ChatCreate,
                CREATED_HEADERS,
                links=CHAT_LINKS,
            ),
            charged_by_handler=True,
        ),
    },
    "/chats/{chat_id}": {
        "GET": Route(
            get_chat,
            Operation(
                "A chat with its latest messages, oldest first",
                (
                    200,
                    "The chat and its `limit` most recent messages.",
                    json_content(models.ChatWithMessages),
                ),
                (404, 422, 503),
                (CHAT_ID, parameters.CHAT_MESSAGES_LIMIT.openapi()),
            ),
        ),
        "DELETE": Route(
            delete_chat,
            Operation(
                "Delete a chat and all its messages",
                (204, "Deleted, with its messages.", None),
                (403, 404, 503),
                (CHAT_ID,),
                description="Its owners and the server may; a member gets 403, anyone else 404.",
            ),
        ),
    },
}
