"""schemathesis against the served API's own /openapi.json: every operation,
every check it has, positive and negative cases, and stateful sequences.

A short run (SCHEMATHESIS_SECONDS, default 30) in the test command; the
README's reliability report gives the command for a long one. Settings are
in tests/schemathesis.toml, hooks (fresh Idempotency-Keys, so that no valid
request may be refused) in tests/schemathesis_hooks.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg

from tests.credentials import SERVER_KEY
from tests.served import environment, serving

SECONDS = os.environ.get("SCHEMATHESIS_SECONDS", "30")
CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")


def test_schemathesis_finds_no_failure(make_database: Callable[[], str], tmp_path: Path) -> None:
    url = make_database()
    env = environment(DATABASE_URL=url, CHATSVC_LOG_LEVEL="WARNING")
    with serving(env) as (base, _):
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(CONFIG),
                "run", f"{base}/openapi.json", "--checks", "all", "--max-time", SECONDS,
                # One worker: with several, CPython 3.11's ast module (which
                # hypothesis uses to describe strategies) can fail across threads.
                "--workers", "1",
                # Its speed heuristics judge this machine, not the API.
                "--suppress-health-check", "too_slow",
            ],
            cwd=tmp_path, capture_output=True, text=True, timeout=int(SECONDS) + 300, check=False,
            env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "CHATSVC_TEST_SERVER_KEY": SERVER_KEY},
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    assert " passed" in result.stdout and "failures" not in result.stdout.split("SUMMARY")[-1]
    # It called as the server (tests/schemathesis.toml's auth), not only into 401s.
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM chats").fetchone() != (0,)
