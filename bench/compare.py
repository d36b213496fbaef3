"""Two checkouts of chatsvc back to back: what a change costs, measured in one run.

    python bench/compare.py BEFORE AFTER [--rounds 6] [--duration 5] [--connections 32] [--before-auth off]
                            [--scenarios get_chat,post_message] [--extras]

BEFORE and AFTER are source trees (e.g. `git archive <commit> | tar -x -C
/tmp/before`, and this work tree). Both are served by the same embedded
PostgreSQL, each from its own database migrated by its own tree (`chatsvc
migrate`: a tree from before a migration must not meet its schema), holding
the same data (bench/run.py's prefill, without what only bench/run.py's other
scenarios read; written without seq or counters for a schema from before
migration 0007); each round runs get_chat and
post_message (or --scenarios) with wrk against one, then the other, taking turns on who goes
first, so that drift in a shared, noisy machine lands on both. Prints each
scenario's requests/s, p99 and the serving process's CPU time per request
(from /proc: it moves less than requests/s when the machine's speed drifts)
per round, and their medians. Run by hand, never by tests.

`--before-auth off` serves BEFORE with CHATSVC_AUTH=off: `compare.py . .
--before-auth off` is what checking credentials, membership and the write
limit cost, measured back to back (bench/run.py measures it once per run).

`--extras` prefills what the other scenarios of bench/run.py read too (edits,
deletions, listings, search; both trees need migration 0008), for
`--scenarios edit_message` and the like.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
import run as bench

from chatsvc.embedded import EmbeddedPostgres

SCENARIOS = ("get_chat", "post_message")  # by default; --scenarios: any of scenarios.lua's on that data


def migrated_databases(pg: EmbeddedPostgres, trees: dict[str, Path]) -> dict[str, str]:
    """A database per tree ("before", "after") on pg, each migrated by the tree's own
    `chatsvc migrate` (a tree from before a migration must not meet its schema)."""
    urls = {"before": pg.url("chatsvc_before"), "after": pg.url()}
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        conn.execute('CREATE DATABASE "chatsvc_before"')
    for name, tree in trees.items():
        env = {**bench.service_env(urls[name]), "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, "-m", "chatsvc", "migrate"], env=env, cwd=tree, check=True)
    return urls


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) process pid has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_turn(trees: dict[str, Path], round_number: int) -> list[tuple[str, Path]]:
    """The trees in this round's order: who goes first alternates, so drift lands on both."""
    order = list(trees.items())
    return order if round_number % 2 == 0 else order[::-1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=5, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--before-auth", choices=("on", "off"), default="on")
    parser.add_argument("--scenarios", type=lambda text: tuple(text.split(",")), default=SCENARIOS)
    parser.add_argument("--extras", action="store_true", help="prefill every scenario's data")
    args = parser.parse_args()
    scenarios: tuple[str, ...] = args.scenarios
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    binary = bench.ensure_wrk()
    measured: dict[str, dict[str, list[float]]] = {name: {s: [] for s in scenarios} for name in trees}
    tails: dict[str, dict[str, list[float]]] = {name: {s: [] for s in scenarios} for name in trees}  # p99 ms
    costs: dict[str, dict[str, list[float]]] = {name: {s: [] for s in scenarios} for name in trees}  # CPU us
    with (
        tempfile.TemporaryDirectory(prefix="chatsvc-compare-") as tmp,
        EmbeddedPostgres(Path(tmp) / "pg") as pg,
    ):
        urls = migrated_databases(pg, trees)
        prefilled = {}
        for name in trees:
            print(f"prefilling {name} ...", file=sys.stderr)
            # Per round its own messages to delete (with --extras): each goes once.
            prefilled[name] = bench.prefill(urls[name], args.rounds, args.duration, extras=args.extras)
        for round_number in range(args.rounds):
            for name, tree in in_turn(trees, round_number):
                port = bench.free_port()
                # The tree's own package: first on the path, and the working directory
                # (python -m puts it first) is the tree itself.
                auth = name == "after" or args.before_auth == "on"
                env = {**bench.service_env(urls[name], auth=auth), "PYTHONPATH": str(tree)}
                command = [sys.executable, "-m", "chatsvc", "serve", "--port", str(port)]
                data = dict(prefilled[name].data)
                if prefilled[name].deletions:
                    data["DELETE_TARGETS"] = prefilled[name].deletions[round_number]
                with bench.process(command, env, port, cwd=tree) as served:
                    for scenario in scenarios:
                        used = cpu_seconds(served.pid)
                        result = bench.wrk(binary, f"http://127.0.0.1:{port}", scenario, data, args)
                        used = cpu_seconds(served.pid) - used
                        measured[name][scenario].append(result["rps"])
                        tails[name][scenario].append(result["p99_ms"])
                        costs[name][scenario].append(used / (result["rps"] * args.duration) * 1e6)
                print(f"round {round_number + 1}, {name}: "
                      f"{ {s: round(v[-1]) for s, v in measured[name].items()} }", file=sys.stderr)  # fmt: skip
    for title, values, digits in (("req/s", measured, 0), ("p99 ms", tails, 1), ("CPU us/req", costs, 1)):
        print(f"\n{title:<16}{'before':>10}{'after':>10}{'after/before':>14}   each round (before | after)")
        for scenario in scenarios:
            before, after = (statistics.median(values[name][scenario]) for name in trees)
            rounds = " ".join(
                f"{b:.{digits}f}|{a:.{digits}f}"
                for b, a in zip(*(values[n][scenario] for n in trees), strict=True)
            )
            print(
                f"{scenario:<16}{before:>10.{digits}f}{after:>10.{digits}f}{after / before:>14.2f}   {rounds}"
            )


if __name__ == "__main__":
    main()
