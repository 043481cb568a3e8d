"""The scan check itself: it reports a query no index serves, and not one an index serves."""

from typing import Any

from pymongo import AsyncMongoClient

from shopkit.testing.explain import ExplainedMongo


async def test_a_lookup_by_an_indexed_field_is_no_scan_and_by_another_field_is(
    explained_mongo: ExplainedMongo, database_name: str
) -> None:
    client: AsyncMongoClient[Any] = AsyncMongoClient(explained_mongo.url)
    try:
        things = client[database_name]["things"]
        await things.create_index("email", unique=True)
        await things.insert_many([{"_id": n, "email": f"{n}@x", "n": n} for n in range(50)])

        await things.find_one({"_id": 7})
        await things.find_one({"email": "8@x"})
        assert explained_mongo.scans(database_name) == []

        await things.find_one({"n": 9})
        await things.find({"_id": {"$in": [1, 2]}}).to_list()
        scans = explained_mongo.scans(database_name)
        assert [(scan.collection, scan.filtered) for scan in scans] == [
            ("things", True),
            ("things", False),
        ]
    finally:
        await client.close()
