"""The schema the migrations make, compared with a checked-in snapshot (tests/schema.txt).

A change to the schema shows in review as a change to that file: a new
migration must come with it (regenerate: `python -m tests.test_schema URL`).
Rolling back the newest migration must return exactly to the schema of the
ones before it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
from yoyo import get_backend, read_migrations

from chatsvc import migrate
from chatsvc.resources import migrations_folder

SNAPSHOT = Path(__file__).with_name("schema.txt")

# Each query yields lines; yoyo's own bookkeeping tables are not ours.
CATALOG = {
    "table": """
        SELECT c.relname || CASE c.relpersistence WHEN 'u' THEN ' unlogged' ELSE '' END
        FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT LIKE '%yoyo%'
        ORDER BY 1""",
    "column": """
        SELECT table_name || '.' || column_name || ' ' || data_type
               || CASE is_nullable WHEN 'NO' THEN ' not null' ELSE '' END
               || coalesce(' default ' || column_default, '')
               || CASE is_identity WHEN 'YES' THEN ' identity ' || identity_generation ELSE '' END
               || CASE is_generated WHEN 'ALWAYS' THEN ' generated ' || generation_expression ELSE '' END
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name NOT LIKE '%yoyo%'
        ORDER BY table_name, ordinal_position""",
    "constraint": """
        SELECT conrelid::regclass::text || ' ' || conname || ': ' || pg_get_constraintdef(oid)
        FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text NOT LIKE '%yoyo%'
          AND contype <> 'n'
        ORDER BY 1""",
    "index": """
        SELECT indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename NOT LIKE '%yoyo%' ORDER BY indexname""",
    "trigger": """
        SELECT pg_get_triggerdef(oid) FROM pg_trigger
        WHERE NOT tgisinternal AND tgrelid::regclass::text NOT LIKE '%yoyo%' ORDER BY tgname""",
    "function": r"""
        -- The body's code, without comments and with whitespace folded: comments are not schema.
        SELECT proname || '(' || pg_get_function_arguments(oid) || ') body md5 '
               || md5(btrim(regexp_replace(regexp_replace(prosrc, '--[^\n]*', '', 'g'), '\s+', ' ', 'g')))
        FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1""",
}


def snapshot(url: str) -> str:
    with psycopg.connect(url) as conn:
        return "".join(
            f"{kind} {line}\n"
            for kind, query in CATALOG.items()
            for (line,) in conn.execute(query).fetchall()
        )


def test_the_migrated_schema_is_the_snapshot(database_url: str) -> None:
    assert snapshot(database_url) == SNAPSHOT.read_text()


def test_rolling_back_the_newest_migration_returns_to_the_schema_before_it(
    make_database: Callable[[], str],
) -> None:
    rolled_back, before = make_database(), make_database()
    migrate.apply(rolled_back)
    assert migrate.rollback(rolled_back, 1) == 1
    backend = get_backend(migrate.yoyo_url(before))
    try:
        migrations = read_migrations(str(migrations_folder()))
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations)[:-1])
    finally:
        backend.connection.close()
    assert snapshot(rolled_back) == snapshot(before)
    assert snapshot(before) != SNAPSHOT.read_text()  # the newest migration changed something


if __name__ == "__main__":  # regenerate the snapshot from a migrated database
    SNAPSHOT.write_text(snapshot(sys.argv[1]))
