"""The contract's permission table (Members and permissions), every cell: route x caller.

Each row is an action as a request; each column a caller: the server, the
chat's owner, a member, a user who is not a member, and no credential. Every
cell runs on a fresh chat (owner, member and a bystander member; a message
from the application, one from the bystander, and one from each of the owner
and the member), so no cell depends on another. Edits and deletions of a
message are two rows each, as the contract's "own" and "any" read: another
user's message (the bystander's), and the caller's own.

A user who is not a member gets exactly what a chat that does not exist gets:
checked per route by asking again once the chat is gone.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientResponse

from tests.conftest import Client
from tests.credentials import SERVER, user

CALLERS = ("server", "owner", "member", "outsider", "nobody")


@dataclass
class Chat:
    id: int
    message_id: int  # from the application (no author)
    users: dict[str, str]  # caller -> user id
    own: dict[str, int]  # caller -> the id of a message they wrote (the bystander's for others)


@dataclass(frozen=True)
class Action:
    name: str
    method: str
    path: Callable[[Chat, str], str]  # (chat, the caller's user id) -> path
    body: dict[str, Any] | None
    # caller -> status; None: the cell does not apply ("—" in the contract)
    expected: dict[str, int | None]


def row(server: int | None, owner: int, member: int, outsider: int = 404) -> dict[str, int | None]:
    return {"server": server, "owner": owner, "member": member, "outsider": outsider, "nobody": 401}


READ = row(200, 200, 200)
ACTIONS = [
    Action("read the chat", "GET", lambda c, _: f"/chats/{c.id}", None, READ),
    Action("read its history", "GET", lambda c, _: f"/chats/{c.id}/messages/", None, READ),
    Action("read one message", "GET", lambda c, _: f"/chats/{c.id}/messages/{c.message_id}", None, READ),
    Action("read its members", "GET", lambda c, _: f"/chats/{c.id}/members/", None, READ),
    Action("follow its events", "GET", lambda c, _: f"/chats/{c.id}/events", None, READ),
    Action("search its messages", "GET", lambda c, _: f"/search/messages?q=mine&chat_id={c.id}", None, READ),
    Action(
        "send a message", "POST", lambda c, _: f"/chats/{c.id}/messages/", {"text": "hi"}, row(201, 201, 201)
    ),
    Action(
        "add a member",
        "PUT",
        lambda c, _: f"/chats/{c.id}/members/{c.users['newcomer']}",
        None,
        row(201, 201, 403),
    ),
    Action(
        "change a role",
        "PUT",
        lambda c, _: f"/chats/{c.id}/members/{c.users['bystander']}",
        {"role": "owner"},
        row(200, 200, 403),
    ),
    Action(
        "remove another member",
        "DELETE",
        lambda c, _: f"/chats/{c.id}/members/{c.users['bystander']}",
        None,
        row(204, 204, 403),
    ),
    Action("leave", "DELETE", lambda c, me: f"/chats/{c.id}/members/{me}", None, row(None, 204, 204)),
    Action(
        "edit another's message",
        "PATCH",
        lambda c, _: f"/chats/{c.id}/messages/{c.own['bystander']}",
        {"text": "edited"},
        row(200, 403, 403),
    ),
    Action(
        "edit one's own message",
        "PATCH",
        lambda c, me: f"/chats/{c.id}/messages/{c.own.get(me, c.own['bystander'])}",
        {"text": "edited"},
        row(None, 200, 200),
    ),
    Action(
        "delete another's message",
        "DELETE",
        lambda c, _: f"/chats/{c.id}/messages/{c.own['bystander']}",
        None,
        row(204, 204, 403),
    ),
    Action(
        "delete one's own message",
        "DELETE",
        lambda c, me: f"/chats/{c.id}/messages/{c.own.get(me, c.own['bystander'])}",
        None,
        row(None, 204, 204),
    ),
    Action("mark read", "PUT", lambda c, _: f"/chats/{c.id}/read", {"message_id": 1}, row(403, 200, 200)),
    Action("delete the chat", "DELETE", lambda c, _: f"/chats/{c.id}", None, row(204, 204, 403)),
]


def headers_of(caller: str, users: dict[str, str]) -> dict[str, str]:
    if caller == "server":
        return SERVER
    if caller == "nobody":
        return {}
    return user(users[caller])


async def _send_as(client: Client, chat_id: int, headers: dict[str, str]) -> int:
    response = await client.post(f"/chats/{chat_id}/messages/", json={"text": "mine"}, headers=headers)
    assert response.status == 201, await response.text()
    message_id: int = (await response.json())["id"]
    return message_id


async def fresh_chat(client: Client) -> Chat:
    """A chat its owner created with a member and a bystander, holding a message from the
    application and one from each of the bystander, the owner and the member."""
    tag = secrets.token_hex(4)
    users = {name: f"{name}-{tag}" for name in ("owner", "member", "bystander", "outsider", "newcomer")}
    response = await client.post(
        "/chats/",
        json={"title": "table", "members": [{"user": users["member"]}, {"user": users["bystander"]}]},
        headers=user(users["owner"]),
    )
    assert response.status == 201, await response.text()
    chat_id = (await response.json())["id"]
    response = await client.post(f"/chats/{chat_id}/messages/", json={"text": "first"}, headers=SERVER)
    assert response.status == 201
    message_id = (await response.json())["id"]
    own = {
        name: await _send_as(client, chat_id, user(users[name])) for name in ("bystander", "owner", "member")
    }
    return Chat(
        chat_id, message_id, users, {users[name]: own[name] for name in own} | {"bystander": own["bystander"]}
    )


CELLS = [
    pytest.param(action, caller, id=f"{action.name}-{caller}")
    for action in ACTIONS
    for caller in CALLERS
    if action.expected[caller] is not None
]


@pytest.mark.parametrize(("action", "caller"), CELLS)
async def test_cell(anonymous_client: Client, action: Action, caller: str) -> None:
    chat = await fresh_chat(anonymous_client)
    me = chat.users.get(caller, caller)
    headers = headers_of(caller, chat.users)
    response = await anonymous_client.request(
        action.method, action.path(chat, me), json=action.body, headers=headers
    )
    expected = action.expected[caller]
    assert expected is not None
    assert response.status == expected, (action.name, caller, await response.text())
    if expected >= 400:
        assert response.content_type == "application/problem+json"
    response.close()


def comparable(response: ClientResponse, body: bytes) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in response.headers.items() if k not in ("Date", "X-Request-ID")}
    return response.status, headers, body


@pytest.mark.parametrize("action", ACTIONS, ids=[action.name for action in ACTIONS])
async def test_a_non_member_gets_exactly_what_a_missing_chat_gets(
    anonymous_client: Client, action: Action
) -> None:
    chat = await fresh_chat(anonymous_client)
    headers = user(chat.users["outsider"])
    path = action.path(chat, chat.users["outsider"])
    response = await anonymous_client.request(action.method, path, json=action.body, headers=headers)
    as_outsider = comparable(response, await response.read())
    deleted = await anonymous_client.delete(f"/chats/{chat.id}", headers=SERVER)
    assert deleted.status == 204
    response = await anonymous_client.request(action.method, path, json=action.body, headers=headers)
    assert as_outsider == comparable(response, await response.read())
    assert as_outsider[0] == 404


def test_the_table_covers_every_protected_route() -> None:
    """Every route that acts on a chat has a row (so a new route cannot slip past the table)."""
    from chatsvc.app import ROUTES

    covered = {(action.method, template) for action in ACTIONS for template in [_template(action)]}
    for path, methods in ROUTES.items():
        if not path.startswith("/chats/{chat_id}"):
            continue
        for method in methods:
            assert (method, path) in covered, (method, path)


def _template(action: Action) -> str:
    chat = Chat(1, 2, {"bystander": "{user}", "newcomer": "{user}"}, {"bystander": 2})
    path = action.path(chat, "{user}")
    return (
        path.replace("/chats/1", "/chats/{chat_id}")
        .replace("/messages/2", "/messages/{message_id}")
        .rstrip("/")
    )
