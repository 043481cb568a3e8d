"""Typed app state of inventory."""

from __future__ import annotations

from aiohttp import web

from products.inventory.service import Inventory

INVENTORY = web.AppKey("inventory", Inventory)
