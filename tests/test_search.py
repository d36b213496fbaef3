"""GET /search/messages: every word, prefixes, case, scripts, scope, paging, deletions, edits."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from chatsvc.models import SearchPage
from tests.api import error_locations, problem
from tests.conftest import Client
from tests.credentials import SERVER, user
from tests.test_read_state import chat_with, post_as, someone


def tag() -> str:
    """A word no other test's message holds: searches over every chat find this test's only."""
    return "z" + secrets.token_hex(5)


async def search(client: Client, query: str, who: str | None = None, **params: Any) -> dict[str, Any]:
    response = await client.get(
        "/search/messages", params={"q": query, **params}, headers=SERVER if who is None else user(who)
    )
    assert response.status == 200, await response.text()
    page: dict[str, Any] = await response.json()
    SearchPage.model_validate(page)
    assert set(page) == {"messages", "next_before"}
    return page


async def found(client: Client, query: str, who: str | None = None, **params: Any) -> list[int]:
    """The ids found, every page followed (newest first)."""
    ids: list[int] = []
    before: dict[str, Any] = {}
    while True:
        page = await search(client, query, who, **params, **before)
        ids.extend(message["id"] for message in page["messages"])
        if page["next_before"] is None:
            return ids
        assert page["next_before"] == page["messages"][-1]["id"]
        before = {"before": page["next_before"]}


async def test_every_word_must_match_each_as_a_prefix_in_any_case(client: Client) -> None:
    t = tag()
    alice = someone("alice")
    chat_id = await chat_with(client, alice)
    texts = [
        f"{t} Привет, МИР! Как дела?",
        f"{t} hello World",
        f"{t} HELLO there",
        f"{t} ёлка и Ёжик",
        f"{t} write to alice@example.com or see http://example.org/path_to-page",
        f"{t} version 3.14 and v2",
        f"{t} «Кавычки» — тире… и «ещё»",
        f"{t} worldwide",
    ]
    ids = {text: (await post_as(client, chat_id, None, text))["id"] for text in texts}

    def of(*indexes: int) -> list[int]:
        return sorted((ids[texts[i]] for i in indexes), reverse=True)

    assert await found(client, f"{t} hello") == of(2, 1)
    assert await found(client, f"{t} HeLLo wor") == of(1)  # every word, the last a prefix of World
    assert await found(client, f"{t} world") == of(7, 1)  # world, and worldwide by its start
    assert await found(client, f"{t} orld") == []  # a word matches the start of a word only
    assert await found(client, f"{t} привет мир") == of(0)
    assert await found(client, f"{t} ПРИВЕТ") == of(0)
    assert await found(client, f"{t} прив") == of(0)
    # ё is е: either finds both spellings, in either case.  # noqa: RUF003
    assert await found(client, f"{t} елка") == of(3)
    assert await found(client, f"{t} ЕЖИК") == of(3)
    assert await found(client, f"{t} ещё") == of(6)
    assert await found(client, f"{t} еще") == of(6)
    # Words are runs of letters and digits: punctuation of every kind separates them.
    assert await found(client, f"{t} example") == of(4)
    assert await found(client, f"{t} alice example com") == of(4)
    assert await found(client, f"{t} path to page") == of(4)
    assert await found(client, f"{t} 14") == of(5)
    assert await found(client, f"{t} 3 v2") == of(5)
    assert await found(client, f"{t} кавычки тире") == of(6)
    # The query's punctuation is no word either.
    assert await found(client, f"({t}) -- «hello»!") == of(2, 1)
    assert await found(client, f"{t} nothing") == []


async def test_a_user_searches_their_chats_only_and_the_server_every_chat(client: Client) -> None:
    t = tag()
    alice, bob = someone("alice"), someone("bob")
    hers = await chat_with(client, alice)
    shared = await chat_with(client, alice, bob)
    theirs = await chat_with(client, bob)
    in_hers = (await post_as(client, hers, None, f"{t} one"))["id"]
    in_shared = (await post_as(client, shared, bob, f"{t} two"))["id"]
    in_theirs = (await post_as(client, theirs, bob, f"{t} three"))["id"]
    assert await found(client, t, alice) == [in_shared, in_hers]
    assert await found(client, t, bob) == [in_theirs, in_shared]
    assert await found(client, t) == [in_theirs, in_shared, in_hers]
    # chat_id narrows; a chat the user is not in is 404, like one that does not exist.
    assert await found(client, t, alice, chat_id=shared) == [in_shared]
    assert await found(client, t, chat_id=theirs) == [in_theirs]
    refused = await client.get("/search/messages", params={"q": t, "chat_id": theirs}, headers=user(alice))
    missing = await client.get("/search/messages", params={"q": t, "chat_id": 2**62}, headers=user(alice))
    body = await problem(refused, 404)
    assert body["detail"] == f"Chat {theirs} does not exist."
    assert (await problem(missing, 404))["detail"] == f"Chat {2**62} does not exist."
    await problem(
        await client.get("/search/messages", params={"q": t, "chat_id": 2**62}, headers=SERVER), 404
    )
    # Removed from a chat, a user no longer finds its messages.
    response = await client.delete(f"/chats/{shared}/members/{bob}", headers=SERVER)
    assert response.status == 204
    assert await found(client, t, bob) == [in_theirs]


@pytest.mark.parametrize("limit", [1, 2, 5])
async def test_pages_newest_first_neither_skip_nor_repeat_while_others_send(
    client: Client, limit: int
) -> None:
    t = tag()
    chat_id = await chat_with(client, someone("alice"))
    other = await chat_with(client, someone("carol"))
    ids = [(await post_as(client, chat_id if n % 3 else other, None, f"{t} n{n}"))["id"] for n in range(11)]
    seen: list[int] = []
    before: dict[str, Any] = {}
    while True:
        page = await search(client, t, limit=limit, **before)
        assert len(page["messages"]) <= limit
        seen.extend(message["id"] for message in page["messages"])
        await post_as(client, chat_id, None, f"{t} later")  # newer than every page: never in a later one
        if page["next_before"] is None:
            break
        before = {"before": page["next_before"]}
    assert seen == sorted(ids, reverse=True)
    assert (await search(client, t, limit=limit))["messages"][0]["text"] == f"{t} later"


async def test_messages_are_rendered_as_everywhere_else(client: Client) -> None:
    t = tag()
    alice = someone("alice")
    chat_id = await chat_with(client, alice)
    sent = await post_as(client, chat_id, alice, f"{t} as sent")
    page = await search(client, t, alice)
    assert page == {"messages": [sent], "next_before": None}


async def test_deleted_messages_are_never_found_and_edited_ones_by_their_current_text(client: Client) -> None:
    t = tag()
    alice = someone("alice")
    chat_id = await chat_with(client, alice)
    kept = await post_as(client, chat_id, alice, f"{t} apple")
    gone = await post_as(client, chat_id, alice, f"{t} apple pie")
    edited = await post_as(client, chat_id, alice, f"{t} banana")
    assert (await client.delete(f"/chats/{chat_id}/messages/{gone['id']}", headers=user(alice))).status == 204
    response = await client.patch(
        f"/chats/{chat_id}/messages/{edited['id']}", json={"text": f"{t} cherry"}, headers=user(alice)
    )
    assert response.status == 200
    assert await found(client, f"{t} apple", alice) == [kept["id"]]
    assert await found(client, f"{t} pie", alice) == []
    assert await found(client, f"{t} banana", alice) == []
    page = await search(client, f"{t} cherry", alice)
    assert [message["id"] for message in page["messages"]] == [edited["id"]]
    assert page["messages"][0]["text"] == f"{t} cherry" and page["messages"][0]["edited_at"]


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("", ["query", "q"]),
        ("x" * 201, ["query", "q"]),
        ("!!! --- ...", ["query", "q"]),
        ("«»—…", ["query", "q"]),
        ("_", ["query", "q"]),
        ("a\x00b", ["query", "q"]),
        ("q=ok&q=again", ["query", "q"]),
        ("q=ok&limit=0", ["query", "limit"]),
        ("q=ok&limit=101", ["query", "limit"]),
        ("q=ok&before=-1", ["query", "before"]),
        ("q=ok&before=x", ["query", "before"]),
        ("q=ok&chat_id=abc", ["query", "chat_id"]),
        ("limit=5", ["query", "q"]),
    ],
)
async def test_a_bad_query_is_422_naming_the_parameter(client: Client, query: str, loc: list[str]) -> None:
    if "=" in query:
        response = await client.get(f"/search/messages?{query}", headers=SERVER)
    else:
        response = await client.get("/search/messages", params={"q": query}, headers=SERVER)
    assert error_locations(await problem(response, 422)) == [loc]


async def test_two_hundred_characters_and_one_word_are_enough(client: Client) -> None:
    assert (await search(client, "я"))["messages"] is not None
    await search(client, "x" * 200)
    await search(client, "... 7 ...")


async def test_searching_needs_a_credential(anonymous_client: Client) -> None:
    response = await anonymous_client.get("/search/messages", params={"q": "hello"})
    await problem(response, 401)


async def test_a_page_holds_twenty_messages_unless_limit_says_otherwise(client: Client) -> None:
    t = tag()
    chat_id = await chat_with(client, someone("alice"))
    ids = [(await post_as(client, chat_id, None, f"{t} n{n}"))["id"] for n in range(21)]
    page = await search(client, t)
    assert [message["id"] for message in page["messages"]] == ids[:0:-1]  # the 20 newest
    assert page["next_before"] == ids[1]
    assert [message["id"] for message in (await search(client, t, before=ids[1]))["messages"]] == [ids[0]]
