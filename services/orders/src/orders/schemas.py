"""What the orders API accepts."""

from __future__ import annotations
