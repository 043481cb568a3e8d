"""Address book use cases: every lookup is scoped by owner, so another user's address is not found."""

from __future__ import annotations

from typing import Any

from shopkit import clock
from shopkit.ids import new_id
from users.deps import Collaborators
from users.errors import AddressNotFound, TooManyAddresses
from users.model import Address, User

MAX_ADDRESSES = 50
_DEFAULT_FLAGS = {
    "default_shipping": "default_shipping_address_id",
    "default_billing": "default_billing_address_id",
}


async def _apply_defaults(
    users: Collaborators, user: User, address_id: str, flags: dict[str, Any]
) -> User:
    changed = False
    for flag, kind in _DEFAULT_FLAGS.items():
        wanted = flags.get(flag)
        if wanted is True:
            await users.store.set_default_address(user.id, kind, address_id)
        elif wanted is False:  # whatever `user` says: it may be a cached, older view
            await users.store.clear_default_address(user.id, kind, address_id)
        else:
            continue
        changed = True
    return await users.store.reload(user.id) if changed else user


async def add(users: Collaborators, user: User, fields: dict[str, Any]) -> tuple[Address, User]:
    flags = {flag: fields.pop(flag, None) for flag in _DEFAULT_FLAGS}
    address = await users.store.insert_address(
        {"_id": new_id(), "user_id": user.id, "created_at": clock.now(), **fields}, MAX_ADDRESSES
    )
    if address is None:
        raise TooManyAddresses(f"an account keeps at most {MAX_ADDRESSES} addresses")
    # The first address becomes the default for whatever has none yet.
    for flag, field in _DEFAULT_FLAGS.items():
        if flags[flag] is None and getattr(user, field) is None:
            flags[flag] = True
    return address, await _apply_defaults(users, user, address.id, flags)


async def get(users: Collaborators, user: User, address_id: str) -> Address:
    address = await users.store.address(user.id, address_id)
    if address is None:
        raise AddressNotFound()
    return address


async def update(
    users: Collaborators, user: User, address_id: str, fields: dict[str, Any]
) -> tuple[Address, User]:
    flags = {flag: fields.pop(flag, None) for flag in _DEFAULT_FLAGS}
    address = await users.store.update_address(user.id, address_id, fields)
    if address is None:
        raise AddressNotFound()
    return address, await _apply_defaults(users, user, address.id, flags)


async def delete(users: Collaborators, user: User, address_id: str) -> None:
    if not await users.store.delete_address(user.id, address_id):
        raise AddressNotFound()
    await _apply_defaults(users, user, address_id, dict.fromkeys(_DEFAULT_FLAGS, False))
