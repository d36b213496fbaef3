"""/chats/{chat_id}/messages/ and /chats/{chat_id}/messages/{message_id}"""

from aiohttp import web

from chatsvc import queries, sends
from chatsvc.handlers import chat_not_found, created_response, json_response
from chatsvc.keys import DATABASE, SETTINGS
from chatsvc.models import MessageCreate
from chatsvc.parameters import HISTORY_AFTER, HISTORY_BEFORE, HISTORY_LIMIT
from chatsvc.parsing import idempotency_key, json_body, path_id
from chatsvc.problems import NotFound, ValidationFailed


async def create_message(request: web.Request) -> web.Response:
    chat_id = path_id(request, "chat_id")
    key = idempotency_key(request)
    body = await json_body(request, MessageCreate, request.app[SETTINGS].body_timeout)
    db = request.app[DATABASE]
    if key is None:
        message = await sends.send_message(db, chat_id, body.text)
    else:
        message = await sends.send_message_once(db, chat_id, body.text, key)
    if message is None:
        raise chat_not_found(chat_id)
    return created_response(message, location=f"/chats/{chat_id}/messages/{message.id}")


async def list_messages(request: web.Request) -> web.Response:
    chat_id = path_id(request, "chat_id")
    limit = HISTORY_LIMIT.parse(request)
    before, after = HISTORY_BEFORE.parse(request), HISTORY_AFTER.parse(request)
    if before is not None and after is not None:
        both = "before and after must not be given together; page one way at a time"
        raise ValidationFailed(
            [{"loc": ["query", "before"], "msg": both}, {"loc": ["query", "after"], "msg": both}]
        )
    db = request.app[DATABASE]
    if after is not None:
        page = await queries.list_messages_after(db, chat_id, after, limit)
    else:
        page = await queries.list_messages_before(db, chat_id, before, limit)
    if page is None:
        raise chat_not_found(chat_id)
    return json_response(page)


async def get_message(request: web.Request) -> web.Response:
    chat_id, message_id = path_id(request, "chat_id"), path_id(request, "message_id")
    message_json = await queries.get_message(request.app[DATABASE], chat_id, message_id)
    if message_json is None:
        raise NotFound(f"Chat {chat_id} holds no message {message_id}.")
    return json_response(message_json)
