"""Members, authors and per-caller keys (contract v3: Members and permissions, Authors).

Who may do what is pinned cell by cell in tests/test_permissions.py; these
tests pin what each members route answers and what a user sees.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg
import pytest
from pytest_aiohttp import AiohttpClient

from chatsvc.app import create_app
from chatsvc.models import Member, MemberPage
from chatsvc.settings import Settings
from tests.api import RFC3339_UTC, error_locations, fill_chat, problem
from tests.conftest import Client
from tests.credentials import SERVER, user
from tests.sse import EndOfStream, EventStream


def someone(name: str = "user") -> str:
    return f"{name}-{secrets.token_hex(4)}"


async def chat_of(client: Client, owner: str, *members: str, title: str = "team") -> dict[str, Any]:
    response = await client.post(
        "/chats/", json={"title": title, "members": [{"user": m} for m in members]}, headers=user(owner)
    )
    assert response.status == 201, await response.text()
    chat: dict[str, Any] = await response.json()
    return chat


async def members_of(client: Client, chat_id: int, query: str = "", headers: dict[str, str] = SERVER) -> Any:
    response = await client.get(f"/chats/{chat_id}/members/{query}", headers=headers)
    assert response.status == 200, await response.text()
    page = await response.json()
    MemberPage.model_validate(page)
    return page


# -- creating a chat with members -------------------------------------------------


async def test_a_user_who_creates_a_chat_is_its_first_owner(client: Client) -> None:
    owner, friend = someone("owner"), someone("friend")
    chat = await chat_of(client, owner, friend)
    assert set(chat) == {"id", "title", "created_at"}
    page = await members_of(client, chat["id"])
    assert [(m["user"], m["role"]) for m in page["members"]] == sorted([(owner, "owner"), (friend, "member")])
    assert all(RFC3339_UTC.fullmatch(m["joined_at"]) for m in page["members"])


async def test_a_creator_who_lists_themselves_stays_the_owner(client: Client) -> None:
    owner = someone("owner")
    response = await client.post(
        "/chats/", json={"title": "t", "members": [{"user": owner, "role": "member"}]}, headers=user(owner)
    )
    chat = await response.json()
    page = await members_of(client, chat["id"])
    assert [(m["user"], m["role"]) for m in page["members"]] == [(owner, "owner")]


async def test_a_chat_the_server_creates_has_exactly_the_members_it_lists(client: Client) -> None:
    alice, bob = someone("alice"), someone("bob")
    response = await client.post(
        "/chats/", json={"title": "t", "members": [{"user": bob, "role": "owner"}, {"user": alice}]}
    )
    chat = await response.json()
    page = await members_of(client, chat["id"])
    assert {(m["user"], m["role"]) for m in page["members"]} == {(bob, "owner"), (alice, "member")}
    response = await client.post("/chats/", json={"title": "nobody's"})
    assert (await members_of(client, (await response.json())["id"]))["members"] == []


@pytest.mark.parametrize(
    "members",
    [
        [{"user": "a"}, {"user": "a"}],
        [{"user": "a", "role": "admin"}],
        [{"user": ""}],
        [{"user": "x" * 256}],
        [{"user": "with space"}],
        [{"user": "ünïcode"}],
        [{"user": 7}],
        [{"role": "member"}],
        "alice",
        [{"user": f"u{n}"} for n in range(101)],
    ],
)
async def test_a_malformed_member_list_is_422_and_stores_nothing(
    client: Client, db: asyncpg.Connection, members: Any
) -> None:
    title = f"refused {secrets.token_hex(4)}"
    response = await client.post("/chats/", json={"title": title, "members": members})
    body = await problem(response, 422)
    assert error_locations(body)[0][:2] == ["body", "members"]
    assert await db.fetchval("SELECT count(*) FROM chats WHERE title = $1", title) == 0


async def test_a_hundred_members_are_accepted(client: Client) -> None:
    response = await client.post(
        "/chats/", json={"title": "t", "members": [{"user": f"u{n}"} for n in range(100)]}
    )
    assert response.status == 201
    page = await members_of(client, (await response.json())["id"])
    assert len(page["members"]) == 100 and page["next_after"] is None


# -- GET /chats/{id}/members --------------------------------------------------------


async def test_members_are_paged_by_user_id_bytewise(client: Client) -> None:
    users = ["B", "a", "_x", "Z9", "~", "!", "a~", "aa"]
    response = await client.post("/chats/", json={"title": "t", "members": [{"user": u} for u in users]})
    chat_id = (await response.json())["id"]
    seen: list[str] = []
    query = "?limit=3"
    for _ in range(5):
        page = await members_of(client, chat_id, query)
        seen += [m["user"] for m in page["members"]]
        if page["next_after"] is None:
            break
        assert page["next_after"] == seen[-1]
        query = f"?limit=3&after={page['next_after']}"
    assert seen == sorted(users, key=str.encode)
    assert (await members_of(client, chat_id))["members"][0]["user"] == "!"  # default limit 100: all


@pytest.mark.parametrize("query", ["?limit=0", "?limit=101", "?limit=x", "?after=", "?after=a%20b"])
async def test_bad_member_paging_is_422(client: Client, query: str) -> None:
    response = await client.post("/chats/", json={"title": "t"})
    chat_id = (await response.json())["id"]
    await problem(await client.get(f"/chats/{chat_id}/members/{query}"), 422)


# -- PUT and DELETE /chats/{id}/members/{user} --------------------------------------


async def test_put_adds_with_201_then_sets_the_role_with_200(client: Client) -> None:
    owner, newcomer = someone("owner"), someone("new")
    chat = await chat_of(client, owner)
    added = await client.put(f"/chats/{chat['id']}/members/{newcomer}", headers=user(owner))
    assert added.status == 201
    body = await added.json()
    Member.model_validate(body)
    assert (body["user"], body["role"]) == (newcomer, "member")
    again = await client.put(
        f"/chats/{chat['id']}/members/{newcomer}", json={"role": "owner"}, headers=user(owner)
    )
    assert again.status == 200
    promoted = await again.json()
    assert (promoted["role"], promoted["joined_at"]) == ("owner", body["joined_at"])
    unchanged = await client.put(f"/chats/{chat['id']}/members/{newcomer}", headers=SERVER)
    assert unchanged.status == 200 and (await unchanged.json())["role"] == "member"  # the default role


@pytest.mark.parametrize("body", [{"role": "admin"}, {"role": None}, [], "member"])
async def test_put_with_a_bad_body_is_422(client: Client, body: Any) -> None:
    response = await client.post("/chats/", json={"title": "t"})
    chat_id = (await response.json())["id"]
    await problem(await client.put(f"/chats/{chat_id}/members/someone", json=body), 422)


async def test_a_path_that_is_not_a_user_id_is_404(client: Client) -> None:
    response = await client.post("/chats/", json={"title": "t"})
    chat_id = (await response.json())["id"]
    for path in (f"/chats/{chat_id}/members/{'x' * 256}", f"/chats/{chat_id}/members/a%20b"):
        await problem(await client.put(path), 404)
        await problem(await client.delete(path), 404)


async def test_a_user_id_with_reserved_characters_is_a_member_once_percent_encoded(client: Client) -> None:
    response = await client.post("/chats/", json={"title": "t"})
    chat_id = (await response.json())["id"]
    odd = "a/b?c#d%e"
    encoded = "a%2Fb%3Fc%23d%25e"
    assert (await client.put(f"/chats/{chat_id}/members/{encoded}")).status == 201
    assert [m["user"] for m in (await members_of(client, chat_id))["members"]] == [odd]


async def test_delete_removes_a_member_and_a_second_delete_is_404(client: Client) -> None:
    owner, friend = someone("owner"), someone("friend")
    chat = await chat_of(client, owner, friend)
    assert (await client.delete(f"/chats/{chat['id']}/members/{friend}", headers=user(owner))).status == 204
    await problem(await client.delete(f"/chats/{chat['id']}/members/{friend}", headers=user(owner)), 404)
    assert [m["user"] for m in (await members_of(client, chat["id"]))["members"]] == [owner]


async def test_members_routes_on_a_missing_chat_are_404(client: Client) -> None:
    for response in (
        await client.get("/chats/999999999999/members/"),
        await client.put("/chats/999999999999/members/x"),
        await client.delete("/chats/999999999999/members/x"),
        await client.get("/chats/abc/members/"),
    ):
        await problem(response, 404)


# -- access ends at once ------------------------------------------------------------


async def test_a_removed_member_gets_404_at_once(client: Client) -> None:
    owner, friend = someone("owner"), someone("friend")
    chat = await chat_of(client, owner, friend)
    assert (await client.get(f"/chats/{chat['id']}", headers=user(friend))).status == 200
    await client.delete(f"/chats/{chat['id']}/members/{friend}", headers=user(owner))
    for path in (f"/chats/{chat['id']}", f"/chats/{chat['id']}/messages/", f"/chats/{chat['id']}/members/"):
        await problem(await client.get(path, headers=user(friend)), 404)
    sent = await client.post(f"/chats/{chat['id']}/messages/", json={"text": "x"}, headers=user(friend))
    await problem(sent, 404)


async def open_stream(client: Client, chat_id: int, who: str) -> EventStream:
    response = await client.get(f"/chats/{chat_id}/events", headers=user(who))
    stream = EventStream(response)
    await stream.frame()  # the opening retry hint: subscribed from here
    return stream


async def ends_within(stream: EventStream, seconds: float) -> None:
    with pytest.raises(EndOfStream):
        async with asyncio.timeout(seconds):
            while True:
                await stream.frame(within=seconds)


async def test_removing_a_member_ends_their_streams_and_only_theirs_within_a_second(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    """Two app instances on one database, as two processes: the removal's notification
    ends the member's stream on the other one too; the owner's stream goes on."""
    here = await aiohttp_client(create_app(settings))
    there = await aiohttp_client(create_app(settings))
    owner, friend = someone("owner"), someone("friend")
    chat = await chat_of(here, owner, friend)
    friends_here, friends_there = (
        await open_stream(here, chat["id"], friend),
        await open_stream(there, chat["id"], friend),
    )
    owners = await open_stream(there, chat["id"], owner)
    assert (await here.delete(f"/chats/{chat['id']}/members/{friend}", headers=user(owner))).status == 204
    await ends_within(friends_here, 1.0)
    await ends_within(friends_there, 1.0)
    sent = await here.post(f"/chats/{chat['id']}/messages/", json={"text": "still here"}, headers=user(owner))
    message = await sent.json()
    assert (await owners.event()).json() == message
    owners.close()
    # Reconnecting is 404, as for a chat that does not exist.
    await problem(await there.get(f"/chats/{chat['id']}/events", headers=user(friend)), 404)


async def test_leaving_ends_ones_own_streams(client: Client) -> None:
    owner, friend = someone("owner"), someone("friend")
    chat = await chat_of(client, owner, friend)
    stream = await open_stream(client, chat["id"], friend)
    assert (await client.delete(f"/chats/{chat['id']}/members/{friend}", headers=user(friend))).status == 204
    await ends_within(stream, 1.0)


# -- authors ------------------------------------------------------------------------


async def test_a_users_message_is_theirs_whatever_the_body_says(client: Client) -> None:
    owner = someone("owner")
    chat = await chat_of(client, owner)
    response = await client.post(
        f"/chats/{chat['id']}/messages/", json={"text": "mine", "author": "someone-else"}, headers=user(owner)
    )
    message = await response.json()
    assert message["author"] == owner
    read = await client.get(f"/chats/{chat['id']}/messages/{message['id']}", headers=user(owner))
    assert (await read.json())["author"] == owner


async def test_the_server_may_name_any_author_or_none(client: Client) -> None:
    response = await client.post("/chats/", json={"title": "t"})
    chat_id = (await response.json())["id"]
    named = await (
        await client.post(f"/chats/{chat_id}/messages/", json={"text": "a", "author": "not-a-member"})
    ).json()
    anonymous = await (await client.post(f"/chats/{chat_id}/messages/", json={"text": "b"})).json()
    explicit_null = await (
        await client.post(f"/chats/{chat_id}/messages/", json={"text": "c", "author": None})
    ).json()
    assert (named["author"], anonymous["author"], explicit_null["author"]) == ("not-a-member", None, None)
    chat = await (await client.get(f"/chats/{chat_id}")).json()
    assert [m["author"] for m in chat["messages"]] == ["not-a-member", None, None]


@pytest.mark.parametrize("author", ["", "x" * 256, "a b", 5])
async def test_a_bad_author_is_422(client: Client, author: Any) -> None:
    response = await client.post("/chats/", json={"title": "t"})
    chat_id = (await response.json())["id"]
    body = await problem(
        await client.post(f"/chats/{chat_id}/messages/", json={"text": "x", "author": author}), 422
    )
    assert error_locations(body) == [["body", "author"]]


async def test_messages_from_before_members_existed_keep_working_for_the_server(
    client: Client, db: asyncpg.Connection
) -> None:
    """A v2 chat: no members, messages with a null author, written as v2 wrote them."""
    chat_id = await db.fetchval("INSERT INTO chats (title) VALUES ('v2') RETURNING id")
    await fill_chat(db, chat_id, 1, "old")
    chat = await (await client.get(f"/chats/{chat_id}")).json()
    assert [(m["text"], m["author"]) for m in chat["messages"]] == [("old1", None)]
    assert (await client.post(f"/chats/{chat_id}/messages/", json={"text": "new"})).status == 201


# -- a user's listing ---------------------------------------------------------------


async def test_a_user_lists_only_their_chats_newest_first(client: Client) -> None:
    me, other = someone("me"), someone("other")
    mine = [await chat_of(client, me, title=f"mine {n}") for n in range(3)]
    invited = await chat_of(client, other, me)
    await chat_of(client, other)  # not mine
    expected = [invited["id"], *(chat["id"] for chat in reversed(mine))]
    seen: list[int] = []
    query = "?limit=2"
    while True:
        response = await client.get(f"/chats/{query}", headers=user(me))
        page = await response.json()
        seen += [chat["id"] for chat in page["chats"]]
        if page["next_before"] is None:
            break
        query = f"?limit=2&before={page['next_before']}"
    assert seen == expected
    listed = await (await client.get("/chats/?limit=100")).json()  # the server sees them all
    assert {chat["id"] for chat in listed["chats"]} >= set(expected)


async def test_a_user_with_no_chats_gets_an_empty_page(client: Client) -> None:
    response = await client.get("/chats/", headers=user(someone("new")))
    assert await response.json() == {"chats": [], "next_before": None}


# -- Idempotency-Keys belong to their caller ----------------------------------------


async def test_two_users_with_the_same_key_and_body_get_two_chats(client: Client) -> None:
    key = f"shared-{secrets.token_hex(4)}"
    alice, bob = someone("alice"), someone("bob")
    first = await client.post(
        "/chats/", json={"title": "same"}, headers={**user(alice), "Idempotency-Key": key}
    )
    second = await client.post(
        "/chats/", json={"title": "same"}, headers={**user(bob), "Idempotency-Key": key}
    )
    server = await client.post("/chats/", json={"title": "same"}, headers={"Idempotency-Key": key})
    assert (first.status, second.status, server.status) == (201, 201, 201)
    ids = {(await r.json())["id"] for r in (first, second, server)}
    assert len(ids) == 3 and "Idempotent-Replayed" not in second.headers
    again = await client.post(
        "/chats/", json={"title": "same"}, headers={**user(bob), "Idempotency-Key": key}
    )
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["id"] == (await second.json())["id"]


async def test_message_keys_belong_to_their_caller_in_their_chat(client: Client) -> None:
    owner, friend = someone("owner"), someone("friend")
    chat = await chat_of(client, owner, friend)
    key = {"Idempotency-Key": "same-key"}
    path = f"/chats/{chat['id']}/messages/"
    mine = await client.post(path, json={"text": "hi"}, headers={**user(owner), **key})
    theirs = await client.post(path, json={"text": "hi"}, headers={**user(friend), **key})
    assert (await mine.json())["id"] != (await theirs.json())["id"]
    assert (await theirs.json())["author"] == friend


async def test_a_chat_key_replayed_with_other_members_is_422(client: Client) -> None:
    key = {"Idempotency-Key": f"members-{secrets.token_hex(4)}"}
    first = await client.post("/chats/", json={"title": "t", "members": [{"user": "a"}]}, headers=key)
    assert first.status == 201
    other = await client.post("/chats/", json={"title": "t", "members": [{"user": "b"}]}, headers=key)
    await problem(other, 422)
    same = await client.post(
        "/chats/", json={"title": "t", "members": [{"user": "a", "role": "member"}]}, headers=key
    )
    assert same.headers["Idempotent-Replayed"] == "true"
