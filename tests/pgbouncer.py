"""A real PgBouncer in front of the tests' PostgreSQL: Debian's package, as an operator runs it.

``PgBouncer(server_url, workdir, pool_mode="transaction")`` starts one on a
free 127.0.0.1 port with a stock configuration (no ignored or tracked extra
startup parameters, no prepared-statement support: what 1.18, Debian 12's
version, has) and ``url(database)`` addresses any database of that server
through it. PgBouncer refuses to run as root: under root it runs as the
embedded PostgreSQL's system user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

import pytest

from chatsvc import embedded
from tests.debian import install_missing
from tests.served import free_port


def pgbouncer() -> str:
    """The pgbouncer program (Debian's package, installed here by root), else the test is skipped."""
    if _found() is None:
        install_missing(["pgbouncer"])
    found = _found()
    if found is None:
        pytest.skip("needs Debian's pgbouncer (apt-get install pgbouncer), which only root can install")
    return found


def _found() -> str | None:
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")


class PgBouncer:
    """A PgBouncer process in workdir, forwarding every database to server_url's server."""

    def __init__(
        self,
        server_url: str,
        workdir: Path,
        pool_mode: Literal["session", "transaction"] = "transaction",
        pool_size: int = 20,
        connect_query: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        parts = urlsplit(server_url)
        query = parse_qs(parts.query)
        host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
        port = query.get("port", [str(parts.port or 5432)])[0]
        self.user = parts.username or "postgres"  # the role, on the server and through PgBouncer
        target = f"host={host} port={port} user={self.user}"
        if parts.password:  # e.g. compose's server, over TCP with a password
            target += f" password={parts.password}"
        if connect_query is not None:
            target += f" connect_query='{connect_query}'"
        self._config = workdir / "pgbouncer.ini"
        (workdir / "userlist.txt").write_text(f'"{self.user}" ""\n')
        self._config.write_text(
            "[databases]\n"
            f"* = {target}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {workdir / 'userlist.txt'}\n"
            f"pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\nmax_client_conn = 2000\n"
            f"logfile = {workdir / 'pgbouncer.log'}\npidfile = {workdir / 'pgbouncer.pid'}\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        path = self.workdir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Self:
        program = pgbouncer()
        as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            embedded.ensure_system_user()
            shutil.chown(self.workdir, embedded.SYSTEM_USER, embedded.SYSTEM_USER)
            for path in self.workdir.iterdir():
                shutil.chown(path, embedded.SYSTEM_USER, embedded.SYSTEM_USER)
            embedded.allow_traversal(self.workdir)
            as_user = {"user": embedded.SYSTEM_USER, "group": embedded.SYSTEM_USER, "extra_groups": []}
        self._process = subprocess.Popen(
            [program, str(self._config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            **as_user,
        )
        deadline = time.monotonic() + 10
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited ({self._process.returncode}):\n{self.log()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
