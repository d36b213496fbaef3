"""Lint and type checks run with the tests, so the test command keeps them clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],  # files and strictness from setup.cfg [mypy]
        ["hadolint", "Dockerfile"],
    ],
    ids=lambda command: " ".join(command),
)
def test_clean(command: list[str]) -> None:
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    test_command = readme.split("**Test it**", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    ci_commands = [
        line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and line[0] not in "#"
    ]
    assert ci_commands[-1] == test_command
