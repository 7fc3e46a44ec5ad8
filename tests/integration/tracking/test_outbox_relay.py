"""Outbox relay on real PostgreSQL + RabbitMQ: NOTIFY wake-up, order, confirms, broker outage."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from order_manager.adapters.postgres.outbox_listener import PgOutboxNotifications
from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from order_manager.adapters.rabbitmq.publisher import RabbitEventPublisher
from order_manager.services.outbox_relay import OutboxRelay
from order_manager.services.ports.outbox import (
    AGGREGATE_ORDER,
    ORDER_EVENTS_TOPIC,
    POSITION_EVENTS_TOPIC,
)
from tests.helpers import eventually
from tests.integration.tracking.amqp_collect import Collector, Received, first_occurrences
from tests.integration.tracking.private_broker import PrivateRabbitMQ
from tests.integration.tracking.support import uow_factory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

QUEUES = (ORDER_EVENTS_TOPIC, POSITION_EVENTS_TOPIC)


class RunningRelay:
    def __init__(self, relay: OutboxRelay, publisher: RabbitEventPublisher) -> None:
        self.relay = relay
        self.publisher = publisher
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(relay.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)
        await self.publisher.close()


async def start_relay(
    pool: asyncpg.Pool,
    db_url: str,
    amqp_url: str,
    *,
    sweep_interval: float = 3600.0,
    coalesce: float = 0.0,
) -> RunningRelay:
    """A relay whose periodic sweep is an hour: anything it publishes promptly came from a
    NOTIFY wake-up (or the start-up sweep)."""
    publisher = RabbitEventPublisher(amqp_url, queues=QUEUES, connection_name="test-relay")
    relay = OutboxRelay(
        uow_factory(pool),
        publisher,
        PgOutboxNotifications(db_url),
        batch_size=50,
        sweep_interval=sweep_interval,
        retry_base=0.05,
        retry_max=0.5,
        coalesce=coalesce,
    )
    return RunningRelay(relay, publisher)


@pytest.fixture
async def collector_factory() -> AsyncIterator[object]:
    collectors: list[Collector] = []

    async def make(url: str, queue: str = ORDER_EVENTS_TOPIC) -> Collector:
        c = Collector(url, queue)
        await c.start()
        collectors.append(c)
        return c

    yield make
    for c in collectors:
        await c.close()


async def add_event(pool: asyncpg.Pool, aggregate: str, n: int) -> uuid.UUID:
    async with PostgresUnitOfWorkFactory(pool)() as uow:
        event_id = await uow.outbox.add_event(
            topic=ORDER_EVENTS_TOPIC,
            event_type="partially_filled",
            aggregate_type=AGGREGATE_ORDER,
            aggregate_id=aggregate,
            payload={"order": {"id": aggregate, "filled_quantity": f"0.00{n}"}},
            trace_id=f"trace-{aggregate[:8]}",
            is_dry_run=False,
        )
        await uow.commit()
    return event_id


def assert_in_sequence(messages: Sequence[Received], expected: dict[str, int]) -> None:
    """After dedupe by event_id, each aggregate's events arrive as 1, 2, ..., n."""
    per_aggregate: dict[str, list[int]] = defaultdict(list)
    for m in first_occurrences(list(messages)):
        per_aggregate[m.body["order"]["id"]].append(m.body["sequence"])
    assert dict(per_aggregate) == {agg: list(range(1, n + 1)) for agg, n in expected.items()}


async def test_relay_publishes_committed_events_in_order_with_confirms(
    pool: asyncpg.Pool, db_url: str, amqp_url: str, collector_factory: object
) -> None:
    collector = await collector_factory(amqp_url)  # type: ignore[operator]
    running = await start_relay(pool, db_url, amqp_url)
    try:
        aggregates = [str(uuid.uuid4()) for _ in range(3)]
        ids = [await add_event(pool, agg, n) for n in range(1, 6) for agg in aggregates]
        messages = await collector.wait_for(
            lambda ms: len(ms) >= 15, what="15 events (NOTIFY-driven: the sweep is an hour)"
        )
    finally:
        await running.close()

    assert_in_sequence(messages, {agg: 5 for agg in aggregates})
    assert {m.message_id for m in messages} == {str(i) for i in ids}
    first = messages[0]
    assert first.message_id == first.body["event_id"]
    assert first.delivery_mode == 2  # persistent
    assert first.event_type == "partially_filled"
    assert first.correlation_id == first.body["trace_id"]
    assert first.headers["x-om-sequence"] == first.body["sequence"]
    assert first.headers["x-om-aggregate-id"] == first.body["order"]["id"]
    unpublished = await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    assert unpublished == 0


async def test_events_committed_before_the_relay_starts_are_swept(
    pool: asyncpg.Pool, db_url: str, amqp_url: str, collector_factory: object
) -> None:
    agg = str(uuid.uuid4())
    for n in range(1, 121):  # more than two batches
        await add_event(pool, agg, n)
    collector = await collector_factory(amqp_url)  # type: ignore[operator]
    running = await start_relay(pool, db_url, amqp_url)
    try:
        messages = await collector.wait_for(lambda ms: len(ms) >= 120, what="the backlog")
    finally:
        await running.close()
    assert_in_sequence(messages, {agg: 120})


async def test_broker_outage_events_wait_then_flow_in_order(
    pool: asyncpg.Pool,
    db_url: str,
    private_rabbitmq: PrivateRabbitMQ,
    collector_factory: object,
) -> None:
    """The relay's own broker node is stopped while events keep being committed; when it comes
    back every event arrives (at least once, in per-aggregate order) and every row is marked."""
    url = private_rabbitmq.url
    running = await start_relay(pool, db_url, url)
    aggregates = [str(uuid.uuid4()) for _ in range(4)]
    counts = dict.fromkeys(aggregates, 0)

    async def write(n_rounds: int) -> None:
        for _ in range(n_rounds):
            for agg in aggregates:
                counts[agg] += 1
                await add_event(pool, agg, counts[agg])

    try:
        await write(3)
        await eventually(
            lambda: running.relay.published_count >= 12, timeout=20, what="first events out"
        )
        await asyncio.to_thread(private_rabbitmq.stop_app)
        outage_end = time.monotonic() + 4.0
        while time.monotonic() < outage_end:  # commits keep coming during the outage
            await write(1)
            await asyncio.sleep(0.05)  # pacing of the load, not synchronisation
        waiting = await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        assert waiting > 0
        assert running.relay.failure_count > 0
        await asyncio.to_thread(private_rabbitmq.start_app)
        await write(2)
        total = sum(counts.values())
        collector = await collector_factory(url)  # type: ignore[operator]
        messages = await collector.wait_for(
            lambda ms: len(first_occurrences(ms)) >= total, timeout=60, what="all events"
        )
        await eventually(
            lambda: pool.fetchval("SELECT count(*) = 0 FROM outbox WHERE published_at IS NULL"),
            timeout=20,
            what="every row marked published",
        )
    finally:
        await running.close()
    assert len(first_occurrences(messages)) == total
    assert_in_sequence(messages, counts)


async def test_commits_within_the_coalescing_window_go_out_in_one_batch(
    pool: asyncpg.Pool, db_url: str, amqp_url: str, collector_factory: object
) -> None:
    """A NOTIFY opens the window; an event committed while it is open is relayed in the same
    batch (one `published_at`), not by a relay transaction of its own."""
    collector = await collector_factory(amqp_url)  # type: ignore[operator]
    running = await start_relay(pool, db_url, amqp_url, coalesce=2.0)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        await eventually(lambda: running.relay.drains >= 1, what="the start-up sweep is done")
        await add_event(pool, first, 1)
        await eventually(
            lambda: running.relay.coalesced_wakeups == 1, what="the NOTIFY opened the window"
        )
        assert running.relay.published_count == 0  # held back by the window
        await add_event(pool, second, 1)
        messages = await collector.wait_for(lambda ms: len(ms) >= 2, what="both events")
    finally:
        await running.close()
    assert {m.body["order"]["id"] for m in messages} == {first, second}
    stamps = await pool.fetch("SELECT DISTINCT published_at FROM outbox")
    assert len(stamps) == 1 and stamps[0]["published_at"] is not None


async def test_a_stop_ends_the_coalescing_window_at_once(
    pool: asyncpg.Pool, db_url: str, amqp_url: str
) -> None:
    running = await start_relay(pool, db_url, amqp_url, coalesce=600.0)
    await eventually(lambda: running.relay.drains >= 1, what="the start-up sweep is done")
    await add_event(pool, str(uuid.uuid4()), 1)
    await eventually(lambda: running.relay.coalesced_wakeups == 1, what="the window is open")
    await running.close()  # would wait out the ten-minute window otherwise (30 s limit)
    assert running.task.done() and running.task.exception() is None
