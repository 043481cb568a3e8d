"""Routes of the notifications API: a customer's preferences, one-click unsubscribe, and for staff
the templates, the delivery log, the dead-letter list and suppressions."""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web

from notifications import preferences, unsubscribe
from notifications.errors import (
    DeliveryNotFound,
    DeliveryNotRetryable,
    SuppressionNotFound,
    TemplateNotFound,
)
from notifications.keys import DELIVERIES
from notifications.model import (
    DEFAULT_CHANNELS,
    FIXED,
    RETRYABLE_BY_STAFF,
    Channel,
    Delivery,
    Preferences,
    Status,
    Topic,
    address_hash,
    mask,
)
from notifications.rendering import valid_locale
from notifications.samples import SAMPLES
from notifications.schemas import (
    DeliveryQuery,
    PreferencesSchema,
    PreviewSchema,
    SuppressionSchema,
    TestMessageSchema,
)
from notifications.triggers import delivery_for_test
from shopkit import clock
from shopkit.answers import json_response
from shopkit.auth import STAFF_ROLES, principal, public, requires
from shopkit.headers import CACHE_CONTROL
from shopkit.idempotency import idempotent, operation_id
from shopkit.pagination import encode_cursor
from shopkit.schemas import load_body, load_query

routes = web.RouteTableDef()
NO_STORE = {CACHE_CONTROL: "private, no-store"}


def present_preferences(preferences: Preferences) -> dict[str, Any]:
    return {
        "topics": {
            topic.value: {channel.value: preferences.wants(topic, channel) for channel in Channel}
            for topic in DEFAULT_CHANNELS
        },
        "fixed": [f"{topic.value}.{channel.value}" for topic, channel in sorted(FIXED)],
        "phone": preferences.phone,
        "locale": preferences.locale,
    }


def present_delivery(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "template": delivery.template,
        "topic": delivery.topic.value,
        "channel": delivery.channel.value,
        "recipient": mask(delivery.to),
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "retries_by_staff": delivery.round,
        "error": delivery.error,
        "campaign_id": delivery.campaign_id,
        "created_at": clock.rfc3339(delivery.created_at),
        "due_at": clock.rfc3339(delivery.due_at),
        "sent_at": clock.rfc3339(delivery.sent_at) if delivery.sent_at else None,
    }


# --- a customer's preferences


@routes.get("/api/v1/notifications/preferences")
async def get_preferences(request: web.Request) -> web.Response:
    """The caller's channels per topic, phone and locale."""
    preferences = await request.app[DELIVERIES].store.preferences(principal(request).subject)
    return json_response(present_preferences(preferences), headers=NO_STORE)


@routes.patch("/api/v1/notifications/preferences")
async def change_preferences(request: web.Request) -> web.Response:
    """Change what is given; transactional email stays on, promotions are off until turned on."""
    body = await load_body(request, PreferencesSchema)
    user_id = principal(request).subject
    store = request.app[DELIVERIES].store
    await preferences.change(
        store,
        user_id,
        choices=[
            (Topic(topic), Channel(channel), on)
            for topic, chosen in body.get("topics", {}).items()
            for channel, on in chosen.items()
        ],
        profile={key: body[key] for key in ("phone", "locale") if key in body},
    )
    return json_response(present_preferences(await store.preferences(user_id)), headers=NO_STORE)


# --- one-click unsubscribe (RFC 8058): the link is the credential


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 3em auto">{body}</body></html>"""


def _page(title: str, body: str) -> web.Response:
    return web.Response(
        text=PAGE.format(title=html.escape(title), body=body),
        content_type="text/html",
        headers={CACHE_CONTROL: "no-store", "Referrer-Policy": "no-referrer"},
    )


@routes.get("/api/v1/notifications/unsubscribe/{token}")
@public
async def unsubscribe_page(request: web.Request) -> web.Response:
    """A page asking to confirm: a GET changes nothing (mail scanners follow links)."""
    secret = request.app[DELIVERIES].settings.unsubscribe_secret.value
    _, topic = unsubscribe.verify(secret, request.match_info["token"])
    return _page(
        "Unsubscribe",
        f"<p>Stop receiving {html.escape(topic.value)} emails?</p>"
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@routes.post("/api/v1/notifications/unsubscribe/{token}")
@public
async def unsubscribe_now(request: web.Request) -> web.Response:
    """Unsubscribe the link's recipient from its topic; the same answer however often."""
    d = request.app[DELIVERIES]
    user_id, topic = unsubscribe.verify(
        d.settings.unsubscribe_secret.value, request.match_info["token"]
    )
    await d.store.choose(user_id, topic, Channel.EMAIL, False)
    return _page("Unsubscribed", f"<p>You will get no more {html.escape(topic.value)} emails.</p>")


# --- templates, for staff


def _template(request: web.Request) -> str:
    name = request.match_info["name"]
    if name not in request.app[DELIVERIES].renderer.names():
        raise TemplateNotFound(f"no template {name!r}")
    return name


@routes.get("/api/v1/notifications/templates")
@requires(*STAFF_ROLES)
async def list_templates(request: web.Request) -> web.Response:
    """Every template, the channels it goes by and the sample data it previews with."""
    renderer = request.app[DELIVERIES].renderer
    items = [
        {
            "name": name,
            "channels": ["email", "sms"] if renderer.has_sms(name) else ["email"],
            "sample": SAMPLES.get(name, {}),
        }
        for name in renderer.names()
    ]
    return json_response({"items": items})


@routes.post("/api/v1/notifications/templates/{name}/preview")
@requires(*STAFF_ROLES)
async def preview_template(request: web.Request) -> web.Response:
    """The template rendered with its sample data, overridden by `data`."""
    name = _template(request)
    body = await load_body(request, PreviewSchema)
    renderer = request.app[DELIVERIES].renderer
    locale = valid_locale(body["locale"]) if body.get("locale") else None
    context = {**SAMPLES.get(name, {}), **body["data"]}
    answer = renderer.render(name, context, locale).to_json()
    if renderer.has_sms(name):
        answer["sms"] = renderer.render_sms(name, context, locale).text
    return json_response(answer)


@routes.post("/api/v1/notifications/templates/{name}/test")
@requires(*STAFF_ROLES)
@idempotent()
async def send_test(request: web.Request) -> web.Response:
    """Send the template with sample data to the addresses given, as a real delivery."""
    name = _template(request)
    body = await load_body(request, TestMessageSchema)
    d = request.app[DELIVERIES]
    source = f"test-{operation_id(request, name)}"
    locale = valid_locale(body["locale"]) if body.get("locale") else None
    context = {**SAMPLES.get(name, {}), **body["data"]}
    found = []
    if body.get("email"):
        found.append(delivery_for_test(source, name, Channel.EMAIL, body["email"], context, locale))
    if body.get("phone") and d.renderer.has_sms(name):
        found.append(delivery_for_test(source, name, Channel.SMS, body["phone"], context, locale))
    d.renderer.render(name, context, locale)  # a broken template is a 422 now, not a dead letter
    await d.record(found)
    return json_response({"deliveries": [x.id for x in found]}, status=202)


# --- the delivery log, for staff


@routes.get("/api/v1/notifications/deliveries")
@requires(*STAFF_ROLES)
async def list_deliveries(request: web.Request) -> web.Response:
    """Newest first: one recipient's, the dead-letter list (`status=dead`), or one day's."""
    query = load_query(request, DeliveryQuery())
    find: dict[str, Any] = {}
    if query.get("recipient"):
        find["to_hash"] = address_hash(query["recipient"])
    elif query.get("status") in (Status.DEAD, Status.PENDING, Status.SENDING):
        pass  # lists that stay short by design, read whole
    else:
        day = query.get("day") or clock.now().date()
        find["created_day"] = day.isoformat()
    for field, stored in (
        ("status", "status"),
        ("template", "template"),
        ("channel", "channel"),
        ("campaign", "campaign_id"),
    ):
        if query.get(field):
            find[stored] = query[field]
    rows = await request.app[DELIVERIES].store.page(
        find, before=query.get("cursor"), limit=query["limit"] + 1
    )
    limit = query["limit"]
    more = len(rows) > limit
    items = [present_delivery(row) for row in rows[:limit]]
    cursor = None
    if more:
        last = rows[limit - 1]
        cursor = encode_cursor([last.created_at.isoformat(), last.id])
    return json_response({"items": items, "next_cursor": cursor}, headers=NO_STORE)


async def _delivery(request: web.Request) -> Delivery:
    found = await request.app[DELIVERIES].store.delivery(request.match_info["delivery_id"])
    if found is None:
        raise DeliveryNotFound(f"no delivery {request.match_info['delivery_id']}")
    return found


@routes.get("/api/v1/notifications/deliveries/{delivery_id}")
@requires(*STAFF_ROLES)
async def get_delivery(request: web.Request) -> web.Response:
    """One delivery, recipient masked."""
    return json_response(present_delivery(await _delivery(request)), headers=NO_STORE)


@routes.post("/api/v1/notifications/deliveries/{delivery_id}/retry")
@requires(*STAFF_ROLES)
@idempotent()
async def retry_delivery(request: web.Request) -> web.Response:
    """Send a dead-lettered or failed delivery again, with a fresh set of attempts. Repeating the
    request while it is pending changes nothing."""
    d = request.app[DELIVERIES]
    found = await _delivery(request)
    if found.status in (Status.PENDING, Status.SENDING):
        return json_response(present_delivery(found), status=202)
    if found.status not in RETRYABLE_BY_STAFF:
        raise DeliveryNotRetryable(f"delivery {found.id} is {found.status.value}")
    changes = {
        "status": Status.PENDING.value,
        "round": found.round + 1,
        "attempts": 0,
        "due_at": clock.now(),
    }
    await d.store.update({found.id: changes})
    d.recorded.set()
    return json_response(present_delivery(await _delivery(request)), status=202)


# --- suppressions, for staff


@routes.post("/api/v1/notifications/suppressions")
@requires(*STAFF_ROLES)
async def add_suppression(request: web.Request) -> web.Response:
    """Suppress an address on a channel (a hard bounce reported by the mail provider, say)."""
    body = await load_body(request, SuppressionSchema)
    channel = Channel(body["channel"])
    await request.app[DELIVERIES].store.suppress(channel, body["address"], body["reason"])
    suppression_id = f"{channel.value}:{address_hash(body['address'])}"
    found = await request.app[DELIVERIES].store.suppression(suppression_id)
    if found is None:  # lifted by someone else in between
        raise SuppressionNotFound(f"suppression {suppression_id} was lifted meanwhile")
    return json_response(_present_suppression(found), status=201)


def _present_suppression(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": document["_id"],
        "channel": document["channel"],
        "recipient": document["to_masked"],
        "reason": document["reason"],
        "at": clock.rfc3339(document["at"]),
    }


@routes.get("/api/v1/notifications/suppressions/{suppression_id}")
@requires(*STAFF_ROLES)
async def get_suppression(request: web.Request) -> web.Response:
    """One suppression by id (`<channel>:<address hash>`, as recorded)."""
    found = await request.app[DELIVERIES].store.suppression(request.match_info["suppression_id"])
    if found is None:
        raise SuppressionNotFound("no such suppression")
    return json_response(_present_suppression(found))


@routes.delete("/api/v1/notifications/suppressions/{suppression_id}")
@requires(*STAFF_ROLES)
async def lift_suppression(request: web.Request) -> web.Response:
    """Send to the address again (it was fixed, or the bounce was wrong)."""
    if not await request.app[DELIVERIES].store.lift(request.match_info["suppression_id"]):
        raise SuppressionNotFound("no such suppression")
    return web.Response(status=204)
