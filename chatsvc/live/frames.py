"""Server-Sent Events framing: each frame encoded once, for every stream that sends it."""

from __future__ import annotations

from dataclasses import dataclass

# Tells EventSource to reconnect after 1 s (browsers default to about 3 s).
OPENING = b"retry: 1000\n\n"
HEARTBEAT = b": keep-alive\n\n"
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each event on at once
}


@dataclass(frozen=True, slots=True)
class Event:
    """An SSE frame, encoded once for every subscriber."""

    frame: bytes
    # The event's id: a message's id for `message`, an edit's or deletion's for the
    # others (migrations/0007); 0 for frames without one.
    event_id: int = 0
    final: bool = False  # the stream ends after this frame
    # Set for a member's removal: the frame ends only that user's streams on the chat.
    user: str | None = None


def message_event(message_id: int, message_json: str) -> Event:
    return Event(b"id: %d\nevent: message\ndata: %s\n\n" % (message_id, message_json.encode()), message_id)


def message_updated_event(event_id: int, message_json: str) -> Event:
    """An edit: the Message as edited, under the edit's event id."""
    return Event(
        b"id: %d\nevent: message_updated\ndata: %s\n\n" % (event_id, message_json.encode()), event_id
    )


def message_deleted_event(event_id: int, chat_id: int, message_id: int) -> Event:
    return Event(
        b'id: %d\nevent: message_deleted\ndata: {"chat_id":%d,"id":%d}\n\n' % (event_id, chat_id, message_id),
        event_id,
    )


def chat_deleted_event(chat_id: int) -> Event:
    return Event(b'event: chat_deleted\ndata: {"chat_id":%d}\n\n' % chat_id, final=True)


def member_removed_event(user: str) -> Event:
    """Ends a removed member's streams: a comment, and the end (reconnecting gets 404)."""
    return Event(b": you are no longer a member of this chat\n\n", final=True, user=user)


def _ending(reason: str) -> Event:
    return Event(f": {reason}; reconnect with Last-Event-ID to resume\n\n".encode(), final=True)


TOO_SLOW = _ending("this stream fell too far behind")
INTERRUPTED = _ending("live updates were interrupted")
SHUTTING_DOWN = _ending("the service is shutting down")
