"""GET /chats/{id}/messages/ (history pages) and GET /chats/{id}/messages/{message_id} (contract v2)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chatsvc.models import Message
from tests.api import create_chat, error_locations, problem, send
from tests.conftest import Client


async def history(client: Client, chat_id: int, query: str = "") -> dict[str, Any]:
    response = await client.get(f"/chats/{chat_id}/messages/{query}")
    assert response.status == 200, await response.text()
    assert response.content_type == "application/json"
    page: dict[str, Any] = await response.json()
    assert set(page) == {"messages", "has_more"}
    for message in page["messages"]:
        Message.model_validate(message)
        assert set(message) == {"id", "chat_id", "author", "text", "created_at", "edited_at"}
        assert message["chat_id"] == chat_id
    ids = [message["id"] for message in page["messages"]]
    assert ids == sorted(ids), "pages list oldest first"
    return page


def ids(page: dict[str, Any]) -> list[int]:
    return [message["id"] for message in page["messages"]]


async def chat_with(client: Client, count: int) -> tuple[int, list[int]]:
    chat = await create_chat(client)
    sent = [(await send(client, chat["id"], f"m{n}"))["id"] for n in range(count)]
    return chat["id"], sent


MAX_PAGES = 1000  # more than any test's history holds: a has_more that stays true fails, not hangs


async def pages_back(client: Client, chat_id: int, limit: int) -> list[dict[str, Any]]:
    pages = [await history(client, chat_id, f"?limit={limit}")]
    while pages[-1]["has_more"]:
        assert len(pages) < MAX_PAGES, "has_more never became false"
        pages.append(await history(client, chat_id, f"?limit={limit}&before={ids(pages[-1])[0]}"))
    return pages


async def pages_forward(client: Client, chat_id: int, limit: int, after: int = 0) -> list[dict[str, Any]]:
    pages = [await history(client, chat_id, f"?limit={limit}&after={after}")]
    while pages[-1]["has_more"]:
        assert len(pages) < MAX_PAGES, "has_more never became false"
        pages.append(await history(client, chat_id, f"?limit={limit}&after={ids(pages[-1])[-1]}"))
    return pages


# -- one page -------------------------------------------------------------------


async def test_without_a_cursor_the_newest_fifty_oldest_first(client: Client) -> None:
    chat_id, sent = await chat_with(client, 55)
    page = await history(client, chat_id)
    assert ids(page) == sent[-50:]
    assert page["has_more"] is True
    assert [m["text"] for m in page["messages"]] == [f"m{n}" for n in range(5, 55)]
    assert await history(client, chat_id, "") == await history(client, chat_id, "?limit=50")
    without_slash = await client.get(f"/chats/{chat_id}/messages")
    assert without_slash.status == 200 and await without_slash.json() == page


async def test_a_chat_without_messages_has_an_empty_page(client: Client) -> None:
    chat = await create_chat(client)
    for query in ("", "?before=5", "?after=0"):
        assert await history(client, chat["id"], query) == {"messages": [], "has_more": False}


async def test_pages_carry_what_the_sends_returned(client: Client) -> None:
    chat = await create_chat(client)
    sent = [await send(client, chat["id"], text) for text in ("one", "  two  ", "🎉 three\nlines")]
    assert (await history(client, chat["id"]))["messages"] == sent


@pytest.mark.parametrize(("count", "limit"), [(1, 1), (5, 5), (10, 3), (12, 3), (250, 100), (100, 100)])
async def test_paging_back_from_the_newest_lists_every_message_once(
    client: Client, count: int, limit: int
) -> None:
    chat_id, sent = await chat_with(client, count)
    pages = await pages_back(client, chat_id, limit)
    assert [i for page in reversed(pages) for i in ids(page)] == sent
    assert all(len(ids(page)) == limit and page["has_more"] for page in pages[:-1])
    # has_more is false exactly when nothing older exists: no trailing empty page.
    assert ids(pages[-1]) and not pages[-1]["has_more"]


@pytest.mark.parametrize(("count", "limit"), [(1, 1), (5, 5), (10, 3), (12, 3), (250, 100)])
async def test_paging_forward_from_zero_lists_every_message_once(
    client: Client, count: int, limit: int
) -> None:
    chat_id, sent = await chat_with(client, count)
    pages = await pages_forward(client, chat_id, limit)
    assert [i for page in pages for i in ids(page)] == sent
    assert ids(pages[-1]) and not pages[-1]["has_more"]


async def test_cursors_are_exclusive_and_need_not_name_a_message(client: Client) -> None:
    chat_id, sent = await chat_with(client, 6)
    assert ids(await history(client, chat_id, f"?before={sent[3]}&limit=2")) == sent[1:3]
    assert ids(await history(client, chat_id, f"?after={sent[3]}&limit=2")) == sent[4:6]
    assert (await history(client, chat_id, f"?after={sent[3]}&limit=2"))["has_more"] is False
    assert (await history(client, chat_id, f"?after={sent[2]}&limit=2"))["has_more"] is True
    assert (await history(client, chat_id, f"?before={sent[2]}&limit=2"))["has_more"] is False
    # Ids come from one sequence across chats: a cursor between two of them, or past them all.
    assert ids(await history(client, chat_id, f"?before={sent[-1] + 1000}")) == sent
    assert await history(client, chat_id, f"?after={sent[-1] + 1000}") == {"messages": [], "has_more": False}
    assert await history(client, chat_id, "?before=0") == {"messages": [], "has_more": False}
    assert ids(await history(client, chat_id, "?before=9223372036854775807")) == sent
    # Cursors past every id, however far, mean exactly that.
    for huge in ("9223372036854775808", "9" * 5000):
        assert ids(await history(client, chat_id, f"?before={huge}")) == sent
        assert await history(client, chat_id, f"?after={huge}") == {"messages": [], "has_more": False}
    assert ids(await history(client, chat_id, "?after=0&limit=1")) == sent[:1]


async def test_pages_hold_only_their_own_chat(client: Client) -> None:
    first, first_sent = await chat_with(client, 3)
    second, second_sent = await chat_with(client, 3)
    await send(client, first, "later in the first chat")
    assert ids(await history(client, second)) == second_sent
    assert ids(await history(client, second, f"?after={first_sent[0]}")) == second_sent


async def test_paging_while_others_send_never_skips_or_repeats(client: Client) -> None:
    """Both directions, over a few hundred messages, while senders keep going."""
    chat_id, initial = await chat_with(client, 150)
    stop = asyncio.Event()
    sent_meanwhile: list[int] = []

    async def sender() -> None:
        while not stop.is_set():
            sent_meanwhile.append((await send(client, chat_id, "meanwhile"))["id"])

    senders = [asyncio.create_task(sender()) for _ in range(3)]
    try:
        back = await pages_back(client, chat_id, 7)
        forward = await pages_forward(client, chat_id, 9)
    finally:
        stop.set()
        await asyncio.gather(*senders)
    assert len(sent_meanwhile) > 0
    backward_ids = [i for page in reversed(back) for i in ids(page)]
    assert len(backward_ids) == len(set(backward_ids))
    # Going back from the newest: a contiguous run ending at the first message, no gaps.
    everything = initial + sorted(sent_meanwhile)
    assert backward_ids == everything[: len(backward_ids)]
    assert backward_ids[: len(initial)] == initial
    # Going forward: every message, once, in order, up to the newest when it stopped.
    forward_ids = [i for page in forward for i in ids(page)]
    assert forward_ids == everything[: len(forward_ids)]
    # Picking up after the last one seen finds exactly the rest.
    rest = await pages_forward(client, chat_id, 100, after=forward_ids[-1])
    assert forward_ids + [i for page in rest for i in ids(page)] == everything


# -- errors ---------------------------------------------------------------------


async def test_missing_or_deleted_chat_is_404(client: Client) -> None:
    await problem(await client.get("/chats/9223372036854775807/messages/"), 404)
    await problem(await client.get("/chats/abc/messages/?after=1"), 404)
    chat_id, _ = await chat_with(client, 2)
    assert (await client.delete(f"/chats/{chat_id}")).status == 204
    for query in ("", "?before=10", "?after=0"):
        await problem(await client.get(f"/chats/{chat_id}/messages/{query}"), 404)


async def test_before_and_after_together_is_422(client: Client) -> None:
    chat_id, _ = await chat_with(client, 1)
    body = await problem(await client.get(f"/chats/{chat_id}/messages/?before=5&after=1"), 422)
    assert error_locations(body) == [["query", "before"], ["query", "after"]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=abc", "limit"),
        ("?limit=", "limit"),
        ("?before=-1", "before"),
        ("?before=abc", "before"),
        ("?before=", "before"),
        ("?before=1.0", "before"),
        ("?after=-1", "after"),
        ("?after=x", "after"),
        ("?after=", "after"),
        ("?after=+1", "after"),
        ("?after=1&after=2", "after"),
    ],
)
async def test_bad_limit_or_cursor_is_422_naming_it(client: Client, query: str, field: str) -> None:
    chat_id, _ = await chat_with(client, 1)
    body = await problem(await client.get(f"/chats/{chat_id}/messages/{query}"), 422)
    assert error_locations(body) == [["query", field]]


# -- one message ----------------------------------------------------------------


async def test_a_sends_location_answers_with_the_message(client: Client) -> None:
    chat = await create_chat(client)
    response = await client.post(f"/chats/{chat['id']}/messages/", json={"text": "find me"})
    sent = await response.json()
    for location in (response.headers["Location"], response.headers["Location"] + "/"):
        fetched = await client.get(location)
        assert fetched.status == 200 and fetched.content_type == "application/json"
        assert await fetched.json() == sent


async def test_a_message_of_another_or_missing_chat_is_404(client: Client) -> None:
    chat_id, sent = await chat_with(client, 1)
    other_id, _ = await chat_with(client, 1)
    await problem(await client.get(f"/chats/{other_id}/messages/{sent[0]}"), 404)
    await problem(await client.get(f"/chats/{chat_id}/messages/{sent[0] + 1000}"), 404)
    await problem(await client.get(f"/chats/9223372036854775807/messages/{sent[0]}"), 404)
    for bad in ("0", "-1", "abc", "1.0", "9223372036854775808", "%D9%A3"):
        await problem(await client.get(f"/chats/{chat_id}/messages/{bad}"), 404)
    assert (await client.delete(f"/chats/{chat_id}")).status == 204
    await problem(await client.get(f"/chats/{chat_id}/messages/{sent[0]}"), 404)
