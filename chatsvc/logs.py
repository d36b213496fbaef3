"""Structured logs: one JSON object per line, and the request id every line of a request carries.

Access lines hold the method, route template, status, duration and request
id; never a body or a message's text.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

# The id of the request being served, for every log line written while serving it.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# What every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,  # tells `serve --workers N` processes apart
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()  # any line written while serving a request
        if request_id is not None:
            line["request_id"] = request_id
        line.update((key, value) for key, value in vars(record).items() if key not in _STANDARD)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(level: str) -> None:
    """JSON lines on stderr for every logger, at level."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
