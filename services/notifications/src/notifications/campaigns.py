"""Promotional campaigns: written by staff, previewed, sent once to every opted-in customer.

Sending inserts the campaign's send record (`campaign_sends`, `_id` = campaign id): a second send
finds it and sends nothing more. A planner on every instance then records the deliveries batch by
batch, at the campaign's rate and never far ahead of what was sent, so the dispatcher's pending
list stays short; a delivery's id is `campaign-<id>:email:<address hash>`, so two planners, or one
resuming after a crash, record each recipient once. Whether the recipient still wants promotions
is checked again just before each message goes: an unsubscribe during a campaign stops the rest.

The audience is read from the opt-ins, which the preferences API writes at once, while a
recipient's address arrives with users' registration event: a customer who registers, opts in and
is sent a campaign within the same second may not be known yet. The planner waits for them, up to
RECIPIENT_WAIT after the campaign started; one still unknown then is skipped (and logged).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from datetime import timedelta
from typing import Any

from notifications import unsubscribe
from notifications.deliveries import Deliveries
from notifications.errors import CampaignNotFound, CampaignStarted, TemplateBroken
from notifications.model import Campaign, Channel, Delivery, Status, Topic, address_hash
from notifications.rendering import Rendered
from shopkit import clock
from shopkit.ids import new_id

log = logging.getLogger("notifications.campaigns")
TEMPLATE = "campaign"
PLAN_BATCH = 100
LEASE = timedelta(seconds=30)
# Pending messages (of every kind) past which planners wait for the dispatchers.
BACKLOG_LIMIT = 3 * PLAN_BATCH
BACKLOG_PAUSE = 0.5
SAMPLE_RECIPIENT = {"name": "Sam Sample", "email": "sam@example.com"}
CAMPAIGNS_KEPT = 16  # campaigns being sent whose templates an instance keeps
# How long after a campaign starts the planner waits for an opted-in user's registration to arrive.
RECIPIENT_WAIT = timedelta(seconds=60)
RECIPIENT_PAUSE = 1.0


async def create(
    d: Deliveries, *, name: str, subject: str, html: str, text: str, actor: str, key: str | None
) -> Campaign:
    d.renderer.check_campaign(subject, text, html)
    campaign = Campaign(
        id=key or new_id(),
        name=name,
        subject=subject,
        html=html,
        text=text,
        created_by=actor,
        created_at=clock.now(),
    )
    return await d.store.insert_campaign(campaign)


async def get(d: Deliveries, campaign_id: str) -> Campaign:
    campaign = await d.store.campaign(campaign_id)
    if campaign is None:
        raise CampaignNotFound(f"no campaign {campaign_id}")
    return campaign


async def change(d: Deliveries, campaign_id: str, changes: dict[str, str]) -> Campaign:
    campaign = await get(d, campaign_id)
    if campaign.started_at is not None:
        raise CampaignStarted(f"campaign {campaign_id} is being sent")
    merged = {
        "subject": campaign.subject,
        "text": campaign.text,
        "html": campaign.html,
        **changes,
    }
    d.renderer.check_campaign(merged["subject"], merged["text"], merged["html"])
    await d.store.change_campaign(campaign_id, changes)
    return await get(d, campaign_id)


def render(
    d: Deliveries, campaign: Campaign, recipient: dict[str, Any], locale: str | None
) -> Rendered:
    return d.renderer.render_campaign(
        campaign.subject, campaign.text, campaign.html, recipient, locale
    )


def preview(d: Deliveries, campaign: Campaign, locale: str | None) -> Rendered:
    sample = {**SAMPLE_RECIPIENT, "unsubscribe_url": unsubscribe_url(d, "sample-user")}
    return render(d, campaign, sample, locale)


async def start(d: Deliveries, campaign_id: str, rate: float | None) -> tuple[Campaign, bool]:
    """Start sending; (the campaign, whether this call started it)."""
    campaign = await get(d, campaign_id)
    started = await d.store.start_campaign(campaign, rate or d.settings.campaign_rate)
    if started:
        log.info("campaign %s started", campaign_id)
    return await get(d, campaign_id), started


async def counts(d: Deliveries, campaign_id: str) -> dict[str, int]:
    found = await d.store.campaign_counts(campaign_id)
    return {status.value: found.get(status.value, 0) for status in Status}


def unsubscribe_url(d: Deliveries, user_id: str) -> str:
    token = unsubscribe.sign(d.settings.unsubscribe_secret.value, user_id, Topic.PROMOTIONS)
    return f"{d.settings.public_url.rstrip('/')}/api/v1/notifications/unsubscribe/{token}"


async def render_for(d: Deliveries, delivery: Delivery) -> tuple[Rendered, str]:
    """A campaign delivery's message and its unsubscribe link (for the List-Unsubscribe header)."""
    assert delivery.campaign_id is not None
    assert delivery.user_id is not None
    campaign = await sent_campaign(d, delivery.campaign_id)
    url = unsubscribe_url(d, delivery.user_id)
    values = {**delivery.context, "unsubscribe_url": url}
    return render(d, campaign, values, delivery.locale), url


async def sent_campaign(d: Deliveries, campaign_id: str) -> Campaign:
    """The campaign being sent, read once per instance: its content is fixed in its send record
    when it starts, and reading it per message was two of the nine reads each one cost."""
    campaign = d.campaigns.get(campaign_id)
    if campaign is not None:
        return campaign
    campaign = await d.store.campaign(campaign_id)
    if campaign is None:
        raise TemplateBroken(f"campaign {campaign_id} is gone")
    if campaign.started_at is not None:
        if len(d.campaigns) >= CAMPAIGNS_KEPT:
            d.campaigns.clear()
        d.campaigns[campaign_id] = campaign
    return campaign


# --- the planner


async def plan_pass(d: Deliveries) -> float | None:
    """Plan a batch of every campaign being sent; how long to wait before the next pass."""
    waits = [await plan(d, send) for send in await d.store.unfinished_sends()]
    return min(waits, default=None)


async def plan(d: Deliveries, send: dict[str, Any]) -> float:
    """Record the campaign's next batches while this instance holds its lease; how long to wait
    before the next pass. It stops at a user not known yet (within RECIPIENT_WAIT), at the
    pending backlog, or when its lease is half over."""
    campaign_id, rate = send["_id"], float(send["rate"])
    now = clock.now()
    if not await d.store.lease_send(campaign_id, now + LEASE, now):
        return LEASE.total_seconds() / 3
    audience = await d.store.promotions_audience()
    start = position = bisect.bisect_right(audience, send.get("cursor") or "")
    # A batch is at most a second of sending, so a slow campaign is paced smoothly too.
    size = max(1, min(PLAN_BATCH, int(rate)))
    deadline = time.monotonic() + LEASE.total_seconds() / 2
    wait = 0.0
    while position < len(audience) and time.monotonic() < deadline:
        # Sending is slower than the rate (a slow or failing SMTP server): record nothing more
        # until the dispatchers catch up, so neither their reads nor the dead letters pile up.
        if await d.store.count({"status": Status.PENDING.value}) > BACKLOG_LIMIT:
            wait = BACKLOG_PAUSE
            break
        batch = audience[position : position + size]
        started = time.monotonic()
        within_wait = clock.now() - send["started_at"] < RECIPIENT_WAIT
        covered = await _record_batch(d, campaign_id, batch, wait_for_unknown=within_wait)
        position += covered
        if covered < len(batch):
            # A recipient not known yet: the progress written below keeps them next in line.
            wait = RECIPIENT_PAUSE
            break
        await d.store.send_progress(
            campaign_id, cursor=batch[-1], finished=False, leased_until=clock.now() + LEASE
        )
        # The rate: a batch of `size` takes size / rate seconds to come due.
        await asyncio.sleep(max(0.0, len(batch) / rate - (time.monotonic() - started)))
    finished = position >= len(audience)
    # Unmoved, the cursor stays as it was (the user before it may have opted out since).
    cursor = audience[position - 1] if position > start else send.get("cursor") or ""
    await d.store.send_progress(campaign_id, cursor=cursor, finished=finished, leased_until=None)
    if finished:
        log.info("campaign %s planned for %d recipients", campaign_id, len(audience))
    return wait


async def _record_batch(
    d: Deliveries, campaign_id: str, user_ids: list[str], *, wait_for_unknown: bool
) -> int:
    """Record the batch's deliveries; how many of its users it covered. A user not known yet ends
    the batch there while `wait_for_unknown` (the next pass starts with them), else is skipped.
    The audience was read opted in; whether each still is, and their locale, is looked up when
    their message goes (dispatch), not twice."""
    recipients = await asyncio.gather(*(d.store.recipient(user_id) for user_id in user_ids))
    now = clock.now()
    found = []
    covered = len(user_ids)
    for index, (user_id, recipient) in enumerate(zip(user_ids, recipients, strict=True)):
        if recipient is None:
            if wait_for_unknown:
                covered = index
                break
            log.warning("campaign %s: user %s is still unknown; skipped", campaign_id, user_id)
            continue
        if not recipient.customer:
            continue
        found.append(
            Delivery(
                id=f"campaign-{campaign_id}:email:{address_hash(recipient.email)}",
                template=TEMPLATE,
                topic=Topic.PROMOTIONS,
                channel=Channel.EMAIL,
                to=recipient.email,
                status=Status.PENDING,
                due_at=now,
                created_at=now,
                user_id=user_id,
                context={"name": recipient.name, "email": recipient.email},
                campaign_id=campaign_id,
            )
        )
    await d.record(found)
    return covered
