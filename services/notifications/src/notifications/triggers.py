"""Which events send what to whom: each handled event records its deliveries, nothing more.

A delivery's id is `<event id>:<channel>:<address hash>`, so however often an event is delivered
(redeliveries, a replayed stream, two instances) its messages are recorded once; the dispatcher
sends them. Whether a customer wants a topic on a channel is decided here for what is known now
and again just before sending.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from notifications.deliveries import Deliveries
from notifications.events import (
    EmailChanged,
    LinkRequested,
    OrderEnded,
    OrderEvent,
    OrderFact,
    OrderPlaced,
    OrderRefunded,
    OrderShipped,
    PasswordChanged,
    PaymentEvent,
    PaymentFailed,
    StockEvent,
    StockLow,
    UserEvent,
    UserRegistered,
)
from notifications.keys import DELIVERIES
from notifications.model import Channel, Delivery, Recipient, Status, Topic, address_hash
from shopkit import broker, clock
from shopkit.auth import STAFF_ROLES
from shopkit.events import Event
from shopkit.inbox import consume

log = logging.getLogger("notifications.triggers")
# Where a parcel can be followed, for the carriers staff name most; another carrier gets none.
TRACKING = {
    "dhl": "https://www.dhl.com/global-en/home/tracking.html?tracking-id={number}",
    "ups": "https://www.ups.com/track?tracknum={number}",
    "fedex": "https://www.fedex.com/fedextrack/?trknbr={number}",
    "usps": "https://tools.usps.com/go/TrackConfirmAction?tLabels={number}",
    "dpd": "https://tracking.dpd.de/status/en_US/parcel/{number}",
    "royal-mail": "https://www.royalmail.com/track-your-item#/tracking-results/{number}",
}


# Cancellations the customer hears of otherwise: a failed payment has its own message, and a
# checkout that never completed was never confirmed to them.
TOLD_OTHERWISE = frozenset({"payment_failed", "checkout_incomplete"})


class OrderUnknown(Exception):
    """An order event before its `order.placed` was handled: the inbox retries it later."""


def tracking_url(carrier: str, number: str) -> str | None:
    template = TRACKING.get(carrier.strip().lower().replace(" ", "-"))
    return None if template is None else template.format(number=number)


def delivery(
    event: Event,
    template: str,
    topic: Topic,
    channel: Channel,
    to: str,
    context: dict[str, Any],
    *,
    user_id: str | None = None,
    locale: str | None = None,
    link_id: str | None = None,
) -> Delivery:
    moment = clock.now()
    return Delivery(
        id=f"{event.id}:{channel.value}:{address_hash(to)}",
        template=template,
        topic=topic,
        channel=channel,
        to=to,
        status=Status.PENDING,
        due_at=moment,
        created_at=moment,
        user_id=user_id,
        locale=locale,
        context=context,
        link_id=link_id,
    )


def delivery_for_test(
    source: str,
    template: str,
    channel: Channel,
    to: str,
    context: dict[str, Any],
    locale: str | None,
) -> Delivery:
    """A test message staff asked for: a delivery like any other, transactional so none of the
    recipient's preferences stop it."""
    now = clock.now()
    return Delivery(
        id=f"{source}:{channel.value}:{address_hash(to)}",
        template=template,
        topic=Topic.TRANSACTIONAL,
        channel=channel,
        to=to,
        status=Status.PENDING,
        due_at=now,
        created_at=now,
        locale=locale,
        context=context,
    )


async def to_user(
    deliveries: Deliveries,
    event: Event,
    template: str,
    topic: Topic,
    email: str,
    context: dict[str, Any],
    user_id: str | None,
) -> list[Delivery]:
    """The message to a customer's email, and by SMS when they gave a phone and want the topic so."""
    if user_id is None:
        return [delivery(event, template, topic, Channel.EMAIL, email, context)]
    preferences = await deliveries.store.preferences(user_id)
    found = []
    if preferences.wants(topic, Channel.EMAIL):
        found.append(
            delivery(
                event,
                template,
                topic,
                Channel.EMAIL,
                email,
                context,
                user_id=user_id,
                locale=preferences.locale,
            )
        )
    if (
        preferences.phone
        and deliveries.renderer.has_sms(template)
        and preferences.wants(topic, Channel.SMS)
    ):
        found.append(
            delivery(
                event,
                template,
                topic,
                Channel.SMS,
                preferences.phone,
                context,
                user_id=user_id,
                locale=preferences.locale,
            )
        )
    return found


def to_staff(
    deliveries: Deliveries, event: Event, template: str, context: dict[str, Any]
) -> list[Delivery]:
    return [
        delivery(event, template, Topic.STAFF, Channel.EMAIL, address, context)
        for address in deliveries.settings.staff_emails
    ]


# --- users


async def on_user_event(deliveries: Deliveries, event: Event) -> list[Delivery]:
    found: list[Delivery] = []
    if event.type == UserEvent.REGISTERED:
        registered = UserRegistered.from_json(event.data)
        customer = not set(STAFF_ROLES).intersection(registered.roles)
        recipient = Recipient(registered.user_id, registered.email, registered.name, customer)
        await deliveries.store.save_recipient(recipient)
    elif event.type == UserEvent.EMAIL_VERIFICATION_REQUESTED:
        link = LinkRequested.from_json(event.data)
        recipient_ = await deliveries.store.recipient(link.user_id)
        context = {
            "email": link.email,
            "name": recipient_.name if recipient_ else "",
            "expires_at": link.expires_at,
        }
        # To the address being verified, which may not be the account's yet: email only.
        found = [
            delivery(
                event,
                "email_verification",
                Topic.TRANSACTIONAL,
                Channel.EMAIL,
                link.email,
                context,
                user_id=link.user_id,
                link_id=link.link_id,
            )
        ]
    elif event.type == UserEvent.PASSWORD_RESET_REQUESTED:
        link = LinkRequested.from_json(event.data)
        context = {"expires_at": link.expires_at}
        found = [
            delivery(
                event,
                "password_reset",
                Topic.TRANSACTIONAL,
                Channel.EMAIL,
                link.email,
                context,
                user_id=link.user_id,
                link_id=link.link_id,
            )
        ]
    elif event.type == UserEvent.PASSWORD_CHANGED:
        changed = PasswordChanged.from_json(event.data)
        context = {"at": clock.rfc3339(event.occurred_at)}
        found = await to_user(
            deliveries,
            event,
            "password_changed",
            Topic.TRANSACTIONAL,
            changed.email,
            context,
            changed.user_id,
        )
    elif event.type == UserEvent.EMAIL_CHANGED:
        moved = EmailChanged.from_json(event.data)
        recipient_ = await deliveries.store.recipient(moved.user_id)
        if recipient_ is not None:
            await deliveries.store.save_recipient(
                Recipient(moved.user_id, moved.new_email, recipient_.name, recipient_.customer)
            )
        context = {
            "old_email": moved.old_email,
            "new_email": moved.new_email,
            "at": clock.rfc3339(event.occurred_at),
        }
        # To the address given up: whoever holds the account now may not be its owner.
        found = await to_user(
            deliveries,
            event,
            "email_changed",
            Topic.TRANSACTIONAL,
            moved.old_email,
            context,
            moved.user_id,
        )
    return found


# --- orders and payments


async def _order(deliveries: Deliveries, order_id: str) -> dict[str, Any]:
    order = await deliveries.store.order(order_id)
    if order is None:
        raise OrderUnknown(f"order {order_id} was not placed here (yet)")
    return order


def _order_context(deliveries: Deliveries, order: dict[str, Any]) -> dict[str, Any]:
    url = f"{deliveries.settings.storefront_url.rstrip('/')}/orders/{order['order_id']}"
    return {"order": order, "order_url": url}


async def on_order_event(deliveries: Deliveries, event: Event) -> list[Delivery]:
    if event.type == OrderEvent.PLACED:
        placed = OrderPlaced.from_json(event.data)
        await deliveries.store.save_order(
            {**placed.to_json(), "lines": [dict(line) for line in placed.lines]}
        )
        return []
    order = await _order(deliveries, OrderFact.from_json(event.data).order_id)
    email, user_id = order["email"], order.get("user_id")
    context = _order_context(deliveries, order)
    found: list[Delivery] = []
    if event.type == OrderEvent.PAID:
        found = await to_user(
            deliveries, event, "order_confirmation", Topic.TRANSACTIONAL, email, context, user_id
        )
        found += to_staff(deliveries, event, "staff_new_order", context)
    elif event.type == OrderEvent.SHIPPED:
        shipped = OrderShipped.from_json(event.data)
        context |= {
            "carrier": shipped.carrier,
            "tracking_number": shipped.tracking_number,
            "tracking_url": tracking_url(shipped.carrier, shipped.tracking_number),
        }
        found = await to_user(
            deliveries, event, "order_shipped", Topic.SHIPPING, email, context, user_id
        )
    elif event.type == OrderEvent.DELIVERED:
        found = await to_user(
            deliveries, event, "order_delivered", Topic.SHIPPING, email, context, user_id
        )
    elif event.type == OrderEvent.CANCELLED:
        if OrderEnded.from_json(event.data).reason in TOLD_OTHERWISE:
            return []
        found = await to_user(
            deliveries, event, "order_cancelled", Topic.TRANSACTIONAL, email, context, user_id
        )
    elif event.type == OrderEvent.REFUNDED:
        refunded = OrderRefunded.from_json(event.data)
        context |= {"amount": refunded.amount, "currency": refunded.currency}
        found = await to_user(
            deliveries, event, "order_refunded", Topic.TRANSACTIONAL, email, context, user_id
        )
    return found


async def on_payment_event(deliveries: Deliveries, event: Event) -> list[Delivery]:
    failed = PaymentFailed.from_json(event.data)
    order = await _order(deliveries, failed.order_id)
    context = _order_context(deliveries, order)
    found = await to_user(
        deliveries,
        event,
        "payment_failed",
        Topic.TRANSACTIONAL,
        order["email"],
        context,
        order.get("user_id"),
    )
    return found


async def on_stock_event(deliveries: Deliveries, event: Event) -> list[Delivery]:
    low = StockLow.from_json(event.data)
    return to_staff(deliveries, event, "staff_stock_low", low.to_json())


async def handle(
    plan: Callable[[Deliveries, Event], Awaitable[list[Delivery]]],
    app: web.Application,
    event: Event,
) -> None:
    """Record what an event sends, if it is recent enough to be worth sending.

    The age limit (MESSAGE_MAX_AGE) matters when a consumer starts from the beginning of a stream:
    the first deployment, or a durable recreated. Its bookkeeping (recipients, orders) is kept
    from every event; only messages about the past are not sent."""
    deliveries = app[DELIVERIES]
    try:
        found = await plan(deliveries, event)
    except (KeyError, TypeError, ValueError) as error:
        # An event of another shape (an older version) would fail every redelivery alike.
        log.warning("event %s (%s) is not understood (%r); ignored", event.id, event.type, error)
        return
    age = (clock.now() - event.occurred_at).total_seconds()
    if found and age > deliveries.settings.message_max_age:
        log.info("event %s (%s) is %.0f s old: nothing sent", event.id, event.type, age)
        return
    await deliveries.record(found)


def consumers(
    service: str, *, users: str, orders: str, payments: str, products: str
) -> list[Callable[[web.Application], AsyncIterator[None]]]:
    """One durable consumer per publisher, as cleanup_ctx entries."""

    def one(
        publisher: str,
        types: list[str],
        plan: Callable[[Deliveries, Event], Awaitable[list[Delivery]]],
    ) -> Callable[[web.Application], AsyncIterator[None]]:
        return consume(
            f"{service}-{publisher}",
            stream=publisher,
            subjects=[broker.subject(publisher, name) for name in types],
            handler=functools.partial(handle, plan),
            retry_delay=2.0,
            max_deliver=10,
        )

    return [
        one(users, list(UserEvent), on_user_event),
        one(orders, list(OrderEvent), on_order_event),
        one(payments, list(PaymentEvent), on_payment_event),
        one(products, list(StockEvent), on_stock_event),
    ]
