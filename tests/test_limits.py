"""The per-user write limit (contract v3, Limits): a token bucket per user, in PostgreSQL."""

from __future__ import annotations

import asyncpg
import pytest


@pytest.mark.parametrize("user_id", ["", "a b", "é", "x" * 256, "tab\there"])
async def test_the_table_takes_only_user_ids(db: asyncpg.Connection, user_id: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "INSERT INTO user_write_buckets (user_id, full_at, refused) VALUES ($1, now(), false)", user_id
        )
    await db.execute(  # the longest, and every visible ASCII character
        "INSERT INTO user_write_buckets (user_id, full_at, refused) VALUES ($1, now(), false), ($2, now(), false)"
        " ON CONFLICT DO NOTHING",
        "x" * 255,
        "".join(map(chr, range(0x21, 0x7F))),
    )
