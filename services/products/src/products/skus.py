"""The SKU directory: which product has a SKU and whether it tracks stock, as inventory and search ask it."""

from __future__ import annotations

from typing import Protocol


class SkuDirectory(Protocol):
    """The catalog answers it (`products.catalog.store.ProductStore`); `app.py` hands it to the others."""

    async def product_id_for_sku(self, sku: str) -> str | None:
        """The product that has the SKU, None when none has it."""
        ...

    async def tracks_stock(self, sku: str) -> bool | None:
        """Whether the SKU's stock is counted: True or False, None when no product has it."""
        ...
