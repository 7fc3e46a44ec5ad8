"""Outbox repository on real PostgreSQL: per-aggregate sequence, payload consistency, relay API."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from order_manager.services.ports.outbox import AGGREGATE_ORDER, ORDER_EVENTS_TOPIC


async def _add(
    factory: PostgresUnitOfWorkFactory, aggregate_id: str | None, *, commit: bool = True
) -> uuid.UUID:
    async with factory() as uow:
        event_id = await uow.outbox.add_event(
            topic=ORDER_EVENTS_TOPIC,
            event_type="created",
            aggregate_type=AGGREGATE_ORDER,
            aggregate_id=aggregate_id,
            payload={"order": {"fees": "0.1"}, "sequence": 99},
            trace_id="t-1",
            is_dry_run=False,
        )
        if commit:
            await uow.commit()
    return event_id


async def test_sequence_counts_per_aggregate_and_payload_agrees(pool: asyncpg.Pool) -> None:
    factory = PostgresUnitOfWorkFactory(pool)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    ids = [await _add(factory, agg) for agg in (a, a, b, a, b)]
    ids.append(await _add(factory, None))
    rows = await pool.fetch("SELECT * FROM outbox ORDER BY id")
    assert [(r["aggregate_id"], r["sequence"]) for r in rows] == [
        (a, 1),
        (a, 2),
        (b, 1),
        (a, 3),
        (b, 2),
        (None, None),
    ]
    for row, event_id in zip(rows, ids, strict=True):
        payload = row["payload"]
        assert row["event_id"] == event_id
        assert payload["event_id"] == str(event_id)
        assert payload["sequence"] == row["sequence"]  # caller's 99 is overwritten
        assert payload["event_type"] == "created"
        assert payload["trace_id"] == "t-1"
        assert payload["order"] == {"fees": "0.1"}
        stamp = datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
        assert stamp == row["created_at"]


async def test_rolled_back_event_leaves_no_gap(pool: asyncpg.Pool) -> None:
    factory = PostgresUnitOfWorkFactory(pool)
    agg = str(uuid.uuid4())
    await _add(factory, agg)
    await _add(factory, agg, commit=False)
    await _add(factory, agg)
    seqs = [r["sequence"] for r in await pool.fetch("SELECT sequence FROM outbox ORDER BY id")]
    assert seqs == [1, 2]


async def test_concurrent_writers_of_one_aggregate_get_distinct_gapless_sequences(
    pool: asyncpg.Pool,
) -> None:
    factory = PostgresUnitOfWorkFactory(pool)
    agg = str(uuid.uuid4())
    await asyncio.gather(*(_add(factory, agg) for _ in range(10)))
    rows = await pool.fetch("SELECT id, sequence FROM outbox ORDER BY id")
    # id order equals sequence order within the aggregate (what the relay relies on)
    assert [r["sequence"] for r in rows] == list(range(1, 11))


async def test_insert_notifies_the_outbox_channel(pool: asyncpg.Pool, db_url: str) -> None:
    listener = await asyncpg.connect(db_url)
    got: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_notify(_c: object, _pid: int, channel: str, _payload: object) -> None:
        if not got.done():
            got.set_result(channel)

    try:
        await listener.add_listener("outbox", on_notify)
        await _add(PostgresUnitOfWorkFactory(pool), str(uuid.uuid4()))
        assert await asyncio.wait_for(got, 5) == "outbox"
    finally:
        await listener.close()


async def test_relay_api_fetch_mark_and_fail(pool: asyncpg.Pool) -> None:
    factory = PostgresUnitOfWorkFactory(pool)
    agg = str(uuid.uuid4())
    for _ in range(3):
        await _add(factory, agg)
    async with factory() as uow:
        assert await uow.outbox.claim_relay()
        records = await uow.outbox.fetch_unpublished(2)
        assert [r.sequence for r in records] == [1, 2]
        assert records[0].payload["sequence"] == 1
        await uow.outbox.mark_published([records[0].id], datetime.now(UTC))
        await uow.outbox.record_failure([records[1].id], "broker down")
        await uow.commit()
    async with factory() as uow:
        records = await uow.outbox.fetch_unpublished(10)
        assert [r.sequence for r in records] == [2, 3]
        assert records[0].attempts == 1
        assert await uow.outbox.last_sequence(AGGREGATE_ORDER, agg) == 3
    row = await pool.fetchrow("SELECT last_error FROM outbox WHERE sequence = 2")
    assert row is not None and row["last_error"] == "broker down"


async def test_only_one_relay_claims_at_a_time(pool: asyncpg.Pool) -> None:
    factory = PostgresUnitOfWorkFactory(pool)
    await _add(factory, str(uuid.uuid4()))
    async with factory() as first:
        assert len(await first.outbox.fetch_unpublished(10)) == 1  # claims the relay lock
        async with factory() as second:
            assert not await second.outbox.claim_relay()
            assert await second.outbox.fetch_unpublished(10) == []
    async with factory() as third:
        assert await third.outbox.claim_relay()


async def test_bad_input_is_refused(pool: asyncpg.Pool) -> None:
    async with PostgresUnitOfWorkFactory(pool)() as uow:
        with pytest.raises(ValueError, match="topic"):
            await uow.outbox.add_event(
                topic="",
                event_type="created",
                aggregate_type=AGGREGATE_ORDER,
                aggregate_id=None,
                payload={},
                trace_id=None,
                is_dry_run=False,
            )


async def test_events_of_one_transaction_are_written_together_in_order(
    pool: asyncpg.Pool,
) -> None:
    """add_event queues; commit writes the queue in one call, in the order added — the same
    rows and sequences as one call per event. Reads in the same transaction see the queue;
    a rollback writes none of it."""
    factory = PostgresUnitOfWorkFactory(pool)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())

    async def add(uow: object, agg: str, kind: str) -> uuid.UUID:
        return await uow.outbox.add_event(  # type: ignore[attr-defined, no-any-return]
            topic=ORDER_EVENTS_TOPIC,
            event_type=kind,
            aggregate_type=AGGREGATE_ORDER,
            aggregate_id=agg,
            payload={"n": kind},
            trace_id="t-batch",
            is_dry_run=True,
        )

    async with factory() as uow:
        await add(uow, a, "created")
        assert uow.outbox.pending == 1
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0  # nothing written yet
        await add(uow, a, "rejected")
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0  # rolled back: no row

    async with factory() as uow:
        first = [await add(uow, agg, kind) for agg, kind in ((a, "created"), (b, "created"))]
        assert await uow.outbox.last_sequence(AGGREGATE_ORDER, a) == 1  # sees its own queue
        assert uow.outbox.pending == 0
        rest = [await add(uow, agg, kind) for agg, kind in ((a, "filled"), (b, "cancelled"))]
        await uow.commit()
    rows = await pool.fetch("SELECT * FROM outbox ORDER BY id")
    assert [(r["event_id"], r["aggregate_id"], r["sequence"], r["event_type"]) for r in rows] == [
        (first[0], a, 1, "created"),
        (first[1], b, 1, "created"),
        (rest[0], a, 2, "filled"),
        (rest[1], b, 2, "cancelled"),
    ]
    assert all(r["is_dry_run"] and r["payload"]["trace_id"] == "t-batch" for r in rows)
    assert [r["payload"]["n"] for r in rows] == ["created", "created", "filled", "cancelled"]


async def _batch(factory: PostgresUnitOfWorkFactory, aggregates: list[str | None]) -> None:
    async with factory() as uow:
        for n, agg in enumerate(aggregates):
            await uow.outbox.add_event(
                topic=ORDER_EVENTS_TOPIC,
                event_type="filled",
                aggregate_type=AGGREGATE_ORDER,
                aggregate_id=agg,
                payload={"n": n},
                trace_id="t-set",
                is_dry_run=False,
            )
        await uow.commit()


async def test_one_batch_interleaving_aggregates_continues_each_sequence_in_array_order(
    pool: asyncpg.Pool,
) -> None:
    factory = PostgresUnitOfWorkFactory(pool)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    await _add(factory, a)
    await _batch(factory, [a, b, None, a, b, a])
    rows = await pool.fetch("SELECT * FROM outbox ORDER BY id")
    assert [(r["aggregate_id"], r["sequence"]) for r in rows] == [
        (a, 1),
        (a, 2),
        (b, 1),
        (None, None),
        (a, 3),
        (b, 2),
        (a, 4),
    ]
    batch = rows[1:]
    assert [r["payload"]["n"] for r in batch] == list(range(6))  # ids in array order
    assert all(r["payload"]["sequence"] == r["sequence"] for r in batch)


async def test_batches_taking_the_same_aggregates_in_opposite_orders_neither_deadlock_nor_gap(
    pool: asyncpg.Pool,
) -> None:
    """Each batch locks its aggregates in sorted order, whatever order its events come in."""
    factory = PostgresUnitOfWorkFactory(pool)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    await asyncio.gather(
        *(_batch(factory, [a, b] if i % 2 else [b, a]) for i in range(12)),
    )
    for agg in (a, b):
        sequences = [
            r["sequence"]
            for r in await pool.fetch(
                "SELECT sequence FROM outbox WHERE aggregate_id = $1 ORDER BY id", agg
            )
        ]
        assert sequences == list(range(1, 13))
