"""The OpenAPI 3.1 document of every route, from the pydantic models in chatsvc.models.

Schemas come from the models that validate requests and describe responses,
and parameters from their declarations in chatsvc.parameters, so there is no
second copy to drift. Each route's Operation (which statuses it answers, its
parameters, its links) is declared next to its handler, in the handler's
module, as a Route; this module holds the shapes they share and builds the
document from the app's route table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chatsvc import models
from chatsvc.parsing import BIGINT_MAX, MAX_BODY_BYTES
from chatsvc.problems import Handler

PROBLEM_JSON = "application/problem+json"

REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    models.ChatCreate,
    models.MessageCreate,
    models.MessageEdit,
    models.MemberUpdate,
    models.ReadMark,
)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    models.Chat,
    models.ChatWithMessages,
    models.ChatPage,
    models.ChatActivityPage,
    models.Message,
    models.ReadState,
    models.MessagePage,
    models.SearchPage,
    models.Member,
    models.MemberPage,
    models.Status,
    models.Problem,
    models.ValidationProblem,
)

# The path a route is documented under: collections with their trailing slash,
# as the contract writes them. Every route answers both ways.
DOCUMENTED_PATH = {"/chats": "/chats/", "/chats/{chat_id}/messages": "/chats/{chat_id}/messages/"}


def documented_path(route_path: str) -> str:
    return DOCUMENTED_PATH.get(route_path, route_path)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def path_id(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": BIGINT_MAX},
    }


CHAT_ID = path_id("chat_id", "The chat's id.")
MESSAGE_ID = path_id("message_id", "The message's id.")
CREATED_HEADERS = {
    "Location": {"description": "Where the created resource is.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true` when this answers an Idempotency-Key retry and nothing new was stored.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}

# What each error status means on the routes that can answer it.
PROBLEMS = {
    400: "The body is not valid JSON, or is empty; or the Idempotency-Key header is malformed.",
    401: "No credential, a malformed one, or one that is refused; `detail` says which.",
    403: "The caller is a member of the chat but its role may not do this.",
    404: "No such chat or message (or the chat an Idempotency-Key created has been deleted since).",
    408: "The body did not arrive in time.",
    413: f"The body is larger than {MAX_BODY_BYTES} bytes.",
    415: "The body is not JSON (Content-Type: application/json), or is compressed.",
    422: "A field, query parameter or header is not valid; `errors` names each.",
    429: "This user has written faster than its limit allows (CHATSVC_USER_WRITE_RATE per second,"
    " bursts of CHATSVC_USER_WRITE_BURST); nothing was stored. Retry after `Retry-After` seconds.",
    503: "The database is unavailable or the service is shutting down; retry after `Retry-After` seconds.",
}
BODY_PROBLEMS = (400, 404, 408, 413, 415, 422, 503)

# Every method but these is a write: on a protected route, a user's write is charged
# to that user's write limit (chatsvc/limits.py), so it may answer 429.
READ_METHODS = frozenset({"GET", "HEAD"})


def is_write(method: str) -> bool:
    return method.upper() not in READ_METHODS


EVENT_STREAM = (
    "An event stream: `message` (`id:` the message id, data the Message JSON), `message_updated`"
    " (`id:` the edit's event id, data the Message as edited), `message_deleted` (`id:` the"
    ' deletion\'s event id, data `{"chat_id": N, "id": M}`), then `chat_deleted` (data'
    ' `{"chat_id": N}`) and the end when the chat is deleted; a comment at least every 15 s.'
    " Event ids increase in the order the changes commit. A fresh stream carries new events"
    " only; with `Last-Event-ID` or `after` it first carries what changed after that event id,"
    " merged to the chat's current state (an edited message with its latest text), then live ones."
)


# Who may call a route: anyone, or callers with a credential (chatsvc/callers.py)
# in the Authorization header, or (event streams) also in ?access_token=.
Access = Literal["public", "bearer", "bearer or query"]

SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A server key (CHATSVC_SERVER_KEYS), or a user token: a JWT signed with HS256"
        " by one of CHATSVC_JWT_SECRETS, its `sub` the user id (`chatsvc token USER` prints one).",
    },
    "access_token": {
        "type": "apiKey",
        "in": "query",
        "name": "access_token",
        "description": "The same credential, for event streams (browsers' EventSource cannot send headers).",
    },
}
_SECURITY: dict[Access, list[dict[str, list[str]]]] = {
    "public": [],
    "bearer": [{"bearer": []}],
    "bearer or query": [{"bearer": []}, {"access_token": []}],
}


@dataclass(frozen=True)
class Operation:
    summary: str
    ok: tuple[int, str, Any]  # status, description, response content (media type -> schema) or None
    problems: tuple[int, ...] = (503,)
    parameters: tuple[Mapping[str, Any], ...] = ()
    body: type[BaseModel] | None = None
    ok_headers: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ("chats",)
    # OpenAPI links from the success answer to what a client does next with it.
    links: Mapping[str, Any] = field(default_factory=dict)
    # What the summary and the parameters cannot say, such as a rule across parameters.
    description: str = ""
    # Protected unless declared otherwise: a new route needs a credential by default.
    access: Access = "bearer"
    # Other success statuses with the same content: (status, description).
    also_ok: tuple[tuple[int, str], ...] = ()
    body_required: bool = True


def _link(operation_id: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": parameters}


# What a created chat or message leads to; tools such as schemathesis follow
# these to test sequences (create, then read, send, delete).
CHAT_LINKS = {
    "GetChat": _link("get_chats_chat_id", chat_id="$response.body#/id"),
    "SendMessage": _link("post_chats_chat_id_messages", chat_id="$response.body#/id"),
    "ListMessages": _link("get_chats_chat_id_messages", chat_id="$response.body#/id"),
    "DeleteChat": _link("delete_chats_chat_id", chat_id="$response.body#/id"),
}
MESSAGE_LINKS = {
    name: _link(operation_id, chat_id="$response.body#/chat_id", message_id="$response.body#/id")
    for name, operation_id in (
        ("GetMessage", "get_chats_chat_id_messages_message_id"),
        ("EditMessage", "patch_chats_chat_id_messages_message_id"),
        ("DeleteMessage", "delete_chats_chat_id_messages_message_id"),
    )
}


def json_content(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


# One event of the stream: before OpenAPI 3.2 (itemSchema), the schema of an
# event-stream media type describes each event, as tools read it.
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"enum": ["message", "message_updated", "message_deleted", "chat_deleted"]},
        "id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "The event id (a message event's is the message id); none for chat_deleted.",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": 'The Message JSON (message, message_updated), {"chat_id": ID, "id": MESSAGE_ID}'
            ' (message_deleted), or {"chat_id": ID} (chat_deleted).',
        },
        "retry": {"type": "integer", "description": "Reconnect after this many milliseconds."},
    },
}


def _operation_id(path: str, method: str) -> str:
    words = [part.strip("{}") for part in path.strip("/").replace(".", "_").split("/") if part]
    return "_".join([method.lower(), *words]) or method.lower()


# With a replica configured (chatsvc/replica.py): every protected write answers
# its commit position, and every protected read but an event stream may be
# served by the replica, as fresh as the position sent back asks.
POSITION_HEADER = "Chatsvc-Position"
POSITION_PATTERN = "^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$"
_POSITION_ANSWERED = {
    "description": "With a read replica configured: this write's commit position. Sent back on a"
    " later read, it makes that read show this write (else the read may be as stale as the replica).",
    "schema": {"type": "string", "pattern": POSITION_PATTERN},
}
POSITION_PARAMETER: Mapping[str, Any] = {
    "name": POSITION_HEADER,
    "in": "header",
    "required": False,
    "description": "A `Chatsvc-Position` a write answered: the read then shows that write (with a read"
    " replica configured, it waits for the replica or reads the primary; any other value reads the"
    " primary). Without it a read may be as stale as the replica's lag.",
    "schema": {"type": "string", "examples": ["0/16B3748"]},
}


def replica_may_serve(method: str, operation: Operation) -> bool:
    return method == "GET" and operation.access == "bearer"


def _responses(method: str, operation: Operation) -> dict[str, Any]:
    status, description, content = operation.ok
    ok: dict[str, Any] = {"description": description}
    if content is not None:
        ok["content"] = content
    headers = dict(operation.ok_headers)
    if is_write(method) and operation.access != "public":
        headers[POSITION_HEADER] = _POSITION_ANSWERED
    if headers:
        ok["headers"] = headers
    if operation.links:
        ok["links"] = dict(operation.links)
    responses: dict[str, Any] = {str(status): ok}
    for other, other_description in operation.also_ok:
        responses[str(other)] = {**ok, "description": other_description}
    problems = operation.problems
    if operation.access != "public":  # every protected route checks credentials; writes are limited
        problems = (401, *problems, *((429,) if is_write(method) else ()))
    for problem in sorted(problems):
        model = models.ValidationProblem if problem == 422 else models.Problem
        answer: dict[str, Any] = {
            "description": PROBLEMS[problem],
            "content": {PROBLEM_JSON: {"schema": _ref(model)}},
        }
        if problem == 503:
            answer["headers"] = {"Retry-After": {"description": "Seconds.", "schema": {"type": "string"}}}
        if problem == 429:
            answer["headers"] = {
                "Retry-After": {
                    "description": "Whole seconds (at least 1) until a write by this user will be accepted again.",
                    "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
                }
            }
        if problem == 401:
            answer["headers"] = {
                "WWW-Authenticate": {
                    "description": '`Bearer`, plus `error="invalid_token"` when a credential was sent.',
                    "schema": {"type": "string"},
                }
            }
        responses[str(problem)] = answer
    return responses


def _describe(path: str, method: str, operation: Operation) -> dict[str, Any]:
    described: dict[str, Any] = {
        "operationId": _operation_id(path, method),
        "summary": operation.summary,
        "tags": list(operation.tags),
        "responses": _responses(method, operation),
        "security": _SECURITY[operation.access],
    }
    if operation.description:
        described["description"] = operation.description
    parameters = [
        *operation.parameters,
        *((POSITION_PARAMETER,) if replica_may_serve(method, operation) else ()),
    ]
    if parameters:
        described["parameters"] = [dict(parameter) for parameter in parameters]
    if operation.body is not None:
        described["requestBody"] = {
            "required": operation.body_required,
            "description": f"JSON, at most {MAX_BODY_BYTES} bytes; unknown fields are ignored.",
            "content": json_content(operation.body),
        }
    return described


class Route(NamedTuple):
    """A route's handler and its OpenAPI operation, declared together in the handler's module."""

    handler: Handler
    operation: Operation
    # A write whose handler charges the user's write limit itself, in the
    # statement that writes (a batched send, edit, deletion of a message or create:
    # chatsvc/sends.py, chatsvc/changes.py, chatsvc/creates.py), rather than before it runs
    # (chatsvc/app.py's authenticated()).
    charged_by_handler: bool = False


# path -> method -> Route: what each handler module declares, and what the app serves.
Routes = Mapping[str, Mapping[str, Route]]


def build(routes: Routes) -> dict[str, Any]:
    """The document for the routes, each described by its own Operation."""
    _, top = models_json_schema(
        [(model, "validation") for model in REQUEST_MODELS]
        + [(model, "serialization") for model in RESPONSE_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for path, handlers in routes.items():
        for method in handlers:
            operation = handlers[method].operation
            item = paths.setdefault(documented_path(path), {})
            # HEAD is not listed: every GET answers it (the document's description says so).
            item[method.lower()] = _describe(path, method, operation)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "chatsvc",
            "version": "3",
            "description": "Chats and their messages: create, send, read, page, follow live, delete;"
            " members and who may do what. Every route but the operations ones needs"
            " `Authorization: Bearer` with a server key or a user token (Authorize, above)."
            " Every route also answers with or without a trailing slash, every GET also answers"
            " HEAD (its headers, no body), and every error is application/problem+json (RFC 9457).",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": top["$defs"], "securitySchemes": SECURITY_SCHEMES},
    }
