"""Notifications end to end, through nginx: what a shopper does by the API arrives in Mailpit,
once, with links that work. notifications reads verification links from users through the
gateway's internal listener, with its own service token."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import aiohttp
from e2e_support import admin_headers, expect_json
from test_checkout_e2e import _add, _customer, _pay, _place, _product

from shopkit.testing.plugin import MailServer


async def _mail_to(
    mail_server: MailServer, http: aiohttp.ClientSession, recipient: str, count: int = 1
) -> list[dict[str, Any]]:
    """The messages Mailpit holds for `recipient`, once `count` arrived (or 20 s passed)."""
    deadline = time.monotonic() + 20
    while True:
        params = {"query": f'to:"{recipient}"'}
        async with http.get(f"{mail_server.api_url}/api/v1/search", params=params) as r:
            found: list[dict[str, Any]] = (await expect_json(r, 200))["messages"]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def _text(mail_server: MailServer, http: aiohttp.ClientSession, message_id: str) -> str:
    async with http.get(f"{mail_server.api_url}/api/v1/message/{message_id}") as r:
        text: str = (await expect_json(r, 200))["Text"]
    return text


async def test_a_new_account_gets_a_verification_mail_whose_link_verifies_it(
    gateway: str, http: aiohttp.ClientSession, mail_server: MailServer
) -> None:
    # given a shopper who registers
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    credentials = {"email": email, "password": "correct horse battery"}
    async with http.post(
        f"{gateway}/api/v1/auth/register", json={**credentials, "name": "Ada"}
    ) as r:
        await expect_json(r, 201)

    # when the verification mail arrives and its link is followed
    [mail] = await _mail_to(mail_server, http, email)
    assert mail["Subject"] == "Confirm your email address"
    token = re.search(
        r"verify-email\?token=([A-Za-z0-9_-]+)", await _text(mail_server, http, mail["ID"])
    )
    assert token is not None
    async with http.post(
        f"{gateway}/api/v1/auth/verify-email", json={"token": token.group(1)}
    ) as r:
        verified = await expect_json(r, 200)

    # then the address is verified
    assert verified["email_verified"] is True


async def test_a_paid_order_sends_one_confirmation_with_its_total(
    gateway: str, http: aiohttp.ClientSession, stripe_url: str, mail_server: MailServer
) -> None:
    # given a customer who orders two mugs at 12.50 EUR
    staff = await admin_headers(gateway, http)
    sku = await _product(gateway, http, staff, amount=1250, stock=5)
    shopper, email = await _customer(gateway, http)
    await _add(gateway, http, shopper, sku, 2)
    order = await _place(gateway, http, shopper)

    # when it is paid
    await _pay(gateway, http, stripe_url, order, shopper)

    # then exactly one confirmation arrives, naming the order and its total
    confirmations = [
        m for m in await _mail_to(mail_server, http, email, count=2) if "confirmed" in m["Subject"]
    ]
    assert [m["Subject"] for m in confirmations] == [f"Order {order['number']} confirmed"]
    text = await _text(mail_server, http, confirmations[0]["ID"])
    assert "2 x Mug" in text
    assert f"Total: €{order['total']['amount'] / 100:.2f}" in text


async def test_a_password_reset_mail_carries_a_link_that_resets_the_password(
    gateway: str, http: aiohttp.ClientSession, mail_server: MailServer
) -> None:
    # given an account that forgot its password
    _, email = await _customer(gateway, http)
    async with http.post(f"{gateway}/api/v1/auth/password-reset", json={"email": email}) as r:
        assert r.status == 202, await r.text()

    # when the reset mail's link is used
    [mail] = [
        m for m in await _mail_to(mail_server, http, email, count=2) if "Reset" in m["Subject"]
    ]
    token = re.search(
        r"reset-password\?token=([A-Za-z0-9_-]+)", await _text(mail_server, http, mail["ID"])
    )
    assert token is not None
    new = {"token": token.group(1), "new_password": "a brand new passphrase"}
    async with http.post(f"{gateway}/api/v1/auth/password-reset/confirm", json=new) as r:
        assert r.status == 204, await r.text()

    # then the new password signs in
    async with http.post(
        f"{gateway}/api/v1/auth/login", json={"email": email, "password": "a brand new passphrase"}
    ) as r:
        await expect_json(r, 200)


async def test_a_campaign_sent_through_the_gateway_reaches_an_opted_in_customer_who_can_unsubscribe(
    gateway: str, http: aiohttp.ClientSession, mail_server: MailServer
) -> None:
    # given a customer who opted into promotions
    shopper, email = await _customer(gateway, http)
    opt_in = {"topics": {"promotions": {"email": True}}}
    async with http.patch(
        f"{gateway}/api/v1/notifications/preferences", json=opt_in, headers=shopper
    ) as r:
        assert (await expect_json(r, 200))["topics"]["promotions"]["email"] is True

    # when staff create and send a campaign
    staff = await admin_headers(gateway, http)
    campaign = {
        "name": "e2e",
        "subject": "Sale " + uuid.uuid4().hex[:6],
        "html": '<p>Hi {{ name }}</p><a href="{{ unsubscribe_url }}">unsubscribe</a>',
        "text": "Hi {{ name }} {{ unsubscribe_url }}",
    }
    async with http.post(
        f"{gateway}/api/v1/promotions",
        json=campaign,
        headers={**staff, "Idempotency-Key": uuid.uuid4().hex},
    ) as r:
        created = await expect_json(r, 201)
    async with http.post(
        f"{gateway}/api/v1/promotions/{created['id']}/send",
        json={"rate": 50},
        headers={**staff, "Idempotency-Key": uuid.uuid4().hex},
    ) as r:
        await expect_json(r, 202)

    # then it arrives, and its one-click link unsubscribes through the gateway
    [mail] = [
        m
        for m in await _mail_to(mail_server, http, email, count=2)
        if m["Subject"] == campaign["subject"]
    ]
    async with http.get(f"{mail_server.api_url}/api/v1/message/{mail['ID']}/headers") as r:
        link = (await expect_json(r, 200))["List-Unsubscribe"][0].strip("<>")
    path = link[link.index("/api/v1/") :]
    async with http.post(f"{gateway}{path}", data={"List-Unsubscribe": "One-Click"}) as r:
        assert r.status == 200, await r.text()
    async with http.get(f"{gateway}/api/v1/notifications/preferences", headers=shopper) as r:
        assert (await expect_json(r, 200))["topics"]["promotions"]["email"] is False
