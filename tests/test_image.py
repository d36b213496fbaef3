"""The image's test command (`docker compose exec web pytest`) finds every file it reads.

No Docker engine runs on our machines, so the image is checked from its
recipe: each file of the repository (what .gitignore does not ignore) must be
copied by one of the Dockerfile's COPY instructions and not kept out by
.dockerignore. A file missing from the image is how its test command broke
before (mypy reads bench/, which the image did not copy).
"""

from __future__ import annotations

import configparser
import fnmatch
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parents[1]


def patterns(ignore_file: Path) -> list[str]:
    return [
        line.strip()
        for line in ignore_file.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def git_ignores(relative: str, patterns: list[str]) -> bool:
    """.gitignore's rules, as far as ours uses them: a pattern without an inner
    slash matches a name at any depth, one with an inner slash the path from the root."""
    name = relative.rsplit("/", 1)[-1]
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if "/" in pattern:
            if fnmatch.fnmatchcase(relative, pattern.lstrip("/")):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def _docker_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore pattern as a regex: anchored at the context's root,
    '*', '?' and [...] within one path segment, '**' any number of segments."""
    segments = pattern.strip("/").split("/")
    regex = ""
    for n, segment in enumerate(segments):
        if segment == "**":
            regex += ".*" if n == len(segments) - 1 else "(?:[^/]+/)*"
            continue
        for char in re.split(r"(\[[^]]*\]|\*|\?)", segment):
            regex += {"*": "[^/]*", "?": "[^/]"}.get(char, char if char.startswith("[") else re.escape(char))
        regex += "" if n == len(segments) - 1 else "/"
    return re.compile(regex + r"\Z")


def docker_ignores(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps the file out: a pattern matching the file or
    any folder above it; the last matching pattern decides ('!' re-includes)."""
    prefixes = ["/".join(relative.split("/")[: n + 1]) for n in range(relative.count("/") + 1)]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _docker_regex(pattern.removeprefix("!"))
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


def repository_files() -> Iterator[str]:
    """Every file of the work tree that git would not ignore, relative to the root."""
    ignored = [*patterns(ROOT / ".gitignore"), ".git/"]
    for folder, subfolders, files in os.walk(ROOT):
        relative_folder = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if relative_folder == "." else f"{relative_folder}/"
        subfolders[:] = [name for name in subfolders if not git_ignores(prefix + name, ignored)]
        for name in files:
            if not git_ignores(prefix + name, ignored):
                yield prefix + name


def copied_sources() -> list[str]:
    """The sources of the Dockerfile's COPY instructions, relative to the build context."""
    sources: list[str] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.split(" ", 1)[0].upper() == "COPY":
            words = shlex.split(line)
            args = [word for word in words[1:] if not word.startswith("--")]
            sources.extend(source.rstrip("/") or "." for source in args[:-1])
    return sources


def copied(relative: str, sources: list[str]) -> bool:
    return any(source in (".", relative) or relative.startswith(f"{source}/") for source in sources)


def test_the_image_gets_every_file_of_the_repository() -> None:
    sources = copied_sources()
    excluded = patterns(ROOT / ".dockerignore")
    files = list(repository_files())
    assert "bench/run.py" in files and "tests/test_image.py" in files  # the walk sees the tree
    missing = [path for path in files if not copied(path, sources) or docker_ignores(path, excluded)]
    assert missing == [], f"the image lacks {missing}: copy them in the Dockerfile, or ignore them in git"


def test_the_ignore_rules_match_as_docker_and_git_do() -> None:
    """The matchers above against cases whose answers Docker's and git's documentation give."""
    docker = ["**/__pycache__/", ".venv/", "*.egg-info/", "**/*.py[cod]", "bench-results.json"]
    assert docker_ignores("tests/__pycache__/x.pyc", docker)
    assert docker_ignores("__pycache__/x.pyc", docker)
    assert docker_ignores(".venv/bin/python", docker)
    assert not docker_ignores("tests/.venv/x", docker)  # anchored at the root
    assert docker_ignores("chatsvc.egg-info/PKG-INFO", docker)
    assert docker_ignores("chatsvc/app.pyc", docker)
    assert not docker_ignores("chatsvc/app.py", docker)
    assert not docker_ignores("bench/bench-results.json", docker)
    assert docker_ignores("tests/x.py", ["tests/", "!tests/keep.py"])
    assert not docker_ignores("tests/keep.py", ["tests/", "!tests/keep.py"])
    git = ["__pycache__/", "*.egg-info/", "bench-results.json", "/build/"]
    assert git_ignores("tests/__pycache__", git)
    assert git_ignores("bench/bench-results.json", git)
    assert git_ignores("build", git) and not git_ignores("tests/build", git)
    assert copied("bench/run.py", ["."]) and copied("sql/chats/x.sql", ["sql"])
    assert not copied("bench/run.py", ["tests", "setup.cfg"])


def test_every_package_of_the_service_is_listed_for_the_wheel() -> None:
    """setup.cfg lists packages by hand; one left out is missing from an installed
    (non-editable) chatsvc, as in the image, while the editable install still finds it."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = {
        ".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "chatsvc").rglob("__init__.py")
    }
    assert found <= listed, found - listed
