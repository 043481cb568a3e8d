"""Typed app state of the orders service."""

from __future__ import annotations

from aiohttp import web

from orders.settings import OrdersSettings
from shopkit.events import EventStore

SETTINGS = web.AppKey("orders.settings", OrdersSettings)
EVENTS = web.AppKey("orders.events", EventStore)
