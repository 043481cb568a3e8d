"""A customer's preferences: the choices they change, and the phone and locale they give."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from notifications.model import Channel, Topic
from notifications.rendering import valid_locale
from notifications.store import NotificationStore


async def change(
    store: NotificationStore,
    user_id: str,
    *,
    choices: Sequence[tuple[Topic, Channel, bool]],
    profile: Mapping[str, str | None],
) -> None:
    """Write only what was given: each choice on its own, the profile's fields if any was sent.
    (Transactional email staying on is the schema's to refuse.)"""
    if profile:
        current = await store.preferences(user_id)
        locale = profile.get("locale", current.locale)
        await store.save_profile(
            user_id,
            phone=profile.get("phone", current.phone),
            locale=valid_locale(locale) if locale else None,
        )
    for topic, channel, on in choices:
        await store.choose(user_id, topic, channel, on)
