"""The command line as a user runs it: real `chatsvc` processes, real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psycopg

from chatsvc.resources import migrations_folder
from tests.conftest import with_database
from tests.credentials import SERVER
from tests.served import (
    CHATSVC,
    call,
    environment,
    free_port,
    output_when_exited,
    postgres_running,
    serving,
    stop,
)
from tests.sse import EventStream


def test_serve_with_database_url_applies_migrations_and_serves(make_database: Callable[[], str]) -> None:
    url = make_database()
    with serving(environment(DATABASE_URL=url)) as (base, process):
        status, chat = call("POST", f"{base}/chats/", {"title": "from a real process"})
        assert status == 201
        assert call("POST", f"{base}/chats/{chat['id']}/messages", {"text": "hi"})[0] == 201
        status, body = call("GET", f"{base}/chats/{chat['id']}?limit=5")
        assert status == 200 and [m["text"] for m in body["messages"]] == ["hi"]
        assert call("DELETE", f"{base}/chats/{chat['id']}")[0] == 204
        output = stop(process)
    assert "Traceback" not in output
    # Every line is one JSON object; each request has its access line.
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "chatsvc.access"]
    assert [
        (line["method"], line["route"], line["status"]) for line in access if line["route"] != "/healthz"
    ] == [
        ("POST", "/chats", 201),
        ("POST", "/chats/{chat_id}/messages", 201),
        ("GET", "/chats/{chat_id}", 200),
        ("DELETE", "/chats/{chat_id}", 204),
    ]
    assert all(len(line["request_id"]) == 32 for line in access)
    assert "from a real process" not in output and '"hi"' not in output


def test_serve_without_database_url_runs_embedded_postgres_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = environment(CHATSVC_DATA_DIR=str(data_dir))
    with serving(env) as (base, process):
        status, chat = call("POST", f"{base}/chats/", {"title": "kept"})
        assert status == 201
        stop(process)
    assert not postgres_running(data_dir), "the embedded PostgreSQL outlived the service"
    with serving(env) as (base, process):
        assert call("GET", f"{base}/chats/{chat['id']}")[1]["title"] == "kept"
        stop(process)
    assert not postgres_running(data_dir)


def test_a_bad_setting_exits_with_one_line_naming_it() -> None:
    result = subprocess.run(
        [*CHATSVC, "serve"], env=environment(CHATSVC_PORT="eighty"), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().startswith("chatsvc: CHATSVC_PORT: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unreachable_database_exits_with_one_line() -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/chatsvc?connect_timeout=5"
    result = subprocess.run(
        [*CHATSVC, "serve"], env=environment(DATABASE_URL=url), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().startswith("chatsvc: cannot use the database: ")
    assert "Traceback" not in result.stderr


def test_a_database_not_in_utf8_is_refused_with_one_line(server_url: str) -> None:
    name = f"chatsvc_test_ascii_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        )
    try:
        env = environment(DATABASE_URL=with_database(server_url, name))
        refusal = (
            "chatsvc: cannot use the database: its encoding is SQL_ASCII, and chatsvc needs UTF8"
            " (CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)"
        )
        for command in (["serve"], ["migrate"], ["migrate", "--list"], ["purge-keys"]):
            result = subprocess.run(
                [*CHATSVC, *command], env=env, capture_output=True, text=True, timeout=60, check=False
            )
            assert result.returncode == 1, command
            assert result.stderr.splitlines() == [refusal], command
        with psycopg.connect(with_database(server_url, name)) as conn:  # nothing was applied
            assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (
                0,
            )
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_migrate_count_without_rollback_is_an_error(make_database: Callable[[], str]) -> None:
    env = environment(DATABASE_URL=make_database())
    for args, error in (
        (["--count", "1"], "chatsvc: migrate --count needs --rollback"),
        (["--rollback", "--count", "0"], "chatsvc: migrate --rollback --count must be at least 1"),
    ):
        result = subprocess.run(
            [*CHATSVC, "migrate", *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 1 and result.stderr.startswith(error), result.stderr
    listing = subprocess.run(
        [*CHATSVC, "migrate", "--list"], env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "applied" not in listing  # nothing was done


def test_migrate_apply_list_and_rollback(make_database: Callable[[], str]) -> None:
    env = environment(DATABASE_URL=make_database())

    def migrate(*args: str) -> str:
        result = subprocess.run(
            [*CHATSVC, "migrate", *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    # The migrations this tree ships, oldest first: the test holds whichever are added.
    names = sorted(
        path.name.removesuffix(".sql")
        for path in migrations_folder().glob("*.sql")
        if not path.name.endswith(".rollback.sql")
    )
    assert names[0] == "0001.create-chats-and-messages" and len(names) >= 4
    before_newest, newest = names[-2:]
    assert f"pending  {names[0]}" in migrate("--list")
    assert f"applied {len(names)} migration(s)" in migrate()
    assert f"applied  {newest}" in migrate("--list")
    assert "rolled back 1 migration(s)" in migrate("--rollback", "--count", "1")
    listing = migrate("--list")
    assert f"pending  {newest}" in listing
    assert f"applied  {before_newest}" in listing
    assert f"rolled back {len(names) - 1} migration(s)" in migrate("--rollback")
    assert f"pending  {names[0]}" in migrate("--list")


def test_migrations_go_where_chatsvc_migrations_database_url_says(make_database: Callable[[], str]) -> None:
    """`chatsvc migrate` and `chatsvc serve` at start apply them there, not to DATABASE_URL (behind
    a pooler the two differ: the same database, reached two ways)."""
    pooled, direct = make_database(), make_database()
    env = environment(DATABASE_URL=pooled, CHATSVC_MIGRATIONS_DATABASE_URL=direct)
    result = subprocess.run(
        [*CHATSVC, "migrate"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and "applied" in result.stdout, result.stderr
    with psycopg.connect(direct) as conn:
        assert conn.execute("SELECT count(*) FROM _yoyo_migration").fetchone() == (len(migrate_ids()),)
    with psycopg.connect(pooled) as conn:
        assert conn.execute("SELECT to_regclass('_yoyo_migration')").fetchone() == (None,)


def migrate_ids() -> list[str]:
    return [
        path.name for path in migrations_folder().glob("*.sql") if not path.name.endswith(".rollback.sql")
    ]


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("chatsvc")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "serve" in result.stdout and "migrate" in result.stdout


def test_purge_keys_deletes_only_keys_past_24_hours(empty_database_url: str) -> None:
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO chat_idempotency_keys (key, chat_id, created_at) VALUES ('old', 1, now() - interval '25h')"
        )
        conn.execute(
            "INSERT INTO chat_idempotency_keys (key, chat_id, created_at) VALUES ('young', 2, now() - interval '23h')"
        )
        result = subprocess.run(
            [*CHATSVC, "purge-keys"], env=environment(DATABASE_URL=empty_database_url), capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "purged 1 Idempotency-Key(s)" in result.stdout
        assert conn.execute("SELECT key FROM chat_idempotency_keys").fetchall() == [("young",)]


async def test_two_serve_processes_share_keys_and_events(make_database: Callable[[], str]) -> None:
    """What a client of a scaled-out deployment sees: racing retries and SSE across processes."""
    env = environment(DATABASE_URL=make_database())
    with serving(env) as (a, _), serving(env) as (b, process_b):
        async with aiohttp.ClientSession(headers=SERVER) as session:

            async def post(base: str, path: str, body: dict[str, str], key: str) -> tuple[int, Any, bool]:
                headers = {"Idempotency-Key": key}
                async with session.post(f"{base}{path}", json=body, headers=headers) as response:
                    return response.status, await response.json(), "Idempotent-Replayed" in response.headers

            racing = await asyncio.gather(
                *(post((a, b)[n % 2], "/chats/", {"title": "shared"}, "k") for n in range(10))
            )
            assert {status for status, _, _ in racing} == {201}
            assert len({body["id"] for _, body, _ in racing}) == 1
            assert sum(not replayed for _, _, replayed in racing) == 1
            chat_id = racing[0][1]["id"]
            messages = f"/chats/{chat_id}/messages/"

            async with session.get(f"{b}/chats/{chat_id}/events") as response:
                stream = EventStream(response)
                await stream.frame()  # the opening retry: hint; subscribed from here
                sent = [(await post(a, messages, {"text": f"m{n}"}, f"m{n}"))[1] for n in range(3)]
                assert await stream.messages(3) == sent
            missed = [(await post(a, messages, {"text": f"x{n}"}, f"x{n}"))[1] for n in range(2)]
            resume = {"Last-Event-ID": str(sent[-1]["id"])}
            async with session.get(f"{a}/chats/{chat_id}/events", headers=resume) as response:
                stream = EventStream(response)
                assert await stream.messages(2) == missed
                live = (await post(b, messages, {"text": "live"}, "live"))[1]
                assert await stream.messages(1) == [live]
                async with session.delete(f"{b}/chats/{chat_id}") as deleted:
                    assert deleted.status == 204
                assert (await stream.event()).event == "chat_deleted"
                assert await stream.ends() == []

            chat = (await post(a, "/chats/", {"title": "open at shutdown"}, "last"))[1]
            async with session.get(f"{b}/chats/{chat['id']}/events") as response:
                stream = EventStream(response)
                await stream.frame()
                process_b.send_signal(signal.SIGTERM)
                frames = await stream.ends()
                assert "shutting down" in frames[-1].comments[0]
            assert await asyncio.to_thread(process_b.wait, 30) == 0


async def test_sigterm_under_load_finishes_what_was_accepted_and_exits_0(
    make_database: Callable[[], str],
) -> None:
    """Graceful shutdown of a real process: in-flight requests finish, none is cut off, exit 0."""
    url = make_database()
    env = environment(DATABASE_URL=url, CHATSVC_SHUTDOWN_GRACE="10")
    with serving(env) as (base, process):
        lock_holder = await asyncpg.connect(url)
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), headers=SERVER
        ) as session:
            async with session.post(f"{base}/chats/", json={"title": "shutdown"}) as response:
                chat_id = (await response.json())["id"]
            statuses: list[int] = []
            failures: list[BaseException] = []
            stored: list[int] = []
            refused = asyncio.Event()

            async def client() -> None:
                while not refused.is_set():
                    try:
                        async with session.post(
                            f"{base}/chats/{chat_id}/messages/", json={"text": "load"}
                        ) as answer:
                            statuses.append(answer.status)
                            if answer.status == 201:
                                stored.append((await answer.json())["id"])
                    except aiohttp.ClientConnectorError:
                        refused.set()  # the listening socket is closed: nothing more is accepted
                    except aiohttp.ClientError as exc:
                        failures.append(exc)
                        return

            # One request in flight across the signal: it waits on a lock held here.
            await lock_holder.execute("BEGIN")
            await lock_holder.execute("SELECT id FROM chats WHERE id = $1 FOR UPDATE", chat_id)
            in_flight = asyncio.ensure_future(
                session.post(f"{base}/chats/{chat_id}/messages/", json={"text": "slow"})
            )
            clients = [asyncio.create_task(client()) for _ in range(8)]
            await asyncio.sleep(1.0)
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(1.0)
            await lock_holder.execute(
                "ROLLBACK"
            )  # the in-flight send may now finish, within the grace period
            slow = await in_flight
            assert slow.status == 201, await slow.text()
            await asyncio.wait_for(asyncio.gather(*clients), 30)
        await lock_holder.close()
        assert await asyncio.to_thread(process.wait, 30) == 0
    assert failures == []
    assert set(statuses) <= {201, 503} and 201 in statuses
    conn = await asyncpg.connect(url)
    try:
        saved = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE chat_id = $1 AND text = 'load'", chat_id
        )
    finally:
        await conn.close()
    assert saved == len(stored)  # every acknowledged send is stored


def test_serve_with_workers_shares_the_port_and_stops_them_all(tmp_path: Path) -> None:
    """--workers 2 on the embedded database: migrations once, both workers serve, SIGTERM stops all."""
    env = environment(CHATSVC_DATA_DIR=str(tmp_path / "data"))
    with serving(env, "--workers", "2") as (base, process):
        # The port answers once the first worker listens; wait for the second.
        # A generated X-Request-ID starts with its process's random prefix.
        prefixes: set[str] = set()
        deadline = time.monotonic() + 30
        while len(prefixes) < 2 and time.monotonic() < deadline:
            with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:
                prefixes.add(response.headers["X-Request-ID"][:16])
        assert len(prefixes) == 2
        status, chat = call("POST", f"{base}/chats/", {"title": "workers"})
        assert status == 201
        for n in range(60):  # a new connection each: the kernel spreads them over the workers
            assert call("POST", f"{base}/chats/{chat['id']}/messages/", {"text": f"m{n}"})[0] == 201
        status, page = call("GET", f"{base}/chats/{chat['id']}/messages/?limit=100")
        assert status == 200 and len(page["messages"]) == 60
        output = stop(process)
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    access_pids = {line["pid"] for line in lines if line["logger"] == "chatsvc.access"}
    assert len(access_pids) == 2 and process.pid not in access_pids
    assert sum("Applying 0001" in line["message"] for line in lines) == 1
    assert not postgres_running(tmp_path / "data")
    assert "Traceback" not in output


def running(pid: int) -> bool:
    """Whether the process exists and has not exited (a zombie waiting for its reaper has)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def worker_pids(parent: int, count: int) -> list[int]:
    """The pids of a `serve --workers` parent's worker processes, once all count have started."""
    deadline = time.monotonic() + 30
    workers: list[int] = []
    while len(workers) < count and time.monotonic() < deadline:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        workers = [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        time.sleep(0.1)
    assert len(workers) == count
    return workers


def test_a_worker_that_dies_stops_the_others_and_the_parent_exits_1(make_database: Callable[[], str]) -> None:
    """So that the process manager above restarts the whole service, not half of it."""
    env = environment(DATABASE_URL=make_database(), CHATSVC_LOG_LEVEL="WARNING")
    with serving(env, "--workers", "2") as (base, process):
        dying, other = worker_pids(process.pid, 2)
        assert call("GET", f"{base}/healthz")[0] == 200
        os.kill(dying, signal.SIGKILL)
        assert process.wait(timeout=60) == 1
        assert not running(other)
        assert "exited with -9; stopping" in output_when_exited(process)


def test_workers_stop_when_their_parent_is_killed(make_database: Callable[[], str]) -> None:
    """SIGKILL leaves the parent no chance to stop its workers: the kernel tells them (Linux)."""
    env = environment(DATABASE_URL=make_database(), CHATSVC_LOG_LEVEL="WARNING")
    with serving(env, "--workers", "2") as (base, process):
        workers = worker_pids(process.pid, 2)
        assert call("GET", f"{base}/healthz")[0] == 200
        process.kill()
        process.wait(timeout=10)
        deadline = time.monotonic() + 30
        while any(running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [pid for pid in workers if running(pid)]
        for pid in survivors:  # so that a failure does not leave them serving (and holding our pipe)
            os.kill(pid, signal.SIGKILL)
        assert survivors == []
