"""Typed app state of the carts service."""

from __future__ import annotations

from aiohttp import web

from carts.carts import Carts
from carts.owners import GuestQuota
from carts.pricing import Prices
from carts.settings import CartsSettings

SETTINGS = web.AppKey("carts.settings", CartsSettings)
CARTS = web.AppKey("carts.carts", Carts)
PRICES = web.AppKey("carts.prices", Prices)
GUEST_QUOTA = web.AppKey("carts.guest_quota", GuestQuota)
