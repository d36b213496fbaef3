"""/chats/{chat_id}/messages/"""

from aiohttp import web

from chatsvc import queries
from chatsvc.errors import NotFound
from chatsvc.handlers import json_response
from chatsvc.keys import DATABASE, SETTINGS
from chatsvc.models import MessageCreate
from chatsvc.parsing import json_body, path_id


async def create_message(request: web.Request) -> web.Response:
    chat_id = path_id(request, "chat_id")
    body = await json_body(request, MessageCreate, request.app[SETTINGS].body_timeout)
    message = await queries.create_message(request.app[DATABASE], chat_id, body.text)
    if message is None:
        raise NotFound(f"Chat {chat_id} does not exist.")
    return json_response(message.json, status=201, location=f"/chats/{chat_id}/messages/{message.id}")
