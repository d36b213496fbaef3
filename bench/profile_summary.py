"""Where each profiled scenario's samples end: the table of bench/profiles/README.md.

    python bench/profile_summary.py DIR [PREFIX]

Reads DIR/<PREFIX><scenario>.txt, folded stacks as `bench/run.py --profile DIR` writes
them (PREFIX run1- by default), and prints one markdown row per scenario: its samples,
and the share of them whose innermost frame is aiohttp's, uvloop's loop (`run` in
chatsvc/workers.py: C code under the frame that started the loop), asyncpg's, ours
(chatsvc/), or anything else (the standard library, prometheus_client, ...).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

# The module path of a frame: "name (path/to/file.py:line)".
_FILE = re.compile(r"\(([^:()]+):\d+\)$")
COLUMNS = ("aiohttp", "uvloop's loop", "asyncpg", "chatsvc", "the rest")


def where(frame: str) -> str:
    """The column an innermost frame's sample counts in."""
    match = _FILE.search(frame)
    path = match[1] if match else ""
    if path == "chatsvc/workers.py" and frame.startswith("run "):
        return "uvloop's loop"
    for package in ("aiohttp", "asyncpg", "chatsvc"):
        if path.startswith(f"{package}/"):
            return package
    return "the rest"


def summary(profile: Path) -> tuple[int, Counter[str]]:
    """The profile's samples, and how many end in each column."""
    columns: Counter[str] = Counter()
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():  # a sample without a Python frame has an empty stack: the rest
            columns[where(stack.split(";")[-1])] += int(count)
    return sum(columns.values()), columns


def main() -> None:
    directory = Path(sys.argv[1])
    prefix = sys.argv[2] if len(sys.argv) > 2 else "run1-"
    print("| scenario | samples | " + " | ".join(COLUMNS) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS))
    for profile in sorted(directory.glob(f"{prefix}*.txt")):
        total, columns = summary(profile)
        shares = " | ".join(f"{100 * columns[column] / max(total, 1):.0f}%" for column in COLUMNS)
        print(f"| {profile.stem.removeprefix(prefix)} | {total} | {shares} |")


if __name__ == "__main__":
    main()
