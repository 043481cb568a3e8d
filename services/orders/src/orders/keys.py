"""Typed app state of the orders service."""

from __future__ import annotations

from aiohttp import web

from orders.checkout import Checkout
from orders.clients import Upstreams
from orders.orders import Orders
from orders.rates import Rates
from orders.settings import OrdersSettings

SETTINGS = web.AppKey("orders.settings", OrdersSettings)
ORDERS = web.AppKey("orders.orders", Orders)
CHECKOUT = web.AppKey("orders.checkout", Checkout)
UPSTREAMS = web.AppKey("orders.upstreams", Upstreams)
RATES = web.AppKey("orders.rates", Rates)
