"""Sending what was recorded: claim an attempt, check it is still wanted, render, hand over, record.

One pass on any instance: read the pending deliveries (few by design: campaigns are recorded at
their sending rate, final deliveries leave the status), take the due ones, and insert each one's
next attempt claim. An instance that inserted a claim marks the delivery `sending` and only then
hands the message over, so a claim without that mark was never sent. What follows the hand-over is
recorded at once; an instance dying in between leaves a delivery `sending` past its window, which
another instance sends again and counts as a possible duplicate: SMTP has no idempotency key.

Transient failures retry after RETRY_DELAY doubling per attempt, with full jitter, up to
MAX_RETRY_DELAY, and after SEND_ATTEMPTS they are dead-lettered (status `dead`: staff read and
retry them). Permanent failures suppress the address on that channel; nothing goes there again
until staff lift the suppression.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

from pymongo.errors import PyMongoError

from notifications import campaigns
from notifications.deliveries import Deliveries
from notifications.errors import (
    PermanentFailure,
    SendFailed,
    TemplateBroken,
    TransientFailure,
    Undeliverable,
)
from notifications.mail import compose, valid_address
from notifications.model import Channel, Delivery, Status, Topic, mask
from notifications.rendering import Rendered
from notifications.sms import E164
from shopkit import clock
from shopkit.events import RetryPolicy
from shopkit.tasks import run_forever

log = logging.getLogger("notifications.dispatch")
# How long an attempt may hold its delivery: far beyond one hand-over (each is bounded by
# SMTP_TIMEOUT or TWILIO_TIMEOUT) and a link lookup, so only a dead instance outlives it.
CLAIM_WINDOW = timedelta(seconds=120)
# One attempt's bound, the wait for a free SMTP connection included; the app's shutdown drain
# (app.DRAIN_TIMEOUT) waits longer than this.
ATTEMPT_TIMEOUT = 25.0
RECORD_ATTEMPTS = 5
RECORD_PAUSE = 2.0
IDLE_WAIT = 1.0
RECOVER_EVERY = 15.0


class Dispatcher:
    def __init__(self, deliveries: Deliveries) -> None:
        self.deliveries = deliveries
        self._next_recovery = 0.0
        self._stop = asyncio.Event()
        # Claims other instances hold (claim id -> monotonic end of their window).
        self._held_elsewhere: dict[str, float] = {}

    async def run(self) -> None:
        """Pass after pass until `stop`; a failed pass is logged and the next one tries again."""

        async def one_pass() -> float:
            await self.step()  # it waits for work itself
            return 0.0

        await run_forever("notifications.dispatch", one_pass, IDLE_WAIT, stop=self._stop)

    def stop(self) -> None:
        """Finish the pass under way (its messages handed over are recorded), start no other."""
        self._stop.set()
        self.deliveries.recorded.set()

    async def step(self) -> None:
        """One pass; returns at once when it sent something, else waits for something to be due."""
        d = self.deliveries
        if time.monotonic() >= self._next_recovery:
            self._next_recovery = time.monotonic() + RECOVER_EVERY
            await self.recover()
        d.recorded.clear()
        now, moment = clock.now(), time.monotonic()
        self._held_elsewhere = {k: v for k, v in self._held_elsewhere.items() if v > moment}
        pending = await d.store.in_status(Status.PENDING)
        due = sorted(
            (x for x in pending if x.due_at <= now and x.claim_id not in self._held_elsewhere),
            key=lambda x: x.due_at,
        )[: d.settings.dispatch_batch]
        if due and not self._stop.is_set() and await self.attempt(due):
            return
        if self._stop.is_set():
            return
        later = [x.due_at for x in pending if x.due_at > now]
        wait = min([IDLE_WAIT, *((at - now).total_seconds() for at in later)])
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(wait, 0.01)):
                await d.recorded.wait()

    async def attempt(self, due: list[Delivery]) -> int:
        """Claim, hand over and record what this instance won of `due`; how many it won."""
        d = self.deliveries
        won, lost = await d.store.claim(due)
        if lost:
            # Another instance is on these: look past them until their window closes.
            until = time.monotonic() + CLAIM_WINDOW.total_seconds()
            self._held_elsewhere.update((x.claim_id, until) for x in lost)
            await self.unblock(lost)
        if not won:
            return 0
        until_at = clock.now() + CLAIM_WINDOW
        await d.store.update(
            {
                x.id: {
                    "status": Status.SENDING.value,
                    "attempts": x.attempts + 1,
                    "until": until_at,
                }
                for x in won
            }
        )
        results = await asyncio.gather(*(self.send_one(x) for x in won), return_exceptions=True)
        outcomes = {}
        for delivery, result in zip(won, results, strict=True):
            if isinstance(result, BaseException):
                # Unknown whether it went: left `sending`, recovered (and counted) after its window.
                log.error("delivery %s: %r", delivery.id, result)
            else:
                outcomes[delivery.id] = result
        await self._record(outcomes)
        return len(won)

    async def _record(self, outcomes: dict[str, dict[str, Any]]) -> None:
        """Write what the hand-overs did, trying again for a while: until it lands, each message
        sent counts as mid-attempt, and would be sent again after its window."""
        for attempt in range(RECORD_ATTEMPTS):
            try:
                await self.deliveries.store.update(outcomes)
                return
            except PyMongoError:
                if attempt == RECORD_ATTEMPTS - 1:
                    raise
                log.warning("recording %d outcomes failed; trying again", len(outcomes))
                await asyncio.sleep(RECORD_PAUSE)

    async def unblock(self, lost: list[Delivery]) -> None:
        """Claims another instance took. One that never marked its delivery `sending` within the
        window died before sending: that attempt number is skipped, nothing was sent. (Every
        instance that sees it writes the same `attempts`.)"""
        claimed = await self.deliveries.store.claimed_at(x.claim_id for x in lost)
        cutoff = clock.now() - CLAIM_WINDOW
        stale = {
            x.id: {"attempts": x.attempts + 1}
            for x in lost
            if x.claim_id in claimed and claimed[x.claim_id] < cutoff
        }
        await self.deliveries.store.update(stale)

    async def recover(self) -> None:
        """Deliveries left `sending` by a dead instance: attempted again, perhaps a duplicate.
        Each one's recovery is claimed by insert too, so one instance re-queues and counts it."""
        d = self.deliveries
        now = clock.now()
        stuck = await d.store.sending_past(now)
        mine = await d.store.claim_recovery(stuck)
        for delivery in mine:
            d.metrics.possible_duplicates.labels(delivery.channel.value).inc()
            log.warning("delivery %s was left mid-attempt; sending it again", delivery.id)
        await d.store.update({x.id: {"status": Status.PENDING.value, "due_at": now} for x in mine})

    async def send_one(self, delivery: Delivery) -> dict[str, Any]:
        """The delivery's changes after this attempt."""
        d = self.deliveries
        now = clock.now()
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT):
                status = await self._hand_over(delivery)
        except PermanentFailure as failure:
            try:
                await d.store.suppress(delivery.channel, delivery.to, failure.code)
            except PyMongoError:
                log.warning(
                    "could not suppress %s; its next message will fail again", mask(delivery.to)
                )
            return self._final(delivery, Status.FAILED, "failed", str(failure))
        except (Undeliverable, TemplateBroken) as failure:
            return self._final(delivery, Status.FAILED, "failed", str(failure))
        except (TransientFailure, TimeoutError, Exception) as failure:
            if not isinstance(failure, SendFailed | TimeoutError):
                log.exception("delivery %s failed unexpectedly", delivery.id)
            error = str(failure) or type(failure).__name__
            attempts = delivery.attempts + 1
            if attempts >= d.settings.send_attempts:
                return self._final(delivery, Status.DEAD, "dead_lettered", error)
            d.metrics.count(delivery.channel, delivery.template, "retried")
            wait = RetryPolicy(
                d.settings.send_attempts, d.settings.retry_delay, d.settings.max_retry_delay
            ).delay(attempts - 1)
            return {
                "status": Status.PENDING.value,
                "due_at": now + timedelta(seconds=wait),
                "error": error,
            }
        if status is not Status.SENT:
            return self._final(delivery, status, status.value, None)
        d.metrics.count(delivery.channel, delivery.template, "sent")
        log.info("sent %s by %s to %s", delivery.template, delivery.channel, mask(delivery.to))
        return {"status": Status.SENT.value, "sent_at": clock.now(), "error": None}

    def _final(
        self, delivery: Delivery, status: Status, outcome: str, error: str | None
    ) -> dict[str, Any]:
        self.deliveries.metrics.count(delivery.channel, delivery.template, outcome)
        if error is not None:
            log.warning(
                "%s by %s to %s: %s (%s)",
                delivery.template,
                delivery.channel,
                mask(delivery.to),
                status,
                error,
            )
        return {"status": status.value, "error": error}

    async def _hand_over(self, delivery: Delivery) -> Status:
        """Sent, or why not: raises SendFailed for a failure, answers the status of a message that
        is no longer wanted."""
        d = self.deliveries
        if await d.store.suppressed(delivery.channel, [delivery.to]):
            return Status.SUPPRESSED
        if delivery.user_id is not None and delivery.topic is not Topic.TRANSACTIONAL:
            preferences = await d.store.preferences(delivery.user_id)
            if not preferences.wants(delivery.topic, delivery.channel):
                return Status.OPTED_OUT
            if delivery.locale is None:
                delivery = replace(delivery, locale=preferences.locale)
        if delivery.channel is Channel.SMS:
            return await self._text(delivery)
        if not valid_address(delivery.to):
            raise PermanentFailure("invalid-address", f"{mask(delivery.to)} is no email address")
        rendered, unsubscribe_url = await self._render(delivery)
        message = compose(
            d.settings, delivery.id, delivery.to, rendered, unsubscribe_url=unsubscribe_url
        )
        started = time.monotonic()
        await d.mailer.send(message)
        d.metrics.send_seconds.labels("email").observe(time.monotonic() - started)
        return Status.SENT

    async def _text(self, delivery: Delivery) -> Status:
        d = self.deliveries
        if not E164.match(delivery.to):
            raise PermanentFailure("invalid-number", f"{mask(delivery.to)} is not E.164")
        hour = clock.now().strftime("%Y-%m-%dT%H")
        # The first attempt takes the slot; a retry of the same message uses it still.
        if delivery.attempts == 0 and not await d.store.take_sms_slot(
            delivery.to, hour, d.settings.sms_per_hour
        ):
            return Status.RATE_LIMITED
        rendered = d.renderer.render_sms(delivery.template, delivery.context, delivery.locale)
        started = time.monotonic()
        await d.sms.send(delivery.to, rendered.text)
        d.metrics.send_seconds.labels("sms").observe(time.monotonic() - started)
        return Status.SENT

    async def _render(self, delivery: Delivery) -> tuple[Rendered, str | None]:
        d = self.deliveries
        context = dict(delivery.context)
        if delivery.campaign_id is not None:
            return await campaigns.render_for(d, delivery)
        if delivery.link_id is not None and delivery.user_id is not None:
            # Only deliveries users' events made carry a link id: nothing a request sends can.
            context["link"] = await d.link(delivery.user_id, delivery.link_id)
        return d.renderer.render(delivery.template, context, delivery.locale), None
