"""schemathesis hooks, loaded by tests/test_schemathesis.py through SCHEMATHESIS_HOOKS.

Every schema-valid Idempotency-Key the generator draws is replaced by a fresh
one. Its short keys would otherwise be reused across cases with other bodies,
which the contract answers with 422; with unique keys a schema-valid POST has
no legitimate 422, so tests/schemathesis.toml accepts none and any refusal of
a valid title or text is reported. (Replays of a key are tests/test_idempotency.py's.)
Keys that violate the schema are left as drawn, for the negative cases.

History's `before` and `after` are separate query parameters, so the schema
cannot say "not both" (the operation's description does, and the API answers
422): a case drawn with both keeps `before` only. The same for the listing's
`before` (which pages `order=created`) and `cursor` (which pages
`order=activity`): a case keeps only the one its order pages. And a new chat's
members list each user at most once, which JSON Schema cannot say of objects
that differ in their role: a case keeps each user's first entry.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

_VALID_KEY = re.compile(r"[!-~]{1,255}")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Runs for every case of every phase (the map_* hooks miss the coverage phase's)."""
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and _VALID_KEY.fullmatch(key):
        case.headers["Idempotency-Key"] = f"schemathesis-{uuid.uuid4().hex}"
    if case.query and "before" in case.query and "after" in case.query:
        del case.query["after"]
    if case.query and case.operation.path == "/chats/":
        case.query.pop("before" if case.query.get("order") == "activity" else "cursor", None)
    members = case.body.get("members") if isinstance(case.body, dict) else None
    if isinstance(members, list) and all(
        isinstance(m, dict) and isinstance(m.get("user"), str) for m in members
    ):
        first: dict[str, Any] = {}
        for member in members:
            first.setdefault(member["user"], member)
        case.body["members"] = list(first.values())
