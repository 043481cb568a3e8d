"""stripe-mock behind the recording proxy: what the SDK sends is counted, faults come on demand,
and webhooks signed by the tests pass the SDK's own check."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import stripe as stripe_sdk

from shopkit.testing import peers
from shopkit.testing.stripe import Fault, StripeProxy, sign_webhook, webhook_event

WEBHOOK_SECRET = "whsec_test_secret"
INTENT = {
    "amount": 2599,
    "currency": "eur",
    "automatic_payment_methods": {"enabled": True},
    "metadata": {"order_id": "ord_1"},
}

SdkFactory = Callable[..., stripe_sdk.StripeClient]


@pytest.fixture
async def sdk(stripe_proxy: StripeProxy) -> AsyncIterator[SdkFactory]:
    """StripeClients pointed at the proxy through the SDK's async HTTP client, closed afterwards."""
    http_clients: list[stripe_sdk.AIOHTTPClient] = []

    def make(*, retries: int = 0, timeout: float = 10.0) -> stripe_sdk.StripeClient:
        http_client = stripe_sdk.AIOHTTPClient(timeout=timeout)
        http_clients.append(http_client)
        return stripe_sdk.StripeClient(
            "sk_test_123",
            base_addresses={"api": stripe_proxy.url},
            http_client=http_client,
            max_network_retries=retries,
        )

    try:
        yield make
    finally:
        for http_client in http_clients:
            await http_client.close_async()


async def test_a_payment_intent_created_through_the_proxy_is_recorded_with_its_key(
    stripe_proxy: StripeProxy, sdk: SdkFactory
) -> None:
    # when the SDK creates a PaymentIntent with an idempotency key
    intent = await sdk().v1.payment_intents.create_async(
        INTENT, {"idempotency_key": "order:ord_1:create"}
    )

    # then stripe-mock answered it, and the proxy saw exactly that request, untouched
    assert intent.id.startswith("pi_")
    assert intent.client_secret
    [created] = stripe_proxy.reached_stripe("POST", "/v1/payment_intents")
    assert created.idempotency_key == "order:ord_1:create"
    assert created.form["amount"] == "2599"
    assert created.form["currency"] == "eur"
    assert created.form["automatic_payment_methods[enabled]"] == "true"
    assert created.form["metadata[order_id]"] == "ord_1"
    assert created.fault is None


async def test_an_injected_error_is_answered_without_reaching_stripe(
    stripe_proxy: StripeProxy, sdk: SdkFactory
) -> None:
    # given the next PaymentIntent creation fails
    stripe_proxy.inject(Fault.ERROR, method="POST", path="/v1/payment_intents")

    # when the SDK tries once, then it gets Stripe's 500 as an APIError
    with pytest.raises(stripe_sdk.APIError) as failed:
        await sdk().v1.payment_intents.create_async(INTENT, {"idempotency_key": "k1"})
    assert failed.value.http_status == 500

    # and the request is counted as arrived but never forwarded
    [arrived] = stripe_proxy.requests("POST", "/v1/payment_intents")
    assert (arrived.fault, arrived.forwarded) == (Fault.ERROR, False)
    assert stripe_proxy.reached_stripe() == []


async def test_a_retry_after_an_injected_error_reaches_stripe_once_with_the_same_key(
    stripe_proxy: StripeProxy, sdk: SdkFactory
) -> None:
    # given one failure, and an SDK that retries
    stripe_proxy.inject(Fault.ERROR, method="POST", path="/v1/payment_intents")

    # when it creates a PaymentIntent
    intent = await sdk(retries=2).v1.payment_intents.create_async(
        INTENT, {"idempotency_key": "order:ord_2:create"}
    )

    # then two attempts arrived with one key, and only the second reached Stripe
    assert intent.id.startswith("pi_")
    attempts = stripe_proxy.requests("POST", "/v1/payment_intents")
    assert [a.idempotency_key for a in attempts] == ["order:ord_2:create"] * 2
    assert [a.forwarded for a in attempts] == [False, True]


async def test_a_lost_answer_reaches_stripe_and_then_fails(
    stripe_proxy: StripeProxy, sdk: SdkFactory
) -> None:
    # given the answer to the next confirmation is lost
    client = sdk()
    intent = await client.v1.payment_intents.create_async(INTENT)
    stripe_proxy.inject(Fault.LOSE_ANSWER, path="/v1/payment_intents/*/confirm")

    # when the SDK confirms, then it sees a failure
    with pytest.raises(stripe_sdk.APIError):
        await client.v1.payment_intents.confirm_async(intent.id, {"payment_method": "pm_card_visa"})

    # though stripe-mock received the confirmation
    [confirm] = stripe_proxy.reached_stripe("POST", f"/v1/payment_intents/{intent.id}/confirm")
    assert confirm.fault is Fault.LOSE_ANSWER
    assert confirm.form["payment_method"] == "pm_card_visa"


async def test_a_hang_outlasts_the_client_timeout_without_reaching_stripe(
    stripe_proxy: StripeProxy, sdk: SdkFactory
) -> None:
    # given the next request is held for longer than the client waits
    stripe_proxy.inject(Fault.HANG, hold=2.0)
    started = time.monotonic()

    # when the SDK asks, then it gives up at its own timeout
    with pytest.raises(stripe_sdk.APIConnectionError):
        await sdk(timeout=0.3).v1.payment_intents.retrieve_async("pi_123")

    assert time.monotonic() - started < 2.0
    [held] = stripe_proxy.requests("GET", "/v1/payment_intents/pi_123")
    assert (held.fault, held.forwarded) == (Fault.HANG, False)


async def test_faults_apply_only_to_matching_requests_and_only_as_many_times_as_asked(
    stripe_proxy: StripeProxy, sdk: SdkFactory
) -> None:
    # given one failure for refunds only
    stripe_proxy.inject(Fault.ERROR, method="POST", path="/v1/refunds")
    client = sdk()

    # when a PaymentIntent is created, then refunded twice
    intent = await client.v1.payment_intents.create_async(INTENT)
    with pytest.raises(stripe_sdk.APIError):
        await client.v1.refunds.create_async({"payment_intent": intent.id})
    await client.v1.refunds.create_async({"payment_intent": intent.id})

    # then only the first refund failed
    assert [r.fault for r in stripe_proxy.requests()] == [None, Fault.ERROR, None]


def test_a_signed_webhook_is_accepted_by_the_sdk() -> None:
    # given an event signed as Stripe signs it
    payload = webhook_event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"})
    header = sign_webhook(payload, WEBHOOK_SECRET)

    # when the SDK verifies it, then it reads the event
    event = stripe_sdk.Webhook.construct_event(payload, header, WEBHOOK_SECRET)
    assert event.type == "payment_intent.succeeded"
    assert event.data.object["id"] == "pi_1"


def test_a_tampered_webhook_is_refused_by_the_sdk() -> None:
    # given a signed event whose amount is changed after signing
    payload = webhook_event("payment_intent.succeeded", {"id": "pi_1", "amount": 100})
    header = sign_webhook(payload, WEBHOOK_SECRET)
    tampered = json.dumps({**json.loads(payload), "data": {"object": {"id": "pi_1", "amount": 1}}})

    # when the SDK verifies it, then it refuses it
    with pytest.raises(stripe_sdk.SignatureVerificationError):
        stripe_sdk.Webhook.construct_event(tampered, header, WEBHOOK_SECRET)


@pytest.mark.parametrize(
    ("secret", "age"),
    [("whsec_someone_else", 0), (WEBHOOK_SECRET, 301)],
    ids=["another secret", "older than the tolerance"],
)
def test_a_webhook_signed_with_another_secret_or_too_long_ago_is_refused(
    secret: str, age: int
) -> None:
    payload = webhook_event("payment_intent.succeeded", {"id": "pi_1"})
    header = sign_webhook(payload, secret, timestamp=int(time.time()) - age)

    with pytest.raises(stripe_sdk.SignatureVerificationError):
        stripe_sdk.Webhook.construct_event(payload, header, WEBHOOK_SECRET, tolerance=300)


async def test_the_proxy_run_as_a_process_records_and_takes_timed_faults_over_http(
    stripe_url: str, tmp_path: Path
) -> None:
    # given the proxy as a process of its own in front of stripe-mock, as the local stack runs it
    proxy = peers.stripe_proxy(tmp_path, peers.free_port(), stripe_url).start()
    base = f"http://127.0.0.1:{proxy.port}"
    try:
        async with aiohttp.ClientSession() as http:
            # when a fault is switched on for one second from outside, and a charge comes in it
            async with http.post(
                f"{base}/_proxy/faults", json={"fault": "error", "seconds": 1, "path": "/v1/*"}
            ) as r:
                assert r.status == 204
            auth = {"Authorization": "Bearer sk_test_123"}
            form = {"amount": "2599", "currency": "eur", "metadata[order_id]": "ord_1"}
            async with http.post(f"{base}/v1/payment_intents", data=form, headers=auth) as r:
                refused = r.status
            # and another once the second is over
            await asyncio.sleep(1.2)
            async with http.post(f"{base}/v1/payment_intents", data=form, headers=auth) as r:
                accepted = r.status

            # then the first got Stripe's 500 and never reached it, the second went through
            assert (refused, accepted) == (500, 200)
            async with http.get(f"{base}/_proxy/requests?from=1") as r:
                recorded = await r.json()
            assert recorded["total"] == 2
            [second] = recorded["requests"]
            assert (second["forwarded"], second["fault"], second["form"]) == (True, None, form)
            # and a fault that is not one is refused
            async with http.post(f"{base}/_proxy/faults", json={"fault": "flood"}) as r:
                assert r.status == 400
    finally:
        proxy.stop()
