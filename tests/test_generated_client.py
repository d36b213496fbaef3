"""A client generated from the served /openapi.json (openapi-python-client) drives the API.

What a new user of the document would do: generate a typed client, then
create, send, read, page and delete through it. Each query parameter must be
a keyword argument, each body a model, each answer parsed into its model.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.credentials import SERVER_KEY, token
from tests.served import environment, serving


@pytest.fixture
def generated(make_database: Callable[[], str], tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A served process, and the package generated from its own document."""
    with serving(environment(DATABASE_URL=make_database(), CHATSVC_LOG_LEVEL="WARNING")) as (base, _):
        document = tmp_path / "openapi.json"
        document.write_bytes(urllib.request.urlopen(f"{base}/openapi.json", timeout=10).read())
        config = tmp_path / "config.yml"
        config.write_text("post_hooks: []\npackage_name_override: chatsvc_client\n")
        subprocess.run(
            [str(Path(sys.executable).with_name("openapi-python-client")), "generate",
             "--path", str(document), "--config", str(config), "--meta", "none",
             "--output-path", str(tmp_path / "chatsvc_client")],
            check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        sys.path.insert(0, str(tmp_path))
        try:
            yield base, importlib.import_module("chatsvc_client")
        finally:
            sys.path.remove(str(tmp_path))
            for name in [name for name in sys.modules if name.startswith("chatsvc_client")]:
                del sys.modules[name]


def test_a_generated_client_creates_sends_reads_pages_and_deletes(generated: tuple[str, Any]) -> None:
    base, package = generated
    api = importlib.import_module("chatsvc_client.api.chats")
    models = importlib.import_module("chatsvc_client.models")
    for name in (
        "post_chats", "post_chats_chat_id_messages", "get_chats_chat_id",
        "get_chats_chat_id_messages", "delete_chats_chat_id", "get_chats",
    ):  # fmt: skip
        importlib.import_module(f"chatsvc_client.api.chats.{name}")
    with package.Client(base_url=base) as anonymous:
        refused = api.post_chats.sync_detailed(client=anonymous, body=models.ChatCreate(title="anonymous"))
        assert refused.status_code == 401 and isinstance(refused.parsed, models.Problem)
    # A user's token is a credential as the server key is (what the user may see is the members' rules).
    with package.AuthenticatedClient(base_url=base, token=token("generated-user")) as as_user:
        assert api.get_chats.sync_detailed(client=as_user).status_code == 200
    with package.AuthenticatedClient(base_url=base, token=SERVER_KEY) as client:
        chat = api.post_chats.sync(client=client, body=models.ChatCreate(title="  generated  "))
        assert isinstance(chat, models.Chat) and chat.title == "generated"
        sent = [
            api.post_chats_chat_id_messages.sync(
                chat.id, client=client, body=models.MessageCreate(text=f"m{n}"), idempotency_key=f"gen-{n}"
            )
            for n in range(5)
        ]
        assert all(isinstance(message, models.Message) for message in sent)
        read = api.get_chats_chat_id.sync(chat.id, client=client, limit=2)
        assert [message.text for message in read.messages] == ["m3", "m4"]
        page = api.get_chats_chat_id_messages.sync(chat.id, client=client, limit=2, after=sent[0].id)
        assert isinstance(page, models.MessagePage) and [m.text for m in page.messages] == ["m1", "m2"]
        assert page.has_more
        older = api.get_chats_chat_id_messages.sync(chat.id, client=client, limit=2, before=sent[1].id)
        assert [m.text for m in older.messages] == ["m0"] and not older.has_more
        both = api.get_chats_chat_id_messages.sync_detailed(chat.id, client=client, before=3, after=1)
        assert both.status_code == 422 and isinstance(both.parsed, models.ValidationProblem)
        deleted = api.delete_chats_chat_id.sync_detailed(chat.id, client=client)
        assert deleted.status_code == 204
        gone = api.get_chats_chat_id.sync(chat.id, client=client)
        assert isinstance(gone, models.Problem) and gone.status == 404
