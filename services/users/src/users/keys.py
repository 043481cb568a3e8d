"""Typed app state of the users service."""

from __future__ import annotations

from aiohttp import web

from users.deps import Collaborators
from users.resets import AfterAnswer

USERS = web.AppKey("users", Collaborators)
AFTER_ANSWER = web.AppKey("after_answer", AfterAnswer)
