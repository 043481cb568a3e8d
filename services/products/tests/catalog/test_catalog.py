"""The catalog: who may write, versioned updates, cacheable reads, unique slugs and SKUs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import ClientResponse
from products_support import Client, Roles, product
from pymongo.errors import PyMongoError

from products.catalog.keys import CATALOG
from shopkit.events import Event
from shopkit.pagination import encode_cursor


async def _create(client: Client, roles: Roles, **changes: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/products", json=product(**changes), headers=roles.staff)
    assert response.status == 201, await response.text()
    return await response.json()


async def _another(client: Client, roles: Roles, slug: str, sku: str) -> ClientResponse:
    """Another product asking for `slug` and `sku`: the answer tells whether they are free."""
    variants = [{"sku": sku, "price": {"amount": 1, "currency": "EUR"}}]
    return await client.post(
        "/api/v1/products", json=product(slug=slug, variants=variants), headers=roles.staff
    )


async def test_staff_create_a_product_that_customers_read_with_an_etag(
    client: Client, roles: Roles
) -> None:
    created = await _create(client, roles)

    response = await client.get(f"/api/v1/products/{created['id']}")
    by_slug = await client.get("/api/v1/products/iphone-15")

    assert response.status == 200
    assert response.headers["ETag"] == '"v1"'
    assert response.headers["Cache-Control"].startswith("public")
    body = await response.json()
    assert body["name"] == "Apple iPhone 15"
    assert "updated_by" not in body
    assert (await by_slug.json())["id"] == created["id"]
    again = await client.get(f"/api/v1/products/{created['id']}", headers={"If-None-Match": '"v1"'})
    assert again.status == 304


async def test_drafts_and_products_without_published_variants_are_hidden_from_customers(
    client: Client, roles: Roles
) -> None:
    draft = await _create(client, roles, status="draft")
    hidden_variants = await _create(
        client,
        roles,
        slug="no-variants",
        variants=[
            {"sku": "HIDDEN-1", "price": {"amount": 100, "currency": "EUR"}, "published": False}
        ],
    )

    for item in (draft, hidden_variants):
        assert (await client.get(f"/api/v1/products/{item['id']}")).status == 404
        staff_view = await client.get(f"/api/v1/products/{item['id']}", headers=roles.staff)
        assert staff_view.status == 200
        assert staff_view.headers["Cache-Control"].startswith("private")


async def test_customers_and_anonymous_clients_cannot_write(client: Client, roles: Roles) -> None:
    created = await _create(client, roles)
    attempts = [
        client.post("/api/v1/products", json=product(slug="x"), headers=roles.customer),
        client.patch(
            f"/api/v1/products/{created['id']}",
            json={"name": "x"},
            headers={**roles.customer, "If-Match": '"v1"'},
        ),
        client.delete(
            f"/api/v1/products/{created['id']}", headers={**roles.customer, "If-Match": '"v1"'}
        ),
        client.post("/api/v1/categories", json={"slug": "x", "name": "X"}, headers=roles.customer),
    ]
    statuses = [r.status for r in await asyncio.gather(*attempts)]
    assert statuses == [403, 403, 403, 403]
    anonymous = await client.post("/api/v1/products", json=product(slug="y"))
    assert anonymous.status == 401


async def test_an_update_needs_the_current_version(client: Client, roles: Roles) -> None:
    created = await _create(client, roles)
    url = f"/api/v1/products/{created['id']}"

    missing = await client.patch(url, json={"name": "New"}, headers=roles.staff)
    current = await client.patch(
        url, json={"name": "New"}, headers={**roles.staff, "If-Match": '"v1"'}
    )
    stale = await client.patch(
        url, json={"name": "Newer"}, headers={**roles.staff, "If-Match": '"v1"'}
    )

    assert missing.status == 428
    assert current.status == 200
    assert current.headers["ETag"] == '"v2"'
    assert stale.status == 412
    assert stale.content_type == "application/problem+json"
    assert (await (await client.get(url)).json())["name"] == "New"


async def test_concurrent_updates_with_one_etag_let_exactly_one_win(
    client: Client, roles: Roles
) -> None:
    created = await _create(client, roles)
    url = f"/api/v1/products/{created['id']}"
    headers = {**roles.staff, "If-Match": '"v1"'}

    responses = await asyncio.gather(
        *(client.patch(url, json={"name": f"Name {n}"}, headers=headers) for n in range(10))
    )

    assert sorted(r.status for r in responses) == [200] + [412] * 9


async def test_client_sent_ids_stock_and_audit_fields_are_refused(
    client: Client, roles: Roles
) -> None:
    for field, value in [
        ("id", "abc"),
        ("version", 7),
        ("updated_by", "me"),
        ("stock", 5),
        ("created_at", "2020-01-01"),
    ]:
        response = await client.post(
            "/api/v1/products", json=product(**{field: value}), headers=roles.staff
        )
        assert response.status == 422, field
        assert field in (await response.json())["errors"]
    variant = {"sku": "S-1", "price": {"amount": 1, "currency": "EUR"}, "available": 3}
    response = await client.post(
        "/api/v1/products", json=product(variants=[variant]), headers=roles.staff
    )
    assert response.status == 422


async def test_bad_input_is_a_clear_4xx(client: Client, roles: Roles) -> None:
    malformed = await client.post(
        "/api/v1/products", data=b"{", headers={**roles.staff, "Content-Type": "application/json"}
    )
    float_price = await client.post(
        "/api/v1/products",
        json=product(variants=[{"sku": "F-1", "price": {"amount": 9.99, "currency": "EUR"}}]),
        headers=roles.staff,
    )
    mixed = await client.post(
        "/api/v1/products",
        json=product(
            variants=[
                {"sku": "M-1", "price": {"amount": 1, "currency": "EUR"}},
                {"sku": "M-2", "price": {"amount": 1, "currency": "USD"}},
            ]
        ),
        headers=roles.staff,
    )
    assert (malformed.status, float_price.status, mixed.status) == (400, 422, 422)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/products", product(slug="iphone-15\n"), "slug"),
        (
            "/api/v1/products",
            product(variants=[{"sku": "IP15\n", "price": {"amount": 1, "currency": "EUR"}}]),
            "variants",
        ),
        (
            "/api/v1/products",
            product(variants=[{"sku": "IP15", "price": {"amount": 1, "currency": "EUR\n"}}]),
            "variants",
        ),
        ("/api/v1/products", product(attributes={"material\n": "aluminium"}), "attributes"),
        ("/api/v1/categories", {"slug": "phones\n", "name": "Phones"}, "slug"),
    ],
    ids=["slug", "sku", "currency", "attribute-name", "category-slug"],
)
async def test_a_trailing_newline_makes_a_shaped_field_invalid(
    client: Client, roles: Roles, path: str, body: dict[str, Any], field: str
) -> None:
    # when a field with a fixed shape ends in a newline
    response = await client.post(path, json=body, headers=roles.staff)

    # then it is refused, and nothing is stored
    assert response.status == 422, await response.text()
    assert field in (await response.json())["errors"]


async def test_slugs_and_skus_are_unique_across_products(client: Client, roles: Roles) -> None:
    await _create(client, roles)
    same_slug = await client.post(
        "/api/v1/products",
        json=product(variants=[{"sku": "OTHER-1", "price": {"amount": 1, "currency": "EUR"}}]),
        headers=roles.staff,
    )
    same_sku = await client.post(
        "/api/v1/products", json=product(slug="another"), headers=roles.staff
    )
    assert (same_slug.status, same_sku.status) == (409, 409)
    assert (await same_sku.json())["type"].endswith("sku-taken")


async def test_archiving_hides_a_product(client: Client, roles: Roles) -> None:
    created = await _create(client, roles)
    url = f"/api/v1/products/{created['id']}"
    archived = await client.delete(url, headers={**roles.staff, "If-Match": '"v1"'})
    assert (await archived.json())["status"] == "archived"
    assert (await client.get(url)).status == 404


async def test_the_sku_lookup_answers_price_title_and_availability(
    client: Client, roles: Roles
) -> None:
    await _create(client, roles)
    await _create(
        client,
        roles,
        slug="draft-phone",
        status="draft",
        variants=[{"sku": "DRAFT-1", "price": {"amount": 5, "currency": "EUR"}}],
    )

    response = await client.get(
        "/api/v1/products/skus", params={"skus": "IP15-128-BLK,DRAFT-1,NOPE-1"}
    )
    body = await response.json()

    assert response.status == 200
    assert [item["sku"] for item in body["items"]] == ["IP15-128-BLK"]
    item = body["items"][0]
    assert item["price"] == {"amount": 79900, "currency": "EUR"}
    assert item["title"] == "Apple iPhone 15"
    assert item["available"] == 0
    assert body["missing"] == ["DRAFT-1", "NOPE-1"]
    bad = await client.get("/api/v1/products/skus", params={"skus": "bad sku!"})
    assert bad.status == 422


async def test_categories_form_a_tree_that_refuses_cycles(client: Client, roles: Roles) -> None:
    async def create(slug: str, parent: str | None = None) -> dict[str, Any]:
        response = await client.post(
            "/api/v1/categories",
            json={"slug": slug, "name": slug.title(), "parent_id": parent},
            headers=roles.staff,
        )
        assert response.status == 201, await response.text()
        return await response.json()

    root = await create("electronics")
    phones = await create("phones", root["id"])
    smart = await create("smartphones", phones["id"])

    current = await client.get(f"/api/v1/categories/{root['id']}")
    cycle = await client.patch(
        f"/api/v1/categories/{root['id']}",
        json={"parent_id": smart["id"]},
        headers={**roles.staff, "If-Match": current.headers["ETag"]},
    )
    assert cycle.status == 422
    listed = await (await client.get("/api/v1/categories")).json()
    assert {c["slug"] for c in listed["items"]} == {"electronics", "phones", "smartphones"}

    created = await _create(client, roles, category_id=smart["id"])
    assert created["category_path"] == [root["id"], phones["id"], smart["id"]]


async def test_two_moves_that_would_make_a_cycle_together_cannot_both_succeed(
    client: Client, roles: Roles
) -> None:
    async def create(slug: str) -> dict[str, Any]:
        response = await client.post(
            "/api/v1/categories", json={"slug": slug, "name": slug}, headers=roles.staff
        )
        return await response.json()

    a, b = await create("a"), await create("b")
    etag_a = (await client.get(f"/api/v1/categories/{a['id']}")).headers["ETag"]
    etag_b = (await client.get(f"/api/v1/categories/{b['id']}")).headers["ETag"]

    move_a, move_b = await asyncio.gather(
        client.patch(
            f"/api/v1/categories/{a['id']}",
            json={"parent_id": b["id"]},
            headers={**roles.staff, "If-Match": etag_a},
        ),
        client.patch(
            f"/api/v1/categories/{b['id']}",
            json={"parent_id": a["id"]},
            headers={**roles.staff, "If-Match": etag_b},
        ),
    )

    assert sorted([move_a.status, move_b.status]) == [200, 422]


async def test_an_unfiltered_list_still_answers_when_the_search_engine_is_down(
    start_products: Any, roles: Roles
) -> None:
    from shopkit.testing.peers import free_port

    # given a catalog whose search engine cannot be reached
    client = await start_products(OPENSEARCH_URL=f"http://127.0.0.1:{free_port()}")
    await _create(client, roles)

    # when a customer browses without filters, and with one
    plain = await client.get("/api/v1/products", params={"limit": "10"})
    filtered = await client.get("/api/v1/products", params={"brand": "Apple"})

    # then browsing works from the catalog, and the filtered list says the engine is unavailable
    assert plain.status == 200
    assert [p["slug"] for p in (await plain.json())["items"]] == ["iphone-15"]
    assert filtered.status == 503
    assert filtered.content_type == "application/problem+json"


async def test_malformed_preconditions_and_oversized_numbers_are_4xx(
    client: Client, roles: Roles
) -> None:
    created = await _create(client, roles)
    url = f"/api/v1/products/{created['id']}"
    for tag in ['"v' + "1" * 5000 + '"', '"v²"', "*", '"1"']:
        response = await client.patch(
            url, json={"name": "x"}, headers={**roles.staff, "If-Match": tag}
        )
        assert response.status == 412, tag
    huge = await client.post(
        "/api/v1/products",
        json=product(slug="huge", attributes={"weight": 10**20}),
        headers=roles.staff,
    )
    assert huge.status == 422


async def test_an_out_of_range_query_parameter_is_a_422_never_a_500(
    client: Client, roles: Roles
) -> None:
    # given a product with stock movements
    created = await _create(client, roles)
    sku = created["variants"][0]["sku"]
    receipt = await client.post(
        f"/api/v1/inventory/{sku}/receipts",
        json={"quantity": 3, "reason": "delivery"},
        headers={**roles.staff, "Idempotency-Key": "receipt-1"},
    )
    assert receipt.status == 201, await receipt.text()
    huge = 10**30

    # when lists are asked for with numbers past 64 bits, or positions of the wrong kind
    asked = [
        ("/api/v1/products", {"status": "draft", "cursor": encode_cursor(huge)}, roles.staff),
        ("/api/v1/products", {"status": "draft", "cursor": encode_cursor(["x"])}, roles.staff),
        (
            "/api/v1/products",
            {"cursor": encode_cursor({"sort": "newest", "after": [huge, "x"]})},
            {},
        ),
        ("/api/v1/products", {"cursor": encode_cursor(float("1e308") * 10)}, {}),
        ("/api/v1/products", {"min_price": str(huge)}, {}),
        ("/api/v1/products", {"limit": "9" * 50}, {}),
        (f"/api/v1/inventory/{sku}/movements", {"cursor": encode_cursor(huge)}, roles.staff),
        (f"/api/v1/inventory/{sku}/movements", {"cursor": encode_cursor("7")}, roles.staff),
    ]
    answers = [await client.get(path, params=query, headers=auth) for path, query, auth in asked]

    # then each is a 422 problem
    assert [a.status for a in answers] == [422] * len(asked)
    assert {a.content_type for a in answers} == {"application/problem+json"}


async def test_a_refused_update_leaves_no_claim_behind(client: Client, roles: Roles) -> None:
    # given a product, and a stale edit that tries to add a new SKU and a new slug
    created = await _create(client, roles)
    url = f"/api/v1/products/{created['id']}"
    await client.patch(url, json={"name": "Renamed"}, headers={**roles.staff, "If-Match": '"v1"'})
    variants = [
        *product()["variants"],
        {"sku": "NEW-SKU-1", "price": {"amount": 1, "currency": "EUR"}},
    ]
    stale = await client.patch(
        url,
        json={"slug": "new-slug", "variants": variants},
        headers={**roles.staff, "If-Match": '"v1"'},
    )
    assert stale.status == 412

    # when another product wants that SKU and slug
    other = await _another(client, roles, "new-slug", "NEW-SKU-1")

    # then they are free
    assert other.status == 201, await other.text()


async def test_identical_updates_racing_keep_the_winners_slug_and_sku_claims(
    client: Client, roles: Roles, db: Any
) -> None:
    # given a product
    created = await _create(client, roles)
    url = f"/api/v1/products/{created['id']}"
    variants = product()["variants"]

    for version in range(1, 7):
        # when two identical edits, each adding a slug and a SKU, race from the same version
        sku, slug = f"NEW-SKU-{version}", f"new-slug-{version}"
        variants = [*variants, {"sku": sku, "price": {"amount": 1, "currency": "EUR"}}]
        answers = await asyncio.gather(
            *(
                client.patch(
                    url,
                    json={"slug": slug, "variants": variants},
                    headers={**roles.staff, "If-Match": f'"v{version}"'},
                )
                for _ in range(2)
            )
        )

        # then one wins, and the loser left the winner's claims in place
        assert sorted(a.status for a in answers) == [200, 412]
        assert (await db.product_skus.find_one({"_id": sku}))["product_id"] == created["id"]
        assert (await db.product_slugs.find_one({"_id": slug}))["product_id"] == created["id"]
        other = await _another(client, roles, f"other-{version}", sku)
        assert other.status == 409, await other.text()


async def test_a_failed_twin_of_an_update_gives_back_no_claim_the_update_then_uses(
    client: Client, roles: Roles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a product, and two identical edits adding a SKU: the one that inserted the claims (its
    # twin found them held) fails to append (a lost answer) once both hold them, and the twin lands
    # only after the failed one gave them back
    created = await _create(client, roles)
    catalog = client.server.app[CATALOG]
    claim, append, release_claim = (
        catalog._claim,
        catalog._events.append,
        catalog.store.release_claim,
    )
    one_at_a_time = asyncio.Lock()
    claimers: list[asyncio.Task[Any] | None] = []
    both_claimed, given_back = asyncio.Event(), asyncio.Event()
    released: list[str] = []

    async def claim_in_turn(product: Any, taken: list[Any]) -> None:
        async with one_at_a_time:
            await claim(product, taken)
            claimers.append(asyncio.current_task())

    async def append_one_failing_one_late(
        stream_id: str, expected_seq: int, type: str, *args: Any
    ) -> Event:
        async with asyncio.timeout(5):
            if asyncio.current_task() is claimers[0]:
                await both_claimed.wait()
                raise PyMongoError("the answer to this insert was lost")
            both_claimed.set()
            await given_back.wait()
        return await append(stream_id, expected_seq, type, *args)

    async def release_and_tell(kind: str, key: str, product_id: str) -> None:
        await release_claim(kind, key, product_id)
        released.append(key)
        if len(released) == 2:
            given_back.set()

    monkeypatch.setattr(catalog, "_claim", claim_in_turn)
    monkeypatch.setattr(catalog._events, "append", append_one_failing_one_late)
    monkeypatch.setattr(catalog.store, "release_claim", release_and_tell)
    variants = [
        *product()["variants"],
        {"sku": "NEW-SKU", "price": {"amount": 1, "currency": "EUR"}},
    ]

    # when both are sent at once
    answers = await asyncio.gather(
        *(
            client.patch(
                f"/api/v1/products/{created['id']}",
                json={"slug": "new-slug", "variants": variants},
                headers={**roles.staff, "If-Match": '"v1"'},
            )
            for _ in range(2)
        )
    )
    monkeypatch.undo()

    # then the one that landed still owns its SKU and slug: no other product can take them
    assert sorted(a.status for a in answers) == [200, 500]
    other = await _another(client, roles, "other", "NEW-SKU")
    assert other.status == 409, await other.text()
    same_slug = await _another(client, roles, "new-slug", "OTHER-1")
    assert (await same_slug.json())["type"].endswith("/slug-taken")


async def test_a_slug_taken_back_by_the_next_version_stays_claimed_when_the_old_release_lands_late(
    client: Client, roles: Roles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a product renamed from "old-slug" to "new-slug", whose release of "old-slug" is slow:
    # the relay shows version 2 meanwhile, and a next edit takes "old-slug" back and finishes
    created = await _create(client, roles, slug="old-slug")
    url = f"/api/v1/products/{created['id']}"
    catalog = client.server.app[CATALOG]
    release_claim = catalog.store.release_claim
    releasing, taken_back = asyncio.Event(), asyncio.Event()

    async def release_late(kind: str, key: str, product_id: str) -> None:
        if key == "old-slug" and not releasing.is_set():
            releasing.set()
            async with asyncio.timeout(5):
                await taken_back.wait()
        await release_claim(kind, key, product_id)

    monkeypatch.setattr(catalog.store, "release_claim", release_late)
    rename = asyncio.ensure_future(
        client.patch(url, json={"slug": "new-slug"}, headers={**roles.staff, "If-Match": '"v1"'})
    )
    async with asyncio.timeout(5):
        await releasing.wait()
    versions = await catalog._events.load(f"product-{created['id']}")
    await catalog.repair(versions[-1])
    back = await client.patch(
        url, json={"slug": "old-slug"}, headers={**roles.staff, "If-Match": '"v2"'}
    )
    assert back.status == 200, await back.text()

    # when the rename's release of "old-slug" lands
    taken_back.set()
    assert (await rename).status == 200
    monkeypatch.undo()

    # then the product still owns "old-slug": no other product can take it
    other = await _another(client, roles, "old-slug", "OTHER-1")
    assert other.status == 409, await other.text()
    assert (await client.get("/api/v1/products/old-slug")).status == 200


async def test_a_failed_twin_that_found_the_claim_already_taken_does_not_give_it_back(
    client: Client, roles: Roles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given two identical edits adding a SKU: the first inserts its claim, the second finds it
    # already the product's; the second's append fails and the first lands only later
    created = await _create(client, roles)
    catalog = client.server.app[CATALOG]
    claim, append = catalog.store.claim, catalog._events.append
    claimers: list[asyncio.Task[Any] | None] = []
    first_arrived, second_arrived, first_claimed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    second_done = asyncio.Event()

    async def claim_in_turn(kind: str, key: str, product_id: str) -> Any:
        if key != "NEW-SKU" or len(claimers) >= 2:
            return await claim(kind, key, product_id)
        claimers.append(asyncio.current_task())
        async with asyncio.timeout(5):
            if len(claimers) == 1:
                first_arrived.set()
                await second_arrived.wait()  # both found the key free before either claims
                found = await claim(kind, key, product_id)
                first_claimed.set()
                return found
            second_arrived.set()
            await first_claimed.wait()
        return await claim(kind, key, product_id)

    async def append_second_failing_first_late(
        stream_id: str, expected_seq: int, type: str, *args: Any
    ) -> Event:
        if claimers and asyncio.current_task() is claimers[-1]:
            raise PyMongoError("the answer to this insert was lost")
        if claimers and asyncio.current_task() is claimers[0]:
            async with asyncio.timeout(5):
                await second_done.wait()
        return await append(stream_id, expected_seq, type, *args)

    monkeypatch.setattr(catalog.store, "claim", claim_in_turn)
    monkeypatch.setattr(catalog._events, "append", append_second_failing_first_late)
    variants = [
        *product()["variants"],
        {"sku": "NEW-SKU", "price": {"amount": 1, "currency": "EUR"}},
    ]

    def edit() -> Any:
        return client.patch(
            f"/api/v1/products/{created['id']}",
            json={"variants": variants},
            headers={**roles.staff, "If-Match": '"v1"'},
        )

    first = asyncio.ensure_future(edit())
    async with asyncio.timeout(5):
        await first_arrived.wait()
    second = await edit()
    assert second.status == 500

    # when another product wants the SKU before the first edit lands
    other = await _another(client, roles, "other", "NEW-SKU")
    second_done.set()
    assert (await first).status == 200
    monkeypatch.undo()

    # then it was refused: the SKU stayed claimed by the product that now has it
    assert other.status == 409, await other.text()
