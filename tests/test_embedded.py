"""The embedded PostgreSQL (chatsvc/embedded.py): private, and adopted when left running."""

from __future__ import annotations

import stat
from pathlib import Path

import psycopg

from chatsvc.embedded import EmbeddedPostgres


def postmaster(data_dir: Path) -> tuple[int, Path]:
    """The running server's pid and socket directory, from its pid file (lines 1 and 5)."""
    lines = (data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()
    return int(lines[0]), Path(lines[4])


def test_it_listens_on_a_private_socket_directory_only(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path / "pg", durable=False) as server:
        _, socket_dir = postmaster(tmp_path / "pg")
        assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700  # trust auth is guarded by this
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("",)  # no TCP port


def test_a_server_left_running_is_adopted_and_left_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "pg"
    first = EmbeddedPostgres(data_dir, durable=False)
    first.start()
    try:
        pid, _ = postmaster(data_dir)
        adopter = EmbeddedPostgres(data_dir, durable=False)
        adopter.start()  # as a service restarted after a SIGKILL would
        assert postmaster(data_dir)[0] == pid  # the same server, not a second one
        with psycopg.connect(adopter.url()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        adopter.stop()  # not its own: it stays up
        assert postmaster(data_dir)[0] == pid
    finally:
        first.stop()
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()
