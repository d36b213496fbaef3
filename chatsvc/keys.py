"""Typed keys for everything the application object holds."""

from aiohttp import web

from chatsvc.db import Database
from chatsvc.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
