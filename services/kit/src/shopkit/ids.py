"""Opaque, time-ordered ids (ObjectId hex), so cursor pagination by id follows creation order."""

from __future__ import annotations

from bson import ObjectId

__all__ = ["new_id"]


def new_id() -> str:
    return str(ObjectId())
