"""What the per-user write limit costs a write, measured back to back in one run.

    python bench/write_limit.py [--before TREE] [--rounds 4] [--duration 5] [--connections 32]

Starts its own embedded PostgreSQL (durable, as in production) and drives
POST /chats/ with wrk as three callers: the server (never charged), users
(each request by one of 1,000 users, as many users writing at once), and one
user (every connection the same user: all charges queue on one row lock).
The limit is set so high (a million per second) that nothing is refused: what
is measured is the charge itself. With --before (a source tree without the
limit, e.g. `git archive e5405a9 | tar -x -C /tmp/before`), the same callers
also go to that tree's service, taking turns with this one. Then pgbench runs
the two statements alone, as prepared statements: sql/limits/take_user_write.sql
and sql/chats/create_chat.sql, at one connection (latency) and at
--connections (throughput). Run by hand, never by tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jwt
import run as bench

from chatsvc import migrate
from chatsvc.embedded import EmbeddedPostgres, bin_dir
from chatsvc.sql import STATEMENTS

HERE = Path(__file__).resolve().parent
THIS_TREE = HERE.parent
SERVER_KEY = "bench-server-key-0123456789abcdefghijklmnopqrstuvwxyz"
JWT_SECRET = "bench-token-secret-0123456789abcdefghijklmnopqrstuvwxyz"
USERS = 1_000
CALLERS = ("server", "users", "one user")


def user_token(user: str) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + 86_400}, JWT_SECRET, algorithm="HS256")


def wrk_script(work: Path, caller: str) -> Path:
    """A wrk script sending POST /chats/ with the caller's credentials, one picked per request."""
    if caller == "server":
        credentials = [SERVER_KEY]
    elif caller == "users":
        credentials = [user_token(f"bench-user-{n}") for n in range(USERS)]
    else:
        credentials = [user_token("bench-one-user")]
    script = work / f"{caller.replace(' ', '_')}.lua"
    table = ",\n".join(f'  "{credential}"' for credential in credentials)
    script.write_text(
        f'dofile("{HERE / "wrk" / "report.lua"}")\n'
        f"local credentials = {{\n{table}\n}}\n"
        "request = function()\n"
        "  local credential = credentials[math.random(1, #credentials)]\n"
        '  return wrk.format("POST", "/chats/", {["Content-Type"] = "application/json",\n'
        '    ["Authorization"] = "Bearer " .. credential}, \'{"title": "benchmark chat"}\')\n'
        "end\n"
    )
    return script


def wrk(binary: str, base: str, script: Path, args: argparse.Namespace) -> dict[str, float]:
    result = subprocess.run(
        [binary, "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency", "-s", str(script), base],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(line for line in result.stdout.splitlines() if line.startswith("{"))
    measured: dict[str, float] = json.loads(line)
    if measured["errors"]:
        sys.exit(f"bench: {measured['errors']} errors from {script.name}: {result.stdout}")
    return measured


def pgbench(url: str, text: str, setup: str, connections: int, seconds: int, work: Path) -> float:
    """Average milliseconds per statement, prepared, from pgbench."""
    script = work / "statement.pgbench"
    script.write_text(f"{setup}\n{text}\n")
    parts = urlsplit(url)
    result = subprocess.run(
        [str(bin_dir() / "pgbench"), "-n", "-M", "prepared", f"-c{connections}", f"-j{min(connections, 2)}",
         f"-T{seconds}", "-f", str(script), "-h", parse_qs(parts.query)["host"][0], "-U", "postgres",
         parts.path.lstrip("/")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return next(
        float(line.split("=")[1].split()[0])
        for line in result.stdout.splitlines()
        if "latency average" in line
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, help="a source tree without the limit, served the same way")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    trees = {"this tree": THIS_TREE} | ({"before": args.before.resolve()} if args.before else {})
    binary = bench.ensure_wrk()
    measured: dict[tuple[str, str], list[dict[str, float]]] = {
        (tree, caller): [] for tree in trees for caller in CALLERS
    }
    with (
        tempfile.TemporaryDirectory(prefix="chatsvc-write-limit-") as tmp,
        EmbeddedPostgres(Path(tmp) / "pg") as pg,
    ):
        work = Path(tmp)
        url = pg.url()
        migrate.apply(url)
        scripts = {caller: wrk_script(work, caller) for caller in CALLERS}
        for round_number in range(args.rounds):
            order = list(trees.items()) if round_number % 2 == 0 else list(trees.items())[::-1]
            for tree_name, tree in order:
                port = bench.free_port()
                env = {
                    **os.environ, "DATABASE_URL": url, "CHATSVC_LOG_LEVEL": "WARNING", "PYTHONPATH": str(tree),
                    "CHATSVC_SERVER_KEYS": SERVER_KEY, "CHATSVC_JWT_SECRETS": JWT_SECRET,
                    "CHATSVC_USER_WRITE_RATE": "1000000", "CHATSVC_USER_WRITE_BURST": "1000000",
                }  # fmt: skip
                command = [sys.executable, "-m", "chatsvc", "serve", "--port", str(port)]
                with bench.process(command, env, port, cwd=tree):
                    for caller in CALLERS:
                        result = wrk(binary, f"http://127.0.0.1:{port}", scripts[caller], args)
                        measured[tree_name, caller].append(result)
                        print(f"round {round_number + 1}, {tree_name}, {caller}: {result}", file=sys.stderr)
        charge = (
            STATEMENTS["take_user_write"]
            .text.replace("$1", "'bench-user-' || :n")
            .replace("$2::interval", "interval '1 microsecond'")
            .replace("$3::integer", "1000000")
        )
        create = STATEMENTS["create_chat"].text.replace("$1", "'benchmark chat'")
        statements = {"take_user_write": charge, "create_chat": create}
        latencies = {
            (name, connections): pgbench(
                url, text, f"\\set n random(1, {USERS})", connections, args.duration, work
            )
            for connections in (1, args.connections)
            for name, text in statements.items()
        }
    print(f"\nPOST /chats/, {args.connections} connections, medians of {args.rounds} rounds")
    print(f"{'tree':<12}{'caller':<12}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}   req/s each round")
    for (tree_name, caller), results in measured.items():
        rps = [result["rps"] for result in results]
        print(
            f"{tree_name:<12}{caller:<12}{statistics.median(rps):>10.0f}"
            f"{statistics.median(r['p50_ms'] for r in results):>10.2f}"
            f"{statistics.median(r['p99_ms'] for r in results):>10.2f}   {' '.join(f'{v:.0f}' for v in rps)}"
        )
    print("\nthe statements alone (pgbench, prepared): average ms per statement")
    for (name, connections), latency in latencies.items():
        print(f"{name:<18}{connections:>3} connection(s){latency:>10.3f}")


if __name__ == "__main__":
    main()
