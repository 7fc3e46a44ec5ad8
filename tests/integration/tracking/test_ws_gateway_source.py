"""ws-gateway mode: envelopes published to the real `ws-gateway.order` queue feed the tracker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aio_pika
import aiormq
import asyncpg
import pytest
from aiohttp import web

from order_manager.adapters.ws_gateway.source import QUEUE, QUEUE_ARGUMENTS, WsGatewaySource
from order_manager.services.tracker import Tracker, run_tracker
from tests.helpers import eventually
from tests.integration.tracking.private_broker import free_port
from tests.integration.tracking.streams import Fill, lifecycle
from tests.integration.tracking.support import one_row, uow_factory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class FakeGateway:
    """The gateway's subscription endpoint (records what the service asked for)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str | None, dict[str, Any]]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    async def _subscribe(self, request: web.Request) -> web.Response:
        self.requests.append((request.headers.get("X-API-Key"), await request.json()))
        return web.json_response({"status": "subscribed"}, status=201)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/subscriptions", self._subscribe)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    fake = FakeGateway()
    await fake.start()
    yield fake
    await fake.stop()


def envelope(topic: str, payload: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": topic,
            "topic": topic,
            "timestamp": "2026-11-28T10:00:00.000Z",
            "received_at": "2026-11-28T10:00:00.001Z",
            "payload": payload,
            "trace_id": "gw-trace",
        }
    ).encode()


async def test_gateway_envelopes_drive_the_tracker(
    pool: asyncpg.Pool, amqp_url: str, gateway: FakeGateway
) -> None:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    # declared exactly as the gateway declares it (the source declares the same)
    await channel.declare_queue(QUEUE, durable=True, arguments=dict(QUEUE_ARGUMENTS))
    items = lifecycle(
        order_id="gw-1",
        link="",
        symbol="BTCUSDT",
        side="Buy",
        qty="0.006",
        price="64000.0",
        fills=[Fill("0.002", "64000.0", "0.0256"), Fill("0.004", "63999.5", "0.0511996")],
    )
    bodies = [envelope(topic, item) for topic, item in items]
    bodies.insert(2, bodies[1])  # a duplicated delivery
    bodies.append(b"{not json")  # a broken message: recorded, not lost, not blocking
    for body in bodies:
        await channel.default_exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=QUEUE,
        )

    source = WsGatewaySource(amqp_url, gateway.url, "gw-key")
    tracker = Tracker(uow_factory(pool), link_prefix="om")
    task = asyncio.create_task(run_tracker(tracker, source))
    try:

        async def drained() -> bool:
            queue = await channel.declare_queue(QUEUE, passive=True)
            state = await pool.fetchval("SELECT status FROM orders WHERE order_id = 'gw-1'")
            problems = await pool.fetchval("SELECT count(*) FROM audit_log")
            count = queue.declaration_result.message_count
            return bool(count == 0 and state == "filled" and problems == 1)

        done: bool = await eventually(drained, timeout=20, what="queue drained, order filled")
        assert done
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    row = await one_row(pool, "SELECT * FROM orders WHERE order_id = 'gw-1'")
    assert row["cum_exec_qty"] == Decimal("0.006")
    assert row["cum_exec_fee"] == Decimal("0.0767996")
    assert row["cum_exec_value"] == Decimal("128.0") + Decimal("255.998")
    assert row["is_external"] is True
    assert await pool.fetchval("SELECT count(*) FROM executions") == 2
    problem = await one_row(pool, "SELECT * FROM audit_log")
    assert problem["action"] == "unparseable_order"
    assert problem["request"] == {"_raw": "{not json"}
    assert gateway.requests == [
        ("gw-key", {"channel_type": c, "symbol": "*", "requesting_service": "order-manager"})
        for c in ("order", "execution")
    ]

    # any other declaration of the queue is refused by the broker, as with the real gateway
    other = await connection.channel()
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await other.declare_queue(QUEUE, durable=True)
    await connection.close()
