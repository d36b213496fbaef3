"""Where the SQL files and migrations are, installed or editable.

setup.cfg ships the top-level sql/ and migrations/ folders inside the wheel as
chatsvc/sql_files/ and chatsvc/migrations/. An editable install or a source
checkout has them at the project root instead.
"""

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def _folder(in_wheel: str, in_checkout: str) -> Path:
    for candidate in (PACKAGE / in_wheel, PACKAGE.parent / in_checkout):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"neither {PACKAGE / in_wheel} nor {PACKAGE.parent / in_checkout} exists")


def sql_folder() -> Path:
    return _folder("sql_files", "sql")


def migrations_folder() -> Path:
    return _folder("migrations", "migrations")
