"""Typed app state of the notifications service."""

from __future__ import annotations

from aiohttp import web

from notifications.deliveries import Deliveries
from notifications.dispatch import Dispatcher
from notifications.settings import NotificationsSettings

SETTINGS = web.AppKey("notifications.settings", NotificationsSettings)
DELIVERIES = web.AppKey("notifications.deliveries", Deliveries)
DISPATCHER = web.AppKey("notifications.dispatcher", Dispatcher)
