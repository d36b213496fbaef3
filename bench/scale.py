"""The scaling guide's numbers: one process, `--workers 2`, and one process behind PgBouncer.

    python bench/scale.py [--rounds 3] [--duration 5] [--connections 32]

One embedded PostgreSQL (durable), bench/run.py's prefill (what get_chat and
post_message read), then in each round, taking turns: `chatsvc serve`
directly; `chatsvc serve --workers 2`; and `chatsvc serve` with its pool
through Debian's PgBouncer 1.18 in transaction mode (tests/pgbouncer.py:
CHATSVC_STATEMENT_CACHE_SIZE=0, the listener direct, the session settings
set by connect_query), each measured with wrk on get_chat and post_message.
Prints medians of requests/s and p99, and each against the single process.
Needs the test extras (it borrows tests/pgbouncer.py). Run by hand, never by tests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import run as bench

from chatsvc import migrate
from chatsvc.embedded import EmbeddedPostgres
from tests.conftest import pooler_connect_query
from tests.pgbouncer import PgBouncer

SCENARIOS = ("get_chat", "post_message")
SETUPS = ("one process", "--workers 2", "PgBouncer (transaction)")


@contextmanager
def serving(setup: str, url: str, bouncer: PgBouncer) -> Iterator[str]:
    port = bench.free_port()
    command = [sys.executable, "-m", "chatsvc", "serve", "--port", str(port)]
    env = bench.service_env(url)
    if setup == "--workers 2":
        command += ["--workers", "2"]
    if setup.startswith("PgBouncer"):
        env |= {
            "DATABASE_URL": bouncer.url(urlsplit(url).path.lstrip("/")),
            "CHATSVC_EVENTS_DATABASE_URL": url,
            "CHATSVC_MIGRATIONS_DATABASE_URL": url,
            "CHATSVC_STATEMENT_CACHE_SIZE": "0",
        }
    with bench.process(command, env, port):
        yield f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    binary = bench.ensure_wrk()
    rps: dict[str, dict[str, list[float]]] = {s: {c: [] for c in SCENARIOS} for s in SETUPS}
    p99: dict[str, dict[str, list[float]]] = {s: {c: [] for c in SCENARIOS} for s in SETUPS}
    with (
        tempfile.TemporaryDirectory(prefix="chatsvc-scale-") as tmp,
        EmbeddedPostgres(Path(tmp) / "pg") as pg,
    ):
        url = pg.url()
        migrate.apply(url)
        data = bench.prefill(url, 0, args.duration, extras=False).data
        (Path(tmp) / "bouncer").mkdir()
        with PgBouncer(
            pg.url("postgres"), Path(tmp) / "bouncer", connect_query=pooler_connect_query()
        ) as bouncer:
            for round_number in range(args.rounds):
                order = SETUPS[round_number % len(SETUPS) :] + SETUPS[: round_number % len(SETUPS)]
                for setup in order:
                    with serving(setup, url, bouncer) as base:
                        for scenario in SCENARIOS:
                            result = bench.wrk(binary, base, scenario, data, args)
                            rps[setup][scenario].append(result["rps"])
                            p99[setup][scenario].append(result["p99_ms"])
                    print(f"round {round_number + 1}, {setup}: "
                          f"{ {c: round(v[-1]) for c, v in rps[setup].items()} }", file=sys.stderr)  # fmt: skip
    print(f"\n{'setup':<26}" + "".join(f"{c + ' req/s':>20}{'p99 ms':>9}{'ratio':>7}" for c in SCENARIOS))
    for setup in SETUPS:
        cells = ""
        for scenario in SCENARIOS:
            ours, single = (
                statistics.median(rps[setup][scenario]),
                statistics.median(rps[SETUPS[0]][scenario]),
            )
            cells += f"{ours:>20.0f}{statistics.median(p99[setup][scenario]):>9.1f}{ours / single:>7.2f}"
        print(f"{setup:<26}{cells}")


if __name__ == "__main__":
    main()
