"""Where the SQL files and migrations are, installed or editable.

setup.cfg ships the top-level sql/ and migrations/ folders as the data-only
packages chatsvc.sql_files and chatsvc.migrations. importlib.resources.files()
cannot read such namespace packages in an editable install, so we take the
folder from the package's import spec, which is right in both cases.
"""

import importlib.util
from pathlib import Path


def package_folder(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{package} is not installed; reinstall chatsvc (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations)))


def sql_folder() -> Path:
    return package_folder("chatsvc.sql_files")


def migrations_folder() -> Path:
    return package_folder("chatsvc.migrations")
