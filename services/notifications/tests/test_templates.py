"""Templates, for staff: each previews with sample data, and a test message really goes out."""

from __future__ import annotations

import uuid

import pytest
from notifications_support import API, Mailbox, Notifications, address, new_id

from notifications.rendering import Renderer
from notifications.samples import SAMPLES
from shopkit.pagination import encode_cursor


@pytest.mark.parametrize("name", Renderer("en").names())
def test_every_template_renders_its_sample_in_text_and_html(name: str) -> None:
    rendered = Renderer("en").render(name, SAMPLES[name], "de_DE")

    assert rendered.subject
    assert "\n" not in rendered.subject
    assert rendered.text.strip()
    assert rendered.html is not None
    assert rendered.html.startswith("<!doctype html>")


def test_money_is_written_as_the_locale_writes_the_currency() -> None:
    renderer = Renderer("en")
    order = {**SAMPLES["order_confirmation"]["order"], "currency": "JPY", "total": 5743}

    english = renderer.render("staff_new_order", {"order": order}, "en_US").subject
    german = renderer.render(
        "staff_new_order", {"order": {**order, "currency": "EUR"}}, "de_DE"
    ).subject

    assert english.endswith("¥5,743")  # the yen has no minor unit
    assert german.endswith("57,43\xa0€")


async def test_staff_preview_a_template_with_their_own_data(notifications: Notifications) -> None:
    answer = await notifications.client.post(
        f"{API}/templates/order_shipped/preview",
        json={"data": {"carrier": "UPS"}, "locale": "en"},
        headers=notifications.staff(),
    )

    assert answer.status == 200
    body = await answer.json()
    assert "left us with UPS" in body["text"]
    assert body["sms"].startswith("Order SO-2026-000123 shipped with UPS")


async def test_customers_cannot_preview_and_unknown_templates_are_404(
    notifications: Notifications,
) -> None:
    customer = await notifications.client.post(
        f"{API}/templates/order_shipped/preview",
        json={},
        headers=notifications.customer(new_id("u")),
    )
    unknown = await notifications.client.post(
        f"{API}/templates/nope/preview", json={}, headers=notifications.staff()
    )
    listed = await notifications.client.get(f"{API}/templates", headers=notifications.staff())

    assert (customer.status, unknown.status, listed.status) == (403, 404, 200)
    assert {t["name"] for t in (await listed.json())["items"]} == set(SAMPLES)


async def test_a_test_message_goes_to_the_address_staff_give(
    notifications: Notifications, mailbox: Mailbox
) -> None:
    email = address("tester")
    answer = await notifications.client.post(
        f"{API}/templates/password_reset/test",
        json={"email": email},
        headers={**notifications.staff(), "Idempotency-Key": uuid.uuid4().hex},
    )

    assert answer.status == 202
    [mail] = await mailbox.arrived(email)
    assert mail["Subject"] == "Reset your password"


async def test_the_delivery_log_masks_recipients_and_is_for_staff_only(
    notifications: Notifications, mailbox: Mailbox
) -> None:
    email = address("logged")
    await notifications.client.post(
        f"{API}/templates/order_delivered/test",
        json={"email": email},
        headers={**notifications.staff(), "Idempotency-Key": uuid.uuid4().hex},
    )
    await mailbox.arrived(email)

    [entry] = await notifications.settled(email)
    today = await notifications.deliveries(template="order_delivered")
    refused = await notifications.client.get(
        f"{API}/deliveries", headers=notifications.customer(new_id("u"))
    )

    assert entry["recipient"] == email[0] + "***@example.com"
    assert email not in str(entry)
    assert (entry["template"], entry["channel"], entry["status"], entry["attempts"]) == (
        "order_delivered",
        "email",
        "sent",
        1,
    )
    assert entry["id"] in {x["id"] for x in today}
    assert refused.status == 403


async def test_a_cursor_this_list_never_wrote_is_refused(notifications: Notifications) -> None:
    answers = [
        await notifications.client.get(
            f"{API}/deliveries", params={"cursor": cursor}, headers=notifications.staff()
        )
        for cursor in (
            encode_cursor([1, "x"]),
            encode_cursor(["nope", "x"]),
            encode_cursor(["a", "b", "c"]),
            "%%%",
        )
    ]

    assert [a.status for a in answers] == [422, 422, 422, 422]


async def test_a_template_the_data_breaks_is_a_422_not_a_500(notifications: Notifications) -> None:
    answer = await notifications.client.post(
        f"{API}/templates/order_refunded/preview",
        json={"data": {"amount": {"not": "money"}, "currency": "EUR"}},
        headers=notifications.staff(),
    )

    assert answer.status == 422
    assert (await answer.json())["type"].endswith("/template-broken")
