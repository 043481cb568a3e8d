"""Purges by day: what is past its day goes, what is not stays, and no sweep reads a collection whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from shopkit import mongo, sweeps
from shopkit.events import EventStore
from shopkit.testing.explain import ExplainedMongo

NOW = datetime(2026, 12, 3, 10, 30, tzinfo=UTC)


def test_a_document_may_go_from_the_utc_day_after_its_moment() -> None:
    late_evening_in_berlin = datetime.fromisoformat("2026-12-03T23:30:00+01:00")

    assert sweeps.purge_on(late_evening_in_berlin) == "2026-12-03"
    assert sweeps.past_days(NOW, 3) == ["2026-11-30", "2026-12-01", "2026-12-02"]


def test_a_document_due_within_hours_may_go_from_the_utc_hour_after_its_moment() -> None:
    assert sweeps.purge_on(NOW + timedelta(hours=5), hourly=True) == "2026-12-03T15"
    assert sweeps.past_hours(NOW, 3) == ["2026-12-03T07", "2026-12-03T08", "2026-12-03T09"]


async def test_the_documents_due_by_the_hour_are_yielded_after_the_days(
    db: AsyncDatabase[Any],
) -> None:
    things = db.things
    await sweeps.ensure_index(things)
    await things.insert_many(
        [
            {
                "_id": "last-hour",
                sweeps.FIELD: sweeps.purge_on(NOW - timedelta(hours=1), hourly=True),
            },
            {"_id": "this-hour", sweeps.FIELD: sweeps.purge_on(NOW, hourly=True)},
            {"_id": "yesterday", sweeps.FIELD: sweeps.purge_on(NOW - timedelta(days=1))},
        ]
    )

    due = [document["_id"] async for document in sweeps.due(things, NOW, hours=2)]

    assert due == ["yesterday", "last-hour"]


async def test_a_purge_deletes_the_past_days_and_keeps_today_and_the_future(
    db: AsyncDatabase[Any],
) -> None:
    # given documents due a week ago, yesterday, today and tomorrow
    things = db.things
    await sweeps.ensure_index(things)
    ages = {"week": -7, "yesterday": -1, "today": 0, "tomorrow": 1}
    await things.insert_many(
        [
            {"_id": name, sweeps.FIELD: sweeps.purge_on(NOW + timedelta(days=days))}
            for name, days in ages.items()
        ]
    )

    # when a sweep runs
    deleted = await sweeps.purge(things, NOW)

    # then the two past ones are gone and the others stay
    assert deleted == 2
    assert sorted([doc["_id"] async for doc in things.find()]) == ["today", "tomorrow"]


async def test_a_day_older_than_the_window_is_left_for_a_one_off_cleanup(
    db: AsyncDatabase[Any],
) -> None:
    # given a document due long before the window
    await db.things.insert_one({"_id": "ancient", sweeps.FIELD: "2020-01-01"})

    # when a sweep runs, then it stays (the module docstring says how to clean it once)
    assert await sweeps.purge(db.things, NOW, window=30) == 0
    assert await db.things.count_documents({}) == 1


async def test_the_documents_due_are_yielded_oldest_day_first(db: AsyncDatabase[Any]) -> None:
    await db.things.insert_many(
        [
            {"_id": "recent", sweeps.FIELD: "2026-12-02"},
            {"_id": "older", sweeps.FIELD: "2026-11-20"},
            {"_id": "live", sweeps.FIELD: "2026-12-03"},
        ]
    )

    found = [document["_id"] async for document in sweeps.due(db.things, NOW)]

    assert found == ["older", "recent"]


async def test_deleting_a_stream_deletes_its_events_only(db: AsyncDatabase[Any]) -> None:
    # given two streams
    store = EventStore(db, collection="private_events")
    for seq in range(5):
        await store.append("gone-1", seq, "happened", {})
    await store.append("kept-1", 0, "happened", {})

    # when one is deleted
    deleted = await store.delete_stream("gone-1")

    # then its five events are gone and the other stream is whole
    assert deleted == 5
    assert await store.load("gone-1") == []
    assert len(await store.load("kept-1")) == 1


async def test_a_stream_deletion_cut_short_is_finished_by_the_next(
    db: AsyncDatabase[Any],
) -> None:
    # given a stream whose deletion stopped after its last two slots
    store = EventStore(db, collection="private_events")
    for seq in range(4):
        await store.append("halfway-1", seq, "happened", {})
    for seq in (4, 3):
        await store.collection.delete_one({"_id": f"halfway-1:{seq:012d}"})

    # when it is deleted again, then the rest goes
    assert await store.delete_stream("halfway-1") == 2
    assert await store.load("halfway-1") == []


async def test_sweeps_read_through_the_index_only(
    explained_mongo: ExplainedMongo, database_name: str
) -> None:
    client = mongo.client(explained_mongo.url)
    try:
        things = client[database_name]["things"]
        await sweeps.ensure_index(things)
        await things.insert_many(
            [{"_id": n, sweeps.FIELD: sweeps.purge_on(NOW - timedelta(days=n))} for n in range(40)]
        )

        await sweeps.purge(things, NOW)
        [document async for document in sweeps.due(things, NOW + timedelta(days=5))]

        assert explained_mongo.scans(database_name) == []
        assert await things.count_documents({}) == 10
    finally:
        await client.close()
