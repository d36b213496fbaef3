"""/openapi.json, and Swagger UI at /docs, served from files installed with the package.

Swagger UI comes from swagger-ui-bundle-v2 (the release files of swagger-ui,
kept by connexion's maintainers), so /docs needs no other host: its only
requests go to this service.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from chatsvc.keys import OPENAPI
from chatsvc.openapi import Operation, Route, Routes
from chatsvc.problems import NotFound

ASSETS = Path(str(swagger_ui_path))
# The files the page uses; nothing else in the folder is served.
SERVED = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png"})

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>chatsvc API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,  // the default would ask validator.swagger.io
    });
  </script>
</body>
</html>
"""


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


async def docs(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


async def docs_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in SERVED:
        raise NotFound("No such file.")
    # aiohttp's FileResponse: sendfile, content type, ETag and Last-Modified, no read per request.
    return web.FileResponse(ASSETS / name, headers={"Cache-Control": "public, max-age=86400"})


ROUTES: Routes = {
    "/openapi.json": {
        "GET": Route(
            openapi_json,
            Operation(
                "This document",
                (200, "OpenAPI 3.1.", {"application/json": {"schema": {"type": "object"}}}),
                tags=("operations",),
                access="public",
            ),
        ),
    },
    "/docs": {
        "GET": Route(
            docs,
            Operation(
                "Swagger UI for this document",
                (
                    200,
                    "An HTML page; its scripts are served by this service.",
                    {"text/html": {"schema": {"type": "string"}}},
                ),
                tags=("operations",),
                access="public",
            ),
        ),
    },
    "/docs/assets/{name}": {
        "GET": Route(
            docs_asset,
            Operation(
                "Swagger UI's files",
                (200, "A script, style sheet or image.", {"*/*": {"schema": {"type": "string"}}}),
                (404, 503),
                ({"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},),
                tags=("operations",),
                access="public",
            ),
        ),
    },
}
