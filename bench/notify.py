"""The database's own ceiling for sends to followed chats: pgbench against NOTIFY's lock.

    python bench/notify.py [--duration 10] [--clients 32] [--listeners 2] [--chats 100]

Starts its own embedded PostgreSQL (durable, as in production) and runs the
service's single-send statement (sql/messages/create_message.sql, as pgbench
prepared statements, one send per transaction, followed by
sql/events/flush_commits.sql when it says so, as the service runs it) into
--chats chats: first with
nobody following them, then with --listeners LISTEN sessions registered for
every chat, as the service's events listeners register (each draining its
notifications and counting them), then unfollowed again. Prints sends per
second for each and what the listeners received. Every notifying commit
holds PostgreSQL's notify lock until its commit record is flushed, which is
why a send to a followed chat commits without waiting for the flush and is
flushed after. Run it from an older checkout (PYTHONPATH=that checkout) for
the numbers before. Run by hand, never by tests.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg
import psycopg

from chatsvc import migrate
from chatsvc.embedded import EmbeddedPostgres, bin_dir
from chatsvc.live.notifications import CHANNEL
from chatsvc.sql import STATEMENTS


def pgbench(url: str, chats: list[int], args: argparse.Namespace, work: Path) -> float:
    text = (
        STATEMENTS["create_message"]
        .text.replace("$1", ":chat_id")
        .replace("$2", "'a benchmark message of ordinary length, about sixty bytes'")
        .replace("$3", "NULL")
        .replace("$4", "NULL")
        .replace("$5", "ARRAY['owner', 'member']")
    )
    script = work / "send.pgbench"
    # As the service runs a send: the flush (sql/events/flush_commits.sql) after
    # one whose commit did not wait for it.
    script.write_text(
        f"\\set chat_id random({chats[0]}, {chats[-1]})\n{text.rstrip().rstrip(';')}\n\\gset\n"
        f"\\if :unflushed\n{STATEMENTS['flush_commits'].text}\n\\endif\n"
    )
    host = parse_qs(urlsplit(url).query)["host"][0]
    result = subprocess.run(
        [str(bin_dir() / "pgbench"), "-n", "-M", "prepared", f"-c{args.clients}", "-j2", f"-T{args.duration}",
         "-f", str(script), "-h", host, "-U", "postgres", "chatsvc"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return next(
        float(line.split("=")[1].split()[0]) for line in result.stdout.splitlines() if line.startswith("tps")
    )


async def followed(
    url: str, chats: list[int], args: argparse.Namespace, work: Path
) -> tuple[float, list[int]]:
    """pgbench while args.listeners sessions follow every chat; what each received."""
    received = [0] * args.listeners
    listeners = []
    for n in range(args.listeners):
        conn = await asyncpg.connect(url, server_settings={"application_name": "chatsvc-events"})

        def count(_conn: object, _pid: int, _channel: str, _payload: str, n: int = n) -> None:
            received[n] += 1

        await conn.add_listener(CHANNEL, count)
        await conn.execute(
            "INSERT INTO chat_listeners (chat_id, listener_pid) SELECT id, pg_backend_pid()"
            " FROM unnest($1::bigint[]) AS id",
            chats,
        )
        listeners.append(conn)
    tps = await asyncio.to_thread(pgbench, url, chats, args, work)
    await asyncio.sleep(1)  # the last notifications
    for conn in listeners:
        await conn.close()  # its registrations go with it (forget_gone_listeners), and are not needed again
    return tps, received


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--listeners", type=int, default=2)
    parser.add_argument("--chats", type=int, default=100)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="chatsvc-notify-") as tmp,
        EmbeddedPostgres(Path(tmp) / "pg") as pg,
    ):
        url = pg.url()
        migrate.apply(url)
        with psycopg.connect(url, autocommit=True) as conn:
            chats = sorted(
                row[0]
                for row in conn.execute(
                    "INSERT INTO chats (title) SELECT 'c' || n FROM generate_series(1, %s) AS n RETURNING id",
                    (args.chats,),
                ).fetchall()
            )
        unfollowed = pgbench(url, chats, args, Path(tmp))
        tps, received = asyncio.run(followed(url, chats, args, Path(tmp)))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM chat_listeners")
        again = pgbench(url, chats, args, Path(tmp))
    print(f"sends/s, nobody following: {unfollowed:.0f} and {again:.0f}")
    print(f"sends/s, {args.listeners} listeners following every chat: {tps:.0f} (received {received})")
    print(f"followed / unfollowed: {2 * tps / (unfollowed + again):.2f}")


if __name__ == "__main__":
    main()
