"""The whole service as users run it (`order-manager run`): a signal becomes an exchange order,
the private stream's fill reaches our database through the tracker, the enriched events reach
`order-manager.order_events` through the outbox relay, and the REST API shows the result."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import aio_pika
import httpx

from order_manager.adapters.rabbitmq.signal_publisher import build_signal
from order_manager.config import DEV_API_KEY
from tests.e2e.test_intake_service import World, until, world

__all__ = ["world"]  # the fixture, shared with the intake e2e tests


async def test_signal_to_filled_order_event_and_api(world: World, amqp_url: str) -> None:
    await world.service.start()
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel()
        events_queue = await channel.declare_queue("order-manager.order_events", durable=True)
        signal_ = build_signal(
            asset="BTCUSDT", side="buy", amount=Decimal("1000"), confidence=Decimal("0.95")
        )
        await world.publisher.publish_signal(signal_)
        signal_id = signal_["signal_id"]

        seen: list[dict[str, Any]] = []

        async def filled_event_arrived() -> bool:
            message = await events_queue.get(fail=False, timeout=5)
            if message is not None:
                await message.ack()
                seen.append(json.loads(message.body))
            return any(e["event_type"] == "filled" for e in seen)

        await until(filled_event_arrived, what="a filled event on order-manager.order_events")

    mine = [e for e in seen if e["order"] and e["order"]["signal_id"] == signal_id]
    types = [e["event_type"] for e in mine]
    assert types[0] == "created" and types[-1] == "filled", types
    sequences = [e["sequence"] for e in mine]
    assert sequences == list(range(1, len(sequences) + 1))  # per-order, gapless, in order
    filled = mine[-1]
    assert filled["order"]["status"] == "filled"
    assert Decimal(filled["order"]["filled_quantity"]) == Decimal(filled["order"]["quantity"])
    assert filled["signal"]["signal_id"] == signal_id
    assert filled["trace_id"]

    port = world.service.port
    headers = {"X-API-Key": DEV_API_KEY}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
        assert (await api.get("/api/v1/orders")).status_code == 401
        listed = await api.get(f"/api/v1/orders?signal_id={signal_id}", headers=headers)
        assert listed.status_code == 200, listed.text
        [order] = listed.json()["items"]
        assert order["status"] == "filled"
        exchange = [
            o for o in await world.sim_orders() if o["orderLinkId"] == order["order_link_id"]
        ]
        assert len(exchange) == 1
        assert Decimal(order["cum_exec_qty"]) == Decimal(exchange[0]["cumExecQty"])
        position = await api.get("/api/v1/positions/BTCUSDT", headers=headers)
        assert position.status_code == 200, position.text
        sync = await api.post("/api/v1/sync", json={"scope": "active"}, headers=headers)
        assert sync.status_code == 200, sync.text
        assert sync.json()["orders_changed"] == 0  # the stream already told us everything
