"""The real peers start and answer: FerretDB over the MongoDB wire protocol, NATS with JetStream."""

from typing import Any


async def test_ferretdb_stores_and_reads_a_document(db: Any) -> None:
    await db.things.insert_one({"_id": "a", "n": 1})
    assert await db.things.find_one({"_id": "a"}) == {"_id": "a", "n": 1}


async def test_nats_has_jetstream(nats_client: Any) -> None:
    info = await nats_client.jetstream().account_info()
    assert info.limits is not None
