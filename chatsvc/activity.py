"""Keeps members' copies of their chats' activity current (migrations/0008).

A send marks its chat unlisted instead of writing a row per member; every
serving process runs flush() every ACTIVITY_FLUSH_INTERVAL (chatsvc/app.py),
and one of them at a time copies the unlisted chats' activity to their
members. Until then a user's listing by activity reads those chats from chats
itself, so it is exact either way: the interval only bounds how many chats a
listing reads beyond its page.
"""

from __future__ import annotations

from chatsvc import queries
from chatsvc.db import Pool

# Seconds between two flushes of a process, and chats listed per statement:
# one statement's member rows stay locked until it commits (a 1,000-member
# chat's mark_read waits for one statement of at most this many chats).
ACTIVITY_FLUSH_INTERVAL = 0.5
FLUSH_BATCH = 200


async def flush(db: Pool, batch_size: int = FLUSH_BATCH) -> int:
    """Lists every chat unlisted now, batch_size at a time; how many were listed.

    0 while another process is flushing (it holds the lock, and lists them).
    """
    listed = 0
    while True:
        done = await queries.flush_activity(db, batch_size)
        listed += done
        if done < batch_size:
            return listed
