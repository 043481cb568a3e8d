"""Routes of the promotions API, for staff: campaigns written, previewed, sent once, counted."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from notifications import campaigns
from notifications.keys import DELIVERIES
from notifications.model import Campaign
from notifications.rendering import valid_locale
from notifications.schemas import (
    CampaignChangeSchema,
    CampaignPreviewSchema,
    CampaignSchema,
    SendSchema,
)
from shopkit import clock
from shopkit.answers import json_response
from shopkit.auth import STAFF_ROLES, principal, requires
from shopkit.headers import LOCATION
from shopkit.idempotency import idempotent, operation_id
from shopkit.schemas import load_body

routes = web.RouteTableDef()


def present(campaign: Campaign, counts: dict[str, int] | None = None) -> dict[str, Any]:
    if campaign.started_at is None:
        state = "draft"
    else:
        state = (
            "sent"
            if campaign.planned
            and counts
            and not counts.get("pending")
            and not counts.get("sending")
            else "sending"
        )
    answer: dict[str, Any] = {
        "id": campaign.id,
        "name": campaign.name,
        "subject": campaign.subject,
        "html": campaign.html,
        "text": campaign.text,
        "state": state,
        "rate": campaign.rate,
        "created_by": campaign.created_by,
        "created_at": clock.rfc3339(campaign.created_at),
        "started_at": clock.rfc3339(campaign.started_at) if campaign.started_at else None,
    }
    if counts is not None:
        answer["counts"] = counts
    return answer


@routes.post("/api/v1/promotions")
@requires(*STAFF_ROLES)
@idempotent()
async def create_campaign(request: web.Request) -> web.Response:
    """A draft campaign: subject, HTML and text templates (Jinja2, sandboxed; `name`, `email`
    and `unsubscribe_url` are theirs to use)."""
    body = await load_body(request, CampaignSchema)
    campaign = await campaigns.create(
        request.app[DELIVERIES],
        actor=principal(request).subject,
        key=operation_id(request, "campaign"),
        **body,
    )
    return json_response(
        present(campaign),
        status=201,
        headers={LOCATION: f"/api/v1/promotions/{campaign.id}"},
    )


@routes.get("/api/v1/promotions")
@requires(*STAFF_ROLES)
async def list_campaigns(request: web.Request) -> web.Response:
    """The newest 100 campaigns."""
    found = await request.app[DELIVERIES].store.campaigns_page(100)
    return json_response({"items": [present(campaign) for campaign in found]})


@routes.get("/api/v1/promotions/{campaign_id}")
@requires(*STAFF_ROLES)
async def get_campaign(request: web.Request) -> web.Response:
    """A campaign, its state and its delivery counts by status."""
    d = request.app[DELIVERIES]
    campaign = await campaigns.get(d, request.match_info["campaign_id"])
    counts = await campaigns.counts(d, campaign.id) if campaign.started_at else None
    return json_response(present(campaign, counts))


@routes.patch("/api/v1/promotions/{campaign_id}")
@requires(*STAFF_ROLES)
async def change_campaign(request: web.Request) -> web.Response:
    """Change a draft; a campaign being sent is 409."""
    body = await load_body(request, CampaignChangeSchema)
    campaign = await campaigns.change(
        request.app[DELIVERIES], request.match_info["campaign_id"], body
    )
    return json_response(present(campaign))


@routes.post("/api/v1/promotions/{campaign_id}/preview")
@requires(*STAFF_ROLES)
async def preview_campaign(request: web.Request) -> web.Response:
    """The campaign rendered for a sample recipient."""
    body = await load_body(request, CampaignPreviewSchema)
    d = request.app[DELIVERIES]
    campaign = await campaigns.get(d, request.match_info["campaign_id"])
    locale = valid_locale(body["locale"]) if body.get("locale") else None
    return json_response(campaigns.preview(d, campaign, locale).to_json())


@routes.post("/api/v1/promotions/{campaign_id}/send")
@requires(*STAFF_ROLES)
@idempotent()
async def send_campaign(request: web.Request) -> web.Response:
    """Send to every customer who opted into promotional email, at `rate` messages per second.
    Sending again sends nothing more: the answer is the campaign as it goes."""
    body = await load_body(request, SendSchema)
    d = request.app[DELIVERIES]
    campaign, _ = await campaigns.start(d, request.match_info["campaign_id"], body.get("rate"))
    counts = await campaigns.counts(d, campaign.id)
    return json_response(present(campaign, counts), status=202)
