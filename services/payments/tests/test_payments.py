"""The payments service on loopback against this test's own database."""

from __future__ import annotations

from payments_support import Shop


async def test_the_service_answers_that_it_is_alive(shop: Shop) -> None:
    response = await shop.client.get("/healthz")

    assert response.status == 200


async def test_the_internal_document_lists_the_internal_routes_only(shop: Shop) -> None:
    public = await (await shop.client.get("/api/v1/payments/openapi.json")).json()
    internal = await (await shop.client.get("/internal/payments/openapi.json")).json()

    assert set(public["paths"]) == {
        "/api/v1/payments/webhooks/stripe",
        "/api/v1/payments/{order_id}",
        "/api/v1/payments/openapi.json",
    }
    assert {"/internal/payments", "/internal/payments/{order_id}/refunds"} <= set(internal["paths"])
    created = internal["paths"]["/internal/payments"]["post"]["responses"]
    assert {"200", "201", "409", "422", "503"} <= set(created)
