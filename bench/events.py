"""Sends to chats that are followed live, two checkouts back to back: what the events path costs.

    python bench/events.py BEFORE AFTER [--rounds 4] [--duration 5] [--connections 32] [--chats 100] [--keyed]

Each round serves each tree as two `chatsvc serve` processes (two events
listeners, as two hosts or `--workers 2` have), on one embedded PostgreSQL
(durable, as in production), each tree on its own database migrated by its
own `chatsvc migrate`. Against each, on fresh chats: sends with nobody
following (unwatched), then the same with every chat followed by one stream
on each process (watched); wrk drives half the connections at each process.
With --keyed every send has an Idempotency-Key of its own, so each is a
transaction of its own (unkeyed sends that arrive together share one).
Every stream must receive every message of its chat, in order, once:
anything else is printed and the script exits 1. Prints sends/s and p99 per
round and their medians. Run by hand, never by tests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
import run as bench
from compare import in_turn, migrated_databases

from chatsvc.embedded import EmbeddedPostgres

KINDS = ("unwatched", "watched")


def new_chats(url: str, count: int) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "INSERT INTO chats (title) SELECT 'followed ' || n FROM generate_series(1, %s) AS n RETURNING id",
            (count,),
        ).fetchall()
    return sorted(row[0] for row in rows)


def sends(binary: str, bases: list[str], chats: list[int], args: argparse.Namespace) -> dict[str, float]:
    """post_message at every base at once, the connections split between them."""
    scenario = "post_message_keyed" if args.keyed else "post_message"
    split = argparse.Namespace(**{**vars(args), "connections": args.connections // len(bases)})

    def drive(base: str) -> dict[str, Any]:
        data: dict[str, int | str] = {"CHATS_FIRST": chats[0], "CHATS_LAST": chats[-1], "KEY_PREFIX": base}
        return bench.wrk(binary, base, scenario, data, split, bench.SERVER_KEY)

    with ThreadPoolExecutor(len(bases)) as pool:
        results = list(pool.map(drive, bases))
    return {
        "rps": sum(result["rps"] for result in results),
        "p99_ms": max(result["p99_ms"] for result in results),
        "errors": sum(result["errors"] for result in results),
    }


async def followed(
    binary: str, bases: list[str], chats: list[int], args: argparse.Namespace, url: str
) -> tuple[dict[str, float], list[str]]:
    """Sends while every chat has a stream on every base; what any stream missed or misordered."""
    loop = asyncio.get_running_loop()
    streams: dict[tuple[int, str], bench._TimedStream] = {}
    transports = []
    for chat_id in chats:
        for base in bases:
            port = int(base.rsplit(":", 1)[1])
            transport, stream = await loop.create_connection(bench._TimedStream, "127.0.0.1", port)
            transport.write(
                f"GET /chats/{chat_id}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {bench.SERVER_KEY}\r\n\r\n".encode()
            )
            transports.append(transport)
            streams[chat_id, base] = stream
    await asyncio.sleep(1.0)  # every stream subscribed
    measured = await asyncio.to_thread(sends, binary, bases, chats, args)
    await asyncio.sleep(2.0)  # the last deliveries
    for transport in transports:
        transport.close()
    with psycopg.connect(url) as conn:
        stored: dict[int, list[int]] = dict(
            conn.execute(
                "SELECT chat_id, array_agg(id ORDER BY id) FROM messages WHERE chat_id = ANY(%s) GROUP BY chat_id",
                (chats,),
            ).fetchall()
        )
    problems = []
    for (chat_id, base), stream in streams.items():
        received = [message_id for message_id, _ in stream.arrivals()]
        if received != stored.get(chat_id, []):
            problems.append(
                f"chat {chat_id} on {base}: received {len(received)} of {len(stored.get(chat_id, []))}"
                f"{'' if received == sorted(set(received)) else ', out of order or twice'}"
            )
    return measured, problems


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32, help="in all, split between the two processes")
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--keyed", action="store_true", help="every send with an Idempotency-Key of its own")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    binary = bench.ensure_wrk()
    measured: dict[str, dict[str, list[dict[str, float]]]] = {n: {k: [] for k in KINDS} for n in trees}
    problems: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="chatsvc-events-") as tmp,
        EmbeddedPostgres(Path(tmp) / "pg") as pg,
    ):
        urls = migrated_databases(pg, trees)
        for round_number in range(args.rounds):
            for name, tree in in_turn(trees, round_number):
                env = {**bench.service_env(urls[name]), "PYTHONPATH": str(tree)}
                ports = [bench.free_port(), bench.free_port()]
                with ExitStack() as running:
                    for port in ports:
                        command = [sys.executable, "-m", "chatsvc", "serve", "--port", str(port)]
                        running.enter_context(bench.process(command, env, port, cwd=tree))
                    bases = [f"http://127.0.0.1:{port}" for port in ports]
                    result = sends(binary, bases, new_chats(urls[name], args.chats), args)
                    measured[name]["unwatched"].append(result)
                    watched, missed = asyncio.run(
                        followed(binary, bases, new_chats(urls[name], args.chats), args, urls[name])
                    )
                    measured[name]["watched"].append(watched)
                    problems += [f"{name}, round {round_number + 1}: {line}" for line in missed]
                print(f"round {round_number + 1}, {name}: "
                      f"{ {k: round(v[-1]['rps']) for k, v in measured[name].items()} }", file=sys.stderr)  # fmt: skip
                time.sleep(1)
    print(f"\n{'sends/s':<12}{'before':>10}{'after':>10}{'after/before':>14}   p99 ms (before | after)")
    for kind in KINDS:
        before, after = (statistics.median(r["rps"] for r in measured[n][kind]) for n in trees)
        tails = " ".join(
            f"{b['p99_ms']:.1f}|{a['p99_ms']:.1f}"
            for b, a in zip(*(measured[n][kind] for n in trees), strict=True)
        )
        print(f"{kind:<12}{before:>10.0f}{after:>10.0f}{after / before:>14.2f}   {tails}")
    errors: dict[str, Any] = {n: sum(r["errors"] for k in KINDS for r in measured[n][k]) for n in trees}
    print(f"errors: {errors}")
    for line in problems:
        print(f"delivery: {line}")
    if problems or any(errors.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
