"""Loads the hand-written statements in sql/ once and checks every header.

Each file holds one statement under a header a DBA can read without Python::

    -- name: delete_chat :val
    -- serves: DELETE /chats/{chat_id}
    -- <what it does, one or more lines>
    -- params: $1 chat_id bigint
    -- returns: the deleted chat's id, or no row when it did not exist
    -- uses: chats_pkey

``serves`` names what runs the statement, entries separated by "; ": routes
("METHOD /template", as the app declares them, a note in parentheses
allowed) or, for a statement no route runs, the command or part of the
service that does ("chatsvc purge-keys"). tests/test_sql.py checks that every
route that touches the database is served by some file, and that every route
named exists. The cardinality tag says which asyncpg call runs it: ``:one`` (fetchrow),
``:many`` (fetch), ``:val`` (fetchval), ``:exec`` (execute). The text after
the header is sent to PostgreSQL exactly as written, ``$n`` placeholders and
all, so what the DBA reads is what runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from chatsvc.resources import sql_folder

Cardinality = Literal[":one", ":many", ":val", ":exec"]

_NAME = re.compile(r"^-- name: (?P<name>[a-z_][a-z0-9_]*) (?P<cardinality>:one|:many|:val|:exec)$")
_REQUIRED_KEYS = ("serves", "params", "returns", "uses")
_ROUTE = re.compile(r"(GET|HEAD|POST|PUT|PATCH|DELETE) (/\S*)( \(.+\))?")


class SqlFileError(Exception):
    """A file in sql/ whose header does not follow the format above."""


@dataclass(frozen=True, slots=True)
class Statement:
    name: str
    cardinality: Cardinality
    text: str
    source: str  # path relative to sql/, for error messages
    serves: tuple[str, ...] = ()  # what runs it: "METHOD /template" routes, or a command

    @property
    def routes(self) -> frozenset[tuple[str, str]]:
        """The (method, path template) of each route among serves."""
        return frozenset(
            (match[1], match[2]) for entry in self.serves if (match := _ROUTE.fullmatch(entry)) is not None
        )


def parse(source: str, content: str) -> Statement:
    lines = content.strip().splitlines()
    match = _NAME.match(lines[0]) if lines else None
    if match is None:
        raise SqlFileError(f"{source}: first line must be '-- name: <snake_case> :one|:many|:val|:exec'")
    header = [line for line in lines if line.startswith("--")]
    keys = {line[3:].split(":", 1)[0] for line in header[1:] if ":" in line}
    missing = [key for key in _REQUIRED_KEYS if key not in keys]
    if missing:
        raise SqlFileError(f"{source}: header lacks {', '.join(f'-- {key}:' for key in missing)}")
    serves = tuple(
        entry.strip()
        for line in header
        if line.startswith("-- serves:")
        for entry in line.removeprefix("-- serves:").split(";")
    )
    for entry in serves:
        if not (_ROUTE.fullmatch(entry) or entry.startswith("chatsvc ")):
            raise SqlFileError(f"{source}: serves '{entry}' is neither 'METHOD /path' nor 'chatsvc ...'")
    body = "\n".join(line for line in lines if not line.startswith("--")).strip()
    if not body:
        raise SqlFileError(f"{source}: no statement after the header")
    if body.rstrip(";").count(";"):
        raise SqlFileError(f"{source}: one statement per file")
    cardinality: Cardinality = match["cardinality"]  # type: ignore[assignment]
    return Statement(match["name"], cardinality, body, source, serves)


def load(folder: Path | None = None) -> Mapping[str, Statement]:
    """Every statement in the folder's .sql files, by name; file name == statement name."""
    folder = sql_folder() if folder is None else folder
    statements: dict[str, Statement] = {}
    for path in sorted(folder.rglob("*.sql")):
        source = path.relative_to(folder).as_posix()
        statement = parse(source, path.read_text(encoding="utf-8"))
        if source.rsplit("/", 1)[-1] != f"{statement.name}.sql":
            raise SqlFileError(f"{source}: file must be named {statement.name}.sql")
        if statement.name in statements:
            raise SqlFileError(f"{source}: {statement.name} is also in {statements[statement.name].source}")
        statements[statement.name] = statement
    return MappingProxyType(statements)


STATEMENTS = load()


def statement(name: str, cardinality: Cardinality) -> str:
    """The text of a statement, checked against the cardinality its caller expects."""
    found = STATEMENTS.get(name)
    if found is None:
        raise SqlFileError(f"no statement named {name} in sql/")
    if found.cardinality != cardinality:
        raise SqlFileError(f"{found.source} is {found.cardinality}, its caller expects {cardinality}")
    return found.text
