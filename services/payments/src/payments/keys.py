"""Typed app state of the payments service."""

from __future__ import annotations

from aiohttp import web

from payments.ledger import Payments
from payments.settings import PaymentsSettings
from shopkit.events import EventStore

SETTINGS = web.AppKey("payments.settings", PaymentsSettings)
EVENTS = web.AppKey("payments.events", EventStore)
PAYMENTS = web.AppKey("payments.payments", Payments)
