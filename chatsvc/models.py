"""Request bodies and the resources the API answers with.

Request models validate strictly (no coercion: 123 is not a title) and ignore
unknown fields. Responses are rendered by PostgreSQL in the SQL files; the
response models here describe them for readers, tests and /openapi.json,
whose schemas are generated from this module.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)


def _strip(value: Any) -> Any:
    # str.strip(), not pydantic's str_strip_whitespace: the contract defines
    # surrounding whitespace as what Python strips (it includes U+001C..U+001F).
    return value.strip() if isinstance(value, str) else value


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


TITLE_MAX = 200
TEXT_MAX = 5000

# What str.strip() removes, spelled as escapes a JSON Schema (ECMA-262) pattern
# and Python's re both read. Every such character lies in the Basic
# Multilingual Plane (the highest is U+3000; a test checks all of Unicode), so
# start-up scans 65,536 code points, not 1,114,112.
WHITESPACE = "".join(chr(code) for code in range(0x10000) if chr(code).isspace())
_SPACE = "".join(f"\\u{ord(char):04x}" for char in WHITESPACE)


def trimmed_pattern(maximum: int) -> str:
    """A pattern for "1 to maximum code points once surrounding whitespace is removed, no NUL".

    The schema's own words for what the validators below do: optional
    whitespace, a first and a last character that are not whitespace with at
    most maximum - 2 characters between them, optional whitespace.
    """
    space, solid = f"[{_SPACE}]", f"[^{_SPACE}\\u0000]"
    return f"^{space}*{solid}(?:[^\\u0000]{{0,{maximum - 2}}}{solid})?{space}*$"


def _trimmed_string(maximum: int, example: str) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "type": "string",
            "pattern": trimmed_pattern(maximum),
            "description": f"1 to {maximum} characters (Unicode code points) once surrounding whitespace"
            " is removed; it is stored trimmed. No NUL character.",
            "examples": [example],
        }
    )


# Stripped first, then 1 to N code points, and no NUL.
Title = Annotated[
    str,
    BeforeValidator(_strip),
    StringConstraints(min_length=1, max_length=TITLE_MAX),
    AfterValidator(_no_nul),
    _trimmed_string(TITLE_MAX, "Weekend plans"),
]
Text = Annotated[
    str,
    BeforeValidator(_strip),
    StringConstraints(min_length=1, max_length=TEXT_MAX),
    AfterValidator(_no_nul),
    _trimmed_string(TEXT_MAX, "Hike on Saturday?"),
]


# An integer in a request body. JSON Schema's "integer" (the schema's type) is a
# number with no fraction, however written: 5.0 is 5 (some encoders write it
# so); 1.5 stays a float for the strict int check to refuse, as do "5" and true.
Integer = Annotated[int, BeforeValidator(_integral)]


USER_ID_PATTERN = "^[!-~]{1,255}$"
MEMBERS_MAX = 100

# A user id: the sub of a user's token, 1 to 255 visible ASCII characters.
UserId = Annotated[
    str,
    StringConstraints(pattern=USER_ID_PATTERN),
    Field(description="A user id: 1 to 255 visible ASCII characters.", examples=["alice"]),
]
Role = Literal["owner", "member"]


class RequestBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class MemberSpec(RequestBody):
    user: UserId
    role: Role = "member"


class ChatCreate(RequestBody):
    title: Title
    members: list[MemberSpec] = Field(
        default_factory=list,
        max_length=MEMBERS_MAX,
        description="The chat's members, each user at most once. A user who creates a chat is its"
        " owner whatever this says; a chat the server creates has exactly these members.",
    )

    @field_validator("members")
    @classmethod
    def _each_user_once(cls, members: list[MemberSpec]) -> list[MemberSpec]:
        users = [member.user for member in members]
        if len(set(users)) != len(users):
            raise ValueError("must list each user at most once")
        return members


class MessageCreate(RequestBody):
    text: Text
    author: UserId | None = Field(
        None,
        description="Only the server's: the user the message is from (any user id, member or not);"
        " null or absent for a message from the application. A user's messages are always theirs:"
        " for a user this field is ignored.",
    )


class MessageEdit(RequestBody):
    text: Text


class MemberUpdate(RequestBody):
    role: Role = "member"


class ReadMark(RequestBody):
    message_id: Integer = Field(
        ge=0,
        le=2**63 - 1,
        description="Every message with an id up to this one counts as read (any id, existing or not);"
        " a marker never moves back.",
    )


class Message(BaseModel):
    id: int
    chat_id: int
    author: str | None = Field(description="Who sent it; null for a message from the application.")
    text: str
    created_at: datetime
    edited_at: datetime | None = Field(description="When its text last changed; null if never edited.")


class ReadState(BaseModel):
    chat_id: int
    last_read_id: int


class Member(BaseModel):
    user: str
    role: Role
    joined_at: datetime


class MemberPage(BaseModel):
    """GET /chats/{chat_id}/members/: one page, by user id (bytewise)."""

    members: list[Member]
    next_after: str | None = Field(
        description="Pass as `after` for the next page; null when no member follows."
    )


class Chat(BaseModel):
    id: int
    title: str
    created_at: datetime


def _absent_for_the_server(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # absent for the server, never null


UNREAD_MAX = 1000  # unread counts stop here: 1000 means "1000 or more"


class ChatSummary(Chat):
    """A chat as listed, and as GET /chats/{chat_id} shows it: with its newest message and,
    for a user, their read state."""

    last_message: Message | None = Field(description="The chat's newest message; null when it has none.")
    last_read_id: int = Field(
        0,
        description="Users only: the caller's read marker (0 when never marked).",
        json_schema_extra=_absent_for_the_server,
    )
    unread_count: int = Field(
        0,
        ge=0,
        le=UNREAD_MAX,
        description="Users only: messages above the read marker that the caller did not write,"
        f" exact up to {UNREAD_MAX - 1}; {UNREAD_MAX} means {UNREAD_MAX} or more.",
        json_schema_extra=_absent_for_the_server,
    )


class ChatWithMessages(ChatSummary):
    messages: list[Message]


class ChatPage(BaseModel):
    """GET /chats/: one page, newest first."""

    chats: list[ChatSummary]
    next_before: int | None = Field(
        description="Pass as `before` for the next page; null when no older chat exists."
    )


class ChatActivityPage(BaseModel):
    """GET /chats/?order=activity: one page, most recently active first."""

    chats: list[ChatSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null when no further chat exists."
    )


class MessagePage(BaseModel):
    """GET /chats/{chat_id}/messages/: one page, oldest first."""

    messages: list[Message]
    has_more: bool = Field(
        description="Whether more messages exist beyond this page in the paging direction."
    )


class SearchPage(BaseModel):
    """One page of GET /search/messages."""

    messages: list[Message] = Field(description="The messages found, newest first.")
    next_before: int | None = Field(
        description="Pass as `before` for the next page; null when this is the last."
    )


class Status(BaseModel):
    status: str = Field(examples=["ok"])


class Problem(BaseModel):
    """An error (RFC 9457, application/problem+json)."""

    type: str = Field(examples=["about:blank"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["Chat 7 does not exist."])


class FieldError(BaseModel):
    loc: list[str | int] = Field(examples=[["body", "title"]])
    msg: str = Field(examples=["must hold at least 1 character(s) after trimming surrounding whitespace"])


class ValidationProblem(Problem):
    """A 422: the request's shape is right but a field is not."""

    errors: list[FieldError]
