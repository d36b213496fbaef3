"""A small Server-Sent Events reader for the tests: frames as the wire carries them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import ClientResponse


@dataclass
class Frame:
    """One blank-line-terminated block: its fields, and its comment lines."""

    event: str | None = None
    id: str | None = None
    data: list[str] = field(default_factory=list)
    retry: str | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return orjson.loads("\n".join(self.data))


class EndOfStream(Exception):
    """The server ended the stream."""


class EventStream:
    def __init__(self, response: ClientResponse) -> None:
        assert response.status == 200, response.status
        assert response.headers["Content-Type"] == "text/event-stream"
        self.response = response

    async def frame(self, within: float = 10) -> Frame:
        frame = Frame()
        async with asyncio.timeout(within):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EndOfStream
                line = raw.decode().rstrip("\n")
                if not line:
                    return frame
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if not name:
                    frame.comments.append(value)
                elif name == "data":
                    frame.data.append(value)
                elif name in ("event", "id", "retry"):
                    setattr(frame, name, value)

    async def event(self, within: float = 10) -> Frame:
        """The next frame that is an event, skipping comments and the retry hint;
        TimeoutError if none comes within the time (heartbeats do not extend it)."""
        async with asyncio.timeout(within):
            while True:
                frame = await self.frame(within)
                if frame.event is not None:
                    return frame

    async def messages(self, count: int, within: float = 10) -> list[dict[str, Any]]:
        """The next count message events' data, checking each id: line against it."""
        messages = []
        for _ in range(count):
            frame = await self.event(within)
            assert frame.event == "message", frame
            message = frame.json()
            assert frame.id == str(message["id"])
            messages.append(message)
        return messages

    async def ends(self, within: float = 10) -> list[Frame]:
        """Reads to the end of the stream, which must come within the time; the frames before it."""
        frames = []
        try:
            async with asyncio.timeout(within):
                while True:
                    frames.append(await self.frame(within))
        except EndOfStream:
            return frames

    def close(self) -> None:
        self.response.close()
