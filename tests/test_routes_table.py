"""The README's table of routes (its Layout section) is what the code says: for every
route, its handler and the SQL files that serve it, so a reader can follow it."""

from __future__ import annotations

from pathlib import Path

from chatsvc.app import ROUTES
from chatsvc.sql import STATEMENTS

README = Path(__file__).parents[1] / "README.md"
HEADER = "| route | handler | SQL (`-- serves:`) |"


def expected_rows() -> list[str]:
    rows = []
    for path, methods in ROUTES.items():
        for method, route in methods.items():
            handler = f"`{route.handler.__module__.removeprefix('chatsvc.')}.{route.handler.__name__}`"
            files = sorted(stmt.source for stmt in STATEMENTS.values() if (method, path) in stmt.routes)
            sql = ", ".join(f"`{source}`" for source in files) or "none"
            rows.append(f"| `{method} {path}` | {handler} | {sql} |")
    return rows


def test_the_readme_routes_table_is_what_the_code_says() -> None:
    lines = README.read_text().splitlines()
    start = lines.index(HEADER) + 2  # past the header and its rule
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    assert table == expected_rows()
