"""All of notifications' Mongo access.

- `deliveries`: one message to one address on one channel (`_id` derives from what caused it), inserted
  before any attempt, so a redelivered event inserts nothing new. Its `status` moves from pending
  to sending to a final one; only `pending` and `sending` are read by status (equality), and few
  stay there for long, so the dispatcher's reads do not grow with the messages sent.
- `claims`: one per attempt (`<delivery>#<round>.<attempt>`). Whoever inserts it makes the attempt:
  FerretDB has no atomic conditional update, a unique `_id` is the one arbiter two instances share.
- `recipients`: what users told of each account (email, name); `preferences`: the phone and locale a
  customer gave; `choices`: one document per (customer, topic, channel) they chose, so that no two
  writers share a document (`choice` = `promotions.email` under an index: the campaign audience).
- `suppressions`: `<channel>:<address hash>` of addresses that failed for good or bounced.
- `orders`: what `order.placed` said of each order, for the messages that follow it.
- `campaigns`, `campaign_sends`: promotions, and the sending of each (inserted once: sent once).
- `sms_slots`: `<phone hash>:<hour>:<n>`, the SMS one phone got in one hour, one insert each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from notifications.model import (
    Campaign,
    Channel,
    Delivery,
    Preferences,
    Recipient,
    Status,
    Topic,
    address_hash,
    mask,
)
from shopkit import clock, sweeps
from shopkit.mongo import insert_new

DELIVERY_RETENTION = timedelta(days=90)
CLAIM_RETENTION = timedelta(days=2)
# Long past the last refund or dispute an order may see.
ORDER_RETENTION = timedelta(days=400)
FIND_TIMEOUT_MS = 10_000
# FerretDB v1 (PostgreSQL) keeps each statement's read of an update command open, a connection of
# its pool of 50 each, until the whole command ends (handler/msg_update.go, v1.24): a command of 50
# statements waits for good, and so does every other client of that FerretDB. A few at a time:
# at most UPDATE_COMMANDS x (UPDATE_STATEMENTS + 1) connections per instance, 24; two instances
# stay under 50, so their updates cannot all wait on each other.
UPDATE_STATEMENTS = 5
UPDATE_COMMANDS = 4


def _delivery_document(delivery: Delivery) -> dict[str, Any]:
    return {
        "_id": delivery.id,
        "template": delivery.template,
        "topic": delivery.topic.value,
        "channel": delivery.channel.value,
        "to": delivery.to,
        "to_hash": address_hash(delivery.to),
        "to_masked": mask(delivery.to),
        "status": delivery.status.value,
        "due_at": delivery.due_at,
        "created_at": delivery.created_at,
        "attempts": delivery.attempts,
        "round": delivery.round,
        "user_id": delivery.user_id,
        "locale": delivery.locale,
        "context": delivery.context,
        "campaign_id": delivery.campaign_id,
        "link_id": delivery.link_id,
        "sent_at": None,
        "error": None,
        sweeps.FIELD: sweeps.purge_on(delivery.created_at + DELIVERY_RETENTION),
    }


def _delivery(document: Mapping[str, Any]) -> Delivery:
    return Delivery(
        id=document["_id"],
        template=document["template"],
        topic=Topic(document["topic"]),
        channel=Channel(document["channel"]),
        to=document["to"],
        status=Status(document["status"]),
        due_at=document["due_at"],
        created_at=document["created_at"],
        attempts=document.get("attempts", 0),
        round=document.get("round", 0),
        user_id=document.get("user_id"),
        locale=document.get("locale"),
        context=document.get("context") or {},
        campaign_id=document.get("campaign_id"),
        link_id=document.get("link_id"),
        sent_at=document["sent_at"] if document.get("sent_at") else None,
        error=document.get("error"),
    )


class NotificationStore:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.deliveries = db["deliveries"]
        self.claims = db["claims"]
        self.recipients = db["recipients"]
        self.profiles = db["preferences"]
        self.choices = db["choices"]
        self.suppressions = db["suppressions"]
        self.orders = db["orders"]
        self.campaigns = db["campaigns"]
        self.sends = db["campaign_sends"]
        self.sms_slots = db["sms_slots"]

    async def ensure_indexes(self) -> None:
        await self.deliveries.create_index("status")
        await self.deliveries.create_index([("to_hash", ASCENDING), ("created_at", DESCENDING)])
        await self.deliveries.create_index([("template", ASCENDING), ("created_at", DESCENDING)])
        await self.deliveries.create_index([("campaign_id", ASCENDING), ("status", ASCENDING)])
        await self.deliveries.create_index("created_day")
        await self.choices.create_index("user_id")
        await self.choices.create_index("choice")
        await self.sends.create_index("finished")
        await self.sms_slots.create_index("window")
        for collection in (self.deliveries, self.claims, self.orders, self.sms_slots):
            await sweeps.ensure_index(collection)

    # --- deliveries

    async def record(self, deliveries: Sequence[Delivery]) -> set[str]:
        """Insert the deliveries not recorded yet; the ids of those inserted now."""
        documents = []
        for delivery in deliveries:
            document = _delivery_document(delivery)
            document["created_day"] = delivery.created_at.date().isoformat()
            documents.append(document)
        return await insert_new(self.deliveries, documents)

    async def delivery(self, delivery_id: str) -> Delivery | None:
        document = await self.deliveries.find_one({"_id": delivery_id})
        return None if document is None else _delivery(document)

    async def in_status(self, status: Status) -> list[Delivery]:
        cursor = self.deliveries.find({"status": status.value}, max_time_ms=FIND_TIMEOUT_MS)
        return [_delivery(document) async for document in cursor]

    async def sending_past(self, now: datetime) -> list[Delivery]:
        """Deliveries marked `sending` whose attempt window closed: their instance died."""
        cursor = self.deliveries.find({"status": Status.SENDING.value}, max_time_ms=FIND_TIMEOUT_MS)
        return [
            _delivery(d) async for d in cursor if d.get("until") is not None and d["until"] < now
        ]

    async def claim(self, deliveries: Sequence[Delivery]) -> tuple[list[Delivery], list[Delivery]]:
        """Claim each delivery's next attempt: (won, lost)."""
        now = clock.now()
        documents = [
            {
                "_id": delivery.claim_id,
                "at": now,
                sweeps.FIELD: sweeps.purge_on(now + CLAIM_RETENTION),
            }
            for delivery in deliveries
        ]
        won = await insert_new(self.claims, documents)
        return (
            [d for d in deliveries if d.claim_id in won],
            [d for d in deliveries if d.claim_id not in won],
        )

    async def claim_recovery(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Of deliveries left mid-attempt, those this caller is first to recover."""
        now = clock.now()
        ids = {f"recover:{d.id}#{d.round}.{d.attempts}": d for d in deliveries}
        documents = [
            {"_id": key, "at": now, sweeps.FIELD: sweeps.purge_on(now + CLAIM_RETENTION)}
            for key in ids
        ]
        won = await insert_new(self.claims, documents)
        return [delivery for key, delivery in ids.items() if key in won]

    async def claimed_at(self, claim_ids: Iterable[str]) -> dict[str, datetime]:
        found = await asyncio.gather(
            *(self.claims.find_one({"_id": claim_id}) for claim_id in claim_ids)
        )
        return {document["_id"]: document["at"] for document in found if document}

    async def update(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        """`$set` each delivery's changes, UPDATE_STATEMENTS to a command, UPDATE_COMMANDS
        commands at a time (FerretDB runs a command's statements one after the other)."""
        updates = [UpdateOne({"_id": key}, {"$set": dict(value)}) for key, value in changes.items()]
        chunks = [
            updates[start : start + UPDATE_STATEMENTS]
            for start in range(0, len(updates), UPDATE_STATEMENTS)
        ]
        for first in range(0, len(chunks), UPDATE_COMMANDS):
            await asyncio.gather(
                *(
                    self.deliveries.bulk_write(chunk, ordered=False)
                    for chunk in chunks[first : first + UPDATE_COMMANDS]
                )
            )

    async def page(
        self, query: Mapping[str, Any], *, before: tuple[datetime, str] | None, limit: int
    ) -> list[Delivery]:
        """Newest first, after the cursor `before` (created_at, id)."""
        find: dict[str, Any] = dict(query)
        if before is not None:
            moment, last_id = before
            find["$or"] = [
                {"created_at": {"$lt": moment}},
                {"created_at": moment, "_id": {"$lt": last_id}},
            ]
        cursor = (
            self.deliveries.find(find, max_time_ms=FIND_TIMEOUT_MS)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [_delivery(document) async for document in cursor]

    async def campaign_counts(self, campaign_id: str) -> dict[str, int]:
        cursor = await self.deliveries.aggregate(
            [
                {"$match": {"campaign_id": campaign_id}},
                {"$group": {"_id": "$status", "count": {"$sum": 1}}},
            ]
        )
        return {document["_id"]: document["count"] async for document in cursor}

    async def count(self, query: Mapping[str, Any]) -> int:
        return int(await self.deliveries.count_documents(dict(query)))

    # --- recipients and preferences

    async def save_recipient(self, recipient: Recipient) -> None:
        await self.recipients.update_one(
            {"_id": recipient.user_id},
            {
                "$set": {
                    "email": recipient.email,
                    "name": recipient.name,
                    "customer": recipient.customer,
                }
            },
            upsert=True,
        )

    async def recipient(self, user_id: str) -> Recipient | None:
        document = await self.recipients.find_one({"_id": user_id})
        if document is None:
            return None
        return Recipient(user_id, document["email"], document["name"], document["customer"])

    async def preferences(self, user_id: str) -> Preferences:
        profile, choices = await asyncio.gather(
            self.profiles.find_one({"_id": user_id}),
            self.choices.find({"user_id": user_id}).to_list(None),
        )
        channels: dict[Topic, dict[Channel, bool]] = {}
        for choice in choices:
            channels.setdefault(Topic(choice["topic"]), {})[Channel(choice["channel"])] = choice[
                "on"
            ]
        profile = profile or {}
        return Preferences(user_id, channels, profile.get("phone"), profile.get("locale"))

    async def save_profile(self, user_id: str, *, phone: str | None, locale: str | None) -> None:
        await self.profiles.update_one(
            {"_id": user_id},
            {"$set": {"phone": phone, "locale": locale, "updated_at": clock.now()}},
            upsert=True,
        )

    async def choose(self, user_id: str, topic: Topic, channel: Channel, on: bool) -> None:
        """One choice, one document: an unsubscribe and a change of anything else never write
        the same document, so neither can undo the other (FerretDB writes documents whole)."""
        await self.choices.replace_one(
            {"_id": f"{user_id}:{topic.value}:{channel.value}"},
            {
                "user_id": user_id,
                "topic": topic.value,
                "channel": channel.value,
                "choice": f"{topic.value}.{channel.value}",
                "on": on,
                "at": clock.now(),
            },
            upsert=True,
        )

    async def promotions_audience(self) -> list[str]:
        """Every user id that opted into promotional email, in id order."""
        cursor = self.choices.find(
            {"choice": f"{Topic.PROMOTIONS.value}.{Channel.EMAIL.value}", "on": True},
            {"user_id": 1},
        )
        return sorted([document["user_id"] async for document in cursor])

    # --- suppressions

    async def suppress(self, channel: Channel, address: str, reason: str) -> bool:
        """Whether the address was suppressed now (False: it was already)."""
        try:
            await self.suppressions.insert_one(
                {
                    "_id": f"{channel.value}:{address_hash(address)}",
                    "channel": channel.value,
                    "to_masked": mask(address),
                    "reason": reason,
                    "at": clock.now(),
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def suppressed(self, channel: Channel, addresses: Iterable[str]) -> set[str]:
        unique = sorted(set(addresses))
        found = await asyncio.gather(
            *(
                self.suppressions.find_one(
                    {"_id": f"{channel.value}:{address_hash(a)}"}, {"_id": 1}
                )
                for a in unique
            )
        )
        return {address for address, document in zip(unique, found, strict=True) if document}

    async def suppression(self, suppression_id: str) -> dict[str, Any] | None:
        return await self.suppressions.find_one({"_id": suppression_id})

    async def lift(self, suppression_id: str) -> bool:
        result = await self.suppressions.delete_one({"_id": suppression_id})
        return bool(result.deleted_count)

    # --- orders

    async def save_order(self, order: Mapping[str, Any]) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.orders.insert_one(
                {
                    **order,
                    "_id": order["order_id"],
                    sweeps.FIELD: sweeps.purge_on(clock.now() + ORDER_RETENTION),
                }
            )

    async def order(self, order_id: str) -> dict[str, Any] | None:
        document = await self.orders.find_one({"_id": order_id}, {sweeps.FIELD: 0})
        return None if document is None else {k: v for k, v in document.items() if k != "_id"}

    # --- campaigns

    async def insert_campaign(self, campaign: Campaign) -> Campaign:
        try:
            await self.campaigns.insert_one(
                {
                    "_id": campaign.id,
                    "name": campaign.name,
                    "subject": campaign.subject,
                    "html": campaign.html,
                    "text": campaign.text,
                    "created_by": campaign.created_by,
                    "created_at": campaign.created_at,
                }
            )
        except DuplicateKeyError:
            existing = await self.campaign(campaign.id)
            assert existing is not None
            return existing
        return campaign

    async def campaign(self, campaign_id: str) -> Campaign | None:
        document = await self.campaigns.find_one({"_id": campaign_id})
        if document is None:
            return None
        send = await self.sends.find_one({"_id": campaign_id})
        campaign = Campaign(
            id=document["_id"],
            name=document["name"],
            subject=document["subject"],
            html=document["html"],
            text=document["text"],
            created_by=document["created_by"],
            created_at=document["created_at"],
        )
        if send is None:
            return campaign
        return replace(
            campaign,
            subject=send["subject"],
            text=send["text"],
            html=send["html"],
            rate=send["rate"],
            started_at=send["started_at"],
            planned=send["finished"],
        )

    async def campaigns_page(self, limit: int) -> list[Campaign]:
        cursor = self.campaigns.find({}, {"_id": 1}).sort("created_at", DESCENDING).limit(limit)
        ids = [document["_id"] async for document in cursor]
        found = await asyncio.gather(*(self.campaign(campaign_id) for campaign_id in ids))
        return [campaign for campaign in found if campaign is not None]

    async def change_campaign(self, campaign_id: str, changes: Mapping[str, str]) -> None:
        await self.campaigns.update_one({"_id": campaign_id}, {"$set": dict(changes)})

    async def start_campaign(self, campaign: Campaign, rate: float) -> bool:
        """Record that the campaign is to be sent, with its content as it is now (a change racing
        the start cannot reach half the audience); False when it was already."""
        try:
            await self.sends.insert_one(
                {
                    "_id": campaign.id,
                    "subject": campaign.subject,
                    "text": campaign.text,
                    "html": campaign.html,
                    "rate": rate,
                    "started_at": clock.now(),
                    "finished": False,
                    "cursor": "",
                    "leased_until": None,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def unfinished_sends(self) -> list[dict[str, Any]]:
        cursor = self.sends.find({"finished": False})
        return [document async for document in cursor]

    async def lease_send(self, campaign_id: str, until: datetime, now: datetime) -> bool:
        """Take the planning of a campaign for a while. Read, then write: two instances may both
        win, which costs duplicate inserts and nothing else (the deliveries' ids are fixed)."""
        send = await self.sends.find_one({"_id": campaign_id})
        if send is None or send["finished"]:
            return False
        held = send.get("leased_until")
        if held is not None and held > now:
            return False
        await self.sends.update_one({"_id": campaign_id}, {"$set": {"leased_until": until}})
        return True

    async def send_progress(
        self, campaign_id: str, *, cursor: str, finished: bool, leased_until: datetime | None
    ) -> None:
        await self.sends.update_one(
            {"_id": campaign_id},
            {"$set": {"cursor": cursor, "finished": finished, "leased_until": leased_until}},
        )

    # --- SMS quota

    async def take_sms_slot(self, phone: str, hour: str, limit: int) -> bool:
        """One of the `limit` SMS this phone may get in `hour`: False when all are taken."""
        prefix = f"{address_hash(phone)}:{hour}"
        taken = await self.sms_slots.count_documents({"window": prefix})
        for index in range(taken, limit):
            try:
                await self.sms_slots.insert_one(
                    {
                        "_id": f"{prefix}:{index}",
                        "window": prefix,
                        sweeps.FIELD: sweeps.purge_on(clock.now() + timedelta(days=1)),
                    }
                )
            except DuplicateKeyError:
                continue
            return True
        return False
