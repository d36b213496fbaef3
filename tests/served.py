"""Real `chatsvc serve` processes for the tests, and raw sockets to talk to them.

What a user runs: the console program on a free port, its JSON log read as it
comes, requests over real HTTP (urllib) or as raw bytes (for what no client
library would send).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests import credentials

CHATSVC = [sys.executable, "-m", "chatsvc"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("CHATSVC_")}
    return env | credentials.ENVIRONMENT | variables


def call(
    method: str, url: str, body: dict[str, Any] | None = None, headers: dict[str, str] = credentials.SERVER
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# Everything each served process has written so far, read as it comes: a
# pipe nobody reads fills up (64 KiB) and then blocks the service's logging.
_OUTPUT: dict[int, list[str]] = {}
_READERS: dict[int, threading.Thread] = {}


def _drain(process: subprocess.Popen[str]) -> threading.Thread:
    lines: list[str] = []
    _OUTPUT[process.pid] = lines  # fresh: a pid may be reused by a later test's process

    def read() -> None:
        assert process.stdout is not None
        lines.extend(process.stdout)  # line by line, as they come

    reader = _READERS[process.pid] = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


def output_of(process: subprocess.Popen[str]) -> str:
    return "".join(_OUTPUT.get(process.pid, []))


@contextmanager
def serving(env: dict[str, str], *args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`chatsvc serve` on a free port; yields its base URL once it answers /healthz."""
    port = free_port()
    process = subprocess.Popen(
        [*CHATSVC, "serve", "--port", str(port), *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    reader = _drain(process)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, output_of(process)
            try:
                if call("GET", f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "chatsvc serve did not come up"
            time.sleep(0.1)
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        reader.join(timeout=10)
        if process.stdout:
            process.stdout.close()


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, a clean exit, and everything the process wrote."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    _READERS[process.pid].join(timeout=10)  # to the end of the output
    return output_of(process)


def output_when_exited(process: subprocess.Popen[str]) -> str:
    """Everything a process that has exited wrote, to its last line."""
    _READERS[process.pid].join(timeout=10)
    return output_of(process)


def postgres_running(data_dir: Path) -> bool:
    # PostgreSQL removes its pid file when it stops cleanly.
    return (data_dir / "pgdata" / "postmaster.pid").exists()


# -- raw sockets ------------------------------------------------------------------


def exchange(base: str, raw: bytes, timeout: float = 15) -> bytes:
    """Sends raw bytes; what the server answered, up to one whole response or the connection's end."""
    return timed_exchange(base, raw, timeout)[0]


def complete(received: bytes) -> bool:
    """Whether received holds a whole response with a Content-Length body."""
    head, separator, body = received.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def timed_exchange(base: str, raw: bytes, timeout: float = 15) -> tuple[bytes, float]:
    """What the server answered, and how many seconds its first byte took."""
    host, port = base.removeprefix("http://").split(":")
    started = time.monotonic()
    first_byte = float("inf")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        try:
            sock.sendall(credentials.with_server_key(raw))
        except OSError:
            pass  # the server may answer and close before taking everything
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            first_byte = min(first_byte, time.monotonic() - started)
            received += chunk
            if complete(received):
                break
    return received, first_byte


def until_closed(base: str, raw: bytes, timeout: float = 10) -> tuple[bytes, bool]:
    """Everything the server sends after raw, and whether it then closed the connection."""
    host, port = base.removeprefix("http://").split(":")
    received = b""
    deadline = time.monotonic() + timeout  # also for a server that keeps sending
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # it may answer and close before taking everything
            sock.sendall(credentials.with_server_key(raw))
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return received, True
            except TimeoutError:
                return received, False
            if not chunk:
                return received, True
            received += chunk
    return received, False


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])
