"""/chats/ and /chats/{chat_id}"""

from aiohttp import web

from chatsvc import queries
from chatsvc.errors import NotFound
from chatsvc.handlers import json_response
from chatsvc.keys import DATABASE, SETTINGS
from chatsvc.models import ChatCreate
from chatsvc.parsing import json_body, path_id, query_int


async def create_chat(request: web.Request) -> web.Response:
    body = await json_body(request, ChatCreate, request.app[SETTINGS].body_timeout)
    chat = await queries.create_chat(request.app[DATABASE], body.title)
    return json_response(chat.json, status=201, location=f"/chats/{chat.id}")


async def get_chat(request: web.Request) -> web.Response:
    chat_id = path_id(request, "chat_id")
    limit = query_int(request, "limit", default=20, minimum=1, maximum=100)
    chat_json = await queries.get_chat_with_latest_messages(request.app[DATABASE], chat_id, limit)
    if chat_json is None:
        raise NotFound(f"Chat {chat_id} does not exist.")
    return json_response(chat_json)


async def delete_chat(request: web.Request) -> web.Response:
    chat_id = path_id(request, "chat_id")
    if not await queries.delete_chat(request.app[DATABASE], chat_id):
        raise NotFound(f"Chat {chat_id} does not exist.")
    return web.Response(status=204)
