"""Property-based: any title or text, through the real API, SQL and PostgreSQL.

The oracle is the contract's rule, written here on its own: after trimming
surrounding whitespace (what Python's str.strip() removes), 1 to 200 (title)
or 5000 (text) code points, and no NUL. What it accepts must come back exactly
as trimmed, code point for code point; what it rejects must be 422 and store
nothing.
"""

from __future__ import annotations

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api import create_chat, problem
from tests.conftest import Client

# Only what valid UTF-8 JSON can carry: a lone surrogate is invalid JSON, 400,
# pinned in tests/test_hostile.py. Mostly the edges: whitespace of every kind, NUL, astral and combining
# characters, right-to-left marks, and lengths around the limits.
EDGES = st.sampled_from(
    [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\xa0", "\u2028", "\u3000", "\ufeff",
     "\x00", "\u200b", "\u202e", "😀", "\u0301", "'", '"', "\\", "%", "-", ";", "\U0010ffff"]
)  # fmt: skip
ANY_TEXT = st.one_of(
    st.text(min_size=0, max_size=30),
    st.text(st.one_of(EDGES, st.characters(codec="utf-8")), min_size=0, max_size=40),
    st.builds(
        lambda pad, core: pad + core + pad, st.text(EDGES, max_size=3), st.text(min_size=190, max_size=210)
    ),
)
LONG_TEXT = st.builds(
    lambda pad, core: pad + core + pad, st.text(EDGES, max_size=3), st.text(min_size=4990, max_size=5010)
)

EXAMPLES = settings(
    max_examples=150,
    deadline=None,  # each example is real HTTP and SQL; time is not the property
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one app serves every example
)


def accepted(value: str, longest: int) -> str | None:
    """The contract's rule: what is stored, or None for a 422."""
    trimmed = value.strip()
    if not 1 <= len(trimmed) <= longest or "\x00" in trimmed:
        return None
    return trimmed


async def count(db: asyncpg.Connection, table: str) -> int:
    total: int = await db.fetchval(f"SELECT count(*) FROM {table}")  # a fixed table name from the test
    return total


@EXAMPLES
@given(title=ANY_TEXT)
async def test_any_title_is_stored_exactly_as_trimmed_or_is_422(
    client: Client, db: asyncpg.Connection, title: str
) -> None:
    expected = accepted(title, 200)
    before = await count(db, "chats")
    response = await client.post("/chats/", json={"title": title})
    if expected is None:
        await problem(response, 422)
        assert await count(db, "chats") == before
        return
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["title"] == expected
    read = await (await client.get(f"/chats/{created['id']}")).json()
    assert read["title"] == expected
    assert await db.fetchval("SELECT title FROM chats WHERE id = $1", created["id"]) == expected


@EXAMPLES
@given(text=st.one_of(ANY_TEXT, LONG_TEXT))
async def test_any_text_is_stored_exactly_as_trimmed_or_is_422(
    client: Client, db: asyncpg.Connection, text: str
) -> None:
    chat = await create_chat(client)
    expected = accepted(text, 5000)
    response = await client.post(f"/chats/{chat['id']}/messages/", json={"text": text})
    if expected is None:
        await problem(response, 422)
        assert await db.fetchval("SELECT count(*) FROM messages WHERE chat_id = $1", chat["id"]) == 0
        return
    assert response.status == 201, await response.text()
    sent = await response.json()
    assert sent["text"] == expected
    page = await (await client.get(f"/chats/{chat['id']}?limit=1")).json()
    assert page["messages"][0]["text"] == expected
    single = await (await client.get(f"/chats/{chat['id']}/messages/{sent['id']}")).json()
    assert single["text"] == expected
