"""The situations notifications answers with, as the kit's problem types, and how a send fails."""

from __future__ import annotations

from shopkit.problems import Conflict, Forbidden, NotFound, ValidationFailed


class TemplateNotFound(NotFound):
    slug, title = "template-not-found", "No such template"


class TemplateBroken(ValidationFailed):
    """A template that does not render with the data given (or, for campaigns, compile)."""

    slug, title = "template-broken", "The template does not render"


class UnknownLocale(ValidationFailed):
    slug, title = "unknown-locale", "Unknown locale"


class DeliveryNotFound(NotFound):
    slug, title = "delivery-not-found", "No such delivery"


class DeliveryNotRetryable(Conflict):
    slug, title = "delivery-not-retryable", "Only dead-lettered or failed deliveries are retried"


class CampaignNotFound(NotFound):
    slug, title = "campaign-not-found", "No such campaign"


class CampaignStarted(Conflict):
    slug, title = "campaign-started", "The campaign is being sent and can no longer change"


class InvalidUnsubscribeLink(Forbidden):
    slug, title = "invalid-unsubscribe-link", "This unsubscribe link is not valid"


class SuppressionNotFound(NotFound):
    slug, title = "suppression-not-found", "No such suppression"


# How a send fails: the channel raises one of these, the dispatcher decides what follows.


class SendFailed(Exception):
    """A send that did not go through; `code` names why in the delivery log."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


class TransientFailure(SendFailed):
    """Worth another attempt later: SMTP 4xx, Twilio 429 or 5xx, timeouts, a peer down."""


class PermanentFailure(SendFailed):
    """Never worth another attempt to this address on this channel: it is suppressed."""


class Undeliverable(SendFailed):
    """This message cannot be sent (an expired link), though the address is fine."""
