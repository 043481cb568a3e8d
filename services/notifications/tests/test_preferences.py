"""A customer's preferences, and the one-click unsubscribe link of promotional mail."""

from __future__ import annotations

from notifications_support import API, Notifications, new_id

from notifications import unsubscribe
from notifications.model import Topic

SECRET = "local-unsubscribe-secret"


async def test_a_new_customer_gets_transactional_and_shipping_mail_but_no_promotions(
    notifications: Notifications,
) -> None:
    answer = await notifications.client.get(
        f"{API}/preferences", headers=notifications.customer(new_id("u"))
    )

    assert answer.status == 200
    body = await answer.json()
    assert body["topics"]["transactional"]["email"] is True
    assert body["topics"]["shipping"] == {"email": True, "sms": False}  # no phone given yet
    assert body["topics"]["promotions"] == {"email": False, "sms": False}
    assert body["fixed"] == ["transactional.email"]


async def test_transactional_email_cannot_be_turned_off(notifications: Notifications) -> None:
    answer = await notifications.client.patch(
        f"{API}/preferences",
        json={"topics": {"transactional": {"email": False}}},
        headers=notifications.customer(new_id("u")),
    )

    assert answer.status == 422
    assert answer.content_type == "application/problem+json"
    assert "topics" in (await answer.json())["errors"]


async def test_changes_keep_what_was_not_sent_and_each_customer_sees_only_their_own(
    notifications: Notifications,
) -> None:
    ada, bob = notifications.customer(new_id("ada")), notifications.customer(new_id("bob"))
    await notifications.client.patch(
        f"{API}/preferences", json={"phone": "+447700900123"}, headers=ada
    )
    answer = await notifications.client.patch(
        f"{API}/preferences",
        json={"topics": {"promotions": {"email": True}}, "locale": "de-DE"},
        headers=ada,
    )

    mine = await answer.json()
    assert mine["phone"] == "+447700900123"
    assert mine["locale"] == "de_DE"
    assert mine["topics"]["promotions"]["email"] is True
    assert mine["topics"]["shipping"]["sms"] is True
    theirs = await (await notifications.client.get(f"{API}/preferences", headers=bob)).json()
    assert theirs["phone"] is None
    assert theirs["topics"]["promotions"]["email"] is False


async def test_a_phone_not_in_e164_and_an_unknown_locale_are_refused(
    notifications: Notifications,
) -> None:
    user = notifications.customer(new_id("u"))
    phone = await notifications.client.patch(
        f"{API}/preferences", json={"phone": "0170 1234"}, headers=user
    )
    locale = await notifications.client.patch(
        f"{API}/preferences", json={"locale": "xx-QQ"}, headers=user
    )

    assert (phone.status, locale.status) == (422, 422)


async def test_preferences_need_a_signed_in_caller(notifications: Notifications) -> None:
    answer = await notifications.client.get(f"{API}/preferences")

    assert answer.status == 401


async def _opted_in(notifications: Notifications) -> tuple[str, dict[str, str]]:
    user_id = new_id("u")
    headers = notifications.customer(user_id)
    await notifications.client.patch(
        f"{API}/preferences", json={"topics": {"promotions": {"email": True}}}, headers=headers
    )
    return user_id, headers


async def _promotions(notifications: Notifications, headers: dict[str, str]) -> bool:
    body = await (await notifications.client.get(f"{API}/preferences", headers=headers)).json()
    return bool(body["topics"]["promotions"]["email"])


async def test_the_unsubscribe_page_alone_changes_nothing(notifications: Notifications) -> None:
    user_id, headers = await _opted_in(notifications)
    link = f"{API}/unsubscribe/{unsubscribe.sign(SECRET, user_id, Topic.PROMOTIONS)}"

    page = await notifications.client.get(link)

    assert page.status == 200
    assert page.content_type == "text/html"
    assert 'method="post"' in await page.text()
    assert await _promotions(notifications, headers) is True


async def test_the_one_click_post_unsubscribes_and_can_be_repeated(
    notifications: Notifications,
) -> None:
    user_id, headers = await _opted_in(notifications)
    link = f"{API}/unsubscribe/{unsubscribe.sign(SECRET, user_id, Topic.PROMOTIONS)}"

    # as RFC 8058's mail clients do: a form POST, no credentials
    first = await notifications.client.post(link, data={"List-Unsubscribe": "One-Click"})
    second = await notifications.client.post(link, data={"List-Unsubscribe": "One-Click"})

    assert (first.status, second.status) == (200, 200)
    assert await _promotions(notifications, headers) is False


async def test_a_forged_unsubscribe_link_is_refused(notifications: Notifications) -> None:
    user_id, headers = await _opted_in(notifications)
    forged = unsubscribe.sign("not-our-secret", user_id, Topic.PROMOTIONS)
    tampered = (
        unsubscribe.sign(SECRET, new_id("other"), Topic.PROMOTIONS).split(".")[0]
        + "."
        + forged.split(".")[1]
    )

    answers = [
        await notifications.client.post(f"{API}/unsubscribe/{token}")
        for token in (forged, tampered, "garbage")
    ]

    assert [a.status for a in answers] == [403, 403, 403]
    assert answers[0].content_type == "application/problem+json"
    assert await _promotions(notifications, headers) is True
