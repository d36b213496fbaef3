"""Every file in sql/: it prepares against the migrated schema, and its header is true."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import asyncpg
import pytest

from chatsvc import queries
from chatsvc.app import ROUTES
from chatsvc.sql import STATEMENTS, SqlFileError, Statement, load, statement

# Header spellings of types -> PostgreSQL's internal names.
TYPE_NAMES = {"bigint": "int8", "int": "int4", "integer": "int4", "text": "text", "interval": "interval"}
HEADER_PARAM = re.compile(r"\$(\d+) \w+ (\w+)(\[\])?")


def header_params(stmt: Statement) -> dict[int, str]:
    lines = (Path(__file__).parents[1] / "sql" / stmt.source).read_text().splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("-- params:"))
    # The params line and its continuation lines (indented under it).
    params = [lines[start], *itertools.takewhile(lambda line: line.startswith("--   "), lines[start + 1 :])]
    return {
        int(n): TYPE_NAMES[type_name] + array
        for n, type_name, array in HEADER_PARAM.findall(" ".join(params))
    }


@pytest.mark.parametrize("stmt", STATEMENTS.values(), ids=STATEMENTS.keys())
async def test_statement_prepares_with_the_parameters_its_header_names(
    db: asyncpg.Connection, stmt: Statement
) -> None:
    prepared = await db.prepare(stmt.text)
    actual = {n: param.name for n, param in enumerate(prepared.get_parameters(), start=1)}
    assert actual == header_params(stmt)
    columns = prepared.get_attributes()
    if stmt.cardinality == ":val":
        assert len(columns) == 1
    elif stmt.cardinality == ":exec":
        assert columns == ()
    else:
        assert columns


def test_every_statement_is_used_by_queries() -> None:
    used = {value for name, value in vars(queries).items() if name.isupper() and isinstance(value, str)}
    assert {stmt.text for stmt in STATEMENTS.values()} == used


def test_statement_lookup_checks_the_cardinality() -> None:
    with pytest.raises(SqlFileError, match="is :one"):
        statement("create_chat_once", ":many")
    with pytest.raises(SqlFileError, match="no statement"):
        statement("no_such_statement", ":one")


GOOD = (
    "-- name: {name} :one\n-- serves: GET /x\n-- Does a thing.\n-- params: none\n-- returns: x\n"
    "-- uses: nothing\nSELECT 1;\n"
)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.sql": "SELECT 1;"}, "first line"),
        ({"a.sql": "-- name: a :some\n-- params: none\n-- returns: x\n-- uses: y\nSELECT 1;"}, "first line"),
        (
            {"a.sql": "-- name: a :one\n-- serves: GET /x\n-- returns: x\n-- uses: y\nSELECT 1;"},
            "lacks -- params:",
        ),
        ({"a.sql": GOOD.format(name="a").replace("-- serves: GET /x\n", "")}, "lacks -- serves:"),
        ({"a.sql": GOOD.format(name="a").replace("GET /x", "the app")}, "neither 'METHOD /path'"),
        (
            {"a.sql": "-- name: a :one\n-- serves: GET /x\n-- params: none\n-- returns: x\n-- uses: y\n"},
            "no statement",
        ),
        ({"a.sql": GOOD.format(name="a").replace("SELECT 1;", "SELECT 1; SELECT 2;")}, "one statement"),
        ({"a.sql": GOOD.format(name="b")}, "must be named b.sql"),
        ({"x/a.sql": GOOD.format(name="a"), "y/a.sql": GOOD.format(name="a")}, "also in"),
    ],
)
def test_a_bad_file_fails_loading_with_its_name(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    with pytest.raises(SqlFileError, match=message) as error:
        load(tmp_path)
    assert ".sql" in str(error.value)


def test_a_good_folder_loads() -> None:
    assert set(STATEMENTS) >= {
        "create_chat",
        "create_messages",
        "delete_chat",
        "get_chats_with_latest_messages",
    }
    for stmt in STATEMENTS.values():
        assert not stmt.text.startswith("--") and stmt.text.endswith(";")


# Routes that never touch the database.
WITHOUT_SQL = {"/healthz", "/metrics", "/openapi.json", "/docs", "/docs/assets/{name}"}


def test_every_route_that_touches_the_database_is_served_by_a_file_and_every_served_route_exists() -> None:
    routes = {(method, path) for path, handlers in ROUTES.items() for method in handlers}
    served = {route for stmt in STATEMENTS.values() for route in stmt.routes}
    assert served <= routes, served - routes  # a serves: line naming no route of the app
    unserved = {(method, path) for method, path in routes - served if path not in WITHOUT_SQL}
    assert unserved == set(), unserved
    for stmt in STATEMENTS.values():  # what no route runs names what does
        assert stmt.routes or all(entry.startswith("chatsvc ") for entry in stmt.serves), stmt.source
