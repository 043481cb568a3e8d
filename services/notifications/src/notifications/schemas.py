"""What the notifications and promotions APIs accept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from notifications.model import FIXED, Channel, Status, Topic
from notifications.sms import E164
from shopkit.pagination import MAX_LIMIT, CursorField
from shopkit.schemas import Schema

NAME = validate.Length(min=1, max=200)
TEMPLATE_TEXT = validate.Length(min=1, max=100_000)
LOCALE = fields.String(
    allow_none=True, validate=validate.Regexp(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*\Z")
)


class ChannelsSchema(Schema):
    email = fields.Boolean()
    sms = fields.Boolean()


class TopicsSchema(Schema):
    transactional = fields.Nested(ChannelsSchema)
    shipping = fields.Nested(ChannelsSchema)
    promotions = fields.Nested(ChannelsSchema)


class PreferencesSchema(Schema):
    """A change of preferences: what is sent is changed, the rest stays."""

    topics = fields.Nested(TopicsSchema)
    phone = fields.String(
        allow_none=True,
        validate=validate.Regexp(E164, error="a phone number in E.164 form, like +447700900123"),
    )
    locale = LOCALE

    @validates_schema
    def _fixed_stay_on(self, data: dict[str, Any], **_: Any) -> None:
        for topic, channel in FIXED:
            if data.get("topics", {}).get(topic.value, {}).get(channel.value) is False:
                raise ValidationError(
                    f"{topic.value} {channel.value} cannot be turned off",
                    field_name="topics",
                )


class PreviewSchema(Schema):
    data = fields.Dict(keys=fields.String(), load_default=dict)
    locale = LOCALE


class TestMessageSchema(Schema):
    email = fields.Email()
    phone = fields.String(validate=validate.Regexp(E164, error="a phone number in E.164 form"))
    locale = LOCALE
    data = fields.Dict(keys=fields.String(), load_default=dict)

    @validates_schema
    def _somewhere(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("email") and not data.get("phone"):
            raise ValidationError("give an email, a phone or both", field_name="email")


class DeliveryQuery(Schema):
    """A day of the log (UTC, today by default), or one recipient's, or the dead-letter list."""

    day = fields.Date()
    recipient = fields.String(validate=validate.Length(min=3, max=320))
    status = fields.String(validate=validate.OneOf([status.value for status in Status]))
    template = fields.String(validate=NAME)
    channel = fields.String(validate=validate.OneOf([channel.value for channel in Channel]))
    campaign = fields.String(validate=NAME)
    limit = fields.Integer(load_default=50, validate=validate.Range(1, MAX_LIMIT))
    cursor = CursorField(list, load_default=None)

    @validates_schema
    def _cursor_is_a_position(self, data: dict[str, Any], **_: Any) -> None:
        """A cursor is [created_at (RFC 3339), delivery id], as this API wrote it."""
        cursor = data.get("cursor")
        if cursor is None:
            return
        try:
            moment, last_id = cursor
            if not isinstance(last_id, str):
                raise TypeError(last_id)
            data["cursor"] = (datetime.fromisoformat(moment), last_id)
        except (TypeError, ValueError):
            raise ValidationError("not a cursor of this list", field_name="cursor") from None


class SuppressionSchema(Schema):
    channel = fields.String(
        required=True, validate=validate.OneOf([channel.value for channel in Channel])
    )
    address = fields.String(required=True, validate=validate.Length(min=3, max=320))
    reason = fields.String(load_default="hard-bounce", validate=validate.Length(min=1, max=200))


class CampaignSchema(Schema):
    name = fields.String(required=True, validate=NAME)
    subject = fields.String(required=True, validate=validate.Length(min=1, max=500))
    html = fields.String(required=True, validate=TEMPLATE_TEXT)
    text = fields.String(required=True, validate=TEMPLATE_TEXT)


class CampaignChangeSchema(Schema):
    name = fields.String(validate=NAME)
    subject = fields.String(validate=validate.Length(min=1, max=500))
    html = fields.String(validate=TEMPLATE_TEXT)
    text = fields.String(validate=TEMPLATE_TEXT)


class CampaignPreviewSchema(Schema):
    locale = LOCALE


class SendSchema(Schema):
    rate = fields.Float(validate=validate.Range(min=0.1, max=10_000))


TOPICS = [topic.value for topic in Topic if topic is not Topic.STAFF]
