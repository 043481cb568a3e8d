"""The situations inventory answers with, as the kit's problem types."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shopkit.headers import RETRY_AFTER
from shopkit.problems import Conflict, NotFound, ValidationFailed


@dataclass(frozen=True, slots=True)
class Shortage:
    sku: str
    requested: int
    available: int

    def to_json(self) -> dict[str, Any]:
        return {"sku": self.sku, "requested": self.requested, "available": self.available}


class SkuNotFound(NotFound):
    slug, title = "sku-not-found", "SKU not found"


class UnknownSkus(ValidationFailed):
    slug, title = "unknown-skus", "Unknown SKUs"


class StockNotTracked(Conflict):
    slug, title = "stock-not-tracked", "Stock is not tracked for this SKU"


class InsufficientStock(Conflict):
    slug, title = "insufficient-stock", "Insufficient stock"

    def __init__(self, shortages: Sequence[Shortage]) -> None:
        self.shortages = tuple(shortages)
        skus = ", ".join(s.sku for s in self.shortages)
        super().__init__(
            f"not enough stock for: {skus}",
            unavailable=[s.to_json() for s in self.shortages],
        )


class StockBelowReserved(Conflict):
    slug, title = "stock-below-reserved", "Stock would fall below what is reserved"


class ReservationNotFound(NotFound):
    slug, title = "reservation-not-found", "Reservation not found"


class ReservationMismatch(ValidationFailed):
    slug, title = "reservation-mismatch", "This order already reserved other lines"


class ReservationInProgress(Conflict):
    slug, title = "reservation-in-progress", "The reservation of this order is being made"

    def __init__(self, detail: str | None = None, retry_after: int = 1) -> None:
        super().__init__(detail, headers={RETRY_AFTER: str(retry_after)})


class ReservationClosed(Conflict):
    """Commit of a released reservation, release of a committed one, or a reservation that was
    released while it was being made."""

    slug, title = "reservation-closed", "The reservation is no longer held"
