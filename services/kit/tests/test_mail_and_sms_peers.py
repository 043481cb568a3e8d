"""The peers notifications will talk to: Mailpit keeps what SMTP delivered, and the Twilio peer
refuses what Twilio's API would refuse."""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from email.message import EmailMessage

import aiohttp

from shopkit.testing.plugin import MailServer

ACCOUNT = "AC" + "0" * 32
MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"


async def test_a_mail_sent_over_smtp_is_read_back_from_mailpits_api(
    mail_server: MailServer,
) -> None:
    # given a message
    subject = "Your order " + uuid.uuid4().hex[:8]
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = (
        "shop@example.com",
        "ada@example.com",
        subject,
    )
    message.set_content("Thank you for your order.")

    # when it is sent over SMTP, logged in (any login is accepted)
    def send() -> None:
        with smtplib.SMTP(mail_server.smtp_host, mail_server.smtp_port, timeout=10) as smtp:
            smtp.login("shop", "secret")
            smtp.send_message(message)

    await asyncio.to_thread(send)

    # then Mailpit's API lists it, with its recipient and subject
    search = f"{mail_server.api_url}/api/v1/search"
    async with aiohttp.ClientSession() as http, http.get(search, params={"query": subject}) as r:
        found = await r.json()
    assert found["messages_count"] == 1
    assert found["messages"][0]["To"][0]["Address"] == "ada@example.com"


async def test_the_twilio_peer_refuses_a_message_twilio_would_refuse(twilio_url: str) -> None:
    auth = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT, "token")}
    async with aiohttp.ClientSession(twilio_url, headers=auth) as http:
        # when a message without a recipient is sent, then one with
        async with http.post(MESSAGES, data={"From": "+15005550006", "Body": "hi"}) as refused:
            refused_status = refused.status
        async with http.post(
            MESSAGES, data={"From": "+15005550006", "To": "+4915112345678", "Body": "Shipped!"}
        ) as sent:
            sent_status, body = sent.status, await sent.json()

    # then the first is refused as Twilio would, and the second answered as Twilio does
    assert refused_status == 422
    assert sent_status == 201
    assert "sid" in body
