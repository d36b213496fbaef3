"""Imports point one way: the HTTP layer on top, the database below it, leaves at the bottom.

Checked from the code, as a reader drawing the import graph would.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "chatsvc"

# Below the handlers: the data side and the leaves. None of them imports aiohttp.
BELOW_HTTP = [
    "queries", "db", "sql", "batching", "reads", "sends", "idempotency", "settings", "models",
    "migrate", "resources", "embedded", "logs", "live/frames", "live/notifications", "live/hub",
    "generated_credentials",
]  # fmt: skip


def imported(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", BELOW_HTTP)
def test_nothing_below_the_handlers_imports_aiohttp(module: str) -> None:
    assert not {name for name in imported(module) if name.split(".")[0] == "aiohttp"}


@pytest.mark.parametrize(
    ("module", "may_load"),
    [
        ("problems", {"chatsvc", "chatsvc.problems"}),  # a leaf: nothing of the service
        ("parsing", None),
        ("listening", None),
        ("openapi", None),
    ],
)
def test_request_parsing_listening_and_openapi_load_neither_the_driver_nor_the_sql(
    module: str, may_load: set[str] | None
) -> None:
    code = (
        f"import sys, chatsvc.{module}; "
        "print(' '.join(sorted(name for name in sys.modules if name == 'asyncpg' or name.startswith('chatsvc'))))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert "asyncpg" not in loaded and "chatsvc.sql" not in loaded and "chatsvc.db" not in loaded, loaded
    if may_load is not None:
        assert loaded == may_load


def test_the_openapi_document_is_built_by_create_app_not_at_import() -> None:
    """`chatsvc migrate` imports the command line, and so the app module, but builds no document."""
    code = "import chatsvc.__main__, chatsvc.app; print(chatsvc.app.openapi_document.cache_info().currsize)"
    built = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert built.strip() == "0"
