"""/chats/{chat_id}/messages/ and /chats/{chat_id}/messages/{message_id}"""

from aiohttp import web

from chatsvc import changes, limits, models, parameters, reads, sends
from chatsvc.handlers import caller_of, created_response, json_response, reading_database
from chatsvc.keys import DATABASE, SETTINGS, WRITE_LIMIT
from chatsvc.models import MessageCreate, MessageEdit
from chatsvc.openapi import (
    BODY_PROBLEMS,
    CHAT_ID,
    CREATED_HEADERS,
    MESSAGE_ID,
    MESSAGE_LINKS,
    Operation,
    Route,
    Routes,
    json_content,
)
from chatsvc.parameters import HISTORY_AFTER, HISTORY_BEFORE, HISTORY_LIMIT, IDEMPOTENCY_KEY
from chatsvc.parsing import idempotency_key, json_body, path_id
from chatsvc.permissions import (
    Action,
    chat_not_found,
    message_not_found,
    message_refusal,
)
from chatsvc.problems import ValidationFailed
from chatsvc.queries import MessageRefused


async def create_message(request: web.Request) -> web.Response:
    caller = caller_of(request)
    chat_id = path_id(request, "chat_id")
    key = idempotency_key(request)
    body = await json_body(request, MessageCreate, request.app[SETTINGS].body_timeout)
    # A user's message is always theirs; the server may name any user, or none.
    author = body.author if caller.user is None else caller.user
    db, limit = request.app[DATABASE], request.app[WRITE_LIMIT]
    if key is None:  # charged to the user's write limit by the batch's statement
        message = await sends.send_message(db, chat_id, body.text, author, caller.user, limit)
    else:
        await limits.charge_write(db, limit, caller.user)
        message = await sends.send_message_once(db, chat_id, body.text, author, caller.user, key)
    if message is None:
        raise chat_not_found(chat_id)
    return created_response(message, location=f"/chats/{chat_id}/messages/{message.id}")


async def list_messages(request: web.Request) -> web.Response:
    caller = caller_of(request)
    chat_id = path_id(request, "chat_id")
    limit = HISTORY_LIMIT.parse(request)
    before, after = HISTORY_BEFORE.parse(request), HISTORY_AFTER.parse(request)
    if before is not None and after is not None:
        both = "before and after must not be given together; page one way at a time"
        raise ValidationFailed(
            [{"loc": ["query", "before"], "msg": both}, {"loc": ["query", "after"], "msg": both}]
        )
    db = await reading_database(request)
    if after is not None:
        page = await reads.read_history_after(db, chat_id, after, limit, caller.user)
    else:
        page = await reads.read_history_before(db, chat_id, before, limit, caller.user)
    if page is None:
        raise chat_not_found(chat_id)
    return json_response(page)


async def get_message(request: web.Request) -> web.Response:
    caller = caller_of(request)
    chat_id, message_id = path_id(request, "chat_id"), path_id(request, "message_id")
    message_json = await reads.read_message(await reading_database(request), chat_id, message_id, caller.user)
    if message_json is None:
        # The same answer whether the chat is missing, or the caller is not its member.
        raise message_not_found(chat_id, message_id)
    return json_response(message_json)


async def edit_message(request: web.Request) -> web.Response:
    caller = caller_of(request)
    chat_id, message_id = path_id(request, "chat_id"), path_id(request, "message_id")
    body = await json_body(request, MessageEdit, request.app[SETTINGS].body_timeout)
    # charged to the user's write limit by the batch's statement
    edited = await changes.edit_message(
        request.app[DATABASE], chat_id, message_id, body.text, caller.user, request.app[WRITE_LIMIT]
    )
    if isinstance(edited, MessageRefused):
        action = Action.EDIT_MESSAGE
        raise message_refusal(caller, edited.caller_role, edited.found, action, chat_id, message_id)
    return json_response(edited)


async def delete_message(request: web.Request) -> web.Response:
    caller = caller_of(request)
    chat_id, message_id = path_id(request, "chat_id"), path_id(request, "message_id")
    # charged to the user's write limit by the batch's statement
    refused = await changes.delete_message(
        request.app[DATABASE], chat_id, message_id, caller.user, request.app[WRITE_LIMIT]
    )
    if refused is not None:
        action = Action.DELETE_MESSAGE
        raise message_refusal(caller, refused.caller_role, refused.found, action, chat_id, message_id)
    return web.Response(status=204)


ROUTES: Routes = {
    "/chats/{chat_id}/messages": {
        "GET": Route(
            list_messages,
            Operation(
                "One page of a chat's history, oldest first",
                (
                    200,
                    "One page; `has_more` says whether more exist in the paging direction.",
                    json_content(models.MessagePage),
                ),
                (404, 422, 503),
                (
                    CHAT_ID,
                    parameters.HISTORY_LIMIT.openapi(),
                    parameters.HISTORY_BEFORE.openapi(),
                    parameters.HISTORY_AFTER.openapi(),
                ),
                description="With neither `before` nor `after`: the newest page. `before` and `after`"
                " together are 422 (a rule across parameters, which JSON Schema cannot state for"
                " separate query parameters).",
            ),
        ),
        "POST": Route(
            create_message,
            Operation(
                "Send a message",
                (
                    201,
                    "The message (or, for an Idempotency-Key retry, the one the key stored).",
                    json_content(models.Message),
                ),
                BODY_PROBLEMS,
                (CHAT_ID, IDEMPOTENCY_KEY),
                models.MessageCreate,
                CREATED_HEADERS,
                links=MESSAGE_LINKS,
            ),
            charged_by_handler=True,
        ),
    },
    "/chats/{chat_id}/messages/{message_id}": {
        "GET": Route(
            get_message,
            Operation(
                "One message of a chat",
                (200, "The message.", json_content(models.Message)),
                (404, 503),
                (CHAT_ID, MESSAGE_ID),
            ),
        ),
        "PATCH": Route(
            edit_message,
            Operation(
                "Edit a message's text",
                (
                    200,
                    (
                        "The message with its new text and `edited_at`; its id, author, `created_at`"
                        " and place in the chat do not change."
                    ),
                    json_content(models.Message),
                ),
                (*BODY_PROBLEMS, 403),
                (CHAT_ID, MESSAGE_ID),
                models.MessageEdit,
                description="The server may edit any message, a member only their own (403 for"
                " another's); anyone else gets 404. Followers of the chat get `message_updated`.",
            ),
            charged_by_handler=True,
        ),
        "DELETE": Route(
            delete_message,
            Operation(
                "Delete a message",
                (204, "Deleted: gone from every read, its text removed from the database.", None),
                (403, 404, 503),
                (CHAT_ID, MESSAGE_ID),
                description="The server and the chat's owners may delete any message, a member only"
                " their own (403 for another's); anyone else gets 404. Followers of the chat get"
                " `message_deleted`.",
            ),
            charged_by_handler=True,
        ),
    },
}
