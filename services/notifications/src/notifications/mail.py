"""Email over SMTP: a small pool of open connections, and what each SMTP failure means.

A delivery's `Message-ID` derives from the delivery, so a message sent twice (a crash between the
send and its record) is recognisably the same message to the receiving side.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from email import charset, policy
from email.header import Header
from email.headerregistry import Address
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import formataddr, formatdate, parseaddr

import aiosmtplib

from notifications.errors import PermanentFailure, TransientFailure, Undeliverable
from notifications.model import mask
from notifications.rendering import Rendered
from notifications.settings import NotificationsSettings

log = logging.getLogger("notifications.mail")
ONE_CLICK = "List-Unsubscribe=One-Click"
# What a server answers for a mailbox that does not exist or cannot be: only these suppress it.
MAILBOX_GONE = frozenset({550, 551, 553})
# Messages are built and flattened with the email package's compat32 API: a quarter of the CPU
# of EmailMessage's header registry (0.25 ms a message against 0.9, which was a third of what a
# campaign message cost this process). Lines are limited at RFC 5322's 998, not 78: a header
# longer than 78 characters with no space to fold at (an unsubscribe URL) would otherwise be
# written as an encoded word, which no mail client reads as a URL.
WIRE = policy.compat32.clone(max_line_length=998, linesep="\r\n")
UTF8 = charset.Charset("utf-8")
UTF8.body_encoding = charset.QP  # readable in the raw message, as EmailMessage wrote it


def compose(
    settings: NotificationsSettings,
    delivery_id: str,
    to: str,
    rendered: Rendered,
    *,
    unsubscribe_url: str | None = None,
) -> Message:
    message: Message = _text(rendered.text, "plain")
    if rendered.html is not None:
        message = MIMEMultipart(
            "alternative", _subparts=[message, _text(rendered.html, "html")], policy=WIRE
        )
    name, sender = parseaddr(settings.mail_from)
    message["From"] = formataddr((name, sender), charset="utf-8")
    message["To"] = to
    subject = rendered.subject
    message["Subject"] = subject if subject.isascii() else Header(subject, UTF8).encode()
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = sender.rpartition("@")[2] or "shop.local"
    message["Message-ID"] = f"<{hashlib.sha256(delivery_id.encode()).hexdigest()[:40]}@{domain}>"
    if unsubscribe_url is not None:
        # RFC 8058: a mail client may unsubscribe with one POST, no page and no sign-in.
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = ONE_CLICK
    return message


def _text(text: str, subtype: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype, policy=WIRE)
    part.set_payload(text, "us-ascii" if text.isascii() else UTF8)
    return part


def valid_address(address: str) -> bool:
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, IndexError, TypeError):
        return False
    return bool(parsed.username and parsed.domain and "." in parsed.domain)


class Mailer:
    """Sends over up to SMTP_CONNECTIONS connections, each opened on first use and reopened after
    a failure; a message waits for a free connection."""

    def __init__(self, settings: NotificationsSettings) -> None:
        self._settings = settings
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        for _ in range(settings.smtp_connections):
            self._idle.put_nowait(self._client())

    def _client(self) -> aiosmtplib.SMTP:
        settings = self._settings
        return aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            timeout=settings.smtp_timeout,
            start_tls=settings.smtp_starttls,
            username=settings.smtp_username or None,
            password=settings.smtp_password.value if settings.smtp_username else None,
        )

    async def send(self, message: Message) -> None:
        client = await self._idle.get()
        try:
            await self._send(client, message)
        except BaseException:
            client.close()  # whatever state the session is in, the next use starts afresh
            raise
        finally:
            self._idle.put_nowait(client)

    async def _send(self, client: aiosmtplib.SMTP, message: Message) -> None:
        to = str(message["To"])
        try:
            if not client.is_connected:
                await client.connect()
            # Flattened here: aiosmtplib's own flattening folds at 78 characters (see WIRE).
            data = message.as_bytes(policy=WIRE)
            await client.sendmail(parseaddr(str(message["From"]))[1], [to], data)
        except aiosmtplib.SMTPRecipientsRefused as refused:
            recipient = refused.recipients[0]
            if recipient.code in MAILBOX_GONE or recipient.message.startswith("5.1."):
                raise PermanentFailure(
                    "address-refused", f"{recipient.code} for {mask(to)}"
                ) from None
            # A relay or policy refusal (530, 554 5.7.1) says more of us than of the address.
            raise TransientFailure("smtp-refused-recipient", str(recipient.code)) from None
        except aiosmtplib.SMTPDataError as error:
            if error.code >= 500:
                raise Undeliverable("smtp-refused-message", str(error.code)) from None
            raise TransientFailure("smtp-busy", str(error.code)) from None
        except aiosmtplib.SMTPResponseException as error:
            # The greeting, our login, our sender: our side, worth trying again once fixed.
            raise TransientFailure("smtp-refused", str(error.code)) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise TransientFailure("smtp-unreachable", type(error).__name__) from None

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client.is_connected:
                try:
                    async with asyncio.timeout(1):
                        await client.quit()
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    client.close()
