"""GET /openapi.json and GET /docs (contract v2, operations).

The document is checked three ways: it is valid OpenAPI 3.1; its routes are
exactly the app's; and what it says agrees with what the service does (the
schemas are the validating models' own, the trimming pattern accepts exactly
what the API accepts, and answers carry documented statuses).
"""

from __future__ import annotations

import ctypes.util
import re
import shutil
import sys
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from pydantic.json_schema import models_json_schema

from chatsvc import openapi
from chatsvc.models import TEXT_MAX, TITLE_MAX, WHITESPACE, trimmed_pattern
from tests.api import create_chat, send
from tests.conftest import Client
from tests.credentials import token
from tests.debian import install_missing


async def document(client: Client) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status == 200 and response.content_type == "application/json"
    doc: dict[str, Any] = await response.json()
    return doc


async def test_the_document_is_valid_openapi_3_1(client: Client) -> None:
    doc = await document(client)
    assert doc["openapi"].startswith("3.1")
    validate(doc)


async def test_every_route_is_documented_and_nothing_else(client: Client) -> None:
    """Each registered (method, path) is an operation, a trailing slash variant counting as its
    path; HEAD is not listed (every GET answers it, as the document's description says)."""
    doc = await document(client)
    documented = {
        (method.upper(), path.rstrip("/")) for path, item in doc["paths"].items() for method in item
    }
    registered = {
        (route.method, (route.resource.canonical if route.resource else "").rstrip("/"))
        for route in client.app.router.routes()
        if route.method != "HEAD"
    }
    assert documented == registered
    assert "HEAD" in doc["info"]["description"]


async def test_links_lead_to_documented_operations_and_parameters(client: Client) -> None:
    doc = await document(client)
    operations = {
        described["operationId"]: {parameter["name"] for parameter in described.get("parameters", [])}
        for item in doc["paths"].values()
        for described in item.values()
    }
    links = [
        link
        for item in doc["paths"].values()
        for described in item.values()
        for answer in described["responses"].values()
        for link in answer.get("links", {}).values()
    ]
    assert len(links) >= 7
    targets = {link["operationId"] for link in links}
    assert {"patch_chats_chat_id_messages_message_id", "delete_chats_chat_id_messages_message_id"} <= targets
    for link in links:
        assert set(link["parameters"]) <= operations[link["operationId"]], link


async def test_schemas_are_the_models_own(client: Client) -> None:
    doc = await document(client)
    _, top = models_json_schema(
        [(model, "validation") for model in openapi.REQUEST_MODELS]
        + [(model, "serialization") for model in openapi.RESPONSE_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    assert doc["components"]["schemas"] == top["$defs"]
    title = doc["components"]["schemas"]["ChatCreate"]["properties"]["title"]
    assert title["pattern"] == trimmed_pattern(TITLE_MAX)
    assert doc["components"]["schemas"]["MessageCreate"]["properties"]["text"]["pattern"] == trimmed_pattern(
        TEXT_MAX
    )


def test_the_pattern_knows_every_character_str_strip_removes() -> None:
    assert WHITESPACE == "".join(chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace())


async def test_parameter_schemas_say_what_the_api_accepts(client: Client) -> None:
    """Each query parameter is its own (a field in Swagger UI, a keyword argument in generated
    clients); "not both before and after" is in the operation's description."""
    doc = await document(client)
    operation = doc["paths"]["/chats/{chat_id}/messages/"]["get"]
    history = {p["name"]: OAS31Validator(p["schema"]) for p in operation["parameters"] if p["in"] == "query"}
    assert set(history) == {"limit", "before", "after"}
    assert history["limit"].is_valid(100) and not history["limit"].is_valid(101)
    assert history["after"].is_valid(0) and not history["after"].is_valid(-1)
    assert "together are 422" in operation["description"]
    listing = doc["paths"]["/chats/"]["get"]
    chats = {p["name"]: OAS31Validator(p["schema"]) for p in listing["parameters"] if p["in"] == "query"}
    assert set(chats) == {"limit", "order", "before", "cursor"}
    assert chats["order"].is_valid("activity") and not chats["order"].is_valid("newest")
    assert "is 422" in listing["description"]
    # The cursor's pattern is exactly what the listing accepts (tests/test_read_state.py
    # checks strings of that shape are all accepted), and every next_cursor matches it.
    for _ in range(3):
        await create_chat(client)
    page = await (await client.get("/chats/?order=activity&limit=1")).json()
    assert chats["cursor"].is_valid(page["next_cursor"])
    assert not chats["cursor"].is_valid(page["next_cursor"] + "A")
    create = doc["paths"]["/chats/"]["post"]["parameters"]
    key = OAS31Validator(next(p for p in create if p["name"] == "Idempotency-Key")["schema"])
    chat = await create_chat(client)
    for value in ("k", "!" * 255, "a b", "x" * 256, "tab\tkey", "~{}[]"):
        response = await client.post(
            f"/chats/{chat['id']}/messages/",
            json={"text": "key check"},
            headers={"Idempotency-Key": value},
        )
        assert (response.status == 201) == key.is_valid(value), (value, response.status)


# Strings around every edge of "1 to N code points once trimmed, no NUL".
def edge_strings(maximum: int) -> list[str]:
    spaces = [" ", "\t", "\n", "\u00a0", "\u2028", "\u3000", "\x1c", "\x85"]
    not_spaces = ["\u200b", "\ufeff", "x", "🎉", "é", "\x01"]
    strings = ["", "\x00", "a\x00b", " \x00 "]
    for space in spaces:
        strings += [space, space * 3, f"{space}x{space}", f"x{space}y"]
    for solid in not_spaces:
        strings += [
            solid,
            solid * maximum,
            solid * (maximum + 1),
            f" {solid * maximum} ",
            f"{solid}{'-' * (maximum - 2)}{solid}",
        ]
    return strings


@pytest.mark.parametrize(("field", "maximum"), [("title", TITLE_MAX), ("text", TEXT_MAX)])
async def test_the_trimming_pattern_accepts_exactly_what_the_api_accepts(
    client: Client, field: str, maximum: int
) -> None:
    pattern = re.compile(trimmed_pattern(maximum))
    chat = await create_chat(client)
    path = "/chats/" if field == "title" else f"/chats/{chat['id']}/messages/"
    for value in edge_strings(maximum):
        response = await client.post(path, json={field: value})
        assert response.status in (201, 422), await response.text()
        assert (response.status == 201) == bool(pattern.search(value)), repr(value[:20])


async def test_answers_carry_documented_statuses(client: Client) -> None:
    doc = await document(client)
    chat = await create_chat(client)
    message = await send(client, chat["id"])
    samples = [
        ("GET", "/chats/", "/chats/?limit=0"),
        ("POST", "/chats/", "/chats/"),
        ("GET", "/chats/{chat_id}", f"/chats/{chat['id']}?limit=x"),
        ("GET", "/chats/{chat_id}", "/chats/0"),
        ("GET", "/chats/{chat_id}/messages/", f"/chats/{chat['id']}/messages/?before=1&after=2"),
        ("GET", "/chats/{chat_id}/messages/{message_id}", f"/chats/{chat['id']}/messages/{message['id']}"),
        ("GET", "/chats/{chat_id}/events", f"/chats/{chat['id']}/events?after=x"),
        ("PATCH", "/chats/{chat_id}/messages/{message_id}", f"/chats/{chat['id']}/messages/{message['id']}"),
        ("DELETE", "/chats/{chat_id}/messages/{message_id}", f"/chats/{chat['id']}/messages/0"),
        ("PUT", "/chats/{chat_id}/read", f"/chats/{chat['id']}/read"),
        ("GET", "/chats/", "/chats/?order=activity&cursor=x"),
        ("GET", "/docs/assets/{name}", "/docs/assets/nothing.js"),
        ("GET", "/readyz", "/readyz"),
    ]
    for method, template, path in samples:
        response = await client.request(
            method, path, data=b"{" if method in ("POST", "PATCH", "PUT") else None
        )
        assert str(response.status) in doc["paths"][template][method.lower()]["responses"], (
            path,
            response.status,
        )
        response.close()


# -- /docs ------------------------------------------------------------------------


async def test_docs_page_and_its_files_come_from_this_service(client: Client) -> None:
    page = await client.get("/docs")
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing from another host
    for asset in re.findall(r"(?:src|href)=\"(/docs/assets/[^\"]+)\"", html):
        response = await client.get(asset)
        assert response.status == 200 and int(response.headers["Content-Length"]) > 0, asset
    assert (await client.get("/docs/assets/..%2Fsetup.cfg")).status == 404
    assert (await client.get("/docs/assets/index.html")).status == 404  # only what the page uses


def _missing_browser_packages() -> list[str]:
    """Debian packages the browser test needs and this machine lacks: Chromium
    itself, and libatomic1 for Playwright's driver (the slim image has neither)."""
    missing = [] if shutil.which("chromium") else ["chromium"]
    if ctypes.util.find_library("atomic") is None:
        missing.append("libatomic1")
    return missing


def chromium() -> str:
    """Debian's Chromium; what it needs is installed here when missing and possible
    (root with apt-get, as in CI), else the test is skipped saying what to install."""
    install_missing(_missing_browser_packages())
    missing = _missing_browser_packages()
    if missing:
        pytest.skip(
            f"needs Debian's {' and '.join(missing)}, which only root can install (the test installs them "
            "itself when run as root; in the image: docker compose exec -u root web sh -c "
            f"'apt-get update && apt-get install -y {' '.join(missing)}')"
        )
    found = shutil.which("chromium")
    assert found is not None
    return found


async def test_swagger_ui_renders_offline_and_try_it_out_creates_a_chat(client: Client) -> None:
    from playwright.async_api import async_playwright, expect

    # Chromium first: without it the test is skipped before Playwright's
    # driver starts (the driver needs libatomic1, which the slim image lacks;
    # Debian's chromium package brings it).
    executable = chromium()
    base = str(client.make_url("")).rstrip("/")
    elsewhere: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        )  # fmt: skip
        try:
            page = await browser.new_page()

            async def only_this_service(route: Any) -> None:
                if route.request.url.startswith(base):
                    await route.continue_()
                else:  # the network is cut: any other host fails, and is recorded
                    elsewhere.append(route.request.url)
                    await route.abort()

            await page.route("**/*", only_this_service)
            await page.goto(f"{base}/docs")
            await page.wait_for_selector(".opblock", timeout=20_000)
            summaries = await page.locator(".opblock-summary-path").all_inner_texts()
            assert "/chats/" in [text.replace("\u200b", "") for text in summaries]
            create = page.locator(".opblock-post", has_text="Create a chat")
            await create.locator(".opblock-summary").click()
            await create.get_by_role("button", name="Try it out").click()
            await create.locator("textarea.body-param__text").fill('{"title": "made in Swagger UI"}')
            status = create.locator(".live-responses-table tbody .response-col_status").first
            # Before Authorize the browser sends no credential, and the service says so.
            await create.get_by_role("button", name="Execute").click()
            await expect(status).to_have_text(re.compile(r"^\s*401"), timeout=20_000)
            # Authorize, as a user with a token, as the contract promises.
            await page.locator(".auth-wrapper .authorize").click()
            bearer = page.locator(".dialog-ux .auth-container", has_text="(http, Bearer)")
            await bearer.get_by_label("auth-bearer-value").fill(token("swagger-user"))
            await bearer.get_by_role("button", name="Apply credentials").click()
            await bearer.get_by_role("button", name="Close").click()
            await create.get_by_role("button", name="Execute").click()
            await expect(status).to_have_text(re.compile(r"^\s*201"), timeout=20_000)
        finally:
            await browser.close()
    assert elsewhere == []
    listing = await (await client.get("/chats/?limit=100")).json()
    assert "made in Swagger UI" in [chat["title"] for chat in listing["chats"]]


async def test_the_event_stream_documents_every_event_kind(client: Client) -> None:
    doc = await document(client)
    stream = doc["paths"]["/chats/{chat_id}/events"]["get"]["responses"]["200"]
    schema = stream["content"]["text/event-stream"]["schema"]
    assert set(schema["properties"]["event"]["enum"]) == {
        "message",
        "message_updated",
        "message_deleted",
        "chat_deleted",
    }
    for kind in ("message_updated", "message_deleted"):
        assert kind in stream["description"]
