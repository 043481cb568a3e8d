"""Address book: CRUD, defaults, validation, and no access to anyone else's addresses."""

from __future__ import annotations

import asyncio

from users_support import Api


async def test_the_first_address_becomes_both_defaults_and_can_be_replaced(api: Api) -> None:
    auth = await api.user("home@example.com")

    first = await (await api.add_address(auth)).json()
    second_response = await api.add_address(auth, line1="1 Office Rd", default_billing=True)
    second = await second_response.json()
    listed = (await (await api.client.get("/api/v1/users/me/addresses", headers=auth)).json())[
        "items"
    ]

    assert second_response.status == 201
    assert first["is_default_shipping"]
    assert first["is_default_billing"]
    by_id = {a["id"]: a for a in listed}
    assert by_id[first["id"]]["is_default_shipping"] is True
    assert by_id[first["id"]]["is_default_billing"] is False
    assert by_id[second["id"]]["is_default_billing"] is True


async def test_an_address_is_updated_and_deleted(api: Api) -> None:
    auth = await api.user("edit@example.com")
    created = await (await api.add_address(auth)).json()
    url = f"/api/v1/users/me/addresses/{created['id']}"

    patched = await api.client.patch(url, json={"city": "Bath", "line2": None}, headers=auth)
    assert (await patched.json())["city"] == "Bath"

    assert (await api.client.delete(url, headers=auth)).status == 204
    assert (await api.client.get(url, headers=auth)).status == 404
    me = await (await api.client.get("/api/v1/users/me", headers=auth)).json()
    assert me["default_shipping_address_id"] is None


async def test_invalid_address_fields_get_per_field_errors(api: Api) -> None:
    auth = await api.user("bad@example.com")
    response = await api.add_address(auth, country="Britain", user_id="x")
    errors = (await response.json())["errors"]
    assert response.status == 422
    assert {"country", "user_id"} <= errors.keys()
    nulled = await api.add_address(auth, city=None)
    assert nulled.status == 422


async def test_a_country_or_phone_with_a_trailing_newline_is_refused(api: Api) -> None:
    # given a user
    auth = await api.user("newline@example.com")

    # when an address's country, then its phone, ends in a newline
    country = await api.add_address(auth, country="GB\n")
    phone = await api.add_address(auth, phone="+4930123456\n")

    # then each is refused by name, and the address book stays empty
    assert (country.status, phone.status) == (422, 422)
    assert set((await country.json())["errors"]) == {"country"}
    assert set((await phone.json())["errors"]) == {"phone"}
    listed = await api.call("GET", "/api/v1/users/me/addresses", 200, headers=auth)
    assert listed["items"] == []


async def test_user_a_cannot_read_or_change_user_b_addresses(api: Api) -> None:
    alice = await api.user("alice@example.com")
    bob = await api.user("bob@example.com")
    bobs = await (await api.add_address(bob)).json()
    url = f"/api/v1/users/me/addresses/{bobs['id']}"

    read = await api.client.get(url, headers=alice)
    change = await api.client.patch(url, json={"city": "Paris"}, headers=alice)
    delete = await api.client.delete(url, headers=alice)
    alices_list = await (await api.client.get("/api/v1/users/me/addresses", headers=alice)).json()

    assert (read.status, change.status, delete.status) == (404, 404, 404)
    assert alices_list["items"] == []
    still = await (await api.client.get(url, headers=bob)).json()
    assert still["city"] == "London"


async def test_a_name_edit_racing_an_address_change_keeps_both(api: Api) -> None:
    # given an account with two addresses
    auth = await api.user("both@example.com")
    homes = [
        (await (await api.add_address(auth, line1=f"{n} Main St")).json())["id"] for n in (1, 2)
    ]

    # when, again and again, a rename and a new default shipping address happen at once
    lost = []
    for turn in range(20):
        home = homes[turn % 2]
        await asyncio.gather(
            api.client.patch("/api/v1/users/me", json={"name": f"Ada {turn}"}, headers=auth),
            api.client.patch(
                f"/api/v1/users/me/addresses/{home}", json={"default_shipping": True}, headers=auth
            ),
        )
        me = await (await api.client.get("/api/v1/users/me", headers=auth)).json()
        if (me["name"], me["default_shipping_address_id"]) != (f"Ada {turn}", home):
            lost.append(turn)

    # then neither change ever undid the other
    assert lost == []


async def test_concurrent_adds_never_pass_the_address_limit(api: Api) -> None:
    # given an account five addresses short of the limit
    auth = await api.user("many@example.com")
    for n in range(45):
        assert (await api.add_address(auth, line1=f"{n} Main St")).status == 201

    # when sixty more are added at once
    added = await asyncio.gather(*(api.add_address(auth, line1=f"{n} New St") for n in range(60)))

    # then exactly five got in, the others were refused, and the book holds fifty
    statuses = sorted(response.status for response in added)
    assert statuses == [201] * 5 + [409] * 55
    listed = await (await api.client.get("/api/v1/users/me/addresses", headers=auth)).json()
    assert len(listed["items"]) == 50
