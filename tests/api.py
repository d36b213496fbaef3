"""Small helpers the API tests share: calls that must succeed, and problem checks."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

JSON = {"Content-Type": "application/json"}
# RFC 3339 with fraction optional and an explicit UTC offset.
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|\+00:00)")


async def create_chat(client: TestClient[Any, Any], title: str = "chat") -> dict[str, Any]:
    response = await client.post("/chats/", json={"title": title})
    assert response.status == 201, await response.text()
    chat: dict[str, Any] = await response.json()
    return chat


async def send(client: TestClient[Any, Any], chat_id: int, text: str = "hello") -> dict[str, Any]:
    response = await client.post(f"/chats/{chat_id}/messages/", json={"text": text})
    assert response.status == 201, await response.text()
    message: dict[str, Any] = await response.json()
    return message


async def problem(response: ClientResponse, status: int) -> dict[str, Any]:
    """Checks that response is an RFC 9457 problem with status; returns its body."""
    body_text = await response.text()
    assert response.status == status, body_text
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json(content_type=None)
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in body_text and "SELECT" not in body_text
    return body


def error_locations(body: dict[str, Any]) -> list[list[str]]:
    return [error["loc"] for error in body["errors"]]


def parse_time(value: str) -> datetime:
    assert RFC3339_UTC.fullmatch(value), value
    parsed = datetime.fromisoformat(value)  # accepts "Z" since Python 3.11
    assert parsed.utcoffset() == timedelta(0)
    return parsed
