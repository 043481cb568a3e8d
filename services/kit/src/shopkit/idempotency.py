"""Idempotency-Key for retried client writes: an insert-first claim, then a stored replay.

Each claim of a key is a document of its own, `_id` = `<record>:<generation>`. The first request
inserts generation 0; a retry takes over a claim that was released (the outcome may change) or
went stale (its holder crashed) by inserting the next generation. The unique `_id` is the only
write FerretDB makes atomic, so of several retries racing for one takeover exactly one wins, and a
takeover that itself goes stale is taken over by the generation after it. Only a claim's holder
writes its document (to complete or release it): a slow holder whose claim was taken over writes
its own document, never its successor's, and the newest generation decides what a retry gets.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from shopkit import clock, context, sweeps
from shopkit.auth import optional_principal
from shopkit.headers import (
    CART_TOKEN,
    CONTENT_TYPE,
    ETAG,
    IDEMPOTENCY_KEY,
    IDEMPOTENT_REPLAYED,
    LAST_MODIFIED,
    LOCATION,
    RETRY_AFTER,
    WWW_AUTHENTICATE,
)
from shopkit.keys import DB
from shopkit.problems import BadRequest, Conflict, Problem, ValidationFailed
from shopkit.tasks import background

__all__ = [
    "COLLECTION",
    "IdempotencyKeyReused",
    "RequestInFlight",
    "ensure_indexes",
    "idempotent",
    "operation_id",
    "purge_expired",
    "retry_id",
    "sweeper",
]

log = logging.getLogger("shopkit.idempotency")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The request's identity, for `operation_id`: set once the request holds its claim.
OPERATION = web.RequestKey("idempotency.operation", str)
COLLECTION = "idempotency"
# Longer than any handler runs (its calls all time out sooner), so only a crashed claim gets older.
STALE_AFTER = timedelta(seconds=60)
RETENTION = timedelta(hours=24)
PURGE_INTERVAL = 600.0
IN_FLIGHT, COMPLETED, RELEASED = "in_flight", "completed", "released"
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# Outcomes a retry would reproduce anyway; 409, 412, 429 and 5xx may change, so they free the key.
_STORED_CLIENT_ERRORS = frozenset({400, 401, 403, 404, 422})
_REPLAYED_HEADERS = (LOCATION, ETAG, LAST_MODIFIED, WWW_AUTHENTICATE)
_CLAIM_ATTEMPTS = 3


class IdempotencyKeyReused(ValidationFailed):
    slug, title = "idempotency-key-reused", "Idempotency key reused with another request"


class RequestInFlight(Conflict):
    slug, title = "request-in-flight", "A request with this idempotency key is in progress"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {RETRY_AFTER: "1"})
        super().__init__(detail, **kwargs)


def idempotent(required: bool = True) -> Callable[[Handler], Handler]:
    """One run per (caller, route, Idempotency-Key); repeats replay the stored response."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            key = request.headers.get(IDEMPOTENCY_KEY)
            if key is None:
                if required:
                    raise BadRequest(f"this request needs an {IDEMPOTENCY_KEY} header")
                return await handler(request)
            if not _VALID_KEY.fullmatch(key):
                raise BadRequest(
                    f"the {IDEMPOTENCY_KEY} header must be 1 to 255 visible ASCII characters"
                )
            records: AsyncCollection[Any] = request.app[DB][COLLECTION]
            record_id = _record_id(request, key)
            fingerprint = _fingerprint(request.method, request.raw_path, await request.read())
            claim = await _claim(records, record_id, fingerprint)
            if isinstance(claim, web.Response):
                return claim
            # The request itself (caller, route, key, and its method, path and body): a retry
            # derives it again; a reused key on another request, after its record is purged, never.
            request[OPERATION] = f"{record_id}:{fingerprint}"
            try:
                response = await handler(request)
            except Problem as problem:
                await _complete(
                    records, claim, problem.response(request.path, context.request_id.get())
                )
                raise
            except BaseException:
                # Outcome unknown (a bug, a lost database, a cancellation): let the client retry.
                await _release(records, claim)
                raise
            await _complete(records, claim, response)
            return response

        return guarded

    return decorate


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    # The claims of one key, read by equality (pushed down to FerretDB's backend), and the purge.
    await db[COLLECTION].create_index("record")
    await sweeps.ensure_index(db[COLLECTION])


async def purge_expired(db: AsyncDatabase[Any]) -> int:
    """Delete the claims of keys first used over RETENTION ago, by day (FerretDB has no TTL index;
    see shopkit.sweeps); count them. Every generation of a key carries the purge day of the key's
    first use, so they go together."""
    return await sweeps.purge(db[COLLECTION], clock.now())


async def _purge_step(app: web.Application) -> None:
    removed = await purge_expired(app[DB])
    if removed:
        log.info("purged %d idempotency records", removed)


sweeper = background("idempotency-sweeper", _purge_step, PURGE_INTERVAL)
"""A cleanup_ctx entry that purges expired idempotency records every ten minutes."""


def operation_id(request: web.Request, *parts: object) -> str | None:
    """An id the same request derives again when retried with its Idempotency-Key (else None).

    A write that names its event with it recognises, on a retry, the event an earlier attempt
    committed though its answer was lost (a timeout, a 503 on the way back): the retry answers the
    commit instead of tripping over it (a 412, a taken SKU). `parts` (the `If-Match` version, say)
    keep apart ids that a reused key must not meet once its record is purged.
    """
    identity = request.get(OPERATION)
    if identity is None:
        return None
    return hashlib.sha256(json.dumps([identity, *map(str, parts)]).encode()).hexdigest()[:32]


async def retry_id(request: web.Request, *parts: object) -> str | None:
    """`operation_id` without the stored answer of `idempotent`: the id a retry of this request
    (same caller, route, Idempotency-Key, method, path and body) derives again; None without a key.

    For writes idempotent through the event they append, where a record per request would cost
    more than the write itself (adding to a cart): the retry finds the event its first attempt
    committed (`decide(event_id=...)`) and answers the resource as it is now. `parts` scope the
    id further (the resource written, for callers without an account).
    """
    if request.get(OPERATION) is not None:
        return operation_id(request, *parts)
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        return None
    if not _VALID_KEY.fullmatch(key):
        raise BadRequest(f"the {IDEMPOTENCY_KEY} header must be 1 to 255 visible ASCII characters")
    fingerprint = _fingerprint(request.method, request.raw_path, await request.read())
    identity = f"{_record_id(request, key)}:{fingerprint}"
    return hashlib.sha256(json.dumps([identity, *map(str, parts)]).encode()).hexdigest()[:32]


def _record_id(request: web.Request, key: str) -> str:
    principal = optional_principal(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else request.path
    # A guest is known by their cart token: two guests reusing one key never share a record.
    caller = principal.subject if principal else _guest(request)
    # A JSON array keeps the parts apart, so ("a", "b|c") can never meet ("a|b", "c").
    material = json.dumps([caller, route, key])
    return hashlib.sha256(material.encode()).hexdigest()


def _guest(request: web.Request) -> str | None:
    token = request.headers.get(CART_TOKEN)
    return "guest:" + hashlib.sha256(token.encode()).hexdigest() if token else None


def _fingerprint(method: str, raw_path: str, body: bytes) -> str:
    # raw_path is undecoded, so it holds no newline and the separator is unambiguous.
    return hashlib.sha256(f"{method} {raw_path}\n".encode() + body).hexdigest()


async def _claim(
    records: AsyncCollection[Any], record_id: str, fingerprint: str
) -> str | web.Response:
    """Our claim's `_id`, or the stored response to replay; raises when the key is busy or misused."""
    generation, created_at = 0, clock.now()
    for _ in range(_CLAIM_ATTEMPTS):
        claim_id = f"{record_id}:{generation}"
        now = clock.now()
        document = {
            "_id": claim_id,
            "record": record_id,
            "generation": generation,
            "fingerprint": fingerprint,
            "state": IN_FLIGHT,
            "created_at": created_at,
            "claimed_at": now,
            sweeps.FIELD: sweeps.purge_on(created_at + RETENTION),
        }
        try:
            # The unique _id is the lock: the only write FerretDB guarantees under concurrency.
            await records.insert_one(document)
            return claim_id
        except DuplicateKeyError:
            claims = await records.find({"record": record_id}).to_list()
        if not claims:
            generation, created_at = 0, now  # purged between our insert and our read
            continue
        claims.sort(key=lambda claim: int(claim["generation"]))
        newest = claims[-1]
        if newest["fingerprint"] != fingerprint:
            raise IdempotencyKeyReused(
                f"this {IDEMPOTENCY_KEY} was already used with a different request"
            )
        if newest["state"] == COMPLETED:
            return _replay(newest)
        if newest["state"] == IN_FLIGHT and now - _aware(newest["claimed_at"]) < STALE_AFTER:
            raise RequestInFlight("a request with this key is still being processed; retry later")
        # Released, or its holder crashed. A slow holder taken over earlier may have completed
        # since: its answer stands rather than running the request once more.
        completed = [claim for claim in claims if claim["state"] == COMPLETED]
        if completed:
            return _replay(completed[-1])
        # Take it over: a racer inserting the same generation first wins, and we meet its claim.
        generation, created_at = int(newest["generation"]) + 1, newest["created_at"]
    raise RequestInFlight("a request with this key is still being processed; retry later")


async def _complete(
    records: AsyncCollection[Any], claim_id: str, response: web.StreamResponse
) -> None:
    status = response.status
    if not (200 <= status < 300 or status in _STORED_CLIENT_ERRORS):
        await _release(records, claim_id)
        return
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes | None):
        log.warning("a streamed response cannot be replayed; releasing the idempotency key")
        await _release(records, claim_id)
        return
    stored = {
        "state": COMPLETED,
        "status": status,
        "body": response.body or b"",
        "content_type": response.headers.get(CONTENT_TYPE),
        "headers": {
            name: response.headers[name] for name in _REPLAYED_HEADERS if name in response.headers
        },
        "completed_at": clock.now(),
    }
    try:
        # Our own document: no one else writes it, so this whole-document write loses nothing.
        await records.update_one({"_id": claim_id}, {"$set": stored})
    except PyMongoError:
        # The client still gets this answer; a retry meets the claim and waits until it is stale.
        log.exception("could not store the idempotent response")


async def _release(records: AsyncCollection[Any], claim_id: str) -> None:
    # Marked, not deleted: a free generation 0 would let a retry run beside a takeover's holder.
    try:
        await records.update_one({"_id": claim_id}, {"$set": {"state": RELEASED}})
    except PyMongoError:
        log.exception("could not release the idempotency key; it frees itself when stale")


def _replay(record: dict[str, Any]) -> web.Response:
    headers = {**record.get("headers", {}), IDEMPOTENT_REPLAYED: "true"}
    if record.get("content_type"):
        headers[CONTENT_TYPE] = record["content_type"]
    return web.Response(status=record["status"], body=record["body"], headers=headers)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
