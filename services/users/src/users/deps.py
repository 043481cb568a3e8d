"""The collaborators every use case of the users service works with, built once per app."""

from __future__ import annotations

from dataclasses import dataclass

from users.outbox import Outbox
from users.passwords import Hasher
from users.sessions import Families
from users.settings import UsersSettings
from users.signing import SigningKeys
from users.store import UserStore
from users.throttle import LoginThrottle


@dataclass(frozen=True, slots=True)
class Users:
    settings: UsersSettings
    store: UserStore
    hasher: Hasher
    keys: SigningKeys
    families: Families
    throttle: LoginThrottle
    outbox: Outbox
