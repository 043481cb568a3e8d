"""What the payments API accepts."""

from __future__ import annotations
