"""The triggers' NOTIFY payloads (migrations/0003.notify-chat-events.sql) turned into events.

    message <chat_id> <message_id> <part>/<parts> <piece of the Message JSON>
    chat_deleted <chat_id>
    member_removed <chat_id> <user_id>      (migrations/0005.members-and-authors.sql)
    message_updated <chat_id> <event_id> <part>/<parts> <piece of the Message JSON>
    message_deleted <chat_id> <event_id> <message_id>   (migrations/0007)
    listener_check <token>      (sql/events/notify_listener_check.sql: a listener's self-check)

A Message JSON longer than one notification (NOTIFY's 8000 bytes) comes in
consecutive pieces, reassembled here.
"""

from __future__ import annotations

from collections.abc import Callable

from chatsvc.live.frames import (
    Event,
    chat_deleted_event,
    member_removed_event,
    message_deleted_event,
    message_event,
    message_updated_event,
)

CHANNEL = "chatsvc_events"  # the triggers' channel
LISTENER_CHECK = "listener_check"  # a listener proving it hears (chatsvc/live/hub.py)


def listener_check(token: str) -> str:
    """The payload of a listener's self-check with that token."""
    return f"{LISTENER_CHECK} {token}"


class Notifications:
    """Parses payloads in the order they arrive, holding the pieces of long messages."""

    def __init__(self) -> None:
        self._pieces: dict[int, list[str]] = {}  # pieces of Message JSON so far, by event id

    def clear(self) -> None:
        """Forgets partial messages (the listening connection is gone: the rest will not come)."""
        self._pieces.clear()

    def feed(self, payload: str, followed: Callable[[int], bool]) -> tuple[int, Event] | None:
        """(chat id, event) once payload completes one; None for a piece, or a message of a
        chat that followed() says nobody follows. ValueError: not a payload of our triggers."""
        kind, _, rest = payload.partition(" ")
        if kind == LISTENER_CHECK:  # another process's listener checking itself
            return None
        if kind == "chat_deleted":
            chat_id = int(rest)
            return chat_id, chat_deleted_event(chat_id)
        if kind == "member_removed":
            chat, user = rest.split(" ", 1)
            return int(chat), member_removed_event(user)
        if kind == "message_deleted":
            chat, event, message = rest.split(" ")
            chat_id = int(chat)
            if not followed(chat_id):
                return None
            return chat_id, message_deleted_event(int(event), chat_id, int(message))
        if kind not in ("message", "message_updated"):
            raise ValueError(kind)
        chat, event, part, piece = rest.split(" ", 3)
        chat_id, event_id = int(chat), int(event)
        if not followed(chat_id):
            return None
        index, count = part.split("/")
        if count != "1":  # a long message arrives in pieces, consecutively
            if index == "1":
                self._pieces[event_id] = []
            pieces = self._pieces.get(event_id)
            if pieces is None:  # its first piece came before anyone followed the chat
                return None
            pieces.append(piece)
            if index != count:
                return None
            piece = "".join(self._pieces.pop(event_id))
        if kind == "message":
            return chat_id, message_event(event_id, piece)
        return chat_id, message_updated_event(event_id, piece)
