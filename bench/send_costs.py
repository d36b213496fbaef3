"""What a batch of sends costs PostgreSQL, and what each part of the schema adds to it.

    python bench/send_costs.py [--batch 16] [--statements 60] [--rounds 12]

Runs sql/messages/create_messages.sql, the statement of a batch of sends, as
the service does (prepared, each its own transaction, committed with the WAL
flush), --statements times per variant, on an embedded PostgreSQL (durable
settings) with the migrations applied and CHATS chats of one member each,
who sends every message. Each variant first takes one part of the schema
away (an index, a trigger), then puts it back: what the statement then saves
is what that part costs a send. The variants take turns, --rounds times, each
round starting one later, so that drift in a shared, noisy machine lands on
each alike; it prints each round's
median statement time per variant and their medians. Run by hand, never by
tests: the schema it changes is its own temporary database's.

Measured once it showed where a send's time in PostgreSQL goes (README,
Benchmark: sends): the batch's statement, not the service's Python, is what
bounds post_message.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import asyncpg

from chatsvc import migrate
from chatsvc.embedded import EmbeddedPostgres
from chatsvc.permissions import Action, roles_allowed
from chatsvc.sql import STATEMENTS

CHATS = 32
WARM_UP = 500  # statements before any is timed: caches, statistics, a table that is not empty
SENDER = "bench-sender"
TEXT = "a benchmark message of ordinary length, about sixty bytes"  # as scenarios.lua's sends
# Each variant: statements that take a part away, and (for an index) the part's name,
# whose definition is read from the catalog to put it back.
VARIANTS: dict[str, list[str]] = {
    "everything": [],
    "without the search index (GIN)": ["DROP INDEX messages_search"],
    "without the author index": ["DROP INDEX messages_chat_id_author_id"],
    "without chats' activity indexes": ["DROP INDEX chats_activity_id", "DROP INDEX chats_unlisted"],
    "without the NOTIFY trigger": ["ALTER TABLE messages DISABLE TRIGGER messages_notify_created"],
    "without any trigger (FK check too)": ["ALTER TABLE messages DISABLE TRIGGER ALL"],
}


def undo(statement: str, definitions: dict[str, str]) -> str:
    """What puts back what statement took away."""
    if statement.startswith("DROP INDEX "):
        return definitions[statement.removeprefix("DROP INDEX ")]
    return statement.replace(" DISABLE ", " ENABLE ")


async def measure(url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    conn = await asyncpg.connect(url)
    try:
        chats = [
            row["id"]
            for row in await conn.fetch(
                "INSERT INTO chats (title) SELECT 'sends ' || n FROM generate_series(1, $1) AS n RETURNING id",
                CHATS,
            )
        ]
        await conn.execute(
            "INSERT INTO chat_members (chat_id, user_id) SELECT unnest($1::bigint[]), $2", chats, SENDER
        )
        definitions = {
            row["indexname"]: row["indexdef"] for row in await conn.fetch("SELECT * FROM pg_indexes")
        }
        batch: int = args.batch
        rest = ([TEXT] * batch, [None] * batch, [SENDER] * batch, roles_allowed(Action.SEND),
                timedelta(microseconds=1), 10**9)  # fmt: skip
        warm_up = await conn.prepare(STATEMENTS["create_messages"].text)
        for n in range(WARM_UP):
            await warm_up.fetch([chats[(n * batch + k * 7) % CHATS] for k in range(batch)], *rest)
        medians: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for round_number in range(args.rounds):
            order = list(VARIANTS.items())
            shift = round_number % len(order)  # each round starts one variant later
            for name, changes in order[shift:] + order[:shift]:
                for change in changes:
                    await conn.execute(change)
                try:
                    # Each variant starts from chats without dead row versions: every send
                    # writes a new version of its chat's row, which the last variant left.
                    await conn.execute("VACUUM chats")
                    statement = await conn.prepare(STATEMENTS["create_messages"].text)
                    times = []
                    for n in range(args.statements):
                        chat_ids = [chats[(n * batch + k * 7) % CHATS] for k in range(batch)]
                        started = time.perf_counter()
                        await statement.fetch(chat_ids, *rest)
                        times.append((time.perf_counter() - started) * 1000)
                finally:
                    for change in changes:
                        await conn.execute(undo(change, definitions))
                medians[name].append(statistics.median(times))
            print(
                f"round {round_number + 1}: { {k: round(v[-1], 2) for k, v in medians.items()} }",
                file=sys.stderr,
            )
        return medians
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=16, help="sends per statement")
    parser.add_argument("--statements", type=int, default=60, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="chatsvc-send-costs-") as tmp,
        EmbeddedPostgres(Path(tmp) / "pg") as pg,
    ):
        url = pg.url()
        migrate.apply(url)
        medians = asyncio.run(measure(url, args))
    everything = statistics.median(medians["everything"])
    print(
        f"\nbatches of {args.batch} sends, median statement time (commit included), medians of {args.rounds} rounds"
    )
    print(f"{'variant':<38}{'ms':>8}{'/ everything':>14}{'us a send saved':>18}")
    for name, values in medians.items():
        median = statistics.median(values)
        saved = (everything - median) * 1000 / args.batch
        print(f"{name:<38}{median:>8.2f}{median / everything:>14.2f}{saved:>18.0f}")


if __name__ == "__main__":
    main()
