"""The router (chatsvc/routing.py) finds what aiohttp's own walk finds: for every route,
with and without its trailing slash, each method, and paths no route serves (404, 405
with its Allow list). Only the lookup is ours; the match is aiohttp's."""

from __future__ import annotations

import re

import pytest
from aiohttp import hdrs, web
from aiohttp.test_utils import make_mocked_request

from chatsvc.app import ROUTES, create_app
from chatsvc.routing import Router
from chatsvc.settings import Settings
from tests.credentials import CREDENTIALS

APP = create_app(Settings(**CREDENTIALS, database_url="postgresql://unused@127.0.0.1/unused"))
METHODS = (hdrs.METH_GET, hdrs.METH_HEAD, hdrs.METH_POST, hdrs.METH_PUT, hdrs.METH_PATCH, hdrs.METH_DELETE)
VARIABLE = re.compile(r"\{[^}]+\}")


def every_path() -> list[str]:
    """Each route with sample values, with and without its slash, and paths near them."""
    paths = []
    for path in ROUTES:
        for value in ("7", "alice", "a%2Fb", "%7Bx%7D"):
            concrete = VARIABLE.sub(value, path)
            paths += [concrete, f"{concrete}/", f"{concrete}//", f"{concrete}/extra"]
    paths += [
        "/",
        "//",
        "/chats",
        "/chats//",
        "/chats//messages",
        "/nope",
        "/chats/7/nope/7",
        "/docs/assets/x.js",
    ]
    return sorted(set(paths))


def found(match_info: web.UrlMappingMatchInfo) -> tuple[object, ...]:
    """What a resolution decides: the handler, the route's resource and variables, or
    the HTTP error with its Allow list."""
    error = getattr(match_info, "http_exception", None)
    if error is not None:
        return (type(error), error.headers.get(hdrs.ALLOW))
    return (match_info.handler, match_info.route.resource, dict(match_info))


def test_the_app_uses_the_router() -> None:
    assert isinstance(APP.router, Router)


@pytest.mark.parametrize("path", every_path())
async def test_the_router_finds_what_aiohttps_walk_finds(path: str) -> None:
    for method in METHODS:
        request = make_mocked_request(method, f"{path}?limit=3", app=APP)
        ours = await APP.router.resolve(request)
        aiohttps = await web.UrlDispatcher.resolve(APP.router, request)
        assert found(ours) == found(aiohttps), (method, path)


async def test_every_route_is_found_without_the_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lookup, not aiohttp's walk, finds each route (the walk would too, slower)."""

    async def no_walk(self: web.UrlDispatcher, request: web.Request) -> web.UrlMappingMatchInfo:
        raise AssertionError(f"walked for {request.path}")

    monkeypatch.setattr(web.UrlDispatcher, "resolve", no_walk)
    for path, methods in ROUTES.items():
        for method in methods:
            for concrete in (VARIABLE.sub("7", path), VARIABLE.sub("7", path) + "/"):
                match_info = await APP.router.resolve(make_mocked_request(method, concrete, app=APP))
                assert match_info.route.method == method, concrete
