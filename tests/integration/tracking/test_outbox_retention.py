"""Outbox retention on real PostgreSQL: old published rows go, except each aggregate's newest;
nothing unpublished or young goes; an aggregate's next event continues its sequence."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from order_manager.services.outbox_retention import OutboxPruner
from order_manager.services.ports.outbox import AGGREGATE_ORDER, ORDER_EVENTS_TOPIC
from tests.helpers import eventually
from tests.integration.tracking.support import uow_factory

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
WEEK = timedelta(days=7)


async def add(pool: asyncpg.Pool, aggregate_id: str | None, event_type: str = "created") -> int:
    async with PostgresUnitOfWorkFactory(pool)() as uow:
        await uow.outbox.add_event(
            topic=ORDER_EVENTS_TOPIC,
            event_type=event_type,
            aggregate_type=AGGREGATE_ORDER,
            aggregate_id=aggregate_id,
            payload={"order": {}},
            trace_id="t",
            is_dry_run=False,
        )
        await uow.commit()
    return int(await pool.fetchval("SELECT max(id) FROM outbox"))


async def published(pool: asyncpg.Pool, row_id: int, age: timedelta) -> None:
    await pool.execute("UPDATE outbox SET published_at = $2 WHERE id = $1", row_id, NOW - age)


async def remaining(pool: asyncpg.Pool) -> list[tuple[str | None, int | None]]:
    rows = await pool.fetch("SELECT aggregate_id, sequence FROM outbox ORDER BY id")
    return [(r["aggregate_id"], r["sequence"]) for r in rows]


def pruner(pool: asyncpg.Pool, window: int = 5000) -> OutboxPruner:
    return OutboxPruner(
        uow_factory(pool), retention=WEEK, interval=3600, window=window, clock=lambda: NOW
    )


@pytest.mark.parametrize("window", [2, 5000], ids=["small_steps", "one_step"])
async def test_old_published_rows_go_except_each_aggregates_newest(
    pool: asyncpg.Pool, window: int
) -> None:
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    old = timedelta(days=8)
    # a: three old published events; b: two old, the newest young; no aggregate: one old
    for aggregate_id in (a, a, b, a, None, b):
        await published(pool, await add(pool, aggregate_id), old)
    await published(pool, await add(pool, b), timedelta(days=1))
    # after the first young row: an old published row of c must wait for the next pass
    await published(pool, await add(pool, c), old)
    await published(pool, await add(pool, c), old)

    report = await pruner(pool, window).prune()

    assert report.deleted == 5  # a1, a2, b1, b2 (b3 is newer, if young) and the one of none
    assert await remaining(pool) == [(a, 3), (b, 3), (c, 1), (c, 2)]


async def test_the_edge_stops_at_an_unpublished_row_and_the_next_pass_goes_on(
    pool: asyncpg.Pool,
) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    old = timedelta(days=8)
    await published(pool, await add(pool, a), old)
    stuck = await add(pool, b)  # not published (the broker refused it so far)
    await published(pool, await add(pool, a), old)
    await published(pool, await add(pool, a), old)
    keeper = pruner(pool)

    assert (await keeper.prune()).deleted == 1  # a's first; nothing after the unpublished row
    assert await remaining(pool) == [(b, 1), (a, 2), (a, 3)]

    await published(pool, stuck, old)  # published at last (and long ago, for the test)
    await published(pool, await add(pool, b), old)
    assert (await keeper.prune()).deleted == 2  # a's second and b's first
    assert await remaining(pool) == [(a, 3), (b, 2)]


async def test_an_aggregates_next_event_continues_its_sequence_after_pruning(
    pool: asyncpg.Pool,
) -> None:
    """Deleting an aggregate's newest row would restart its sequence at 1 — consumers that
    dedupe by (aggregate, sequence) would then drop the next real event."""
    a = str(uuid.uuid4())
    for _ in range(4):
        await published(pool, await add(pool, a), timedelta(days=30))
    assert (await pruner(pool).prune()).deleted == 3
    await add(pool, a, "filled")
    assert await remaining(pool) == [(a, 4), (a, 5)]
    payload = await pool.fetchval("SELECT payload FROM outbox ORDER BY id DESC LIMIT 1")
    assert payload["sequence"] == 5 and payload["event_type"] == "filled"


async def test_the_loop_prunes_and_stops(pool: asyncpg.Pool) -> None:
    a = str(uuid.uuid4())
    for _ in range(2):
        await published(pool, await add(pool, a), timedelta(days=8))
    stop = asyncio.Event()
    running = asyncio.create_task(pruner(pool).run(stop))

    async def pruned() -> bool:
        return await remaining(pool) == [(a, 2)]

    await eventually(pruned, timeout=10, what="the loop's first pass")
    stop.set()
    await asyncio.wait_for(running, 5)


async def test_a_retention_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="retention must be positive"):
        OutboxPruner(
            uow_factory(None),  # type: ignore[arg-type]
            retention=timedelta(0),
            interval=1,
        )
