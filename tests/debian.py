"""Debian packages a test needs (Chromium, PgBouncer): installed by the test itself when run as
root with apt-get, as in CI and `docker compose exec -u root web pytest`; otherwise left to
the caller, which skips saying what to install."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence


def install_missing(packages: Sequence[str]) -> None:
    """Installs the packages (those the caller found missing) with apt-get, when this is root."""
    if not packages:
        return
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *packages],
        env=env,
        check=True,
        capture_output=True,
        timeout=900,
    )
