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


async def test_dry_run_resting_paper_limit_fills_later_and_is_tracked(world: World) -> None:
    """Dry-run: a paper limit order that rests and fills when the live price crosses it later is
    tracked to `filled` (is_dry_run) by the paper feed, and nothing reaches the exchange."""
    world.service.env["ORDERMANAGER_DRY_RUN"] = "true"
    await world.service.start()
    await world.admin.post(
        "/sim/price/freeze", json={"category": "linear", "symbol": "BTCUSDT", "frozen": True}
    )
    ticker = (await world.admin.get("/sim/state")).json()
    del ticker  # state is large; the price comes from the public endpoint below
    async with httpx.AsyncClient(base_url=world.sim.url, timeout=10) as public:
        t = await public.get(
            "/v5/market/tickers", params={"category": "linear", "symbol": "BTCUSDT"}
        )
        last = Decimal(t.json()["result"]["list"][0]["lastPrice"])
    limit = (last * Decimal("0.98")).quantize(Decimal("0.1"))
    signal_ = build_signal(
        asset="BTCUSDT",
        side="buy",
        amount=Decimal("500"),
        confidence=Decimal("0.5"),
        metadata={"order_type": "limit", "limit_price": str(limit)},
    )
    await world.publisher.publish_signal(signal_)
    signal_id = signal_["signal_id"]

    async def resting() -> bool:
        rows = await world.fetch("SELECT status FROM orders WHERE signal_id = $1", signal_id)
        return len(rows) == 1 and rows[0]["status"] == "pending"

    await until(resting, what="paper limit order resting")
    moved = await world.admin.post(
        "/sim/price",
        json={"category": "linear", "symbol": "BTCUSDT", "price": str(limit * Decimal("0.99"))},
    )
    assert moved.status_code == 200, moved.text

    async def filled() -> bool:
        rows = await world.fetch(
            "SELECT status, is_dry_run, cum_exec_qty, qty FROM orders WHERE signal_id = $1",
            signal_id,
        )
        return bool(rows) and rows[0]["status"] == "filled"

    await until(filled, what="paper limit order filled and tracked")
    [row] = await world.fetch(
        "SELECT is_dry_run, cum_exec_qty, qty, avg_price FROM orders WHERE signal_id = $1",
        signal_id,
    )
    assert row["is_dry_run"] is True and row["cum_exec_qty"] == row["qty"]
    assert row["avg_price"] <= limit  # a buy limit never fills above its price
    events = await world.fetch(
        "SELECT payload FROM outbox WHERE event_type = 'filled' AND is_dry_run"
    )
    assert len(events) == 1
    assert [o for o in await world.sim_orders() if o["orderLinkId"].startswith("om")] == []
