"""Deleting a huge chat while others send: does it finish, and what does it cost the others?

    python bench/huge_delete.py [--messages 10000000] [--duration 10] [--connections 32] [--rate N]

Starts its own embedded PostgreSQL (durable, as in production) and `chatsvc
serve` with the default CHATSVC_STATEMENT_TIMEOUT (10 s), fills one chat with
--messages messages through SQL (as bench/run.py's prefill does) beside 100
small chats, then measures post_message to the small chats with wrk: before,
while `DELETE /chats/{huge}` runs (one statement: the cascade), and after.
Prints the delete's status and seconds, and the sends' requests/s and p99 in
each window (as many windows of --duration seconds as the delete outlasts).
wrk sends as fast as the service answers, so a delete that takes one of the
machine's cores halves their rate and doubles their latency whatever else
happens; --rate N sends N a second instead, each on schedule whether or not
the ones before were answered (open loop: latency counted from the moment a
send was due), as a service with room to spare sees its load. Run by hand,
never by tests.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import psycopg
import run as bench

from chatsvc import migrate
from chatsvc.embedded import EmbeddedPostgres

CHUNK = 1_000_000  # messages per prefill statement


def prefill(url: str, messages: int) -> tuple[list[int], int]:
    """100 small chats of 100 messages, and the huge one: (small chat ids, huge chat id)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # no triggers: nobody listens yet
        raw = psycopg.RawCursor(conn)
        small = sorted(
            row[0]
            for row in conn.execute(
                "INSERT INTO chats (title) SELECT 'small ' || n FROM generate_series(1, 100) AS n RETURNING id"
            ).fetchall()
        )
        raw.execute(bench.FILL_CHATS, (small, 100, "small message ", None))
        (huge,) = conn.execute("INSERT INTO chats (title) VALUES ('huge') RETURNING id").fetchone() or (0,)
        started = time.monotonic()
        for done in range(0, messages, CHUNK):
            raw.execute(
                bench.FILL_CHATS, ([huge], min(CHUNK, messages - done), "a message of the huge chat ", None)
            )
            print(f"  {done + min(CHUNK, messages - done):,} messages ({time.monotonic() - started:.0f} s)",
                  file=sys.stderr)  # fmt: skip
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
    return small, huge


def sends(binary: str, base: str, small: list[int], args: argparse.Namespace) -> dict[str, Any]:
    if args.rate:
        return asyncio.run(steady_sends(base, small, args.rate, args.duration))
    return bench.wrk(binary, base, "post_message", {"CHATS_FIRST": small[0], "CHATS_LAST": small[-1]}, args,
                     bench.SERVER_KEY)  # fmt: skip


async def steady_sends(base: str, small: list[int], rate: int, duration: int) -> dict[str, Any]:
    """rate sends a second for duration seconds, each timed from when it was due."""
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers=bench.SERVER, connector=connector) as session:

        async def send(due: float) -> None:
            nonlocal errors
            try:
                async with session.post(
                    f"{base}/chats/{random.choice(small)}/messages/", json={"text": "a steady send"}
                ) as response:
                    await response.read()
                    errors += response.status != 201
            except aiohttp.ClientError:
                errors += 1
            latencies.append((loop.time() - due) * 1000)

        in_flight = []
        for n in range(rate * duration):
            due = start + n / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            in_flight.append(asyncio.create_task(send(due)))
        await asyncio.gather(*in_flight)
    latencies.sort()
    return {
        "rps": len(latencies) / duration,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per window of sends")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--rate", type=int, default=0, help="sends a second, open loop (default: wrk, closed loop)"
    )
    parser.add_argument(
        "--wal", action="store_true", help="wal_compression on and max_wal_size 8GB (an operator's tuning)"
    )
    parser.add_argument(
        "--shared-buffers", help="e.g. 2GB (PostgreSQL's default is 128MB); restarts the server"
    )
    args = parser.parse_args()
    binary = bench.ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="chatsvc-huge-") as tmp, EmbeddedPostgres(Path(tmp) / "pg") as pg:
        url = pg.url()
        migrate.apply(url)
        if args.wal:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ALTER SYSTEM SET wal_compression = on")
                conn.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
                conn.execute("SELECT pg_reload_conf()")
        if args.shared_buffers:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"ALTER SYSTEM SET shared_buffers = '{args.shared_buffers}'")
            pg.stop()
            pg.start()
        print(f"prefilling a chat of {args.messages:,} messages ...", file=sys.stderr)
        small, huge = prefill(url, args.messages)
        port = bench.free_port()
        base = f"http://127.0.0.1:{port}"
        with bench.process(
            [sys.executable, "-m", "chatsvc", "serve", "--port", str(port)], bench.service_env(url), port
        ):
            print("sends, before ...", file=sys.stderr)
            before = sends(binary, base, small, args)
            outcome: dict[str, Any] = {}

            def delete() -> None:
                request = urllib.request.Request(
                    f"{base}/chats/{huge}", method="DELETE", headers=bench.SERVER
                )
                started = time.monotonic()
                try:
                    with urllib.request.urlopen(request, timeout=7200) as response:
                        outcome["status"] = response.status
                except urllib.error.HTTPError as error:
                    outcome["status"] = error.code
                outcome["seconds"] = time.monotonic() - started

            deleting = threading.Thread(target=delete)
            deleting.start()
            time.sleep(0.5)  # the delete is under way
            # Windows of sends while it runs; those it outlasted are the ones reported.
            windows: list[dict[str, Any]] = []
            while deleting.is_alive():
                print("sends, while the huge chat is deleted ...", file=sys.stderr)
                result = sends(binary, base, small, args)
                if deleting.is_alive():
                    windows.append(result)
            deleting.join()
            print("sends, after ...", file=sys.stderr)
            after = sends(binary, base, small, args)
        with psycopg.connect(url) as conn:
            (left,) = conn.execute(
                "SELECT count(*) FROM messages WHERE chat_id = %s", (huge,)
            ).fetchone() or (0,)
    print(f"\ndelete of {args.messages:,} messages: {outcome.get('status')} in {outcome.get('seconds', 0):.1f} s,"
          f" {left} messages left; {len(windows)} window(s) of {args.duration} s of sends ran wholly during it")  # fmt: skip
    print(f"{'sends':<10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    named = [("before", before), *((f"during {n + 1}", w) for n, w in enumerate(windows)), ("after", after)]
    for name, result in named:
        print(
            f"{name:<10}{result['rps']:>10.0f}{result['p50_ms']:>10.1f}{result['p99_ms']:>10.1f}{result['errors']:>8}"
        )
    baseline = (before["p99_ms"] + after["p99_ms"]) / 2
    if windows:
        worst = max(window["p99_ms"] for window in windows)
        print(f"worst p99 during / p99 before and after: {worst / baseline:.2f}")


if __name__ == "__main__":
    main()
