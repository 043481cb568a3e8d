"""What the notifications and promotions APIs' OpenAPI document says of each handler."""

from __future__ import annotations

from typing import Any

import marshmallow
from marshmallow import fields

from notifications import schemas
from notifications.model import Channel, Status, Topic
from shopkit.openapi import IDEMPOTENCY_KEY_REQUIRED, LOCATION, Operation


def _out(**kwargs: Any) -> Any:
    return {"required": True, **kwargs}


def _enum(kind: Any, **kwargs: Any) -> Any:
    return _out(metadata={"enum": [member.value for member in kind]}, **kwargs)


class ChannelsOut(marshmallow.Schema):
    email = fields.Boolean(**_out())
    sms = fields.Boolean(**_out())


class TopicsOut(marshmallow.Schema):
    transactional = fields.Nested(ChannelsOut, **_out())
    shipping = fields.Nested(ChannelsOut, **_out())
    promotions = fields.Nested(ChannelsOut, **_out())


class PreferencesOut(marshmallow.Schema):
    topics = fields.Nested(TopicsOut, **_out())
    fixed = fields.List(
        fields.String(), **_out(metadata={"description": "topic.channel pairs that stay on"})
    )
    phone = fields.String(allow_none=True, **_out())
    locale = fields.String(allow_none=True, **_out())


class RenderedOut(marshmallow.Schema):
    subject = fields.String(**_out())
    text = fields.String(**_out())
    html = fields.String(allow_none=True, **_out())
    sms = fields.String(metadata={"description": "the SMS text, for templates sent by SMS"})


class TemplateOut(marshmallow.Schema):
    name = fields.String(**_out())
    channels = fields.List(fields.String(), **_out())
    sample = fields.Dict(**_out())


class TemplatesOut(marshmallow.Schema):
    items = fields.List(fields.Nested(TemplateOut), **_out())


class TestSentOut(marshmallow.Schema):
    deliveries = fields.List(fields.String(), **_out())


class DeliveryOut(marshmallow.Schema):
    id = fields.String(**_out())
    template = fields.String(**_out())
    topic = fields.String(**_enum(Topic))
    channel = fields.String(**_enum(Channel))
    recipient = fields.String(**_out(metadata={"description": "masked: j***@example.com"}))
    status = fields.String(**_enum(Status))
    attempts = fields.Integer(**_out())
    retries_by_staff = fields.Integer(**_out())
    error = fields.String(allow_none=True, **_out())
    campaign_id = fields.String(allow_none=True, **_out())
    created_at = fields.String(**_out())
    due_at = fields.String(**_out())
    sent_at = fields.String(allow_none=True, **_out())


class DeliveriesOut(marshmallow.Schema):
    items = fields.List(fields.Nested(DeliveryOut), **_out())
    next_cursor = fields.String(allow_none=True, **_out())


class SuppressionOut(marshmallow.Schema):
    id = fields.String(**_out())
    channel = fields.String(**_enum(Channel))
    recipient = fields.String(**_out())
    reason = fields.String(**_out())
    at = fields.String(**_out())


class CountsOut(marshmallow.Schema):
    pending = fields.Integer(**_out())
    sending = fields.Integer(**_out())
    sent = fields.Integer(**_out())
    failed = fields.Integer(**_out())
    dead = fields.Integer(**_out())
    suppressed = fields.Integer(**_out())
    opted_out = fields.Integer(**_out())
    rate_limited = fields.Integer(**_out())


class CampaignOut(marshmallow.Schema):
    id = fields.String(**_out())
    name = fields.String(**_out())
    subject = fields.String(**_out())
    html = fields.String(**_out())
    text = fields.String(**_out())
    state = fields.String(**_out(metadata={"enum": ["draft", "sending", "sent"]}))
    rate = fields.Float(allow_none=True, **_out())
    created_by = fields.String(**_out())
    created_at = fields.String(**_out())
    started_at = fields.String(allow_none=True, **_out())
    counts = fields.Nested(CountsOut)


class CampaignsOut(marshmallow.Schema):
    items = fields.List(fields.Nested(CampaignOut), **_out())


HTML = {"type": "string", "description": "an HTML page"}

OPERATIONS = {
    "get_preferences": Operation(response=PreferencesOut),
    "change_preferences": Operation(
        body=schemas.PreferencesSchema, response=PreferencesOut, errors=(422,)
    ),
    "unsubscribe_page": Operation(response=HTML, media_type="text/html", errors=(403,)),
    "unsubscribe_now": Operation(
        body_required=False, response=HTML, media_type="text/html", errors=(403,)
    ),
    "list_templates": Operation(response=TemplatesOut),
    "preview_template": Operation(
        body=schemas.PreviewSchema, response=RenderedOut, errors=(404, 422)
    ),
    "send_test": Operation(
        body=schemas.TestMessageSchema,
        response=TestSentOut,
        statuses=(202,),
        headers=(IDEMPOTENCY_KEY_REQUIRED,),
        errors=(404, 422),
    ),
    "list_deliveries": Operation(query=schemas.DeliveryQuery, response=DeliveriesOut),
    "get_delivery": Operation(response=DeliveryOut, errors=(404,)),
    "retry_delivery": Operation(
        response=DeliveryOut,
        statuses=(202,),
        headers=(IDEMPOTENCY_KEY_REQUIRED,),
        errors=(404, 409),
    ),
    "add_suppression": Operation(
        body=schemas.SuppressionSchema, response=SuppressionOut, statuses=(201,), errors=(404,)
    ),
    "get_suppression": Operation(response=SuppressionOut, errors=(404,)),
    "lift_suppression": Operation(statuses=(204,), errors=(404,)),
    "create_campaign": Operation(
        body=schemas.CampaignSchema,
        response=CampaignOut,
        statuses=(201,),
        headers=(IDEMPOTENCY_KEY_REQUIRED,),
        response_headers=(LOCATION,),
        errors=(422,),
    ),
    "list_campaigns": Operation(response=CampaignsOut),
    "get_campaign": Operation(response=CampaignOut, errors=(404,)),
    "change_campaign": Operation(
        body=schemas.CampaignChangeSchema, response=CampaignOut, errors=(404, 409, 422)
    ),
    "preview_campaign": Operation(
        body=schemas.CampaignPreviewSchema, response=RenderedOut, errors=(404, 422)
    ),
    "send_campaign": Operation(
        body=schemas.SendSchema,
        response=CampaignOut,
        statuses=(202,),
        headers=(IDEMPOTENCY_KEY_REQUIRED,),
        errors=(404,),
    ),
}
