"""Who may do what in a chat: the contract's permission table, and nowhere else.

Each statement that acts on a chat for a caller is given the caller's user id
(null for the server) and the member roles that RULES allow for its action,
and does its work only when the caller is the server or holds one of those
roles; otherwise it does nothing and reports the caller's role, from which
refusal() makes the answer. So the table below decides, and the database
checks membership in the same statement that acts (no second round trip, no
window between the check and the write).

A user who is not a member gets exactly the answer for a chat that does not
exist (chat ids reveal nothing); 403 is only for members whose role lacks
the right.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from chatsvc.callers import Caller
from chatsvc.problems import NotFound, Problem

OWNER, MEMBER = "owner", "member"
ROLES = (OWNER, MEMBER)


class Action(Enum):
    READ = "read the chat, its messages, history and members, and follow its events"
    SEND = "send a message"
    EDIT_MESSAGE = "edit another user's message"
    DELETE_MESSAGE = "delete another user's message"
    MANAGE_MEMBERS = "add members, change roles or remove others"
    LEAVE = "leave the chat"
    DELETE_CHAT = "delete the chat"
    MARK_READ = "mark the chat read"


@dataclass(frozen=True)
class Rule:
    server: bool  # whether the server may
    roles: tuple[str, ...]  # which member roles may
    # For actions on a message: which member roles may on a message they wrote
    # (roles may on any message).
    own_roles: tuple[str, ...] = ()


# The contract's table (Members and permissions). "Leave" does not apply to the
# server, which is no member: it removes others. Nor does "mark read": the
# server has no read marker.
RULES: dict[Action, Rule] = {
    Action.READ: Rule(server=True, roles=ROLES),
    Action.SEND: Rule(server=True, roles=ROLES),
    Action.EDIT_MESSAGE: Rule(server=True, roles=(), own_roles=ROLES),
    Action.DELETE_MESSAGE: Rule(server=True, roles=(OWNER,), own_roles=ROLES),
    Action.MANAGE_MEMBERS: Rule(server=True, roles=(OWNER,)),
    Action.LEAVE: Rule(server=False, roles=ROLES),
    Action.DELETE_CHAT: Rule(server=True, roles=(OWNER,)),
    Action.MARK_READ: Rule(server=False, roles=ROLES),
}


class Forbidden(Problem):
    status = 403


def chat_not_found(chat_id: int) -> NotFound:
    """What a missing chat gets, and so what a user who is not its member gets."""
    return NotFound(f"Chat {chat_id} does not exist.")


def roles_allowed(action: Action) -> list[str]:
    """The member roles allowed to do it: bound to the statement that does it."""
    return list(RULES[action].roles)


def own_roles_allowed(action: Action) -> list[str]:
    """The member roles allowed to do it to a message of their own."""
    return list(RULES[action].own_roles)


def allows(caller: Caller, role: str | None, action: Action) -> bool:
    """Whether the caller, in that role in the chat (None: not a member), may do it."""
    rule = RULES[action]
    return rule.server if caller.is_server else role in rule.roles


def refusal(caller: Caller, role: str | None, action: Action, chat_id: int) -> Problem:
    """The answer for a caller the statement did not act for: 404 unless they are a member."""
    if caller.is_server or role is None:
        return chat_not_found(chat_id)  # for the server: the chat does not exist
    return Forbidden(f"As a {role} of chat {chat_id} you may not {action.value}.")


def message_not_found(chat_id: int, message_id: int) -> NotFound:
    """What a missing chat or message gets, and so what a user who is not a member gets."""
    return NotFound(f"Chat {chat_id} holds no message {message_id}.")


def message_refusal(
    caller: Caller, role: str | None, found: bool, action: Action, chat_id: int, message_id: int
) -> Problem:
    """The answer for an action on a message the statement did not do: 404 unless the
    caller is a member and the message exists (then 403: it is another user's)."""
    if caller.is_server or role is None or not found:
        return message_not_found(chat_id, message_id)
    return Forbidden(f"As a {role} of chat {chat_id} you may not {action.value}.")


def server_refusal(action: Action) -> Problem:
    """What the server gets for an action only users may do (RULES: server=False)."""
    assert not RULES[action].server
    return Forbidden(f"The server may not {action.value}: it acts as no user.")
