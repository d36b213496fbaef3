"""The read and send scenarios on a large data set against the small one, in one run.

    python bench/large.py [--rounds 3] [--duration 5] [--connections 32]

One embedded PostgreSQL (durable, as in production) holds two databases,
each migrated and prefilled by bench/run.py's prefill: small, what
bench/run.py measures, and large, the same plus LARGE_CHATS chats of
LARGE_MESSAGES messages each (10,000,000 messages, sent after the others, so
the newest), with every bench user a member of each. A `chatsvc serve` per
database; each round measures every scenario on both, small then large, then
large then small in the next round. On the large database, get_chat,
post_message and history go to random chats among the LARGE_CHATS; on the
small one among bench/run.py's CHATS. The listings and searches are the same
users' in both: only the data around them grows. Prints each scenario's
req/s and p99 on both and the median of the rounds' large / small ratios.
The prefill takes several minutes (the search index is built once, after
the large one's messages are in). Run by hand, never by tests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
import run as bench

from chatsvc import migrate
from chatsvc.embedded import EmbeddedPostgres

LARGE_CHATS = 100_000
LARGE_MESSAGES = 100  # per chat
FILL_BATCH = 1_000  # chats per statement: 100,000 messages
SCENARIOS = ("get_chat", "history", "post_message", "list_chats_unread_1m", "list_chats_by_activity",
             "search_rare_user", "search_common_user", "search_rare_server", "search_common_server")  # fmt: skip
SEARCH_INDEX = "messages_search"  # migrations/0009: built after the fill, not row by row


def grow(url: str) -> dict[str, int]:
    """Adds the large data set to a prefilled database; scenarios.lua's range of its chats."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # no triggers: no NOTIFY, no FK checks
        raw = psycopg.RawCursor(conn)
        (definition,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (SEARCH_INDEX,)
        ).fetchone() or ("",)
        conn.execute(f"DROP INDEX {SEARCH_INDEX}")
        chats = sorted(
            row[0]
            for row in conn.execute(
                "INSERT INTO chats (title) SELECT 'large ' || n FROM generate_series(1, %s) AS n RETURNING id",
                (LARGE_CHATS,),
            ).fetchall()
        )
        for start in range(0, LARGE_CHATS, FILL_BATCH):
            raw.execute(
                bench.FILL_CHATS, (chats[start : start + FILL_BATCH], LARGE_MESSAGES, "message ", None)
            )
        conn.execute(
            "INSERT INTO chat_members (chat_id, user_id)"
            " SELECT c, 'bench-' || n FROM unnest(%s::bigint[]) AS c, generate_series(0, %s) AS n",
            (chats, bench.BENCH_USERS - 1),
        )
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(definition)
        bench.settle(conn)
    return {"CHATS_FIRST": chats[0], "CHATS_LAST": chats[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    binary = bench.ensure_wrk()
    sizes = ("small", "large")
    measured: dict[str, dict[str, list[dict[str, Any]]]] = {n: {s: [] for s in SCENARIOS} for n in sizes}
    with (
        tempfile.TemporaryDirectory(prefix="chatsvc-large-") as tmp,
        EmbeddedPostgres(Path(tmp) / "pg") as pg,
    ):
        urls = {"small": pg.url(), "large": pg.url("chatsvc_large")}
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute('CREATE DATABASE "chatsvc_large"')
        data: dict[str, dict[str, int | str]] = {}
        for name in sizes:
            migrate.apply(urls[name])
            started = time.monotonic()
            data[name] = bench.prefill(urls[name], 1, args.duration).data
            print(f"{name}: prefilled in {time.monotonic() - started:.0f} s", file=sys.stderr)
        started = time.monotonic()
        data["large"].update(grow(urls["large"]))
        print(f"large: grown in {time.monotonic() - started:.0f} s", file=sys.stderr)
        bases = {}
        with ExitStack() as running:
            for name in sizes:
                port = bench.free_port()
                command = [sys.executable, "-m", "chatsvc", "serve", "--port", str(port)]
                running.enter_context(bench.process(command, bench.service_env(urls[name]), port))
                bases[name] = f"http://127.0.0.1:{port}"
            for round_number in range(args.rounds):
                order = sizes if round_number % 2 == 0 else sizes[::-1]
                for scenario in SCENARIOS:
                    for name in order:
                        script, scenario_data, tokens = bench.scenario(scenario, data[name])
                        result = bench.wrk(binary, bases[name], script, scenario_data, args, tokens)
                        measured[name][scenario].append(result)
                    print(f"round {round_number + 1}, {scenario}: "
                          f"{ {n: round(measured[n][scenario][-1]['rps']) for n in sizes} }", file=sys.stderr)  # fmt: skip
    print(f"\n{'req/s':<24}{'small':>9}{'large':>9}{'large/small':>13}   p99 ms (small | large), each round")
    for scenario in SCENARIOS:
        small, large = (measured[n][scenario] for n in sizes)
        ratio = statistics.median(b["rps"] / a["rps"] for a, b in zip(small, large, strict=True))
        tails = " ".join(f"{a['p99_ms']:.1f}|{b['p99_ms']:.1f}" for a, b in zip(small, large, strict=True))
        print(f"{scenario:<24}{statistics.median(r['rps'] for r in small):>9.0f}"
              f"{statistics.median(r['rps'] for r in large):>9.0f}{ratio:>13.2f}   {tails}")  # fmt: skip
    errors = {n: sum(r["errors"] for s in SCENARIOS for r in measured[n][s]) for n in sizes}
    print(f"errors: {errors}")
    if any(errors.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
