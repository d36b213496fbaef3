"""Keeps members' copies of their chats' activity current (migrations/0008).

A chat is created listed (sql/chats/create_chat.sql copies its activity into
its member rows). A send marks its chat unlisted instead of writing a row per
member; every serving process runs flush() every ACTIVITY_FLUSH_INTERVAL
(chatsvc/app.py), and one of them at a time copies the activity of the unlisted chats to their
members, but for the KEPT_UNLISTED most recently active: those are being
written to, and their next send would undo the copy. A user's listing by
activity reads the unlisted chats from chats itself, so it is exact either
way: the unlisted chats (at most KEPT_UNLISTED, plus those written to since
the last flush) are what a listing reads beyond its page.
"""

from __future__ import annotations

from chatsvc import queries
from chatsvc.db import Pool

ACTIVITY_FLUSH_INTERVAL = 0.5  # seconds between two flushes of a process
# The most recently active unlisted chats a flush leaves unlisted: a listing
# probes each (one index entry and one membership lookup), a flush saves a row
# write per member each time one of them is written to again.
KEPT_UNLISTED = 100
# Chats listed per statement: one statement's member rows stay locked until it
# commits (a member's mark_read waits for one statement of at most this many),
# and sends behind it wait for its writes. Sends spread over 100,000 chats of
# 32 members each (bench/large.py's data set, sends at random, the flush
# copying to 32 member rows per send): 1,505-1,580 sends/s with a p99 of
# 55-60 ms at 10 per statement, 1,175-1,478 and 118-349 ms at 25, 273-987
# and 414-1,785 ms at 200 (5 s each, two rounds of each size in turn).
FLUSH_BATCH = 10


async def flush(db: Pool, kept: int = KEPT_UNLISTED, batch_size: int = FLUSH_BATCH) -> int:
    """Lists every chat unlisted now but the kept most recently active, batch_size at a
    time; how many were listed. 0 while another process is flushing (it holds the lock)."""
    listed = 0
    while True:
        done = await queries.flush_activity(db, batch_size, kept)
        listed += done
        if done < batch_size:
            return listed
