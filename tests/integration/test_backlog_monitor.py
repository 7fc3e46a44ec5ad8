"""The backlog gauges on a real PostgreSQL and a real RabbitMQ (`services.backlog`).

Rows are written as the service writes them — signals received/processing, an intent
``submitting``, an unpublished outbox event, dead letters from the intake's own publisher —
plus rows in final states that must not count; the monitor's clock is fixed, so every age is
exact."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from prometheus_client import REGISTRY

from order_manager.adapters.postgres.backlog_repo import PgBacklogQueries
from order_manager.adapters.rabbitmq.connection import connect
from order_manager.adapters.rabbitmq.dead_letters import RabbitDeadLetterPublisher
from order_manager.adapters.rabbitmq.queue_depth import RabbitQueueDepth
from order_manager.adapters.rabbitmq.signal_publisher import build_signal, encode_signal
from order_manager.services.backlog import BacklogMonitor
from order_manager.services.ports.backlog import WAITING_KINDS
from tests.helpers import until

pytestmark = pytest.mark.integration

DLQ = "order-manager.signals.dlq"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
WALL = 1_790_000_000.0


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def amqp(amqp_url: str) -> AsyncIterator[object]:
    connection = await connect(amqp_url, name="test-backlog")
    yield connection
    await connection.close()


def monitor(pool: asyncpg.Pool, amqp: object) -> BacklogMonitor:
    return BacklogMonitor(
        PgBacklogQueries(pool),
        RabbitQueueDepth(amqp, DLQ),  # type: ignore[arg-type]
        interval=0.05,
        clock=lambda: NOW,
        wall=lambda: WALL,
    )


def gauge(name: str, kind: str | None = None) -> float | None:
    return REGISTRY.get_sample_value(name, {"kind": kind} if kind else {})


async def add_signal(conn: asyncpg.Connection, status: str, age: timedelta) -> None:
    await conn.execute(
        "INSERT INTO signals (signal_id, status, raw, received_at) VALUES ($1, $2, $3, $4)",
        uuid.uuid4(),
        status,
        json.dumps({"test": True}),
        NOW - age,
    )


async def add_order(conn: asyncpg.Connection, status: str, age: timedelta) -> None:
    await conn.execute(
        "INSERT INTO orders (order_link_id, symbol, side, order_type, qty, status, created_at)"
        " VALUES ($1, 'BTCUSDT', 'Buy', 'Market', 0.01, $2, $3)",
        f"t-{uuid.uuid4().hex[:20]}",
        status,
        NOW - age,
    )


async def add_event(conn: asyncpg.Connection, published: bool, age: timedelta) -> None:
    await conn.execute(
        "INSERT INTO outbox (event_id, topic, event_type, payload, created_at, published_at)"
        " VALUES ($1, 'order-manager.order_events', 'created', '{}', $2, $3)",
        uuid.uuid4(),
        NOW - age,
        NOW if published else None,
    )


async def test_nothing_waiting_reads_zero_and_a_never_declared_dlq_is_empty(
    pool: asyncpg.Pool, amqp: object
) -> None:
    sample = await monitor(pool, amqp).sample()
    for kind in WAITING_KINDS:
        assert gauge("om_backlog_waiting", kind) == 0
        assert gauge("om_backlog_oldest_seconds", kind) == 0
    assert sample.dead_letters == 0 and gauge("om_dead_letter_messages") == 0
    assert gauge("om_backlog_sampled_timestamp_seconds") == WALL


async def test_counts_and_oldest_ages_of_what_waits(pool: asyncpg.Pool, amqp: object) -> None:
    async with pool.acquire() as conn:
        await add_signal(conn, "processing", timedelta(seconds=90))
        await add_signal(conn, "received", timedelta(seconds=5))
        await add_signal(conn, "executed", timedelta(hours=1))  # final: not waiting
        await add_signal(conn, "failed", timedelta(hours=2))  # in the DLQ, not here
        await add_order(conn, "submitting", timedelta(seconds=300))
        await add_order(conn, "submitting", timedelta(seconds=1))
        await add_order(conn, "pending", timedelta(hours=3))  # resting: not an intent
        await add_event(conn, published=True, age=timedelta(hours=1))
        await add_event(conn, published=False, age=timedelta(seconds=42))
        await add_event(conn, published=False, age=timedelta(seconds=2))
    dead = RabbitDeadLetterPublisher(amqp, DLQ)  # type: ignore[arg-type]
    body = encode_signal(build_signal(asset="BTCUSDT", side="buy", amount=Decimal("100")))
    for reason in ("exchange_unavailable", "missing_field"):
        await dead.dead_letter(body, reason=reason, error=reason, failed_at=NOW, trace_id="t")
    await dead.close()

    await monitor(pool, amqp).sample()

    assert gauge("om_backlog_waiting", "signals_in_progress") == 2
    assert gauge("om_backlog_oldest_seconds", "signals_in_progress") == 90
    assert gauge("om_backlog_waiting", "intents_submitting") == 2
    assert gauge("om_backlog_oldest_seconds", "intents_submitting") == 300
    assert gauge("om_backlog_waiting", "outbox_unpublished") == 2
    assert gauge("om_backlog_oldest_seconds", "outbox_unpublished") == 42
    assert gauge("om_dead_letter_messages") == 2


async def test_a_failed_sample_changes_no_gauge_and_the_monitor_keeps_running(
    pool: asyncpg.Pool, amqp: object, db_url: str
) -> None:
    async with pool.acquire() as conn:
        await add_order(conn, "submitting", timedelta(seconds=60))
    await monitor(pool, amqp).sample()
    assert gauge("om_backlog_waiting", "intents_submitting") == 1

    broken = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    await broken.close()  # the database is unreachable for this monitor
    failing = BacklogMonitor(
        PgBacklogQueries(broken),
        RabbitQueueDepth(amqp, DLQ),  # type: ignore[arg-type]
        interval=0.01,
        clock=lambda: NOW + timedelta(hours=1),
        wall=lambda: WALL + 3600,
    )
    with pytest.raises(asyncpg.InterfaceError):
        await failing.sample()
    failures = gauge("om_backlog_sample_failures_total") or 0
    stop = asyncio.Event()
    running = asyncio.create_task(failing.run(stop))

    async def failed_twice() -> bool:  # a failure did not end the loop
        assert not running.done(), running
        return (gauge("om_backlog_sample_failures_total") or 0) >= failures + 2

    await until(failed_twice, what="two failed samples in a row")
    stop.set()
    await asyncio.wait_for(running, timeout=5)
    assert gauge("om_backlog_waiting", "intents_submitting") == 1  # unchanged
    assert gauge("om_backlog_oldest_seconds", "intents_submitting") == 60
    assert gauge("om_backlog_sampled_timestamp_seconds") == WALL  # grows old: alerted on


async def test_with_the_broker_unreachable_the_database_gauges_still_move(
    pool: asyncpg.Pool, amqp_url: str
) -> None:
    """A broker outage is when unpublished events pile up: their gauges must keep moving;
    only the dead-letter gauge and the sample time stay, and the sample counts as failed."""
    connection = await connect(amqp_url, name="test-backlog-outage")
    monitor_ = monitor(pool, connection)
    await monitor_.sample()
    assert gauge("om_backlog_waiting", "outbox_unpublished") == 0
    await connection.close()  # this monitor's broker is gone
    async with pool.acquire() as conn:
        await add_event(conn, published=False, age=timedelta(seconds=30))
    failures = gauge("om_backlog_sample_failures_total") or 0
    later = BacklogMonitor(
        PgBacklogQueries(pool),
        RabbitQueueDepth(connection, DLQ),  # type: ignore[arg-type]
        interval=0.01,
        clock=lambda: NOW,
        wall=lambda: WALL + 60,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(later.run(stop))

    async def failed_once() -> bool:
        return (gauge("om_backlog_sample_failures_total") or 0) > failures

    await until(failed_once, what="a sample failing on the broker")
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert gauge("om_backlog_waiting", "outbox_unpublished") == 1
    assert gauge("om_backlog_oldest_seconds", "outbox_unpublished") == 30
    assert gauge("om_backlog_sampled_timestamp_seconds") == WALL  # not WALL + 60
