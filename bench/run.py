"""The load benchmark: chatsvc against the ceilings of this machine, in one run.

    python bench/run.py [--runs 3] [--duration 10] [--connections 32] [--json bench-results.json] [--check]

Starts its own embedded PostgreSQL (in a temporary directory, durable settings
as in production) and `chatsvc serve`, prefills data through SQL, drives each
scenario with wrk on 127.0.0.1 for a fixed time, stops everything it started,
and prints a table (requests/s, p50, p99, errors), written as JSON too.
Everything runs --runs times on the same data; the table holds the medians,
and each ratio is the median of the ratios measured within one run.

Every request carries a credential, as deployed: user tokens (BENCH_USERS
users, members of every prefilled chat) for reads, sends and creates, the
server key for deletes and the SSE streams. get_chat and post_message also run
against a process with CHATSVC_AUTH=off, as on, off, off, on, for what
checking costs. The per-user write limit is on, at a rate no bench user reaches.

Ceilings, measured in the same run: a bare aiohttp handler answering a
constant body as large as a get_chat answer (what the HTTP stack can do at
all), and pgbench running the get_chat SQL file with the same concurrency
(what the database can do at all). Compare ratios, not absolute numbers: the
machine is shared and noisy. TARGETS below are the README's: every median is
printed beside its target, and --check exits 1 when one is missed, saying
which. Needs wrk (`apt-get install wrk`; installed for
you when run as root).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt
import psycopg

from chatsvc import migrate
from chatsvc.embedded import EmbeddedPostgres, bin_dir
from chatsvc.sql import STATEMENTS

HERE = Path(__file__).resolve().parent
SCENARIOS = ("get_chat", "get_chat_big", "history", "history_deep", "post_message", "mixed", "create_chat")
CHATS = 100  # chats of MESSAGES messages each, for get_chat and post_message
MESSAGES = 1_000
BIG = 1_000_000  # messages in the one big chat
# Deletes per run (the median is reported), by the deleted chat's messages.
# More of the small ones: at a few milliseconds each, three were too noisy.
DELETES = {10_000: 9, 100_000: 3}
SUBSCRIBERS = 1_000  # SSE streams on one chat, spread over two service processes
BENCH_USERS = 32  # users with a token each, members of every prefilled chat
SERVER_KEY = "bench-server-key-0123456789abcdefghijklmnopqrstuvwxyz"
JWT_SECRET = "bench-token-secret-0123456789abcdefghijklmnopqrstuvwxyz"
SERVER = {"Authorization": f"Bearer {SERVER_KEY}"}
SSE_MESSAGES = 50  # messages sent, one every 20 ms, while they listen


# The README's targets, each a bound on a median across runs (the soak's on its
# one measurement): (">=" or "<=", bound).
TARGETS: dict[str, tuple[str, float]] = {
    "get_chat / ceiling_http": (">=", 0.30),
    "post_message / ceiling_http": (">=", 0.20),
    "get_chat / get_chat_auth_off": (">=", 0.85),  # what checking credentials costs
    "post_message / post_message_auth_off": (">=", 0.85),
    "get_chat_big / get_chat": (">=", 0.90),
    "history_deep / history": (">=", 0.90),
    "get_chat p99 / p50": ("<=", 4),
    "get_chat_big p99 / p50": ("<=", 4),
    "history p99 / p50": ("<=", 4),
    "history_deep p99 / p50": ("<=", 4),
    "delete 100k / delete 10k": ("<=", 10),  # linear in the messages deleted
    "sse p99 ms": ("<=", 100),
    "sse deliveries missed": ("<=", 0),
    "errors, all scenarios": ("<=", 0),
    "soak: RSS change after the first minute, %": ("<=", 10),  # either way: the absolute value
}


def _tokens() -> str:
    """The bench users' tokens, comma-separated, valid for a day."""
    expires = int(time.time()) + 86_400
    return ",".join(
        jwt.encode({"sub": f"bench-{n}", "exp": expires}, JWT_SECRET, algorithm="HS256")
        for n in range(BENCH_USERS)
    )


TOKENS = _tokens()


def service_env(url: str, *, auth: bool = True) -> dict[str, str]:
    """The environment of a `chatsvc serve` under test: credentials on (or off), and a
    write limit no bench user reaches, so its cost is measured but it refuses nothing."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CHATSVC_LOG_LEVEL": "WARNING",
        "CHATSVC_SERVER_KEYS": SERVER_KEY,
        "CHATSVC_JWT_SECRETS": JWT_SECRET,
        "CHATSVC_USER_WRITE_RATE": "1000000",
        "CHATSVC_USER_WRITE_BURST": "1000000",
    }
    if not auth:
        env["CHATSVC_AUTH"] = "off"
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=True, capture_output=True)
        found = shutil.which("wrk")
    if found is None:
        sys.exit("bench: needs wrk: apt-get install wrk")
    return found


def prefill(url: str, runs: int) -> tuple[dict[str, int], dict[int, list[int]]]:
    """The data every scenario reads, written through SQL (triggers off: no NOTIFY storm)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        first = conn.execute(
            "INSERT INTO chats (title) SELECT 'bench ' || n FROM generate_series(1, %s) AS n RETURNING id",
            (CHATS,),
        ).fetchall()
        chat_ids = [row[0] for row in first]
        conn.execute(
            "INSERT INTO messages (chat_id, text) SELECT c, 'message ' || n"
            " FROM unnest(%s::bigint[]) AS c, generate_series(1, %s) AS n",
            (chat_ids, MESSAGES),
        )
        (big,) = conn.execute("INSERT INTO chats (title) VALUES ('big') RETURNING id").fetchone() or (0,)
        conn.execute(
            "INSERT INTO messages (chat_id, text) SELECT %s, 'message ' || n FROM generate_series(1, %s) AS n",
            (big, BIG),
        )
        low, high = conn.execute(
            "SELECT min(id), max(id) FROM messages WHERE chat_id = %s", (big,)
        ).fetchone() or (0, 0)
        deletable: dict[int, list[int]] = {}
        for size, count in DELETES.items():
            doomed = [row[0] for row in conn.execute(
                "INSERT INTO chats (title) SELECT 'doomed' FROM generate_series(1, %s) RETURNING id", (count * runs,)
            ).fetchall()]  # fmt: skip
            conn.execute(
                "INSERT INTO messages (chat_id, text) SELECT c, 'message ' || n"
                " FROM unnest(%s::bigint[]) AS c, generate_series(1, %s) AS n",
                (doomed, size),
            )
            deletable[size] = doomed
        # Every bench user is a member of every chat the scenarios use.
        conn.execute(
            "INSERT INTO chat_members (chat_id, user_id)"
            " SELECT c, 'bench-' || n FROM unnest(%s::bigint[]) AS c, generate_series(0, %s) AS n",
            ([*chat_ids, big], BENCH_USERS - 1),
        )
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")  # the prefill's writes flushed now, not during the first scenario
    # Pages deep in the big chat: its middle half.
    quarter = (high - low) // 4
    wrk_data = {"CHATS_FIRST": min(chat_ids), "CHATS_LAST": max(chat_ids), "BIG": big,
            "DEEP_FIRST": low + quarter, "DEEP_LAST": high - quarter}  # fmt: skip
    return wrk_data, deletable


@contextmanager
def process(
    command: list[str], env: Mapping[str, str], port: int, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process, once it accepts connections on port; stopped with SIGTERM afterwards."""
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                sys.exit(f"bench: {command[0]} exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"bench: {command} did not start")
                time.sleep(0.1)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def wrk(
    binary: str, base: str, scenario: str, data: dict[str, int], args: argparse.Namespace
) -> dict[str, Any]:
    env = {**os.environ, **{k: str(v) for k, v in data.items()}, "TOKENS": TOKENS,
           "SCENARIO": scenario, "REPORT_LUA": str(HERE / "wrk" / "report.lua")}  # fmt: skip
    result = subprocess.run(
        [binary, "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
         "-s", str(HERE / "wrk" / "scenarios.lua"), base],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(line for line in result.stdout.splitlines() if line.startswith("{"))
    measured: dict[str, Any] = json.loads(line)
    return measured


def pgbench(
    url_parts: dict[str, str], data: dict[str, int], args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    """The get_chat SQL file, as prepared statements, from pgbench: the database's own ceiling."""
    # pgbench names parameters :name where the file has $n; the statement text is otherwise the file's.
    # One chat per call, as under light load (a batch of one).
    text = (
        STATEMENTS["get_chats_with_latest_messages"]
        .text.replace("$1::bigint[]", "ARRAY[:chat_id]::bigint[]")
        .replace("$2::bigint[]", "ARRAY[20]::bigint[]")
        .replace("$3::text[]", "ARRAY['bench-0']::text[]")  # a user, as the service's reads are
        .replace("$4::text[]", "ARRAY['owner', 'member']::text[]")
    )
    script = work / "get_chat.pgbench"
    script.write_text(f"\\set chat_id random({data['CHATS_FIRST']}, {data['CHATS_LAST']})\n{text}\n")
    result = subprocess.run(
        [str(bin_dir() / "pgbench"), "-n", "-M", "prepared", f"-c{args.connections}", "-j2",
         f"-T{args.duration}", "-f", str(script), "-h", url_parts["host"], "-U", "postgres", url_parts["db"]],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    tps = next(
        float(line.split("=")[1].split()[0]) for line in result.stdout.splitlines() if line.startswith("tps")
    )
    latency = next(
        float(line.split("=")[1].split()[0])
        for line in result.stdout.splitlines()
        if "latency average" in line
    )
    return {"rps": tps, "p50_ms": None, "p99_ms": None, "avg_ms": latency, "errors": 0}


def delete_chat(base: str, url: str, deletable: dict[int, list[int]]) -> dict[str, Any]:
    """Median milliseconds per DELETE of a chat, by its number of messages.

    On a database at rest: the load scenarios before leave dirty buffers and
    WAL for a checkpoint, which would land on whichever delete runs during it.
    The sizes take turns, so what noise remains falls on both alike.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    spent: dict[int, list[float]] = {size: [] for size in deletable}
    for turn in range(max(len(chats) for chats in deletable.values())):
        for size, chats in deletable.items():
            if turn >= len(chats):
                continue
            request = urllib.request.Request(f"{base}/chats/{chats[turn]}", method="DELETE", headers=SERVER)
            started = time.perf_counter()
            with urllib.request.urlopen(request) as response:
                assert response.status == 204
            spent[size].append((time.perf_counter() - started) * 1000)
    return {f"{size}_messages_ms": statistics.median(times) for size, times in spent.items()}


class _TimedStream(asyncio.Protocol):
    """A raw event stream that only timestamps what arrives: the measuring client's
    own parsing must not add to the delay it measures (1,000 streams parsed one
    after another in one Python process cost tens of milliseconds per message)."""

    def __init__(self) -> None:
        self.chunks: list[tuple[float, bytes]] = []
        self.ids_seen = 0

    def data_received(self, data: bytes) -> None:
        self.chunks.append((time.perf_counter(), data))
        self.ids_seen += data.count(b"\nid: ") + data.startswith(b"id: ")

    def arrivals(self) -> list[tuple[int, float]]:
        """(message id, when the chunk ending its id line arrived)."""
        found = []
        buffer = b""
        for arrived, data in self.chunks:
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            found += [(int(line[4:]), arrived) for line in lines if line.startswith(b"id: ")]
        return found


async def sse_delivery(bases: list[str], chat_id: int) -> dict[str, Any]:
    """p50 / p99 delay from a send's 201 to its delivery, over SUBSCRIBERS streams on two processes."""
    loop = asyncio.get_running_loop()
    streams: list[_TimedStream] = []
    transports = []
    for n in range(SUBSCRIBERS):
        address = urlsplit(bases[n % len(bases)])
        transport, stream = await loop.create_connection(_TimedStream, "127.0.0.1", address.port or 80)
        transport.write(
            f"GET /chats/{chat_id}/events HTTP/1.1\r\nHost: {address.netloc}\r\n"
            f"Authorization: Bearer {SERVER_KEY}\r\n\r\n".encode()
        )
        transports.append(transport)
        streams.append(stream)
    await asyncio.sleep(1.0)  # every stream subscribed (its opening frame has arrived)
    acknowledged: dict[int, float] = {}
    async with aiohttp.ClientSession(headers=SERVER) as session:
        for n in range(SSE_MESSAGES):
            async with session.post(
                f"{bases[0]}/chats/{chat_id}/messages/", json={"text": f"live {n}"}
            ) as sent:
                acknowledged[(await sent.json())["id"]] = time.perf_counter()
            await asyncio.sleep(0.02)
    for _ in range(600):  # at most 60 s for the last deliveries
        if all(stream.ids_seen >= SSE_MESSAGES for stream in streams):
            break
        await asyncio.sleep(0.1)
    for transport in transports:
        transport.close()
    arrivals = [arrival for stream in streams for arrival in stream.arrivals()]
    # A delivery can beat the 201 to this client; it then counts as no delay.
    delays = sorted(max(0.0, arrived - acknowledged[message]) * 1000 for message, arrived in arrivals)
    return {
        "subscribers": SUBSCRIBERS,
        "deliveries": len(delays),
        "expected": SUBSCRIBERS * SSE_MESSAGES,
        "p50_ms": delays[len(delays) // 2],
        "p99_ms": delays[int(len(delays) * 0.99)],
    }


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def soak(binary: str, base: str, pid: int, data: dict[str, int], seconds: int) -> dict[str, Any]:
    """The mixed scenario for seconds while the service's RSS is sampled every 10 s."""
    env = {**os.environ, **{k: str(v) for k, v in data.items()}, "TOKENS": TOKENS,
           "SCENARIO": "mixed", "REPORT_LUA": str(HERE / "wrk" / "report.lua")}  # fmt: skip
    load = subprocess.Popen(
        [binary, "-t2", "-c32", f"-d{seconds}s", "-s", str(HERE / "wrk" / "scenarios.lua"), base],
        env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    samples = []
    while load.poll() is None:
        samples.append(round(rss_mib(pid), 1))
        time.sleep(10)
    output = load.stdout.read() if load.stdout else ""
    measured = json.loads(next((line for line in output.splitlines() if line.startswith("{")), "{}"))
    # The first minute warms caches up (prepared statements, metric children); flat is judged after it.
    settled = samples[6:] or samples
    return {"seconds": seconds, "rss_mib": samples, "load": measured,
            "change_after_first_minute": (settled[-1] - settled[0]) / settled[0]}  # fmt: skip


def one_run(
    binary: str, url: str, data: dict[str, int], deletable: dict[int, list[int]],
    args: argparse.Namespace, work: Path,
) -> dict[str, Any]:  # fmt: skip
    """Every scenario and both ceilings, once: ratios are only compared within a run."""
    results: dict[str, dict[str, Any]] = {}
    port, second_port = free_port(), free_port()
    env = service_env(url)
    base = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-m", "chatsvc", "serve"]
    off_port = free_port()
    off_base = f"http://127.0.0.1:{off_port}"
    # The same service with CHATSVC_AUTH=off, alive alongside: get_chat and
    # post_message run against it right after each runs with credentials.
    with (
        process([*serve, "--port", str(port)], env, port),
        process([*serve, "--port", str(off_port)], service_env(url, auth=False), off_port),
    ):
        sample = urllib.request.urlopen(
            urllib.request.Request(f"{base}/chats/{data['CHATS_FIRST']}?limit=20", headers=SERVER)
        ).read()
        for scenario in SCENARIOS:
            print(f"{scenario} ...", file=sys.stderr)
            results[scenario] = wrk(binary, base, scenario, data, args)
            if scenario in ("get_chat", "post_message"):
                # On, off, off, on: whatever drifts over the four lands on both alike.
                print(
                    f"{scenario}, CHATSVC_AUTH=off, twice, then with credentials again ...", file=sys.stderr
                )
                results[f"{scenario}_auth_off"] = wrk(binary, off_base, scenario, data, args)
                results[f"{scenario}_auth_off_again"] = wrk(binary, off_base, scenario, data, args)
                results[f"{scenario}_again"] = wrk(binary, base, scenario, data, args)
        print("delete_chat ...", file=sys.stderr)
        deletes = delete_chat(base, url, deletable)
        with process([*serve, "--port", str(second_port)], env, second_port):
            print(f"sse: {SUBSCRIBERS} subscribers on two processes ...", file=sys.stderr)
            chat = json.loads(urllib.request.urlopen(urllib.request.Request(
                f"{base}/chats/", data=b'{"title": "live"}', headers={"Content-Type": "application/json", **SERVER}
            )).read())  # fmt: skip
            sse = asyncio.run(sse_delivery([base, f"http://127.0.0.1:{second_port}"], chat["id"]))
    with process([*serve, "--port", str(port), "--workers", "2"], env, port):
        for scenario in ("get_chat", "post_message"):
            print(f"{scenario}, 2 workers ...", file=sys.stderr)
            results[f"{scenario}_workers2"] = wrk(binary, base, scenario, data, args)
    body = work / "body.json"
    body.write_bytes(sample)
    ceiling_port = free_port()
    with process(
        [sys.executable, str(HERE / "ceiling.py"), str(ceiling_port), str(body)], os.environ, ceiling_port
    ):
        print("ceiling: bare aiohttp ...", file=sys.stderr)
        results["ceiling_http"] = wrk(binary, f"http://127.0.0.1:{ceiling_port}", "ceiling", data, args)
    print("ceiling: pgbench get_chat ...", file=sys.stderr)
    socket_dir = parse_qs(urlsplit(url).query)["host"][0]
    results["ceiling_pgbench"] = pgbench({"host": socket_dir, "db": "chatsvc"}, data, args, work)
    return {"results": results, "delete_chat": deletes, "sse": sse, "ratios": ratios(results, deletes)}


def _on_over_off(results: dict[str, dict[str, Any]], scenario: str) -> float:
    """Requests/s with credentials over those with CHATSVC_AUTH=off, both measured twice (on, off, off, on)."""
    on = results[scenario]["rps"] + results[f"{scenario}_again"]["rps"]
    off = results[f"{scenario}_auth_off"]["rps"] + results[f"{scenario}_auth_off_again"]["rps"]
    return float(on / off)


def ratios(results: dict[str, dict[str, Any]], deletes: dict[str, float]) -> dict[str, float]:
    http = results["ceiling_http"]["rps"]
    measured = {
        "get_chat / ceiling_http": results["get_chat"]["rps"] / http,
        "post_message / ceiling_http": results["post_message"]["rps"] / http,
        "get_chat_workers2 / ceiling_http": results["get_chat_workers2"]["rps"] / http,
        "post_message_workers2 / ceiling_http": results["post_message_workers2"]["rps"] / http,
        "get_chat / ceiling_pgbench": results["get_chat"]["rps"] / results["ceiling_pgbench"]["rps"],
        "get_chat / get_chat_auth_off": _on_over_off(results, "get_chat"),
        "post_message / post_message_auth_off": _on_over_off(results, "post_message"),
        "get_chat_big / get_chat": results["get_chat_big"]["rps"] / results["get_chat"]["rps"],
        "history_deep / history": results["history_deep"]["rps"] / results["history"]["rps"],
        "delete 100k / delete 10k": deletes["100000_messages_ms"] / deletes["10000_messages_ms"],
    }
    for read in ("get_chat", "get_chat_big", "history", "history_deep"):
        measured[f"{read} p99 / p50"] = results[read]["p99_ms"] / results[read]["p50_ms"]
    return measured


def judged(runs: list[dict[str, Any]], soaked: dict[str, Any]) -> dict[str, float]:
    """What TARGETS bound, measured: medians of the runs' ratios and SSE p99, the
    deliveries and errors of every run, the soak's RSS change."""
    values: dict[str, float] = {}
    if runs:
        values.update({name: median_of(runs, "ratios", name) for name in runs[0]["ratios"]})
        values["sse p99 ms"] = median_of(runs, "sse", "p99_ms")
        values["sse deliveries missed"] = sum(
            run["sse"]["expected"] - run["sse"]["deliveries"] for run in runs
        )
        values["errors, all scenarios"] = sum(
            result["errors"] for run in runs for result in run["results"].values() if result.get("errors")
        )
    if soaked:
        values["soak: RSS change after the first minute, %"] = abs(soaked["change_after_first_minute"]) * 100
    return values


def missed(values: dict[str, float]) -> list[str]:
    """Each target a measured value misses, as a line; targets not measured are skipped."""
    misses = []
    for name, (bound_kind, bound) in TARGETS.items():
        value = values.get(name)
        if value is not None and not (value >= bound if bound_kind == ">=" else value <= bound):
            misses.append(f"{name}: {value:.2f}, target {bound_kind} {bound:g}")
    return misses


def median_of(runs: list[dict[str, Any]], *path: str) -> Any:
    """The median across runs of the value at path; None where a run has none."""
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value[key]
        values.append(value)
    return None if None in values else statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of everything; medians are reported (0: only --soak)"
    )
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    parser.add_argument(
        "--soak", type=int, default=0, help="also run mixed load this many seconds, sampling RSS"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a median misses one of the README's targets"
    )
    args = parser.parse_args()
    binary = ensure_wrk()
    runs: list[dict[str, Any]] = []
    soaked: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="chatsvc-bench-") as tmp,
        EmbeddedPostgres(Path(tmp) / "pg") as server,
    ):
        work = Path(tmp)
        os.chmod(work, 0o755)
        url = server.url()
        migrate.apply(url)
        print("prefilling ...", file=sys.stderr)
        data, deletable = prefill(url, max(args.runs, 1))
        for n in range(args.runs):
            print(f"run {n + 1} of {args.runs}", file=sys.stderr)
            this_run = {
                size: chats[n * DELETES[size] : (n + 1) * DELETES[size]] for size, chats in deletable.items()
            }
            runs.append(one_run(binary, url, data, this_run, args, work))
        if args.soak:
            port = free_port()
            env = service_env(url)
            with process(
                [sys.executable, "-m", "chatsvc", "serve", "--port", str(port)], env, port
            ) as service:
                print(f"soak: mixed for {args.soak} s, sampling RSS ...", file=sys.stderr)
                soaked = soak(binary, f"http://127.0.0.1:{port}", service.pid, data, args.soak)
    if runs:
        print(
            f"\nmedians of {args.runs} run(s), {args.duration} s per scenario, {args.connections} connections"
        )
        print(f"\n{'scenario':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
        for name in runs[0]["results"]:
            rps, p50, p99, errors = (
                median_of(runs, "results", name, field) for field in ("rps", "p50_ms", "p99_ms", "errors")
            )
            p50_text = "-" if p50 is None else f"{p50:.2f}"
            p99_text = "-" if p99 is None else f"{p99:.2f}"
            print(f"{name:<22}{rps:>10.0f}{p50_text:>10}{p99_text:>10}{errors:>8}")
        print(
            f"\ndelete_chat median ms: { {size: median_of(runs, 'delete_chat', size) for size in runs[0]['delete_chat']} }"
        )
        for field in ("p50_ms", "p99_ms"):
            print(f"sse delivery {field}: median {median_of(runs, 'sse', field):.1f}"
                  f" (deliveries {[run['sse']['deliveries'] for run in runs]} of {runs[0]['sse']['expected']} each)")  # fmt: skip
        print(f"\n{'ratio (median; each run)':<42}")
        for name in runs[0]["ratios"]:
            each = ", ".join(f"{run['ratios'][name]:.2f}" for run in runs)
            print(f"{name:<42}{median_of(runs, 'ratios', name):>8.2f}   ({each})")
    if soaked:
        print(f"soak: {soaked}")
    values = judged(runs, soaked)
    print(f"\n{'target':<48}{'measured':>10}   target")
    for name, (bound_kind, bound) in TARGETS.items():
        if name in values:
            print(f"{name:<48}{values[name]:>10.2f}   {bound_kind} {bound:g}")
    misses = missed(values)
    args.json.write_text(
        json.dumps(
            {"runs": runs, "soak": soaked, "missed": misses, "args": vars(args) | {"json": str(args.json)}},
            indent=2,
        )
    )
    if misses:
        print("\nmissed targets:\n" + "\n".join(f"  {miss}" for miss in misses))
        if args.check:
            sys.exit(1)


if __name__ == "__main__":
    main()
