"""RabbitMQ stopped for 10 s while fills keep arriving from the simulator: afterwards every
event is delivered (at least once per event_id), in sequence per aggregate, none lost.

The broker is a private node of this test (`private_rabbitmq`): the shared development broker
is never touched.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from order_manager.services.ports.outbox import ORDER_EVENTS_TOPIC, POSITION_EVENTS_TOPIC
from tests.helpers import eventually
from tests.integration.tracking.amqp_collect import Collector, Received, first_occurrences
from tests.integration.tracking.harness import SimTracking
from tests.integration.tracking.private_broker import PrivateRabbitMQ

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

OUTAGE_SECONDS = 10.0


@pytest.fixture
async def tracking(sim: Any, pool: asyncpg.Pool, db_url: str) -> AsyncIterator[SimTracking]:
    harness = SimTracking(sim, pool, db_url)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


def per_aggregate(messages: list[Received]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for m in first_occurrences(messages):
        out[m.headers["x-om-aggregate-id"]].append(m.body["sequence"])
    return dict(out)


async def test_broker_outage_during_fills_loses_and_reorders_nothing(
    tracking: SimTracking, private_rabbitmq: PrivateRabbitMQ
) -> None:
    relay = await tracking.start_relay(private_rabbitmq.url)
    price = await tracking.ticker_price()
    order_id = await tracking.place("Buy", "0.100", price=str(price - 50))
    await tracking.force_fill(order_id, "0.001")
    await eventually(lambda: relay.published_count >= 3, timeout=20, what="first events out")

    await asyncio.to_thread(private_rabbitmq.stop_app)
    stopped_at = time.monotonic()
    fills_during = 0
    while time.monotonic() - stopped_at < OUTAGE_SECONDS:
        await tracking.force_fill(order_id, "0.002")
        fills_during += 1
        await asyncio.sleep(0.4)  # pacing of the fills, not synchronisation
    waiting = await tracking.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    assert waiting >= fills_during  # events were committed and are waiting
    assert relay.failure_count > 0
    await asyncio.to_thread(private_rabbitmq.start_app)

    await tracking.force_fill(order_id)  # the rest, after the broker is back
    await eventually(
        lambda: tracking.pool.fetchval(
            "SELECT status = 'filled' FROM orders WHERE order_id = $1", order_id
        ),
        timeout=20,
        what="order filled",
    )
    await eventually(
        lambda: tracking.pool.fetchval(
            "SELECT count(*) = 0 FROM outbox WHERE published_at IS NULL"
        ),
        timeout=30,
        what="outbox drained",
    )
    rows = await tracking.pool.fetch("SELECT event_id, topic FROM outbox ORDER BY id")
    expected = {
        topic: {str(r["event_id"]) for r in rows if r["topic"] == topic}
        for topic in (ORDER_EVENTS_TOPIC, POSITION_EVENTS_TOPIC)
    }

    received: dict[str, list[Received]] = {}
    for topic in (ORDER_EVENTS_TOPIC, POSITION_EVENTS_TOPIC):
        collector = Collector(private_rabbitmq.url, topic)
        await collector.start()
        try:
            wanted = expected[topic]

            def complete(ms: list[Received], wanted: set[str] = wanted) -> bool:
                return {m.body["event_id"] for m in ms} >= wanted

            received[topic] = await collector.wait_for(
                complete, timeout=30, what=f"every {topic} event"
            )
        finally:
            await collector.close()
        unique = first_occurrences(received[topic])
        assert {m.body["event_id"] for m in unique} == expected[topic]  # none lost, no strays
        for sequences in per_aggregate(received[topic]).values():
            assert sequences == list(range(1, len(sequences) + 1))  # in order, no gaps
    assert fills_during >= 10
    order_events = per_aggregate(received[ORDER_EVENTS_TOPIC])
    assert max(len(s) for s in order_events.values()) >= fills_during + 2
