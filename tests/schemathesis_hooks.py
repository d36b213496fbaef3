"""schemathesis hooks, loaded by tests/test_schemathesis.py through SCHEMATHESIS_HOOKS.

Every schema-valid Idempotency-Key the generator draws is replaced by a fresh
one. Its short keys would otherwise be reused across cases with other bodies,
which the contract answers with 422; with unique keys a schema-valid POST has
no legitimate 422, so tests/schemathesis.toml accepts none and any refusal of
a valid title or text is reported. (Replays of a key are tests/test_idempotency.py's.)
Keys that violate the schema are left as drawn, for the negative cases.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

_VALID_KEY = re.compile(r"[!-~]{1,255}")


@schemathesis.hook
def map_headers(context: Any, headers: dict[str, Any] | None) -> dict[str, Any] | None:
    if headers is not None:
        key = headers.get("Idempotency-Key")
        if isinstance(key, str) and _VALID_KEY.fullmatch(key):
            headers["Idempotency-Key"] = f"schemathesis-{uuid.uuid4().hex}"
    return headers
