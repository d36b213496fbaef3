"""GET /chats/: chats newest first, keyset-paginated (contract v2)."""

from __future__ import annotations

from typing import Any

import pytest

from chatsvc.models import ChatSummary
from tests.api import create_chat, error_locations, problem
from tests.conftest import Client


async def listing(client: Client, query: str = "") -> dict[str, Any]:
    response = await client.get(f"/chats/{query}")
    assert response.status == 200, await response.text()
    assert response.content_type == "application/json"
    page: dict[str, Any] = await response.json()
    assert set(page) == {"chats", "next_before"}
    for chat in page["chats"]:
        ChatSummary.model_validate(chat)
        # The server's listing: each chat with its newest message, and no read state.
        assert set(chat) == {"id", "title", "created_at", "last_message"}
    return page


def as_listed(created: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chats as the listing shows them while they hold no message."""
    return [{**chat, "last_message": None} for chat in created]


async def all_pages(client: Client, limit: int) -> list[dict[str, Any]]:
    """Every page from the newest, following next_before to the end."""
    pages = [await listing(client, f"?limit={limit}")]
    while pages[-1]["next_before"] is not None:
        assert len(pages) < 1000, "next_before never became null"
        pages.append(await listing(client, f"?limit={limit}&before={pages[-1]['next_before']}"))
    return pages


async def test_no_chats_is_an_empty_page_without_next(empty_client: Client) -> None:
    assert await listing(empty_client) == {"chats": [], "next_before": None}


async def test_newest_first_with_twenty_by_default(empty_client: Client) -> None:
    created = [await create_chat(empty_client, f"chat {n}") for n in range(25)]
    page = await listing(empty_client)
    assert page["chats"] == as_listed(created[::-1][:20])
    assert page["next_before"] == created[5]["id"]
    without_slash = await empty_client.get("/chats")
    assert without_slash.status == 200 and await without_slash.json() == page


@pytest.mark.parametrize(("count", "limit"), [(1, 1), (7, 3), (9, 3), (10, 100), (100, 100), (101, 100)])
async def test_following_next_before_lists_every_chat_once_and_ends_with_null(
    empty_client: Client, count: int, limit: int
) -> None:
    created = [(await create_chat(empty_client, f"c{n}"))["id"] for n in range(count)]
    pages = await all_pages(empty_client, limit)
    listed = [chat["id"] for page in pages for chat in page["chats"]]
    assert listed == created[::-1]
    assert all(len(page["chats"]) == limit for page in pages[:-1])
    # next_before is null exactly when no older chat exists: no trailing empty page.
    assert pages[-1]["chats"] and pages[-1]["next_before"] is None
    for page in pages[:-1]:
        assert page["next_before"] == page["chats"][-1]["id"]


async def test_pages_neither_skip_nor_repeat_while_chats_are_created_and_deleted(
    empty_client: Client,
) -> None:
    created = [(await create_chat(empty_client, f"c{n}"))["id"] for n in range(30)]
    first = await listing(empty_client, "?limit=10")
    newer = [(await create_chat(empty_client, "newer"))["id"] for _ in range(5)]
    second = await listing(empty_client, f"?limit=10&before={first['next_before']}")
    assert (await empty_client.delete(f"/chats/{created[0]}")).status == 204
    third = await listing(empty_client, f"?limit=10&before={second['next_before']}")
    listed = [chat["id"] for page in (first, second, third) for chat in page["chats"]]
    assert listed == created[::-1][:29]  # the deleted oldest chat is gone, nothing else moved
    assert third["next_before"] is None
    assert [chat["id"] for chat in (await listing(empty_client, "?limit=5"))["chats"]] == newer[::-1]


async def test_before_is_exclusive_and_need_not_name_a_chat(empty_client: Client) -> None:
    ids = [(await create_chat(empty_client))["id"] for _ in range(3)]
    assert [c["id"] for c in (await listing(empty_client, f"?before={ids[2]}"))["chats"]] == ids[1::-1]
    assert [c["id"] for c in (await listing(empty_client, "?before=9223372036854775807"))["chats"]] == ids[
        ::-1
    ]
    assert await listing(empty_client, "?before=0") == {"chats": [], "next_before": None}
    # Past every id, however far: the same as the first page.
    for huge in ("9223372036854775808", "9" * 5000, "0" * 4999 + "1" + "0" * 30):
        assert [c["id"] for c in (await listing(empty_client, f"?before={huge}"))["chats"]] == ids[::-1]
    assert await listing(empty_client, f"?before={ids[0]}") == {"chats": [], "next_before": None}


async def test_head_answers_like_get(client: Client) -> None:
    response = await client.head("/chats/?limit=3")
    assert response.status == 200 and response.content_type == "application/json"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=-1", "limit"),
        ("?limit=abc", "limit"),
        ("?limit=", "limit"),
        ("?limit=1.5", "limit"),
        ("?limit=5&limit=6", "limit"),
        ("?before=-1", "before"),
        ("?before=abc", "before"),
        ("?before=", "before"),
        ("?before=1e3", "before"),
        ("?before=%D9%A3", "before"),  # an Arabic-Indic digit
        ("?before=1&before=2", "before"),
    ],
)
async def test_bad_limit_or_cursor_is_422_naming_it(client: Client, query: str, field: str) -> None:
    body = await problem(await client.get(f"/chats/{query}"), 422)
    assert error_locations(body) == [["query", field]]
