"""Event streams on real FerretDB: one winner per seq, `decide` converges, retries stored once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ExecutionTimeout

from shopkit.events import (
    RETRY,
    ConcurrencyConflict,
    Event,
    EventIdReused,
    EventStore,
    NewEvent,
    StreamBusy,
    append_at_end,
    decide,
    decode,
    encode,
)
from shopkit.problems import Conflict
from shopkit.testing.faults import LAND_THEN_TIME_OUT, TIME_OUT, LosesAnswers


class LimitReached(Conflict):
    slug, title = "limit-reached", "Limit reached"


def count(total: int, event: Event) -> int:
    return total + int(event.data["by"])


def increment(total: int) -> NewEvent:
    return NewEvent("counter.incremented", {"by": 1})


@pytest.fixture
async def store(db: AsyncDatabase[Any]) -> EventStore:
    events = EventStore(db)
    await events.ensure_indexes()
    return events


async def test_appends_at_the_same_seq_from_20_concurrent_tasks_have_exactly_one_winner(
    store: EventStore,
) -> None:
    # given a stream at seq 3
    for seq in range(3):
        await store.append("cart-1", seq, "cart.item_added", {"n": seq})

    # when 20 tasks append at seq 4 at once
    async def append(n: int) -> Event | None:
        try:
            return await store.append("cart-1", 3, "cart.item_added", {"n": n})
        except ConcurrencyConflict:
            return None

    results = await asyncio.gather(*(append(n) for n in range(20)))

    # then exactly one won, and the stream holds its event at seq 4
    winners = [event for event in results if event is not None]
    assert len(winners) == 1
    assert await store.head("cart-1") == 4
    assert (await store.load("cart-1", after_seq=3)) == winners


async def test_a_lost_race_is_a_409_conflict(store: EventStore) -> None:
    # given a stream with one event
    await store.append("order-1", 0, "order.placed", {})

    # when another writer appends at the same seq
    with pytest.raises(ConcurrencyConflict) as raised:
        await store.append("order-1", 0, "order.placed", {})

    # then the error is the kit's Conflict, which clients see as 409
    assert isinstance(raised.value, Conflict)
    assert raised.value.status == 409


async def test_decide_under_20_concurrent_callers_appends_20_events_without_gaps(
    store: EventStore,
) -> None:
    # when 20 callers increment the same counter at once
    outcomes = await asyncio.gather(
        *(decide(store, "counter-1", 0, count, increment) for _ in range(20))
    )

    # then every call succeeded, each at its own seq, and the stream is 1..20 with no gap
    assert sorted(outcome.seq for outcome in outcomes) == list(range(1, 21))
    assert sorted(outcome.state for outcome in outcomes) == list(range(1, 21))
    events = await store.load("counter-1")
    assert [event.seq for event in events] == list(range(1, 21))


async def test_the_same_event_id_appended_twice_is_stored_once(store: EventStore) -> None:
    # given an event appended with an id derived from what caused it
    first = await store.append("sku-1", 0, "stock.reserved", {"qty": 2}, event_id="order-9:reserve")

    # when the caller retries it, at the same seq and after the stream moved on
    again = await store.append("sku-1", 0, "stock.reserved", {"qty": 2}, event_id="order-9:reserve")
    await store.append("sku-1", 1, "stock.received", {"qty": 5})
    later = await store.append("sku-1", 2, "stock.reserved", {"qty": 2}, event_id="order-9:reserve")

    # then the stored event is returned each time and the stream holds it once
    assert again == first
    assert later == first
    assert [event.type for event in await store.load("sku-1")] == [
        "stock.reserved",
        "stock.received",
    ]
    # and it was queued for the relay once, with no intent left behind
    assert [event.type for event in await store.unpublished(limit=10)] == [
        "stock.reserved",
        "stock.received",
    ]
    assert await store.pending_intents() == []


async def test_an_event_id_taken_by_another_stream_is_refused(store: EventStore) -> None:
    # given an event id used in one stream
    await store.append("sku-1", 0, "stock.reserved", {}, event_id="shared-id")

    # when another stream appends an event with the same id
    with pytest.raises(EventIdReused):
        await store.append("sku-2", 0, "stock.reserved", {}, event_id="shared-id")

    # then that stream is left untouched
    assert await store.head("sku-2") == 0
    assert [event.stream_id for event in await store.unpublished(limit=10)] == ["sku-1"]
    assert await store.pending_intents() == []


async def test_an_appended_event_reads_back_equal(store: EventStore) -> None:
    # when an event is appended
    appended = await store.append("order-7", 0, "order.placed", {"total": {"amount": 1299}})

    # then load returns it unchanged, in UTC
    (loaded,) = await store.load("order-7")
    assert loaded == appended
    assert loaded.occurred_at.utcoffset() is not None


async def test_an_event_is_stored_in_its_slot_under_its_own_id(store: EventStore) -> None:
    # when an event is appended at seq 1
    event = await store.append("order-8", 0, "order.placed", {}, event_id="order-8:placed")

    # then its document's _id is the slot, and the event id is a field beside stream and seq
    document = await store.collection.find_one({"_id": "order-8:000000000001"})
    assert document is not None
    assert (document["id"], document["stream_id"], document["seq"]) == (event.id, "order-8", 1)


async def test_load_returns_the_events_after_a_seq_in_order(store: EventStore) -> None:
    # given a stream of five events and another stream beside it
    for seq in range(5):
        await store.append("order-1", seq, "order.noted", {"n": seq})
    await store.append("order-2", 0, "order.noted", {"n": 99})

    # when it is loaded after seq 2
    events = await store.load("order-1", after_seq=2)

    # then seqs 3..5 come back in order, and only from that stream
    assert [(event.seq, event.data["n"]) for event in events] == [(3, 2), (4, 3), (5, 4)]
    assert await store.head("order-1") == 5
    assert await store.head("order-1", from_seq=3) == 5


class CountingStore(EventStore):
    """A real store that notes each slot it reads."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        super().__init__(db)
        self.reads: list[tuple[str, int]] = []

    async def get(self, stream_id: str, seq: int) -> Event | None:
        self.reads.append((stream_id, seq))
        return await super().get(stream_id, seq)


async def test_load_after_a_seq_reads_only_the_newer_slots(db: AsyncDatabase[Any]) -> None:
    # given a stream of 50 events
    store = CountingStore(db)
    await store.ensure_indexes()
    await store.append_batch({"ledger-1": [NewEvent("stock.moved", {"n": n}) for n in range(50)]})

    # when it is loaded after seq 48
    events = await store.load("ledger-1", after_seq=48)

    # then it read seqs 49 and 50, and the free slot 51 that ends the stream: nothing older
    assert [event.seq for event in events] == [49, 50]
    assert store.reads == [("ledger-1", 49), ("ledger-1", 50), ("ledger-1", 51)]


async def test_decide_from_a_current_projection_reads_nothing(db: AsyncDatabase[Any]) -> None:
    # given a counter at 3 and a projection that is up to date
    store = CountingStore(db)
    await store.ensure_indexes()
    for seq in range(3):
        await store.append("counter-7", seq, "counter.incremented", {"by": 1})
    store.reads.clear()

    # when deciding from the projection
    outcome = await decide(store, "counter-7", 3, count, increment, after_seq=3)

    # then the append alone proved the state current: no event was read
    assert (outcome.state, outcome.seq) == (4, 4)
    assert store.reads == []


async def test_a_refusal_from_a_stale_projection_is_decided_again_on_the_newer_events(
    store: EventStore,
) -> None:
    # given a counter at 5 (its limit) then lowered to 4, and a projection that saw only seq 1
    await store.append("counter-8", 0, "counter.incremented", {"by": 5})
    await store.append("counter-8", 1, "counter.incremented", {"by": -1})

    def at_most_five(total: int) -> NewEvent:
        if total >= 5:
            raise LimitReached("the counter is at its limit")
        return increment(total)

    # when deciding from the stale projection
    outcome = await decide(store, "counter-8", 5, count, at_most_five, after_seq=1)

    # then the refusal was not trusted: the newer event was folded and the increment appended
    assert (outcome.state, outcome.seq) == (5, 3)


async def test_a_lost_race_names_the_winner(store: EventStore) -> None:
    # given a stream with one event
    winner = await store.append("order-3", 0, "order.placed", {})

    # when another writer appends at the same seq with an event id of its own
    with pytest.raises(ConcurrencyConflict) as raised:
        await store.append("order-3", 0, "order.placed", {}, event_id="order-3:other")

    # then the conflict carries the event that took the slot
    assert raised.value.winner == winner


async def test_a_batch_loads_fresh_streams_without_queueing_them(store: EventStore) -> None:
    # when two fresh streams are bulk-loaded
    events = await store.append_batch(
        {
            "sku-1": [NewEvent("stock.received", {"qty": 5}), NewEvent("stock.sold", {"qty": 1})],
            "sku-2": [NewEvent("stock.received", {"qty": 9}, id="seed:sku-2:1")],
        }
    )

    # then each stream holds its events from seq 1, and the relay has nothing to publish
    assert [(event.stream_id, event.seq) for event in events] == [
        ("sku-1", 1),
        ("sku-1", 2),
        ("sku-2", 1),
    ]
    assert await store.load("sku-1") == events[:2]
    assert (await store.load("sku-2"))[0].id == "seed:sku-2:1"
    assert await store.unpublished(limit=10) == []
    # and a stream that is not fresh is refused
    with pytest.raises(ConcurrencyConflict):
        await store.append_batch({"sku-2": [NewEvent("stock.received", {"qty": 1})]})


async def test_appends_are_queued_for_the_relay_unless_told_not_to(
    db: AsyncDatabase[Any], store: EventStore
) -> None:
    # given a relayed store and a private one
    private = EventStore(db, "private_events")
    await private.ensure_indexes()

    # when events are appended to each, one of them without publishing
    queued = await store.append("order-5", 0, "order.placed", {})
    await store.append("order-5", 1, "order.noted", {}, publish=False)
    await private.append("family-1", 0, "issued", {})

    # then only the first is queued, and no append left an intent behind
    assert await store.unpublished(limit=10) == [queued]
    assert await private.unpublished(limit=10) == []
    assert await store.pending_intents() == []
    assert await db.list_collection_names(filter={"name": "private_events_outbox"}) == []


async def test_an_empty_stream_has_head_0_and_no_events(store: EventStore) -> None:
    assert await store.head("nothing-yet") == 0
    assert await store.load("nothing-yet") == []


async def test_the_head_of_a_long_stream_is_found_in_a_logarithmic_number_of_reads(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given streams of many lengths, bulk-loaded
    lengths = [*range(1, 18), 100, 1000]
    await store.append_batch(
        {f"alerts-{n}": [NewEvent("stock.low", {}) for _ in range(n)] for n in lengths}
    )
    reads = 0
    taken = store._taken

    async def counted(stream_id: str, seq: int) -> bool:
        nonlocal reads
        reads += 1
        return await taken(stream_id, seq)

    monkeypatch.setattr(store, "_taken", counted)

    for n in lengths:
        # when the head is searched from the start and from a seq it already reached
        reads = 0
        assert await store.head(f"alerts-{n}") == n
        # then the reads grow with log2 of its length, not with its length
        assert reads <= 2 * n.bit_length() + 1
        reads = 0
        assert await store.head(f"alerts-{n}", from_seq=n // 2) == n
        assert reads <= 2 * n.bit_length() + 1


async def test_event_data_that_is_not_json_is_refused_at_append(store: EventStore) -> None:
    # when data holds something JSON cannot carry
    with pytest.raises(TypeError):
        await store.append("order-1", 0, "order.placed", {"at": object()})

    # then nothing was stored (the relay would otherwise stall on it)
    assert await store.head("order-1") == 0


async def test_decide_from_a_projection_folds_only_the_newer_events(store: EventStore) -> None:
    # given a counter at 3 whose projection saw the first two increments only
    for seq in range(3):
        await store.append("counter-2", seq, "counter.incremented", {"by": 1})
    folded: list[int] = []

    def counting(total: int, event: Event) -> int:
        folded.append(event.seq)
        return count(total, event)

    # when deciding from the projection's state and seq
    outcome = await decide(store, "counter-2", 2, counting, increment, after_seq=2)

    # then only seq 3 was folded before deciding, and the new event is at seq 4
    assert folded == [3, 4]
    assert (outcome.state, outcome.seq) == (4, 4)
    assert outcome.event is not None
    assert outcome.event.seq == 4


async def test_a_refused_decision_appends_nothing(store: EventStore) -> None:
    # given a counter already at its limit
    await store.append("counter-3", 0, "counter.incremented", {"by": 5})

    def at_most_five(total: int) -> NewEvent:
        if total >= 5:
            raise LimitReached("the counter is at its limit")
        return increment(total)

    # when deciding to increment it
    with pytest.raises(LimitReached):
        await decide(store, "counter-3", 0, count, at_most_five)

    # then the stream did not change
    assert await store.head("counter-3") == 1


async def test_a_decision_with_nothing_to_do_appends_nothing(store: EventStore) -> None:
    # given a counter at 1
    await store.append("counter-4", 0, "counter.incremented", {"by": 1})

    # when the decision finds nothing to append
    outcome = await decide(store, "counter-4", 0, count, lambda total: None)

    # then the outcome carries the current state and no event
    assert (outcome.state, outcome.seq, outcome.event) == (1, 1, None)


async def test_a_retried_decision_with_a_derived_id_is_applied_once(store: EventStore) -> None:
    # given an increment decided once with an id derived from the request
    def once(total: int) -> NewEvent:
        return NewEvent("counter.incremented", {"by": 1}, id="request-1:increment")

    first = await decide(store, "counter-5", 0, count, once)

    # when the same request is decided again (a client retry)
    again = await decide(store, "counter-5", 0, count, once)

    # then the stream holds it once and both answers agree
    assert await store.head("counter-5") == 1
    assert first.event == again.event
    assert (again.state, again.seq) == (1, 1)


class RivalledStore(EventStore):
    """A real store where a rival appends just before each of our appends, every time."""

    async def append(
        self,
        stream_id: str,
        expected_seq: int,
        type: str,
        data: dict[str, Any],
        event_id: str | None = None,
    ) -> Event:
        await super().append(
            stream_id, await self.head(stream_id), "counter.incremented", {"by": 1}
        )
        return await super().append(stream_id, expected_seq, type, data, event_id)


async def test_decide_gives_up_with_a_503_after_the_retry_policy_attempts(
    db: AsyncDatabase[Any],
) -> None:
    # given a stream where every append of ours loses to a rival
    store = RivalledStore(db)
    await store.ensure_indexes()

    # when deciding on it
    with pytest.raises(StreamBusy, match=f"gave up after {RETRY.attempts} attempts") as raised:
        await decide(store, "counter-6", 0, count, increment)

    # then the client is told to come back (503, Retry-After), and only the rival appended
    assert raised.value.status == 503
    assert raised.value.headers["Retry-After"] == "1"
    assert await store.head("counter-6") == RETRY.attempts


def test_the_retry_policy_waits_are_jittered_and_bounded() -> None:
    # given the cap of each wait between two of the policy's attempts
    caps = [min(RETRY.max_delay, RETRY.first_delay * 2**n) for n in range(RETRY.attempts - 1)]

    # when the waits are drawn many times
    waits = [[RETRY.delay(n) for n in range(RETRY.attempts - 1)] for _ in range(200)]

    # then each stays under its cap, they vary, and even at worst a whole run is brief
    assert all(0 <= wait <= cap for run in waits for wait, cap in zip(run, caps, strict=True))
    assert len({run[5] for run in waits}) > 1
    assert sum(caps) <= 1.5


async def test_the_outcome_holds_the_state_before_and_after_the_event(store: EventStore) -> None:
    # given a counter at 2
    for seq in range(2):
        await store.append("counter-9", seq, "counter.incremented", {"by": 1})

    # when a stale caller (it saw nothing) increments it
    outcome = await decide(store, "counter-9", 0, count, increment)

    # then the event was decided on the state at seq 2, and the outcome says so
    assert (outcome.before, outcome.state, outcome.seq) == (2, 3, 3)


async def test_an_async_decision_is_awaited_on_each_attempt(store: EventStore) -> None:
    # given a counter at 1 and a decision that checks something elsewhere (awaited)
    await store.append("counter-10", 0, "counter.incremented", {"by": 1})
    seen: list[int] = []

    async def checked(total: int) -> NewEvent:
        await asyncio.sleep(0)
        seen.append(total)
        return increment(total)

    # when deciding from a stale state
    outcome = await decide(store, "counter-10", 0, count, checked)

    # then it was decided again on the newer state, and the event appended after it
    assert seen == [0, 1]
    assert (outcome.state, outcome.seq) == (2, 2)


async def test_a_cache_catches_up_through_its_own_reader(db: AsyncDatabase[Any]) -> None:
    # given a counter at 3 and a cache of it that saw only seq 1
    store = CountingStore(db)
    await store.ensure_indexes()
    for seq in range(3):
        await store.append("counter-11", seq, "counter.incremented", {"by": 1})
    store.reads.clear()
    cache = {"state": 1, "seq": 1}

    async def catch_up(state: int, seq: int) -> tuple[int, int]:
        # What a cache shared with other readers does: read once, keep what it read.
        for event in await store.load("counter-11", after_seq=cache["seq"]):
            cache["state"], cache["seq"] = count(cache["state"], event), event.seq
        return cache["state"], cache["seq"]

    # when deciding from the cache
    outcome = await decide(store, "counter-11", 1, count, increment, after_seq=1, catch_up=catch_up)

    # then the cache's reader brought it to seq 3 (the winner at seq 2 is not read again) and
    # the increment landed at seq 4
    assert (outcome.before, outcome.state, outcome.seq) == (3, 4, 4)
    assert cache == {"state": 3, "seq": 3}
    assert store.reads == [("counter-11", 2), ("counter-11", 3), ("counter-11", 4)]


async def test_a_fact_is_appended_at_the_end_from_a_stale_head(store: EventStore) -> None:
    # given a stream of 100 events and a caller that remembers seq 3 as its head
    await store.append_batch({"alerts-a": [NewEvent("stock.low", {}) for _ in range(100)]})

    # when it appends a fact
    event = await append_at_end(store, "alerts-a", NewEvent("stock.out", {}), after_seq=3)

    # then the fact landed after the last event
    assert event.seq == 101
    assert await store.head("alerts-a") == 101


async def test_a_fact_finds_the_end_without_reading_every_newer_event(
    db: AsyncDatabase[Any],
) -> None:
    # given a stream of 1000 events
    store = CountingStore(db)
    await store.ensure_indexes()
    await store.append_batch({"alerts-b": [NewEvent("stock.low", {}) for _ in range(1000)]})

    # when a fact is appended from seq 0
    event = await append_at_end(store, "alerts-b", NewEvent("stock.out", {}))

    # then it landed at 1001, and no event was read one by one (the head gallops instead)
    assert event.seq == 1001
    assert store.reads == []


async def test_facts_appended_at_once_each_get_their_own_seq(store: EventStore) -> None:
    # when 20 callers append a fact to the same stream at once, all from seq 0
    events = await asyncio.gather(
        *(append_at_end(store, "user-1", NewEvent("user.noted", {"n": n})) for n in range(20))
    )

    # then all landed, at seqs 1..20 with no gap
    assert sorted(event.seq for event in events) == list(range(1, 21))


async def test_a_fact_retried_with_its_id_is_stored_once(store: EventStore) -> None:
    # given a fact appended with its id, then more events after it
    fact = NewEvent("user.registered", {}, id="registration-1:registered")
    first = await append_at_end(store, "user-2", fact)
    await append_at_end(store, "user-2", NewEvent("user.noted", {}))

    # when the same fact is appended again (a flush repeated after a crash)
    again = await append_at_end(store, "user-2", fact)

    # then the stored event comes back, and the stream did not grow
    assert again == first
    assert await store.head("user-2") == 2


def test_an_event_survives_the_wire_format() -> None:
    # given an event as the relay publishes it
    event = Event(
        id="e1",
        stream_id="order-1",
        seq=3,
        type="order.paid",
        data={"total": {"amount": 1299, "currency": "EUR"}},
        occurred_at=datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    )

    # when it is encoded and decoded
    body = encode(event)

    # then the consumer reads the same event, with an RFC 3339 UTC timestamp on the wire
    assert decode(body) == event
    assert b'"occurred_at":"2025-01-02T03:04:05.678Z"' in body


def test_a_body_that_is_not_an_event_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        decode(b'{"id": "only an id"}')
    with pytest.raises(ValueError):
        decode(b"not json")


async def test_an_append_whose_answer_is_lost_is_answered_as_committed(store: EventStore) -> None:
    # given an events collection whose next insert lands but its answer is lost
    store.collection = LosesAnswers(store.collection, [LAND_THEN_TIME_OUT])

    # when an event is appended (its id chosen by the store)
    event = await store.append("lost-1", 0, "counter.incremented", {"by": 1})

    # then the append answers the event that landed, once
    assert event.seq == 1
    assert [e.id for e in await store.load("lost-1")] == [event.id]


async def test_an_append_that_times_out_twice_is_unanswered(store: EventStore) -> None:
    # given an events collection that times out twice without writing
    store.collection = LosesAnswers(store.collection, [TIME_OUT, TIME_OUT])

    # when an event is appended, then the timeout reaches the caller, and nothing was stored
    with pytest.raises(ExecutionTimeout):
        await store.append("lost-2", 0, "counter.incremented", {"by": 1})
    assert await store.load("lost-2") == []


async def test_a_retried_decision_refused_by_its_own_landed_event_answers_that_event(
    store: EventStore,
) -> None:
    # given a decision that takes the one unit left, with an id, and whose first attempt landed
    def take_the_last(total: int) -> NewEvent:
        if total >= 1:
            raise Conflict("nothing left")
        return NewEvent("counter.incremented", {"by": 1}, id="take-1")

    first = await decide(store, "last-1", 0, count, take_the_last, event_id="take-1")

    # when the same write is retried (its answer was lost) against a state that holds its event,
    # on which the decision now refuses
    again = await decide(store, "last-1", 1, count, take_the_last, after_seq=1, event_id="take-1")

    # then it answers the event that landed, and nothing more is appended
    assert again.event is not None
    assert first.event is not None
    assert again.event.id == first.event.id == "take-1"
    assert len(await store.load("last-1")) == 1
    # and without the id, that retry is refused as any other late request would be
    with pytest.raises(Conflict):
        await decide(store, "last-1", 1, count, take_the_last, after_seq=1)
