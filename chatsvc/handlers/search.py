"""/search/messages"""

from aiohttp import web

from chatsvc import models, parameters, queries
from chatsvc.handlers import caller_of, json_response, reading_database
from chatsvc.openapi import Operation, Route, Routes, json_content
from chatsvc.permissions import Action, chat_not_found, roles_allowed

_READERS = roles_allowed(Action.READ)


async def search_messages(request: web.Request) -> web.Response:
    caller = caller_of(request)
    q = parameters.SEARCH_Q.parse(request)
    chat_id = parameters.SEARCH_CHAT.parse(request)
    before = parameters.SEARCH_BEFORE.parse(request)
    limit = parameters.SEARCH_LIMIT.parse(request)
    page = await queries.search_messages(
        await reading_database(request), q, chat_id, before, limit, caller.user, _READERS
    )
    if page is None:
        assert chat_id is not None
        raise chat_not_found(chat_id)
    return json_response(page)


ROUTES: Routes = {
    "/search/messages": {
        "GET": Route(
            search_messages,
            Operation(
                "Search messages: every word, newest first",
                (
                    200,
                    "One page of the messages found; follow `next_before` until it is null.",
                    json_content(models.SearchPage),
                ),
                (404, 422, 503),
                (
                    parameters.SEARCH_Q.openapi(),
                    parameters.SEARCH_CHAT.openapi(),
                    parameters.SEARCH_BEFORE.openapi(),
                    parameters.SEARCH_LIMIT.openapi(),
                ),
                tags=("search",),
                description="The messages whose text holds every word of `q` (or a longer word starting"
                " with it), without regard to case, in the chats the caller may read: for a user the"
                " chats they are a member of, for the server every chat; with `chat_id`, that chat only"
                " (404 unless the caller may read it). Deleted messages are never found; an edited one"
                " by its current text only. Newest first, paged by id like history.",
            ),
        ),
    },
}
