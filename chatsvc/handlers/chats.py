"""/chats/ and /chats/{chat_id}"""

from aiohttp import web

from chatsvc import models, parameters, queries, reads
from chatsvc.handlers import chat_not_found, created_response, json_response
from chatsvc.idempotency import run_keyed
from chatsvc.keys import DATABASE, SETTINGS
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
from chatsvc.parameters import CHAT_MESSAGES_LIMIT, CHATS_BEFORE, CHATS_LIMIT, IDEMPOTENCY_KEY
from chatsvc.parsing import idempotency_key, json_body, path_id


async def create_chat(request: web.Request) -> web.Response:
    key = idempotency_key(request)
    body = await json_body(request, ChatCreate, request.app[SETTINGS].body_timeout)
    db = request.app[DATABASE]
    if key is None:
        chat = await queries.create_chat(db, body.title)
    else:
        # A key whose chat was deleted since: KeyedResourceGone, 404 (chatsvc/errors.py).
        chat = await run_keyed(queries.create_chat_once, db, body.title, key)
    return created_response(chat, location=f"/chats/{chat.id}")


async def list_chats(request: web.Request) -> web.Response:
    limit = CHATS_LIMIT.parse(request)
    before = CHATS_BEFORE.parse(request)
    return json_response(await queries.list_chats(request.app[DATABASE], before, limit))


async def get_chat(request: web.Request) -> web.Response:
    chat_id = path_id(request, "chat_id")
    limit = CHAT_MESSAGES_LIMIT.parse(request)
    chat_json = await reads.read_chat(request.app[DATABASE], chat_id, limit)
    if chat_json is None:
        raise chat_not_found(chat_id)
    return json_response(chat_json)


async def delete_chat(request: web.Request) -> web.Response:
    chat_id = path_id(request, "chat_id")
    if not await queries.delete_chat(request.app[DATABASE], chat_id):
        raise chat_not_found(chat_id)
    return web.Response(status=204)


ROUTES: Routes = {
    "/chats": {
        "GET": Route(
            list_chats,
            Operation(
                "List chats, newest first",
                (
                    200,
                    "One page of chats; follow `next_before` until it is null.",
                    json_content(models.ChatPage),
                ),
                (422, 503),
                (parameters.CHATS_LIMIT.openapi(), parameters.CHATS_BEFORE.openapi()),
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
                (404, 503),
                (CHAT_ID,),
            ),
        ),
    },
}
